//! TLS (issue 19): the client against DataNodes' TLS ports, standalone and through a NameNode
//! (each node dialled at the TLS port it advertises), with and without a client certificate,
//! and a subscription over TLS.

use crate::util::*;
use chkv_client::{Client, Tls};
use chkv_datanode::tls::AuthClients;
use chkv_testkit::pki::Pki;
use std::time::Duration;

fn mutual(pki: &Pki) -> Tls {
    Tls::with_client_cert(
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    )
    .expect("TLS files")
}

/// A DataNode with a TLS port (client certificates required) using `pki`'s files, joined to
/// `namenode` if given, with `tls-cluster` as `cluster` says.
async fn start_tls_datanode(
    pki: &Pki,
    namenode: Option<std::net::SocketAddr>,
    cluster: bool,
) -> chkv_datanode::server::ServerHandle {
    let mut config = datanode_config(namenode);
    config.tls = pki.settings(AuthClients::Yes);
    config.tls.cluster = cluster;
    step(
        "starting a TLS DataNode",
        chkv_datanode::server::start(config),
    )
    .await
    .expect("DataNode starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_over_tls() {
    bounded(Duration::from_secs(180), async {
        let pki = Pki::new("client-standalone");
        let node = start_tls_datanode(&pki, None, false).await;
        let tls_addr = node.tls_addr().expect("TLS port");
        for resp3 in [false, true] {
            let c = crate::util::builder()
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
        let err = crate::util::builder()
            .tls(Tls::new(pki.path("ca.pem")).expect("CA file"))
            .connect_standalone(tls_addr)
            .await
            .expect_err("no client certificate");
        eprintln!("without a client certificate: {err}");
        // A node whose certificate another CA signed is not trusted.
        let other = Pki::new("client-other-ca");
        let err = crate::util::builder()
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
            nodes.push(start_tls_datanode(&pki, Some(namenode.datanode_addr()), false).await);
        }
        let client = step(
            "client connect",
            crate::util::builder()
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
            let plain = crate::util::builder()
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

/// `?tls-ca-cert-file=..&tls-cert-file=..&tls-key-file=..` of a URL, for `pki`'s client.
fn url_files(pki: &Pki) -> String {
    format!(
        "tls-ca-cert-file={}&tls-cert-file={}&tls-key-file={}",
        pki.path("ca.pem").display(),
        pki.path("client.pem").display(),
        pki.path("client.key").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_name_the_user_and_tls() {
    bounded(Duration::from_secs(180), async {
        let pki = Pki::new("client-urls");
        let node = start_tls_datanode(&pki, None, false).await;
        let (plain, tls) = (node.addr(), node.tls_addr().expect("TLS port"));
        let admin = crate::util::builder()
            .connect_standalone(plain)
            .await
            .expect("plaintext connect");
        admin
            .cmd([
                "ACL",
                "SETUSER",
                "app",
                "on",
                ">p@ss:w",
                "~app:*",
                "+get",
                "+set",
                "+acl|whoami",
            ])
            .await
            .expect("ACL SETUSER");

        // rediss:// as an ACL user (an escaped '@' in the password), with a client certificate.
        let url = format!(
            "rediss://app:p%40ss:w@127.0.0.1:{}/0?{}",
            tls.port(),
            url_files(&pki)
        );
        let c = crate::util::builder()
            .connect_standalone_url(&url)
            .await
            .expect("rediss:// connects");
        let who = c.cmd(["ACL", "WHOAMI"]).await.expect("WHOAMI");
        assert_eq!(who.as_bytes(), Some(&b"app"[..]));
        c.set("app:1", "v").await.expect("allowed key");
        let err = c.set("other", "v").await.expect_err("key not allowed");
        assert_eq!(err.code(), Some("NOPERM"), "{err}");
        // The connection is on the TLS port.
        let list = admin.cmd(["CLIENT", "LIST"]).await.expect("CLIENT LIST");
        let list = String::from_utf8_lossy(list.as_bytes().expect("bulk")).into_owned();
        assert!(
            list.lines()
                .any(|l| l.contains("user=app") && l.contains(&format!("laddr={tls}"))),
            "{list}"
        );
        drop(c);

        // redis:// with a host name and the user; Builder::tls stands in for the files.
        let c = crate::util::builder()
            .connect_standalone_url(&format!("redis://app:p%40ss:w@localhost:{}", plain.port()))
            .await
            .expect("redis:// connects");
        let who = c.cmd(["ACL", "WHOAMI"]).await.expect("WHOAMI");
        assert_eq!(who.as_bytes(), Some(&b"app"[..]));
        let c = crate::util::builder()
            .tls(mutual(&pki))
            .connect_standalone_url(&format!("rediss://app:p%40ss:w@127.0.0.1:{}", tls.port()))
            .await
            .expect("rediss:// with Builder::tls");
        let who = c.cmd(["ACL", "WHOAMI"]).await.expect("WHOAMI");
        assert_eq!(who.as_bytes(), Some(&b"app"[..]));

        // A wrong password is the server's refusal; mistakes in the URL are named.
        let err = crate::util::builder()
            .connect_standalone_url(&format!("redis://app:wrong@127.0.0.1:{}", plain.port()))
            .await
            .expect_err("wrong password");
        assert_eq!(err.code(), Some("WRONGPASS"), "{err}");
        let err = crate::util::builder()
            .connect_standalone_url(&format!("rediss://127.0.0.1:{}", tls.port()))
            .await
            .expect_err("no CA");
        assert!(err.to_string().contains("tls-ca-cert-file"), "{err}");
        let err = crate::util::builder()
            .tls(mutual(&pki))
            .connect_standalone_url(&format!("redis://127.0.0.1:{}", tls.port()))
            .await
            .expect_err("redis:// with TLS");
        assert!(err.to_string().contains("use rediss://"), "{err}");
        let err = crate::util::builder()
            .connect(["redis://127.0.0.1:1", "127.0.0.1:2"])
            .await
            .expect_err("mixed");
        assert!(err.to_string().contains("mixing"), "{err}");
        node.shutdown().await;
    })
    .await
}

/// A NameNode with `tls-cluster`: its watch port speaks TLS only, so clients connect with
/// `rediss://`; a plaintext client cannot watch; new certificates apply after a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_port_speaks_tls_with_tls_cluster() {
    bounded(Duration::from_secs(240), async {
        let pki = Pki::new("client-watch");
        // The NameNode's files are copies, so the test can replace them.
        let dir = std::env::temp_dir().join(format!("chkv-watch-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let put = |from: &Pki| {
            for f in ["server.pem", "server.key", "ca.pem"] {
                std::fs::copy(from.path(f), dir.join(f)).expect("copy");
            }
        };
        put(&pki);
        let mut nn = namenode_config();
        nn.cluster_tls = Some(chkv_namenode::ClusterTls {
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
            ca_cert_file: dir.join("ca.pem"),
        });
        let namenode = start_namenode(nn).await;
        let mut nodes = Vec::new();
        for _ in 0..2 {
            nodes.push(start_tls_datanode(&pki, Some(namenode.datanode_addr()), true).await);
        }
        let watch = namenode.client_addr();
        let url = format!("rediss://127.0.0.1:{}?{}", watch.port(), url_files(&pki));
        let client = step("client connect", Client::connect(url.as_str()))
            .await
            .expect("rediss:// watches over TLS");
        converge(&client, 2).await;
        for i in 0..100 {
            let k = format!("w:{i}");
            client.set(&k, &k).await.expect("set");
            assert_eq!(
                client.get(&k).await.expect("get").as_deref(),
                Some(k.as_bytes())
            );
        }

        // Plaintext on the watch port: no table, the connection refused.
        let err = crate::util::builder()
            .table_timeout(Duration::from_secs(5))
            .connect(watch)
            .await
            .expect_err("plaintext watch");
        eprintln!("plaintext watch: {err}");
        assert!(
            matches!(err, chkv_client::Error::NotNameNode { .. }),
            "{err}"
        );
        // TLS without a client certificate (tls-auth-clients yes, the default).
        let err = crate::util::builder()
            .tls(Tls::new(pki.path("ca.pem")).expect("CA"))
            .table_timeout(Duration::from_secs(5))
            .connect(format!("rediss://127.0.0.1:{}", watch.port()))
            .await
            .expect_err("no client certificate");
        eprintln!("without a client certificate: {err}");

        // New files: nothing changes until the reload; then only the new CA's clients.
        let other = Pki::new("client-watch-new");
        put(&other);
        let old_again = step("client connect", Client::connect(url.as_str()))
            .await
            .expect("old certificates until the reload");
        assert!(namenode.reload_tls().expect("reload"));
        let err = crate::util::builder()
            .table_timeout(Duration::from_secs(5))
            .connect(url.as_str())
            .await
            .expect_err("the old CA no longer names the NameNode's certificate");
        eprintln!("old CA after the reload: {err}");
        let new_url = format!("rediss://127.0.0.1:{}?{}", watch.port(), url_files(&other));
        // The new CA's client watches; the DataNodes still have the old CA's certificates, so
        // it only checks that a table arrives.
        let fresh = step("client connect", Client::connect(new_url.as_str()))
            .await
            .expect("new certificates after the reload");
        assert_eq!(fresh.ring().nodes.len(), 2);
        // A bad file: the reload fails and the current certificates stay.
        std::fs::write(dir.join("server.key"), "not a key").expect("write");
        let err = namenode.reload_tls().expect_err("bad key");
        assert!(err.to_string().contains("server.key"), "{err}");
        let again = step("client connect", Client::connect(new_url.as_str()))
            .await
            .expect("certificates kept after a failed reload");
        drop((client, old_again, fresh, again));
        for n in nodes {
            n.shutdown().await;
        }
        namenode.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}
