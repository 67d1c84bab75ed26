//! `tls-cluster yes` (issue 19): the links between DataNodes (forwarding, handoff) and to
//! the NameNode run over TLS with the nodes' certificates, checked against the CA. Peers are
//! accepted only on the TLS port; a DataNode without TLS cannot register with a NameNode that
//! requires it, nor can one whose certificate comes from another CA.

use crate::util::*;
use bytes::BytesMut;
use chkv_datanode::tls::{AuthClients, TlsSettings};
use chkv_testkit::pki::Pki;
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

/// Keys owned by nodes 1 and 2 (`n` each, named `PREFIX:a:...` and `PREFIX:b:...`) written
/// through node 0 and read back through node 2, so they cross the links between the nodes;
/// returns the keys.
async fn forward_across(addrs: &[std::net::SocketAddr], prefix: &str, n: usize) -> Vec<String> {
    let map = SlotMap::of(addrs[0]).await;
    let mut keys = map.keys_of(addrs[1], &format!("{prefix}:a:"), n);
    keys.extend(map.keys_of(addrs[2], &format!("{prefix}:b:"), n));
    let mut c0 = connect(addrs[0]).await;
    for k in &keys {
        let () = q(&mut c0, &["SET", k.as_str(), k.as_str()]).await;
    }
    let mut c2 = connect(addrs[2]).await;
    for k in &keys {
        let v: Option<String> = q(&mut c2, &["GET", k.as_str()]).await;
        assert_eq!(v.as_deref(), Some(k.as_str()));
    }
    keys
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
        let keys = forward_across(&addrs, "tls", 20).await;
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
        // Neither got into the table (asked over HTTPS: with tls-cluster the NameNode's
        // HTTP and watch ports speak TLS only, so plaintext gets no answer).
        let status = cluster.namenode_status().await;
        let (http, watch) = cluster.namenode_http_and_watch();
        let mut c = Raw::connect(http).await;
        c.send(b"GET /cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let got = c.read_to_eof().await;
        assert!(
            !got.starts_with(b"HTTP/"),
            "plaintext HTTP answered: {got:?}"
        );
        let mut c = Raw::connect(watch).await;
        c.send(b"{\"type\":\"watch\",\"version\":1}\n").await;
        let got = c.read_to_eof().await;
        assert!(!got.contains(&b'{'), "plaintext watch answered: {got:?}");
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

/// Every integer in a reply, at any depth.
fn ints(v: &redis::Value) -> std::collections::BTreeSet<i64> {
    let mut out = std::collections::BTreeSet::new();
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        match v {
            redis::Value::Int(i) => {
                out.insert(*i);
            }
            redis::Value::Array(a) | redis::Value::Set(a) => todo.extend(a),
            redis::Value::Map(m) => todo.extend(m.iter().flat_map(|(k, v)| [k, v])),
            _ => {}
        }
    }
    out
}

/// The `redis` crate's TLS settings with `pki`'s CA and client certificate.
fn client_certs(pki: &Pki) -> redis::TlsCertificates {
    let read = |name: &str| std::fs::read(pki.path(name)).expect("PEM file");
    redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: read("client.pem"),
            client_key: read("client.key"),
        }),
        root_cert: Some(read("ca.pem")),
    }
}

async fn tls_connect(pki: &Pki, addr: std::net::SocketAddr) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{}/", addr.port()),
        client_certs(pki),
    )
    .expect("TLS client");
    step("TLS connect", client.get_multiplexed_async_connection())
        .await
        .expect("TLS connection")
}

/// A client on a TLS connection is told TLS ports (Redis 7.2+): in `-MOVED`, CLUSTER SLOTS
/// and NODES (SHARDS gives both), so `redis-cli -c --tls` and cluster clients over TLS follow
/// redirects; a plaintext client keeps the plaintext ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_redirected_to_tls_ports() {
    let limit = Duration::from_secs(150);
    let body = async {
        let pki = Pki::new("cluster-moved");
        // Node 0 answers -MOVED to every connection (--cluster-redirects).
        let cluster = Spec::new(3)
            .tls_cluster(cluster_settings(&pki))
            .redirect_first()
            .start()
            .await;
        let addrs = cluster.addrs();
        let tls: Vec<std::net::SocketAddr> = cluster
            .nodes
            .iter()
            .map(|n| match n {
                DataNode::InProcess(h) => h.tls_addr().expect("TLS port"),
                DataNode::Process(_) => panic!("in-process nodes"),
            })
            .collect();
        let map = SlotMap::of(addrs[0]).await;
        let on_2 = map.keys_of(addrs[2], "mv:", 1).remove(0);
        let slot = chkv_common::key_slot(on_2.as_bytes());

        // -MOVED: the TLS port over TLS, the plaintext port over plaintext.
        let mut t0 = tls_connect(&pki, tls[0]).await;
        let err = redis::cmd("GET")
            .arg(&on_2)
            .query_async::<redis::Value>(&mut t0)
            .await
            .expect_err("MOVED");
        assert_eq!(
            err.redirect_node(),
            Some((tls[2].to_string().as_str(), slot)),
            "{err}"
        );
        let mut p0 = Raw::connect(addrs[0]).await;
        assert_eq!(
            p0.cmd(&["GET", &on_2]).await,
            format!("-MOVED {slot} {}\r\n", addrs[2]).as_str()
        );

        // CLUSTER SLOTS and NODES name the TLS ports over TLS; SHARDS gives both ports.
        let mut t1 = tls_connect(&pki, tls[1]).await;
        let slots: redis::Value = q(&mut t1, &["CLUSTER", "SLOTS"]).await;
        let ports = ints(&slots);
        for (p, t) in addrs.iter().zip(&tls) {
            assert!(
                ports.contains(&i64::from(t.port())),
                "{t} not in CLUSTER SLOTS"
            );
            assert!(
                !ports.contains(&i64::from(p.port())),
                "{p} in CLUSTER SLOTS"
            );
        }
        let nodes: String = q(&mut t1, &["CLUSTER", "NODES"]).await;
        for (p, t) in addrs.iter().zip(&tls) {
            assert!(nodes.contains(&format!(" {t}@")), "{nodes}");
            assert!(!nodes.contains(&format!(" {p}@")), "{nodes}");
        }
        let mut p1 = connect(addrs[1]).await;
        let nodes: String = q(&mut p1, &["CLUSTER", "NODES"]).await;
        for p in &addrs {
            assert!(nodes.contains(&format!(" {p}@")), "{nodes}");
        }
        let shards: redis::Value = q(&mut t1, &["CLUSTER", "SHARDS"]).await;
        let ports = ints(&shards);
        for (p, t) in addrs.iter().zip(&tls) {
            assert!(
                ports.contains(&i64::from(t.port())),
                "{t} not in CLUSTER SHARDS"
            );
            assert!(
                ports.contains(&i64::from(p.port())),
                "{p} not in CLUSTER SHARDS"
            );
        }
        assert!(
            format!("{shards:?}").contains("tls-port"),
            "no tls-port in SHARDS"
        );

        // The redis crate's cluster client over TLS: its map comes from CLUSTER SLOTS, so
        // it reaches every node on the TLS port.
        let client = redis::cluster::ClusterClientBuilder::new(vec![format!(
            "rediss://127.0.0.1:{}",
            tls[0].port()
        )])
        .certs(client_certs(&pki))
        .build()
        .expect("cluster client");
        let mut cc = step("cluster connect", client.get_async_connection())
            .await
            .expect("cluster connection over TLS");
        let keys: Vec<String> = (0..60).map(|i| format!("cc:{i}")).collect();
        for k in &keys {
            let () = redis::cmd("SET")
                .arg(k)
                .arg(k)
                .query_async(&mut cc)
                .await
                .expect("SET through the TLS cluster client");
        }
        for k in &keys {
            let v: String = redis::cmd("GET")
                .arg(k)
                .query_async(&mut cc)
                .await
                .expect("GET");
            assert_eq!(&v, k);
        }
        let mut owners = std::collections::BTreeSet::new();
        for k in &keys {
            owners.insert(map.owner(k));
        }
        assert_eq!(owners.len(), 3, "keys on every node");

        // redis-cli -c --tls follows node 0's -MOVED to node 2's TLS port.
        if std::process::Command::new("redis-cli")
            .arg("--version")
            .output()
            .is_ok()
        {
            let out = step(
                "redis-cli",
                tokio::process::Command::new("redis-cli")
                    .args(["-c", "--tls", "-h", "127.0.0.1", "-p"])
                    .arg(tls[0].port().to_string())
                    .arg("--cacert")
                    .arg(pki.path("ca.pem"))
                    .arg("--cert")
                    .arg(pki.path("client.pem"))
                    .arg("--key")
                    .arg(pki.path("client.key"))
                    .args(["SET", &on_2, "via-cli"])
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("run redis-cli");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "OK",
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut c2 = connect(addrs[2]).await;
            let v: String = q(&mut c2, &["GET", &on_2]).await;
            assert_eq!(v, "via-cli");
        } else {
            eprintln!("redis-cli not installed; its part skipped");
        }
        drop((t0, t1, cc));
        cluster.shutdown().await;
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("the test finishes within its limit");
}

/// The NameNode's `/cluster` JSON over HTTPS with the files of `tls`, or why not.
async fn status_over_https(
    http: std::net::SocketAddr,
    tls: &chkv_namenode::ClusterTls,
) -> Result<serde_json::Value, String> {
    // A NameNode busy publishing tables may answer 503 (its core did not answer in time):
    // a liveness matter, asked again until CONVERGE_LIMIT (seen with five copies of this
    // test binary running at once).
    let deadline = tokio::time::Instant::now() + CONVERGE_LIMIT;
    loop {
        let got = try_https_request(
            http,
            tls,
            b"GET /cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await?;
        let text = String::from_utf8_lossy(&got).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
        if head.starts_with("HTTP/1.1 503") && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.to_string());
        }
        return serde_json::from_str(body).map_err(|e| e.to_string());
    }
}

/// The real binaries: a NameNode and three DataNodes as processes with `--tls-cluster yes`
/// (forwarding over TLS links, the NameNode's HTTP over TLS), then new certificate files
/// picked up on SIGHUP by the NameNode and a DataNode, for new connections only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_binaries_with_tls_cluster_reload_on_sighup() {
    let limit = Duration::from_secs(180);
    let body = async {
        let pki = Pki::new("bin");
        let other = Pki::new("bin-new");
        // The processes read copies, so the test can replace them.
        let dir = std::env::temp_dir().join(format!("chkv-tls-bin-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let put = |from: &Pki| {
            for f in [
                "server.pem",
                "server.key",
                "ca.pem",
                "client.pem",
                "client.key",
            ] {
                std::fs::copy(from.path(f), dir.join(f)).expect("copy");
            }
        };
        put(&pki);
        let file = |n: &str| dir.join(n).display().to_string();
        let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
        let tls_flags = [
            "--tls-cluster",
            "yes",
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
        ];
        let mut nn_args = vec![
            "--datanode-port",
            "0",
            "--client-port",
            "0",
            "--http-port",
            "0",
            "--heartbeat-interval-ms",
            "200",
            "--heartbeat-tolerance",
            "10",
            "--log-level",
            "info",
        ];
        nn_args.extend(tls_flags);
        let mut namenode = Process::spawn_namenode(&nn_args).await;
        let http = namenode.port("http");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            // `--tls-port 0` is Redis's "off": a port that was free a moment ago.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
                .to_string();
            let mut dn_args = vec!["--tls-port", &port];
            dn_args.extend(tls_flags);
            nodes.push(Process::spawn(namenode.addr, FAST_HEARTBEAT, &dn_args).await);
        }
        let addrs: Vec<_> = nodes.iter().map(|p| p.addr).collect();
        wait_converged(&addrs, 3).await;
        // The NameNode's HTTP speaks TLS: a certificate from the CA is required.
        let old_files = chkv_namenode::ClusterTls {
            cert_file: pki.path("server.pem"),
            key_file: pki.path("server.key"),
            ca_cert_file: pki.path("ca.pem"),
        };
        let deadline = tokio::time::Instant::now() + CONVERGE_LIMIT;
        loop {
            let status = status_over_https(http, &old_files)
                .await
                .expect("HTTPS status");
            if status["slots_moving"] == 0 && status["nodes"].as_array().map(Vec::len) == Some(3) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "slot moves did not finish"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        wait_converged(&addrs, 3).await;

        // Forwarding over the TLS links between the processes.
        forward_across(&addrs, "bin", 10).await;
        let node0_tls = nodes[0].port("tls");
        let ping = |p: &Pki| {
            let certs = client_certs(p);
            async move {
                let client = redis::Client::build_with_tls(
                    format!("rediss://127.0.0.1:{}/", node0_tls.port()),
                    certs,
                )?;
                let mut con = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING").query_async::<String>(&mut con).await
            }
        };
        assert_eq!(ping(&pki).await.expect("PING over TLS"), "PONG");

        // New files: the old certificates stay until SIGHUP.
        put(&other);
        assert!(status_over_https(http, &old_files).await.is_ok());
        let new_files = chkv_namenode::ClusterTls {
            cert_file: other.path("server.pem"),
            key_file: other.path("server.key"),
            ca_cert_file: other.path("ca.pem"),
        };
        namenode.signal(libc::SIGHUP);
        nodes[0].signal(libc::SIGHUP);
        for p in [&namenode, &nodes[0]] {
            p.wait_log("SIGHUP: TLS certificates reloaded").await;
        }
        // New connections get the new certificates; the old CA's clients are refused.
        let status = status_over_https(http, &new_files)
            .await
            .expect("HTTPS with the new CA after SIGHUP");
        assert_eq!(status["nodes"].as_array().map(Vec::len), Some(3));
        let err = status_over_https(http, &old_files)
            .await
            .expect_err("the old CA after SIGHUP");
        assert!(err.contains("TLS handshake"), "{err}");
        assert_eq!(ping(&other).await.expect("PING, new CA"), "PONG");
        assert!(ping(&pki).await.is_err(), "the old CA after SIGHUP");
        // The processes are still running (SIGHUP did not end them).
        for p in nodes.iter_mut().chain(std::iter::once(&mut namenode)) {
            assert!(p.wait_exit(Duration::ZERO).await.is_none(), "{:?}", p.log());
        }
        let _ = std::fs::remove_dir_all(&dir);
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("the test finishes within its limit");
}
