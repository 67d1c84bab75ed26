use super::*;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[test]
fn tls_links_map_both_ways() {
    let _ = chkv_common::tls::rustls::crypto::ring::default_provider().install_default();
    let config = chkv_common::tls::rustls::ClientConfig::builder()
        .with_root_certificates(chkv_common::tls::rustls::RootCertStore::empty())
        .with_no_client_auth();
    let links = TlsLinks {
        config: Arc::new(config),
        addrs: RwLock::new(HashMap::new()),
    };
    let a: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
    let node = |port, tls_port| chkv_common::NodeInfo {
        id: chkv_common::NodeId::new(format!("n{port}")),
        client_addr: SocketAddr::new(a.ip(), port),
        admin_addr: SocketAddr::new(a.ip(), 1),
        tls_port,
        since: 0,
    };
    links.learn(&[node(7000, Some(7443)), node(7001, None)]);
    assert_eq!(links.dial(a).port(), 7443);
    // A TLS connection's -MOVED names the TLS port: routes keep the client address.
    assert_eq!(links.client_of(SocketAddr::new(a.ip(), 7443)), a);
    let plain = SocketAddr::new(a.ip(), 7001);
    assert_eq!(links.dial(plain), plain);
    assert_eq!(links.client_of(plain), plain);
}

fn config(timeout: Option<Duration>) -> Arc<ConnConfig> {
    Arc::new(ConnConfig {
        connect_timeout: Duration::from_secs(1),
        password: None,
        username: None,
        resp3: false,
        cluster: false,
        response_timeout: timeout,
        near: None,
        tls: None,
    })
}

/// A fake server: each connection gets `serve(connection number, socket)`.
async fn server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(usize, TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(n, sock));
            n += 1;
        }
    });
    addr
}

/// Answers every `GET key` with the key itself, in order, in random-sized writes.
async fn echo_keys(mut sock: TcpStream) {
    let mut buf = BytesMut::new();
    let mut scanner = Scanner::new();
    loop {
        while let Ok(Some(len)) = scanner.scan(&buf) {
            let frame = buf.split_to(len);
            let reply = match resp::parse(&frame) {
                Ok(Value::Array(args)) if args.len() == 2 => {
                    let key = args[1].as_bytes().unwrap_or_default().to_vec();
                    let mut out = format!("${}\r\n", key.len()).into_bytes();
                    out.extend_from_slice(&key);
                    out.extend_from_slice(b"\r\n");
                    out
                }
                _ => b"-ERR unexpected\r\n".to_vec(),
            };
            // Split the reply to exercise the scanner across reads.
            let (a, b) = reply.split_at(reply.len() / 2);
            if sock.write_all(a).await.is_err() || sock.write_all(b).await.is_err() {
                return;
            }
        }
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_get_their_own_replies() {
    let addr = server(|_, sock| echo_keys(sock)).await;
    let pool = Arc::new(NodePool::new(addr, config(None), 1));
    let mut tasks = Vec::new();
    for t in 0..20 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let key = format!("k{t}-{i}");
                let reply = pool
                    .send(resp::command(&["GET", &key]))
                    .expect("sent")
                    .wait()
                    .await
                    .expect("reply");
                assert_eq!(reply.as_bytes(), Some(key.as_bytes()));
            }
            // A pipeline of three comes back as three replies, in order.
            let mut data = BytesMut::new();
            for k in ["a", "b", "c"] {
                resp::encode_command(&["GET", k], &mut data);
            }
            let replies = pool
                .send_many(data.freeze(), 3)
                .expect("sent")
                .wait()
                .await
                .expect("replies");
            let got: Vec<&[u8]> = replies.iter().filter_map(Value::as_bytes).collect();
            assert_eq!(got, [&b"a"[..], b"b", b"c"]);
        }));
    }
    for t in tasks {
        t.await.expect("caller");
    }
}

#[tokio::test]
async fn an_overdue_reply_fails_what_waits_and_the_next_request_reconnects() {
    // The first connection reads and never answers; later ones answer.
    let addr = server(|n, mut sock| async move {
        if n == 0 {
            let mut sink = vec![0u8; 1024];
            while matches!(sock.read(&mut sink).await, Ok(k) if k > 0) {}
        } else {
            echo_keys(sock).await;
        }
    })
    .await;
    let pool = NodePool::new(addr, config(Some(Duration::from_millis(200))), 1);
    let started = Instant::now();
    let first = pool.send(resp::command(&["GET", "x"])).expect("sent");
    let second = pool.send(resp::command(&["GET", "y"])).expect("sent");
    for pending in [first, second] {
        match pending.wait().await {
            Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(200)),
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let reply = pool
        .send(resp::command(&["GET", "z"]))
        .expect("sent")
        .wait()
        .await
        .expect("a new connection answers");
    assert_eq!(reply.as_bytes(), Some(&b"z"[..]));
}

/// Answers `GET slow` after 500 ms, never answers `GET never`, echoes other keys; tells
/// `closed` when a connection ends.
async fn slow_keys(mut sock: TcpStream, closed: mpsc::UnboundedSender<()>) {
    let mut buf = BytesMut::new();
    let mut scanner = Scanner::new();
    loop {
        while let Ok(Some(len)) = scanner.scan(&buf) {
            let frame = buf.split_to(len);
            let key = match resp::parse(&frame) {
                Ok(Value::Array(args)) if args.len() == 2 => {
                    args[1].as_bytes().unwrap_or_default().to_vec()
                }
                _ => b"?".to_vec(),
            };
            match &key[..] {
                b"never" => continue,
                b"slow" => tokio::time::sleep(Duration::from_millis(500)).await,
                _ => {}
            }
            let mut out = format!("${}\r\n", key.len()).into_bytes();
            out.extend_from_slice(&key);
            out.extend_from_slice(b"\r\n");
            if sock.write_all(&out).await.is_err() {
                break;
            }
        }
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = closed.send(());
}

#[tokio::test]
async fn dedicated_connections_wait_as_long_as_asked_and_close_when_dropped() {
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let addr = server(move |_, sock| {
        count.fetch_add(1, Ordering::SeqCst);
        slow_keys(sock, closed_tx.clone())
    })
    .await;
    let pool = Arc::new(NodePool::new(
        addr,
        config(Some(Duration::from_millis(200))),
        1,
    ));
    let get = |key: &str| resp::command(&["GET", key]);

    // Longer than the response timeout, as a blocking command's timeout allows.
    let conn = pool.dedicated();
    let replies = conn
        .send(get("slow"), 1, Patience::Longer(Duration::from_secs(30)))
        .expect("sent")
        .wait()
        .await
        .expect("waited past the response timeout");
    assert_eq!(replies[0].as_bytes(), Some(&b"slow"[..]));
    conn.finish();
    // For ever, on the same connection, given back to the pool.
    let conn = pool.dedicated();
    let replies = conn
        .send(get("slow"), 1, Patience::Forever)
        .expect("sent")
        .wait()
        .await
        .expect("no limit");
    assert_eq!(replies[0].as_bytes(), Some(&b"slow"[..]));
    conn.finish();
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the idle one is reused");

    // A plain request on it still has the response timeout.
    let conn = pool.dedicated();
    match conn
        .send(get("slow"), 1, Patience::Normal)
        .expect("sent")
        .wait()
        .await
    {
        Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(conn);
    tokio::time::timeout(Duration::from_secs(30), closed.recv())
        .await
        .expect("the timed-out connection closes");

    // A caller that gives up while its request waits closes the connection.
    let conn = pool.dedicated();
    let pending = conn.send(get("never"), 1, Patience::Forever).expect("sent");
    let waited = tokio::time::timeout(Duration::from_millis(300), pending.wait()).await;
    assert!(waited.is_err(), "nothing answers");
    drop(conn);
    tokio::time::timeout(Duration::from_secs(30), closed.recv())
        .await
        .expect("the abandoned connection closes");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // The shared connections are not the dedicated ones.
    let reply = pool
        .send(get("k"))
        .expect("sent")
        .wait()
        .await
        .expect("reply");
    assert_eq!(reply.as_bytes(), Some(&b"k"[..]));
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn garbage_and_hangups_are_errors_not_panics() {
    let garbage = server(|_, mut sock| async move {
        let mut sink = [0u8; 64];
        let _ = sock.read(&mut sink).await;
        let _ = sock.write_all(b"?what\r\n").await;
        let _ = sock.read(&mut sink).await;
    })
    .await;
    let pool = NodePool::new(garbage, config(None), 1);
    let err = pool
        .send(resp::command(&["PING"]))
        .expect("sent")
        .wait()
        .await
        .expect_err("not RESP");
    assert!(matches!(err, Error::Protocol { .. }), "{err}");

    let hangup = server(|_, mut sock| async move {
        let mut sink = [0u8; 64];
        let _ = sock.read(&mut sink).await;
    })
    .await;
    let pool = NodePool::new(hangup, config(None), 1);
    let err = pool
        .send(resp::command(&["PING"]))
        .expect("sent")
        .wait()
        .await
        .expect_err("closed");
    assert!(matches!(err, Error::Connection { .. }), "{err}");

    // Nobody listens: the connect error, then fail-fast without dialing again.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nobody = listener.local_addr().expect("addr");
    drop(listener);
    let pool = NodePool::new(nobody, config(None), 1);
    let err = pool
        .send(resp::command(&["PING"]))
        .expect("queued while connecting")
        .wait()
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    let again = pool.send(resp::command(&["PING"]));
    assert!(matches!(again, Err(Error::Connection { .. })), "fails fast");
}
