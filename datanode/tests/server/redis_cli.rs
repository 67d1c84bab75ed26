//! The real `redis-cli` against an in-process DataNode. Skipped, with a note, when `redis-cli`
//! is not on PATH.

use crate::util::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `cli` with `args`, feeding `stdin`, and kills it if it runs longer than 20 s.
fn run(cli: &PathBuf, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(cli)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("redis-cli {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.join().expect("stdin writer");
    child.wait_with_output().expect("output")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "redis-cli failed: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn redis_cli_works_against_the_node() {
    let Some(cli) = find_on_path("redis-cli") else {
        eprintln!("note: redis-cli is not on PATH; skipping the redis-cli test");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(start());
    let port = server.addr().port().to_string();
    let base = ["-h", "127.0.0.1", "-p", port.as_str()];
    let cli_args = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let call = |extra: &[&str], stdin: &[u8]| {
        let args = cli_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&cli, &args, stdin)
    };

    assert_eq!(stdout(&call(&["SET", "a", "b"], b"")), "OK\n");
    assert_eq!(stdout(&call(&["GET", "a"], b"")), "b\n");
    assert_eq!(stdout(&call(&["GET", "missing"], b"")), "\n");
    assert_eq!(
        stdout(&call(&["--no-raw", "GET", "missing"], b"")),
        "(nil)\n"
    );
    assert_eq!(stdout(&call(&["INCR", "n"], b"")), "1\n");
    assert_eq!(
        stdout(&call(&["-3", "--no-raw", "GET", "missing"], b"")),
        "(nil)\n"
    );
    let err = stdout(&call(&["--no-raw", "SET", "a"], b""));
    assert_eq!(
        err,
        "(error) ERR wrong number of arguments for 'set' command\n"
    );

    // --pipe: 10,000 SETs in RESP, all acknowledged.
    let mut input = Vec::new();
    for i in 0..10_000 {
        input.extend(resp(&["SET", &format!("pipe:{i}"), &i.to_string()]));
    }
    let out = stdout(&call(&["--pipe"], &input));
    assert!(out.contains("errors: 0, replies: 10000"), "{out}");
    assert_eq!(server.node.db.len(), 10_000 + 2);
    assert_eq!(stdout(&call(&["GET", "pipe:9999"], b"")), "9999\n");
    assert_eq!(stdout(&call(&["DBSIZE"], b"")), "10002\n");

    let docs = stdout(&call(&["--no-raw", "COMMAND", "DOCS", "GET"], b""));
    assert!(!docs.trim().is_empty());
    assert!(
        docs.contains("summary") && docs.contains("\"get\""),
        "{docs}"
    );

    let info = stdout(&call(&["INFO", "server"], b""));
    assert!(info.contains("redis_version:"), "{info}");
    // Commands from stdin, one per line, as scripts use it.
    let out = stdout(&call(&[], b"SET fromstdin 1\nGET fromstdin\n"));
    assert_eq!(out, "OK\n1\n");

    rt.block_on(bounded(server.shutdown()));
}
