//! TLS on the client port: the `redis` crate over rustls, mutual TLS, plaintext refused on the
//! TLS port, certificate reload with CONFIG SET, and the real `redis-cli --tls`.

use crate::util::*;
use chkv_datanode::config::Config;
use chkv_datanode::tls::{AuthClients, TlsSettings};
use chkv_testkit::pki::Pki;
use redis::{ClientTlsConfig, TlsCertificates};
use std::net::SocketAddr;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `redis` crate's TLS settings for `pki`'s CA, and its client certificate if asked.
fn certs(pki: &Pki, with_client_cert: bool) -> TlsCertificates {
    let read = |name: &str| std::fs::read(pki.path(name)).expect("PEM file");
    TlsCertificates {
        client_tls: with_client_cert.then(|| ClientTlsConfig {
            client_cert: read("client.pem"),
            client_key: read("client.key"),
        }),
        root_cert: Some(read("ca.pem")),
    }
}

/// Starts a node with TLS on, both listeners on free ports.
async fn start_tls(settings: TlsSettings) -> chkv_datanode::server::ServerHandle {
    start_with(Config {
        tls: settings,
        ..config()
    })
    .await
}

async fn tls_client(
    addr: SocketAddr,
    certs: TlsCertificates,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let client =
        redis::Client::build_with_tls(format!("rediss://127.0.0.1:{}/", addr.port()), certs)?;
    step("TLS connect", client.get_multiplexed_async_connection()).await
}

/// Connects over TLS and PINGs: the answer, or why the node would not serve. With TLS 1.3 the
/// client's side of the handshake finishes before the server checks the client's certificate,
/// so a refusal may only arrive with the first reply.
async fn ping_over_tls(addr: SocketAddr, certs: TlsCertificates) -> redis::RedisResult<String> {
    let mut con = tls_client(addr, certs).await?;
    redis::cmd("PING").query_async(&mut con).await
}

#[tokio::test]
async fn set_and_get_over_tls_with_a_client_certificate() {
    bounded(async {
        let pki = Pki::new("mtls");
        let srv = start_tls(pki.settings(AuthClients::Yes)).await;
        let tls = srv.tls_addr().expect("TLS listener");
        let mut con = tls_client(tls, certs(&pki, true))
            .await
            .expect("mTLS connects");
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("over tls")
            .query_async(&mut con)
            .await
            .expect("SET");
        let v: String = redis::cmd("GET")
            .arg("k")
            .query_async(&mut con)
            .await
            .expect("GET");
        assert_eq!(v, "over tls");
        // The same data through the plaintext port: one keyspace, two listeners.
        let mut plain = connect(srv.addr()).await;
        let v: String = redis::cmd("GET")
            .arg("k")
            .query_async(&mut plain)
            .await
            .expect("GET");
        assert_eq!(v, "over tls");
        // A large value crosses many TLS records both ways.
        let big = "x".repeat(3 * 1024 * 1024 + 17);
        let _: () = redis::cmd("SET")
            .arg("big")
            .arg(&big)
            .query_async(&mut con)
            .await
            .expect("SET big");
        let got: String = redis::cmd("GET")
            .arg("big")
            .query_async(&mut con)
            .await
            .expect("GET");
        assert_eq!(got.len(), big.len());
        assert!(got == big);
        srv.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_when_required() {
    bounded(async {
        let pki = Pki::new("required");
        let srv = start_tls(pki.settings(AuthClients::Yes)).await;
        let tls = srv.tls_addr().expect("TLS listener");
        let res = ping_over_tls(tls, certs(&pki, false)).await;
        assert!(
            res.is_err(),
            "no client certificate must not be served: {res:?}"
        );
        // Optional: the same client is served.
        let srv2 = start_tls(pki.settings(AuthClients::Optional)).await;
        let mut con = tls_client(srv2.tls_addr().expect("tls"), certs(&pki, false))
            .await
            .expect("optional: no certificate is fine");
        let pong: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .expect("PING");
        assert_eq!(pong, "PONG");
        srv.shutdown().await;
        srv2.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn plaintext_on_the_tls_port_gets_no_reply() {
    bounded(async {
        let pki = Pki::new("plain");
        let srv = start_tls(pki.settings(AuthClients::No)).await;
        let tls = srv.tls_addr().expect("TLS listener");
        let mut sock = step("connect", tokio::net::TcpStream::connect(tls))
            .await
            .expect("connect");
        sock.write_all(b"*1\r\n$4\r\nPING\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        // The server answers with a TLS alert at most and closes; never with RESP.
        let _ = step("server closes", sock.read_to_end(&mut buf)).await;
        assert!(!buf.windows(5).any(|w| w == b"+PONG"), "{buf:?}");
        assert!(
            buf.first() != Some(&b'+') && buf.first() != Some(&b'-'),
            "{buf:?}"
        );
        // The node is still fine for TLS clients.
        let mut con = tls_client(tls, certs(&pki, false))
            .await
            .expect("TLS connects");
        let pong: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .expect("PING");
        assert_eq!(pong, "PONG");
        srv.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn config_set_reloads_certificates_and_rejects_bad_ones() {
    bounded(async {
        let pki = Pki::new("reload");
        let srv = start_tls(pki.settings(AuthClients::No)).await;
        let tls = srv.tls_addr().expect("TLS listener");
        let mut plain = connect(srv.addr()).await;
        let got: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("tls-auth-clients")
            .query_async(&mut plain)
            .await
            .expect("CONFIG GET");
        assert_eq!(got, vec!["tls-auth-clients", "no"]);
        // A file that is no certificate: refused, and the old material stays in use.
        let bogus = pki.path("bogus.pem");
        std::fs::write(&bogus, "nothing here\n").expect("write");
        let err = redis::cmd("CONFIG")
            .arg("SET")
            .arg("tls-cert-file")
            .arg(bogus.to_str().expect("utf8"))
            .query_async::<()>(&mut plain)
            .await
            .expect_err("a bad certificate is refused");
        assert!(
            err.to_string()
                .contains("Unable to update TLS configuration"),
            "{err}"
        );
        let got: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("tls-cert-file")
            .query_async(&mut plain)
            .await
            .expect("CONFIG GET");
        assert_eq!(Path::new(&got[1]), pki.path("server.pem"));
        let mut con = tls_client(tls, certs(&pki, false))
            .await
            .expect("still serving TLS");
        let _: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .expect("PING");
        // A certificate from another CA: after the reload new clients that trust only the
        // first CA are refused, and an open connection keeps working.
        let other = Pki::new("reload-other");
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("tls-cert-file")
            .arg(other.path("server.pem").to_str().expect("utf8"))
            .arg("tls-key-file")
            .arg(other.path("server.key").to_str().expect("utf8"))
            .query_async(&mut plain)
            .await
            .expect("reload");
        let _: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .expect("old conn");
        let res = ping_over_tls(tls, certs(&pki, false)).await;
        assert!(res.is_err(), "old CA must not verify the new certificate");
        let mut con2 = tls_client(tls, certs(&other, false)).await.expect("new CA");
        let _: String = redis::cmd("PING")
            .query_async(&mut con2)
            .await
            .expect("PING");
        // Requiring client certificates needs a CA, which is set: clients without one fail.
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("tls-auth-clients")
            .arg("yes")
            .arg("tls-ca-cert-file")
            .arg(other.path("ca.pem").to_str().expect("utf8"))
            .query_async(&mut plain)
            .await
            .expect("require client certs");
        let res = ping_over_tls(tls, certs(&other, false)).await;
        assert!(res.is_err(), "client certificates are now required");
        let mut con3 = tls_client(tls, certs(&other, true)).await.expect("mTLS");
        let _: String = redis::cmd("PING")
            .query_async(&mut con3)
            .await
            .expect("PING");
        srv.shutdown().await;
    })
    .await
}

#[tokio::test]
async fn missing_ca_for_client_checks_fails_at_start() {
    let pki = Pki::new("noca");
    let mut settings = pki.settings(AuthClients::Yes);
    settings.ca_cert_file = None;
    let err = chkv_datanode::server::start(Config {
        tls: settings,
        ..config()
    })
    .await
    .err()
    .expect("no CA, client checks on: refused");
    assert!(err.to_string().contains("tls-ca-cert-file"), "{err}");
}

#[tokio::test]
async fn redis_cli_speaks_tls() {
    if std::process::Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("redis-cli not installed; skipping");
        return;
    }
    bounded(async {
        let pki = Pki::new("cli");
        let srv = start_tls(pki.settings(AuthClients::Yes)).await;
        let tls = srv.tls_addr().expect("TLS listener");
        let run = |args: Vec<String>| {
            tokio::process::Command::new("redis-cli")
                .args(args)
                .kill_on_drop(true)
                .output()
        };
        let base = |with_cert: bool, cmd: &[&str]| {
            let mut a: Vec<String> = vec![
                "-h".into(),
                "127.0.0.1".into(),
                "-p".into(),
                tls.port().to_string(),
                "--tls".into(),
                "--cacert".into(),
                pki.path("ca.pem").display().to_string(),
            ];
            if with_cert {
                a.extend([
                    "--cert".into(),
                    pki.path("client.pem").display().to_string(),
                    "--key".into(),
                    pki.path("client.key").display().to_string(),
                ]);
            }
            a.extend(cmd.iter().map(|s| s.to_string()));
            a
        };
        let out = step("redis-cli", run(base(true, &["SET", "cli", "ok"])))
            .await
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
        let out = step("redis-cli", run(base(true, &["GET", "cli"])))
            .await
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
        let out = step("redis-cli", run(base(false, &["GET", "cli"])))
            .await
            .expect("run");
        assert_ne!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
        srv.shutdown().await;
    })
    .await
}
