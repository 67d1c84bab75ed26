//! TLS (issue 19): the client against DataNodes' TLS ports, standalone and through a NameNode
//! (each node dialled at the TLS port it advertises), with and without a client certificate,
//! and a subscription over TLS.

use crate::pki::Pki;
use crate::util::*;
use chkv_client::{Client, Tls};
use chkv_datanode::tls::AuthClients;
use std::time::Duration;

fn mutual(pki: &Pki) -> Tls {
    Tls::with_client_cert(
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    )
    .expect("TLS files")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_over_tls() {
    bounded(Duration::from_secs(180), async {
        let pki = Pki::new("client-standalone");
        let mut config = datanode_config(None);
        config.tls = pki.settings(AuthClients::Yes);
        let node = step(
            "starting a TLS DataNode",
            chkv_datanode::server::start(config),
        )
        .await
        .expect("DataNode starts");
        let tls_addr = node.tls_addr().expect("TLS port");
        for resp3 in [false, true] {
            let c = Client::builder()
                .tls(mutual(&pki))
                .resp3(resp3)
                .connect_standalone(tls_addr)
                .await
                .expect("connects over TLS");
            c.set("k", "over tls").await.expect("set");
            assert_eq!(
                c.get("k").await.expect("get").as_deref(),
                Some(&b"over tls"[..])
            );
            // A reply bigger than a TLS record (16 KB).
            let big = "x".repeat(100_000);
            c.set("big", &big).await.expect("set big");
            assert_eq!(
                c.get("big").await.expect("get big").map(|v| v.len()),
                Some(big.len())
            );
            // A subscription opens its own connection, over TLS too.
            let mut sub = c.subscribe(["news"]);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let got = loop {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no message over TLS"
                );
                let _ = c.cmd(["PUBLISH", "news", "hello"]).await;
                if let Ok(Some(m)) =
                    tokio::time::timeout(Duration::from_millis(200), sub.next()).await
                {
                    break m;
                }
            };
            assert_eq!(&got.payload[..], b"hello");
        }
        // The node requires a client certificate: without one nothing is served.
        let err = Client::builder()
            .tls(Tls::new(pki.path("ca.pem")).expect("CA file"))
            .connect_standalone(tls_addr)
            .await
            .expect_err("no client certificate");
        eprintln!("without a client certificate: {err}");
        // A node whose certificate another CA signed is not trusted.
        let other = Pki::new("client-other-ca");
        let err = Client::builder()
            .tls(mutual(&other))
            .connect_standalone(tls_addr)
            .await
            .expect_err("unknown CA");
        assert!(err.to_string().contains("TLS handshake"), "{err}");
        // Bad files are reported when the options are made.
        let err = Tls::new(pki.path("missing.pem")).expect_err("no such file");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        node.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_over_tls_ports() {
    bounded(Duration::from_secs(180), async {
        let pki = Pki::new("client-cluster");
        let namenode = start_namenode(namenode_config()).await;
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let mut config = datanode_config(Some(namenode.datanode_addr()));
            config.tls = pki.settings(AuthClients::Yes);
            nodes.push(
                step(
                    "starting a TLS DataNode",
                    chkv_datanode::server::start(config),
                )
                .await
                .expect("DataNode starts"),
            );
        }
        let client = step(
            "client connect",
            Client::builder()
                .tls(mutual(&pki))
                .connect(namenode.client_addr()),
        )
        .await
        .expect("client connects");
        converge(&client, 2).await;
        // Keys on both nodes, each reached on its TLS port.
        let keys: Vec<String> = (0..200).map(|i| format!("tls:{i}")).collect();
        for n in &nodes {
            assert!(keys
                .iter()
                .any(|k| client.node_for_key(k) == Some(n.addr())));
        }
        for k in &keys {
            client.set(k, k).await.expect("set");
        }
        for k in &keys {
            assert_eq!(
                client.get(k).await.expect("get").as_deref(),
                Some(k.as_bytes())
            );
        }
        // Every connection the client holds is on a TLS port: the plaintext ports saw none.
        for n in &nodes {
            let plain = Client::builder()
                .connect_standalone(n.addr())
                .await
                .expect("plaintext connect");
            let list = plain.cmd(["CLIENT", "LIST"]).await.expect("CLIENT LIST");
            let list = String::from_utf8_lossy(list.as_bytes().expect("bulk")).into_owned();
            let tls_port = n.tls_addr().expect("TLS port").port();
            let on_tls = list
                .lines()
                .filter(|l| l.contains(&format!("laddr=127.0.0.1:{tls_port}")))
                .count();
            assert!(on_tls >= 1, "no client on the TLS port: {list}");
        }
        drop(client);
        for n in nodes {
            n.shutdown().await;
        }
        namenode.shutdown().await;
    })
    .await
}
