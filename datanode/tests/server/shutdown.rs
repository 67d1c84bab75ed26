//! Graceful shutdown with clients connected.

use crate::util::*;
use tokio::net::TcpStream;

#[tokio::test]
async fn shutdown_completes_with_clients_connected() {
    bounded(async {
        let s = start().await;
        let addr = s.addr();
        let mut idle = Raw::connect(addr).await;
        assert_eq!(idle.cmd(&["PING"]).await, "+PONG\r\n");
        let mut partial = Raw::connect(addr).await;
        partial.send(b"*2\r\n$3\r\nGET\r\n").await;
        let mut busy = Raw::connect(addr).await;
        let mut pipeline = Vec::new();
        for _ in 0..1000 {
            pipeline.extend(resp(&["PING"]));
        }
        busy.send(&pipeline).await;
        let r = &mut connect(addr).await;
        assert_eq!(val(r, &["SET", "k", "v"]).await, OK);

        step("shutdown", s.shutdown()).await;

        // Every connection is closed; whatever the busy one got is whole replies.
        assert_eq!(idle.read_to_eof().await, "");
        assert_eq!(partial.read_to_eof().await, "");
        let got = busy.read_to_eof().await;
        assert_eq!(got.len() % 7, 0, "torn reply: {} bytes", got.len());
        assert!(got.chunks(7).all(|r| r == b"+PONG\r\n"));
        assert!(try_q::<redis::Value, _>(r, &["GET", "k"]).await.is_err());
        let again = step("connect after shutdown", TcpStream::connect(addr)).await;
        assert!(again.is_err(), "connected after shutdown");
    })
    .await
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    bounded(async {
        let s = start().await;
        let addr = s.addr();
        assert_alive(addr).await;
        step("shutdown", s.shutdown()).await;
        // The same port can be bound again. Other tests run in parallel and their outgoing
        // connections draw local ports from the same range, so one may hold it for a moment;
        // a listener that was never released would fail every attempt.
        let cfg = chkv_datanode::config::Config {
            port: addr.port(),
            ..config()
        };
        let mut attempts = 0;
        let s = loop {
            match chkv_datanode::server::start(cfg.clone()).await {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 40 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebinding {addr} after shutdown: {e}"),
            }
        };
        assert_eq!(s.addr(), addr);
        assert_alive(addr).await;
        step("second shutdown", s.shutdown()).await;
    })
    .await
}
