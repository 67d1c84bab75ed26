//! The real `chkv-datanode` and `chkv-namenode` binaries as child processes on free ports,
//! SIGKILLed and reaped on drop, so a failing test leaves nothing running.
//!
//! Every process is started with `--ports-file` in a folder of its own: the addresses it
//! bound (port 0 picks them) are read from that file, never from its log. Its log (stdout
//! and stderr) is still kept, for failure messages and for tests about what it logs (and printed
//! when a test fails, with `CHKV_TEST_LOG` set).
//!
//! The binaries are looked up beside the test binary's folder (`target/debug/deps/..`),
//! where `cargo test --workspace` builds them; a package's own tests always have its binary
//! built there (`CARGO_BIN_EXE_*` names the same file). `CHKV_BIN_DIR` overrides the folder.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wait::STEP_LIMIT;

/// The path of the workspace binary `name` (`chkv-datanode`), failing the test with how to
/// build it when it is not there.
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CHKV_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("the test binary's path");
            // target/debug/deps/NAME-HASH: the binaries are in target/debug.
            let deps = exe.parent().expect("the test binary's folder");
            deps.parent().unwrap_or(deps).to_path_buf()
        }
    };
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is not built: cargo build -p {name} (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

/// A CHKV binary running as a child process. Dropping it sends SIGKILL and reaps it.
pub struct Process {
    child: Child,
    /// Its main address: a DataNode's RESP port, a NameNode's DataNode port.
    pub addr: SocketAddr,
    /// Every address of its ports file (`resp`, `admin`, `tls`, `http` for a DataNode;
    /// `datanode`, `client`, `http` for a NameNode).
    ports: Vec<(String, SocketAddr)>,
    /// Its stdout and stderr so far, for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
    /// How many of its two output pipes have been read to the end.
    pipes_done: Arc<std::sync::atomic::AtomicUsize>,
    /// The folder of its ports file, removed on drop.
    dir: PathBuf,
}

impl Process {
    /// Starts `chkv-datanode --port 0` joined to `namenode` with the heartbeat `heartbeat`,
    /// one worker thread and `extra` flags.
    pub async fn spawn(namenode: SocketAddr, heartbeat: Duration, extra: &[&str]) -> Process {
        let heartbeat_ms = heartbeat.as_millis().to_string();
        let namenode = namenode.to_string();
        let mut args = vec!["--namenode", &namenode, "--heartbeat-ms", &heartbeat_ms];
        args.extend_from_slice(extra);
        Process::spawn_standalone(&args).await
    }

    /// Starts a standalone `chkv-datanode --port 0 --admin-port 0` with one worker thread and
    /// `extra` flags.
    pub async fn spawn_standalone(extra: &[&str]) -> Process {
        let mut cmd = Command::new(binary("chkv-datanode"));
        cmd.args(["--port", "0", "--admin-port", "0", "--threads", "1"])
            .args(["--log-level", &log_level()])
            .args(extra);
        Process::launch(cmd, "resp").await
    }

    /// Starts the real `chkv-namenode` with `args` (its ports should be 0); its address is
    /// its DataNode port, [`Process::port`] has `client` and `http`.
    pub async fn spawn_namenode(args: &[&str]) -> Process {
        let mut cmd = Command::new(binary("chkv-namenode"));
        cmd.args(args);
        Process::launch(cmd, "datanode").await
    }

    /// Starts `cmd` (a CHKV binary, its flags and environment set) with `--ports-file`, and
    /// waits up to [`STEP_LIMIT`] for the file; `main` names the port that becomes
    /// [`Process::addr`]. Fails the test, with the log, if the process exits first.
    pub async fn launch(mut cmd: Command, main: &str) -> Process {
        let dir = std::env::temp_dir().join(format!(
            "chkv-process-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a folder for the ports file");
        let ports_file = dir.join("ports");
        let what = format!("{:?}", cmd.get_program());
        // The DataNode logs to stderr, the NameNode to stdout: both are kept.
        let mut child = cmd
            .arg("--ports-file")
            .arg(&ports_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let pipes_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Read to the end: the process must never meet a closed pipe.
        let read = |pipe: Box<dyn std::io::Read + Send>| {
            let lines = log.clone();
            let done = pipes_done.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("log lock").push(line);
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        };
        read(Box::new(child.stderr.take().expect("stderr is piped")));
        read(Box::new(child.stdout.take().expect("stdout is piped")));
        // The guard exists before the first await, so a timeout still kills the process.
        let mut process = Process {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ports: Vec::new(),
            log,
            pipes_done,
            dir,
        };
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            // Written whole and renamed into place: present means complete.
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                process.ports = chkv_common::cli::parse_ports_file(&text);
                break;
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "{what} exited ({status}) before listening: {:?}",
                    process.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not write its ports file within {STEP_LIMIT:?}: {:?}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process.addr = process.port(main);
        process
    }

    /// The address of its port `name` (`admin`, `tls`, `http`, `client`), failing the test
    /// if it has none.
    pub fn port(&self, name: &str) -> SocketAddr {
        self.try_port(name)
            .unwrap_or_else(|| panic!("no {name} port in {:?}", self.ports))
    }

    /// The address of its port `name`, if it has one.
    pub fn try_port(&self, name: &str) -> Option<SocketAddr> {
        self.ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| *addr)
    }

    /// Waits up to [`STEP_LIMIT`] for a log line containing `marker` (what it logs, not
    /// where it listens: that is [`Process::port`]).
    pub async fn wait_log(&self, marker: &str) {
        let deadline = Instant::now() + STEP_LIMIT;
        while !self.log().iter().any(|l| l.contains(marker)) {
            assert!(
                Instant::now() < deadline,
                "no {marker:?} in {:?}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (`kill -9`), then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`libc::SIGTERM`, `SIGSTOP`, ...) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we spawned and have not reaped; touches no memory.
        let r = unsafe { libc::kill(pid, signal) };
        assert_eq!(r, 0, "kill({pid}, {signal})");
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Its last lines may still be in the pipes: the log is complete once both
                // are read to the end (a test that read it at once missed the last line
                // on a loaded machine).
                let logged = Instant::now() + STEP_LIMIT;
                while self.pipes_done.load(std::sync::atomic::Ordering::SeqCst) < 2
                    && Instant::now() < logged
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

/// With this variable set, DataNodes log at its level (`info,chkv_datanode::exec=debug`)
/// instead of `info`, and a failing test prints the log of every process it started. How
/// the forwarding loop behind a flaky failure was found: looped under load with
/// `CHKV_TEST_LOG` set, the failing run showed what the nodes did.
const LOG_VAR: &str = "CHKV_TEST_LOG";

fn log_level() -> String {
    std::env::var(LOG_VAR).unwrap_or_else(|_| "info".into())
}

/// Numbers the ports-file folders of one test process.
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os(LOG_VAR).is_some() {
            for line in self.log() {
                eprintln!("[{}] {line}", self.addr);
            }
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
