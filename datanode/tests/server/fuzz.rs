//! Random bytes at a live server: it answers what parses, closes on a protocol error with the
//! error text (never silently, which is what a panicking connection would do), and keeps
//! serving everyone else.

use crate::util::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Fragments that make RESP-shaped input likely, without commands that change the server's
/// configuration.
const PIECES: &[&[u8]] = &[
    b"*",
    b"$",
    b"\r\n",
    b"\n",
    b"\r",
    b"0",
    b"1",
    b"2",
    b"3",
    b"-1",
    b"10",
    b"16",
    b"4294967296",
    b"99999999999999999999",
    b"PING",
    b"GET",
    b"SET",
    b"ECHO",
    b"MGET",
    b"INCR",
    b"HELLO",
    b"k",
    b"\"",
    b"'",
    b"\\x4",
    b" ",
    b"\0",
    b"+",
    b":",
    b"-",
    b"\xff",
];

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        proptest::collection::vec(proptest::sample::select(PIECES), 0..48).prop_map(|v| v.concat()),
    ]
}

/// Sends `input`, half-closes, and checks what comes back: whole replies only, and if the
/// connection ended on an error, a protocol error. Then checks that a fresh client gets PONG.
async fn one_case(addr: SocketAddr, input: &[u8], seen: &Seen) -> Result<(), String> {
    let mut c = Raw::connect(addr).await;
    // The server may close before reading it all; that is allowed.
    let _ = c.sock.write_all(input).await;
    let _ = c.sock.shutdown().await;
    let out = c.read_to_eof().await;
    let mut rest = &out[..];
    let mut last: &[u8] = b"";
    while !rest.is_empty() {
        let n = reply_len(rest).ok_or_else(|| format!("torn reply {:?}", show(rest)))?;
        last = &rest[..n];
        rest = &rest[n..];
    }
    if let Some(pos) = out.windows(19).position(|w| w == b"-ERR Protocol error") {
        if &out[pos..] != last {
            return Err(format!("replies after a protocol error: {:?}", show(&out)));
        }
        seen.protocol_errors.fetch_add(1, Ordering::Relaxed);
    }
    if !out.is_empty() && !last.starts_with(b"-ERR Protocol error") {
        seen.answered.fetch_add(1, Ordering::Relaxed);
    }
    let mut fresh = Raw::connect(addr).await;
    let pong = fresh.cmd(&["PING"]).await;
    if pong != "+PONG\r\n" {
        return Err(format!("PING got {:?}", show(&pong)));
    }
    Ok(())
}

/// How many cases ended on a protocol error, and how many got replies and no error: both
/// paths must have been exercised for the run to mean anything.
#[derive(Default)]
struct Seen {
    protocol_errors: AtomicUsize,
    answered: AtomicUsize,
}

#[test]
fn random_bytes_never_break_the_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(start());
    let addr = server.addr();
    let seen = Seen::default();
    let mut runner = TestRunner::new(PropConfig {
        cases: 64,
        failure_persistence: None,
        ..PropConfig::default()
    });
    runner
        .run(&inputs(), |input| {
            let res = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), one_case(addr, &input, &seen)).await
            });
            match res {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(TestCaseError::fail(e)),
                Err(_) => Err(TestCaseError::fail("case timed out")),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (errors, answered) = (
        seen.protocol_errors.load(Ordering::Relaxed),
        seen.answered.load(Ordering::Relaxed),
    );
    assert!(
        errors > 0 && answered > 0,
        "{errors} protocol errors, {answered} answered cases: the inputs missed a path"
    );

    rt.block_on(bounded(async {
        // Every garbage connection is gone; a panicking connection task would leak its entry.
        let node = server.node.clone();
        let settled = eventually(STEP_LIMIT, || {
            let node = node.clone();
            async move { node.connected_clients() == 0 }
        })
        .await;
        assert!(
            settled,
            "{} clients still registered",
            node.connected_clients()
        );
        assert_alive(addr).await;
        server.shutdown().await;
    }));
}
