//! `tls-cluster yes` (issue 19): the links between DataNodes (forwarding, handoff) and to
//! the NameNode run over TLS with the nodes' certificates, checked against the CA. Peers are
//! accepted only on the TLS port; a DataNode without TLS cannot register with a NameNode that
//! requires it, nor can one whose certificate comes from another CA.

use crate::pki::Pki;
use crate::util::*;
use bytes::BytesMut;
use chkv_datanode::tls::{AuthClients, TlsSettings};
use std::time::Duration;

fn cluster_settings(pki: &Pki) -> TlsSettings {
    TlsSettings {
        cluster: true,
        ..pki.settings(AuthClients::Yes)
    }
}

/// A DataNode's `chkv_namenode_last_error` (`INFO cluster`), once it says something.
async fn namenode_error(addr: std::net::SocketAddr) -> String {
    let deadline = tokio::time::Instant::now() + CONVERGE_LIMIT;
    loop {
        let mut c = connect(addr).await;
        let info: String = q(&mut c, &["INFO", "cluster"]).await;
        let error = info
            .lines()
            .find_map(|l| l.strip_prefix("chkv_namenode_last_error:"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if !error.is_empty() {
            return error;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no NameNode error reported: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_and_a_drain_run_over_tls_links() {
    // A drain on a loaded machine, with the other cluster tests running, can take longer
    // than the usual test limit: a generous one of its own.
    let limit = Duration::from_secs(150);
    let body = async {
        let pki = Pki::new("cluster");
        let cluster = Spec::new(3)
            .tls_cluster(cluster_settings(&pki))
            .start()
            .await;
        let addrs = cluster.addrs();

        // Peers are not accepted on the plaintext port, whatever they prove.
        let mut plain = Raw::connect(addrs[0]).await;
        let mut hello = BytesMut::new();
        chkv_datanode::trust::hello_request("dn-plain", &chkv_common::auth::nonce())
            .encode_into(&mut hello);
        assert_eq!(
            String::from_utf8_lossy(&plain.call(&hello).await),
            "-ERR tls-cluster is on: peers connect to this node's TLS port\r\n"
        );

        // Forwarding: keys of the other two nodes written through node 0 (so they crossed
        // TLS links, the only ones peers have) and read through node 2.
        let map = SlotMap::of(addrs[0]).await;
        let mut keys = map.keys_of(addrs[1], "tls:a:", 20);
        keys.extend(map.keys_of(addrs[2], "tls:b:", 20));
        let mut c0 = connect(addrs[0]).await;
        for k in &keys {
            let () = q(&mut c0, &["SET", k.as_str(), k.as_str()]).await;
        }
        let mut c2 = connect(addrs[2]).await;
        for k in &keys {
            let v: Option<String> = q(&mut c2, &["GET", k.as_str()]).await;
            assert_eq!(v.as_deref(), Some(k.as_str()));
        }
        let on_1: i64 = q(&mut connect(addrs[1]).await, &["DBSIZE"]).await;
        assert_eq!(on_1, 20);

        // A drain hands node 1's slots over a TLS link; nothing is lost.
        let DataNode::InProcess(n1) = &cluster.nodes[1] else {
            panic!("in-process nodes")
        };
        let summary = drain(n1.admin_addr()).await;
        eprintln!("{summary}");
        let rest = [addrs[0], addrs[2]];
        wait_converged(&rest, 2).await;
        let after = SlotMap::of(addrs[0]).await;
        let mut c0 = connect(addrs[0]).await;
        for k in &keys {
            assert!(
                rest.contains(&after.owner(k)),
                "{k} still on the drained node"
            );
            let v: Option<String> = q(&mut c0, &["GET", k.as_str()]).await;
            assert_eq!(v.as_deref(), Some(k.as_str()));
        }
        let mut total = 0;
        for a in rest {
            let n: i64 = q(&mut connect(a).await, &["DBSIZE"]).await;
            total += n;
        }
        assert_eq!(total, 40);

        // A DataNode without TLS on its links cannot register: the NameNode's DataNode
        // port speaks TLS only.
        let nn = cluster.namenode_addr();
        let plain = start_in_process(nn, FAST_HEARTBEAT, false, None).await;
        let error = namenode_error(plain.addr()).await;
        assert!(
            error.ends_with(
                "it answered in TLS: that port needs --tls-cluster yes on this side too"
            ),
            "{error}"
        );
        // Nor can one with TLS but a certificate from another CA.
        let rogue_pki = Pki::new("cluster-rogue");
        let rogue = start_in_process(
            nn,
            FAST_HEARTBEAT,
            false,
            Some(cluster_settings(&rogue_pki)),
        )
        .await;
        let error = namenode_error(rogue.addr()).await;
        assert!(error.contains("TLS handshake (tls-cluster)"), "{error}");
        // Neither got into the table.
        let status = cluster.namenode_status().await;
        for outsider in [plain.addr(), rogue.addr()] {
            let listed = status["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n["client_addr"] == outsider.to_string());
            assert!(
                !listed,
                "{outsider} got into the NameNode's table: {status}"
            );
        }
        step("DataNode shutdown", plain.shutdown()).await;
        step("DataNode shutdown", rogue.shutdown()).await;
        cluster.shutdown().await;
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("the test finishes within its limit");
}
