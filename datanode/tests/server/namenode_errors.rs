//! A DataNode pointed at the wrong kind of port, or at nothing, says so at once: `INFO
//! cluster` names the NameNode address and why the session failed.

use crate::util::*;
use chkv_datanode::config::Config;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A listener that answers every connection with `reply` (after reading a little) and
/// closes it.
async fn impostor(reply: &'static [u8]) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
            });
        }
    });
    addr
}

async fn last_error(namenode: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let node = start_with(Config {
        namenode: Some(namenode.into()),
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..config()
    })
    .await;
    let mut c = connect(node.addr()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = q(&mut c, &["INFO", "cluster"]).await;
        assert!(
            info.contains(&format!("chkv_namenode:{namenode}")),
            "{info}"
        );
        if let Some(e) = info
            .lines()
            .find_map(|l| l.strip_prefix("chkv_namenode_last_error:"))
        {
            let took = started.elapsed();
            node.shutdown().await;
            return (e.to_string(), took);
        }
        assert!(Instant::now() < deadline, "no error reported: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn wrong_ports_and_nothing_are_named() {
    bounded(async {
        // A port that closes on the registration (the NameNode's client port does).
        let (e, took) = last_error(impostor(b"").await).await;
        assert!(e.contains("is not a NameNode's DataNode port"), "{e}");
        assert!(e.contains("closed the connection"), "{e}");
        eprintln!("closing port reported after {took:?}");
        // Something that answers in another protocol (Redis, HTTP).
        let (e, _) = last_error(impostor(b"-ERR unknown command\r\n").await).await;
        assert!(e.contains("is not a NameNode's DataNode port"), "{e}");
        assert!(e.contains("-ERR unknown command"), "{e}");
        // Nothing there.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let (e, took) = last_error(free).await;
        assert!(e.contains("cannot reach the NameNode"), "{e}");
        eprintln!("nothing listening reported after {took:?}");
    })
    .await
}
