//! Test clusters: an in-process NameNode with fast heartbeats, DataNodes in-process or in a
//! child process (this test binary re-run as a DataNode, so it can be SIGKILLed like a real
//! one), convergence polling, and draining over the admin port.

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chkv_client::{Client, Value};
use chkv_datanode::config::Config as DataNodeConfig;
use chkv_datanode::server::{self, ServerHandle};
use chkv_namenode::{NameNodeHandle, Timing};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Heartbeat of the test clusters.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// Heartbeats a node may miss before it is suspected: 2 s of silence, so a test process whose
/// threads wait seconds for a core (the whole suite on 2 busy cores) does not see its healthy
/// nodes declared dead, fenced and re-joined over and over (that made convergence miss the
/// step limit on a machine with a load average of 16). A killed node is out within seconds.
pub const TOLERANCE: u32 = 20;
/// Upper bound for one step (start, converge, drain): liveness, so generous.
pub const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Runs `body`, failing instead of hanging after `limit`.
pub async fn bounded<T>(limit: Duration, body: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, body)
        .await
        .expect("test did not finish within its time limit")
}

/// Runs one step, failing with `what` after [`STEP_LIMIT`].
pub async fn step<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

pub fn namenode_config() -> chkv_namenode::Config {
    chkv_namenode::Config {
        timing: Timing::new(HEARTBEAT, NonZeroU32::new(TOLERANCE).expect("nonzero")),
        ..chkv_namenode::Config::ephemeral()
    }
}

pub async fn start_namenode(config: chkv_namenode::Config) -> NameNodeHandle {
    step("starting the NameNode", chkv_namenode::start(config))
        .await
        .expect("NameNode starts")
}

pub fn datanode_config(namenode: Option<SocketAddr>) -> DataNodeConfig {
    DataNodeConfig {
        port: 0,
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        namenode: namenode.map(Into::into),
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
        ..DataNodeConfig::default()
    }
}

pub async fn start_datanode(namenode: Option<SocketAddr>) -> ServerHandle {
    step(
        "starting a DataNode",
        server::start(datanode_config(namenode)),
    )
    .await
    .expect("DataNode starts")
}

/// A NameNode and in-process DataNodes, converged, and a client connected to it.
pub struct Cluster {
    pub namenode: NameNodeHandle,
    pub nodes: Vec<ServerHandle>,
    pub client: Client,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        let namenode = start_namenode(namenode_config()).await;
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(start_datanode(Some(namenode.datanode_addr())).await);
        }
        let client = builder();
        let client = step("client connect", client.connect(namenode.client_addr()))
            .await
            .expect("client connects");
        // Settled, not only converged: equal tables are not the end of a join (slots still
        // move batch by batch), and a test that starts meanwhile meets the moves (a SCAN
        // over the nodes missing keys that moved to a node it had scanned, a near cache's
        // fills racing the moves' invalidations; both seen with three copies of the client
        // tests at once).
        settle(&client, namenode.http_addr(), n).await;
        Cluster {
            namenode,
            nodes,
            client,
        }
    }

    pub async fn shutdown(self) {
        for n in self.nodes {
            n.shutdown().await;
        }
        self.namenode.shutdown().await;
    }
}

/// `cluster_current_epoch` of `CLUSTER INFO` at `node`.
async fn node_epoch(client: &Client, node: SocketAddr) -> Option<u64> {
    let info = client.cmd_on(node, ["CLUSTER", "INFO"]).await.ok()?;
    let text = String::from_utf8(info.as_bytes()?.to_vec()).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("cluster_current_epoch:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the client's table has `n` nodes that all own slots, every slot is owned, and
/// every node reports the table's epoch (so no handoff is still running).
async fn converged(client: &Client, n: usize) -> bool {
    let ring = client.ring();
    let owners = client.nodes();
    if ring.node_count() != n || owners.len() != n || ring.assigned_slots != 16384 {
        return false;
    }
    for &node in &owners {
        if node_epoch(client, node).await != Some(ring.epoch) {
            return false;
        }
    }
    true
}

/// Waits until the client's table has `n` nodes that all own slots, every slot is owned, and
/// every node reports the table's epoch (so no handoff is still running).
pub async fn converge(client: &Client, n: usize) -> Duration {
    let started = Instant::now();
    loop {
        if converged(client, n).await {
            return started.elapsed();
        }
        // A liveness bound, as generous as `settle`'s: a join under heavy load takes a while.
        assert!(
            started.elapsed() < STEP_LIMIT * 2,
            "no convergence on {n} nodes: ring {:?}, owners {:?}",
            client.ring(),
            client.nodes()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `slots_moving` of the NameNode's `/cluster` JSON at its HTTP address (`None` while it
/// does not answer, e.g. a busy core's 503).
async fn slots_moving(http: SocketAddr) -> Option<u64> {
    use tokio::io::AsyncReadExt;
    let mut sock = tokio::net::TcpStream::connect(http).await.ok()?;
    sock.write_all(b"GET /cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = Vec::new();
    sock.read_to_end(&mut text).await.ok()?;
    let text = String::from_utf8(text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["slots_moving"].as_u64()
}

/// Waits until the NameNode at `http` moves no slots (joins and drains are done) and the
/// client's table has `n` nodes that agree with it. A join moves a third of the slots in
/// many steps, each a new table; on a loaded machine that takes a while, so the bound is a
/// generous liveness one.
pub async fn settle(client: &Client, http: SocketAddr, n: usize) {
    let started = Instant::now();
    loop {
        if slots_moving(http).await == Some(0) && converged(client, n).await {
            return;
        }
        assert!(
            started.elapsed() < STEP_LIMIT * 2,
            "slot moves did not finish on {n} nodes: ring {:?}",
            client.ring()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `k` to a DataNode's admin port and reads until the `drained:` summary.
pub async fn drain(admin: SocketAddr) -> Vec<String> {
    let sock = step("admin connect", tokio::net::TcpStream::connect(admin))
        .await
        .expect("admin connects");
    let (rd, mut wr) = sock.into_split();
    wr.write_all(b"k\r\n").await.expect("send k");
    let mut lines = tokio::io::BufReader::new(rd).lines();
    let mut seen = Vec::new();
    loop {
        let line = step("drain progress", lines.next_line())
            .await
            .expect("admin read");
        let Some(line) = line else { break };
        let done = line.starts_with("drained:");
        seen.push(line);
        if done {
            break;
        }
    }
    seen
}

/// The text of a string reply.
pub fn text(v: &Value) -> String {
    String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned()
}

const CHILD_ENV: &str = "CHKV_CLIENT_TEST_CHILD_NAMENODE";
const CHILD_TEST: &str = "util::datanode_child";

/// A DataNode in a child process: this test binary, re-run with only [`datanode_child`]
/// selected. Dropping it sends SIGKILL and reaps it.
pub struct ChildDataNode {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl ChildDataNode {
    pub async fn spawn(namenode: SocketAddr) -> ChildDataNode {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, namenode.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its logs, when asked for (RUST_LOG), go where ours go.
            .stderr(if std::env::var_os("RUST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn the DataNode child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints `test util::datanode_child ... ` before it on the same line.
                if let Some((_, rest)) = line.split_once("CHKV_CHILD ") {
                    let addrs: Vec<SocketAddr> =
                        rest.split(' ').filter_map(|a| a.parse().ok()).collect();
                    if let (Some(tx), [addr, admin]) = (tx.take(), addrs.as_slice()) {
                        let _ = tx.send((*addr, *admin));
                    }
                }
            }
        });
        // The guard exists before the first await, so a timeout still kills the child.
        let mut node = ChildDataNode {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let (addr, admin) = step("the DataNode child reports its address", rx)
            .await
            .expect("the child reports its address");
        node.addr = addr;
        node.admin = admin;
        node
    }

    /// SIGKILL (`kill -9`), then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildDataNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Not a test: the body of [`ChildDataNode`]. Returns at once unless run as a child.
#[test]
fn datanode_child() {
    let Ok(namenode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let namenode: SocketAddr = namenode.parse().expect("NameNode address");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let handle = runtime
        .block_on(server::start(datanode_config(Some(namenode))))
        .expect("DataNode starts");
    println!("CHKV_CHILD {} {}", handle.addr(), handle.admin_addr());
    // Serve until killed; exit when the parent goes away (its end of stdin closes).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    std::process::exit(0);
}

/// A client builder with a 30 s response timeout (the default is 2 s): on a loaded 2-core
/// machine a reply can take seconds; a server that never answers still fails the test's
/// bound. Every test client starts from it unless the test is about the timeout.
pub fn builder() -> chkv_client::Builder {
    Client::builder().response_timeout(Duration::from_secs(30))
}
