//! The typed API against a 3-node cluster: every command's reply, as Redis 7 gives it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chkv_client::{
    Bytes, Client, Error, ExpireCondition, ExpireTime, GetExpiry, ScanOptions, SetOptions,
    SetReply, Ttl, Value,
};

use crate::util::{bounded, start_datanode, text, Cluster};

fn b(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let c = &cluster.client;

        assert_eq!(c.get("s:missing").await.expect("get"), None);
        c.set("s:a", "1").await.expect("set");
        assert_eq!(c.get("s:a").await.expect("get"), b("1"));
        // Binary-safe keys and values, empty ones included.
        c.set(b"\x00\xff", b"\r\n\x00").await.expect("set binary");
        assert_eq!(
            c.get(b"\x00\xff").await.expect("get binary").as_deref(),
            Some(&b"\r\n\x00"[..])
        );
        c.set("", "").await.expect("set empty");
        assert_eq!(c.get("").await.expect("get empty"), b(""));

        // SET options.
        let nx = SetOptions::new().nx();
        assert_eq!(c.set_with("s:a", "2", nx).await.expect("nx"), SetReply::NotSet);
        assert_eq!(c.set_with("s:b", "2", nx).await.expect("nx"), SetReply::Set);
        assert_eq!(
            c.set_with("s:none", "x", SetOptions::new().xx()).await.expect("xx"),
            SetReply::NotSet
        );
        assert_eq!(
            c.set_with("s:a", "3", SetOptions::new().get()).await.expect("get"),
            SetReply::Previous(b("1"))
        );
        assert_eq!(
            c.set_with("s:new", "v", SetOptions::new().get()).await.expect("get"),
            SetReply::Previous(None)
        );
        c.set_with("s:ttl", "v", SetOptions::new().ex(100)).await.expect("ex");
        assert!(matches!(c.ttl("s:ttl").await.expect("ttl"), Ttl::ExpiresIn(d) if d > Duration::from_secs(98)));
        c.set_with("s:ttl", "w", SetOptions::new().keepttl()).await.expect("keepttl");
        assert!(c.pttl("s:ttl").await.expect("pttl").duration().is_some());
        c.set_with("s:ttl", "w", SetOptions::new().ttl(Duration::from_millis(50_500)))
            .await
            .expect("px");
        let pttl = c.pttl("s:ttl").await.expect("pttl").duration().expect("has ttl");
        assert!(pttl > Duration::from_secs(49) && pttl <= Duration::from_millis(50_500));
        let at = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 1000;
        c.set_with("s:at", "v", SetOptions::new().exat(at)).await.expect("exat");
        assert_eq!(
            c.expiretime("s:at").await.expect("expiretime"),
            ExpireTime::At(UNIX_EPOCH + Duration::from_secs(at))
        );
        c.set_with("s:at", "v", SetOptions::new().pxat(at * 1000 + 7)).await.expect("pxat");
        assert_eq!(
            c.pexpiretime("s:at").await.expect("pexpiretime"),
            ExpireTime::At(UNIX_EPOCH + Duration::from_millis(at * 1000 + 7))
        );
        let err = c
            .set_with("s:a", "v", SetOptions::new().ex(0))
            .await
            .expect_err("EX 0 is invalid");
        assert_eq!(err.to_string(), "ERR invalid expire time in 'set' command");

        assert!(c.setnx("s:c", "1").await.expect("setnx"));
        assert!(!c.setnx("s:c", "2").await.expect("setnx"));
        c.setex("s:ex", 100, "v").await.expect("setex");
        assert!(c.ttl("s:ex").await.expect("ttl").duration().is_some());
        c.psetex("s:pex", 100_000, "v").await.expect("psetex");
        assert!(c.pttl("s:pex").await.expect("pttl").duration().is_some());
        assert_eq!(c.getset("s:c", "9").await.expect("getset"), b("1"));
        assert_eq!(c.getdel("s:c").await.expect("getdel"), b("9"));
        assert_eq!(c.getdel("s:c").await.expect("getdel"), None);
        assert_eq!(c.getex("s:ex", Some(GetExpiry::Persist)).await.expect("getex"), b("v"));
        assert_eq!(c.ttl("s:ex").await.expect("ttl"), Ttl::Persistent);
        assert_eq!(c.getex("s:ex", Some(GetExpiry::Px(90_000))).await.expect("getex"), b("v"));
        assert!(c.pttl("s:ex").await.expect("pttl").duration().is_some());
        assert_eq!(c.getex("s:ex", None).await.expect("getex"), b("v"));

        assert_eq!(c.append("s:app", "ab").await.expect("append"), 2);
        assert_eq!(c.append("s:app", "cd").await.expect("append"), 4);
        assert_eq!(c.strlen("s:app").await.expect("strlen"), 4);
        assert_eq!(c.strlen("s:missing").await.expect("strlen"), 0);
        assert_eq!(&c.getrange("s:app", 1, -2).await.expect("getrange")[..], b"bc");
        assert_eq!(c.setrange("s:app", 6, "x").await.expect("setrange"), 7);
        assert_eq!(c.get("s:app").await.expect("get").as_deref(), Some(&b"abcd\0\0x"[..]));

        assert_eq!(c.incr("s:n").await.expect("incr"), 1);
        assert_eq!(c.incrby("s:n", 10).await.expect("incrby"), 11);
        assert_eq!(c.decr("s:n").await.expect("decr"), 10);
        assert_eq!(c.decrby("s:n", 20).await.expect("decrby"), -10);
        assert_eq!(c.incrbyfloat("s:f", 1.5).await.expect("incrbyfloat"), 1.5);
        assert_eq!(c.incrbyfloat("s:f", -0.25).await.expect("incrbyfloat"), 1.25);
        let err = c.incr("s:app").await.expect_err("not an integer");
        assert_eq!(err.code(), Some("ERR"));
        assert_eq!(err.to_string(), "ERR value is not an integer or out of range");

        // MSETNX and friends need one slot; hash tags give one.
        assert!(c.msetnx([("{t}a", "1"), ("{t}b", "2")]).await.expect("msetnx"));
        assert!(!c.msetnx([("{t}a", "1"), ("{t}c", "2")]).await.expect("msetnx"));
        let err = c
            .msetnx([("s:x1", "1"), ("s:y2", "2")])
            .await
            .expect_err("cross slot");
        assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
        cluster.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let c = &cluster.client;
        c.mset([("k:a", "1"), ("k:b", "2"), ("k:c", "3")])
            .await
            .expect("mset");
        assert_eq!(
            c.exists(["k:a", "k:b", "k:zz", "k:a"])
                .await
                .expect("exists"),
            3
        );
        assert_eq!(c.touch(["k:a", "k:zz"]).await.expect("touch"), 1);
        assert_eq!(c.key_type("k:a").await.expect("type"), "string");
        assert_eq!(c.key_type("k:zz").await.expect("type"), "none");

        assert_eq!(c.ttl("k:zz").await.expect("ttl"), Ttl::Missing);
        assert_eq!(c.ttl("k:a").await.expect("ttl"), Ttl::Persistent);
        assert_eq!(
            c.expiretime("k:a").await.expect("expiretime"),
            ExpireTime::Persistent
        );
        assert!(c.expire("k:a", 100).await.expect("expire"));
        assert!(!c.expire("k:zz", 100).await.expect("expire"));
        assert!(!c
            .expire_with("k:a", 50, ExpireCondition::Nx)
            .await
            .expect("nx"));
        assert!(c
            .expire_with("k:a", 200, ExpireCondition::Gt)
            .await
            .expect("gt"));
        assert!(!c
            .expire_with("k:a", 100, ExpireCondition::Gt)
            .await
            .expect("gt"));
        assert!(c
            .expire_with("k:a", 100, ExpireCondition::Lt)
            .await
            .expect("lt"));
        assert!(c
            .expire_with("k:a", 100, ExpireCondition::Xx)
            .await
            .expect("xx"));
        assert!(c.pexpire("k:b", 100_000).await.expect("pexpire"));
        assert!(c.pexpire_with("k:b", 1, ExpireCondition::Gt).await.is_ok());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
        assert!(c
            .expireat("k:c", now.as_secs() as i64 + 100)
            .await
            .expect("expireat"));
        assert!(c
            .expireat_with("k:c", now.as_secs() as i64 + 50, ExpireCondition::Lt)
            .await
            .expect("expireat lt"));
        assert!(c
            .pexpireat("k:c", now.as_millis() as i64 + 100_000)
            .await
            .expect("pexpireat"));
        assert!(!c
            .pexpireat_with(
                "k:zz",
                now.as_millis() as i64 + 100_000,
                ExpireCondition::Nx
            )
            .await
            .expect("pexpireat nx"));
        assert!(c.persist("k:c").await.expect("persist"));
        assert!(!c.persist("k:c").await.expect("persist"));
        // A past time deletes.
        assert!(c.pexpire("k:c", -1).await.expect("pexpire"));
        assert_eq!(c.get("k:c").await.expect("get"), None);

        c.set("{r}src", "v").await.expect("set");
        c.rename("{r}src", "{r}dst").await.expect("rename");
        assert_eq!(c.get("{r}dst").await.expect("get"), b("v"));
        assert!(!c.renamenx("{r}dst", "{r}dst").await.expect("renamenx same"));
        c.set("{r}other", "o").await.expect("set");
        assert!(!c.renamenx("{r}dst", "{r}other").await.expect("renamenx"));
        assert!(c.copy("{r}dst", "{r}copy", false).await.expect("copy"));
        assert!(!c
            .copy("{r}dst", "{r}copy", false)
            .await
            .expect("copy exists"));
        assert!(c
            .copy("{r}other", "{r}copy", true)
            .await
            .expect("copy replace"));
        assert_eq!(c.get("{r}copy").await.expect("get"), b("o"));
        let err = c
            .rename("{r}missing", "{r}x")
            .await
            .expect_err("no such key");
        assert_eq!(err.to_string(), "ERR no such key");
        let err = c.rename("k:a", "k:b").await.expect_err("cross slot");
        assert_eq!(err.code(), Some("CROSSSLOT"));

        assert_eq!(c.del(["k:a", "k:b", "k:zz"]).await.expect("del"), 2);
        assert_eq!(c.unlink(["{r}dst", "{r}copy"]).await.expect("unlink"), 2);
        assert_eq!(c.del(Vec::<String>::new()).await.expect("del nothing"), 0);

        // Error codes travel unchanged.
        let err = c
            .cmd(["NOSUCHCOMMAND", "k:list", "x"])
            .await
            .expect_err("unknown command");
        assert_eq!(err.code(), Some("ERR"), "{err}");
        c.set("k:str", "v").await.expect("set");
        let err = c
            .cmd(["LPUSH", "k:str", "x"])
            .await
            .expect_err("wrong type");
        assert_eq!(err.code(), Some("WRONGTYPE"), "{err}");
        cluster.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_wide_commands_and_scan() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let c = &cluster.client;
        c.ping().await.expect("ping");
        c.flushall().await.expect("flushall");
        let pairs: Vec<(String, String)> = (0..300)
            .map(|i| (format!("w:{i}"), i.to_string()))
            .collect();
        c.mset(pairs.iter().map(|(k, v)| (k, v)))
            .await
            .expect("mset");
        c.set("other", "x").await.expect("set");
        assert_eq!(c.dbsize().await.expect("dbsize"), 301);

        // Keys are spread over all three nodes.
        let nodes = c.nodes();
        assert_eq!(nodes.len(), 3);
        let mut per_node = Vec::new();
        for &n in &nodes {
            per_node.push(c.keys_on(n, "w:*").await.expect("keys_on").len());
        }
        assert!(per_node.iter().all(|&n| n > 50), "{per_node:?}");
        assert_eq!(per_node.iter().sum::<usize>(), 300);
        assert_eq!(c.keys("w:*").await.expect("keys").len(), 300);

        let mut scanned: Vec<Bytes> = c
            .scan_all(ScanOptions::new().pattern("w:*").count(17))
            .collect()
            .await
            .expect("scan_all");
        scanned.sort();
        scanned.dedup();
        assert_eq!(scanned.len(), 300);
        let strings = c
            .scan_all(ScanOptions::new().key_type("string"))
            .collect()
            .await
            .expect("scan_all by type");
        assert_eq!(strings.len(), 301);
        let (next, first) = c
            .scan_on(nodes[0], 0, &ScanOptions::new().count(10))
            .await
            .expect("scan_on");
        assert!(next != 0 && !first.is_empty());

        // Generic commands: routed by key, node-local ones to any node.
        assert_eq!(
            c.cmd(["SET", "g:k", "v", "PX", "100000"])
                .await
                .expect("cmd"),
            Value::Okay
        );
        assert_eq!(text(&c.cmd(["GET", "g:k"]).await.expect("cmd")), "v");
        let info = c.cmd(["CLUSTER", "INFO"]).await.expect("cluster info");
        assert!(text(&info).contains("cluster_state:ok"));
        // MGET through `cmd` is split per slot like `mget`.
        let got = c.cmd(["MGET", "w:1", "g:k", "nope"]).await.expect("mget");
        assert_eq!(
            got,
            Value::Array(vec![
                Value::Bulk(Bytes::from_static(b"1")),
                Value::Bulk(Bytes::from_static(b"v")),
                Value::Nil
            ])
        );
        // A node answers MOVED for a key it does not own on a per-node call.
        let key = (0..1000)
            .map(|i| format!("m{i}"))
            .find(|k| c.node_for_key(k) != Some(nodes[0]))
            .expect("a key elsewhere");
        let err = c
            .cmd_on(nodes[0], ["GET", key.as_str()])
            .await
            .expect_err("moved");
        assert_eq!(err.code(), Some("MOVED"), "{err}");
        assert!(matches!(
            c.cmd(Vec::<String>::new()).await,
            Err(Error::Invalid(_))
        ));

        c.flushall().await.expect("flushall");
        assert_eq!(c.dbsize().await.expect("dbsize"), 0);
        cluster.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_and_resp3() {
    bounded(Duration::from_secs(180), async {
        let node = start_datanode(None).await;
        let c = crate::util::builder()
            .resp3(true)
            .connect_standalone(node.addr())
            .await
            .expect("standalone connect");
        c.set("a", "1").await.expect("set");
        assert_eq!(c.get("a").await.expect("get"), b("1"));
        assert_eq!(c.incrbyfloat("f", 2.5).await.expect("incrbyfloat"), 2.5);
        assert_eq!(c.mget(["a", "b"]).await.expect("mget"), vec![b("1"), None]);
        assert_eq!(c.ttl("a").await.expect("ttl"), Ttl::Persistent);
        assert!(c.expire("a", 10).await.expect("expire"));
        // RESP3 types come through `cmd` unchanged.
        let hello = c.cmd(["HELLO", "3"]).await.expect("hello");
        assert!(matches!(hello, Value::Map(_)), "{hello:?}");
        assert_eq!(c.dbsize().await.expect("dbsize"), 2);
        assert_eq!(c.nodes(), vec![node.addr()]);

        // A wrong password fails the connect with the server's error.
        let err = crate::util::builder()
            .password("nope")
            .connect_standalone(node.addr())
            .await
            .expect_err("no password is set");
        assert!(matches!(err, Error::Server(_)), "{err}");
        drop(c);
        node.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors() {
    bounded(Duration::from_secs(180), async {
        // Nobody listens: unreachable, at once (not after the 10 s table timeout).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let started = std::time::Instant::now();
        let err = Client::connect(addr).await.expect_err("no NameNode");
        assert!(matches!(err, Error::NameNodeUnreachable { .. }), "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        // The wrong kind of port: a DataNode, the NameNode's DataNode port.
        let namenode = crate::util::start_namenode(crate::util::namenode_config()).await;
        let node = start_datanode(None).await;
        for wrong in [node.addr(), namenode.datanode_addr()] {
            let started = std::time::Instant::now();
            let err = Client::connect(wrong).await.expect_err("not a NameNode");
            assert!(matches!(err, Error::NotNameNode { .. }), "{wrong}: {err}");
            assert!(err.to_string().contains(&wrong.to_string()), "{err}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
        }
        node.shutdown().await;

        // A NameNode without DataNodes: connected, with an empty table; commands say so.
        let c = Client::connect(namenode.client_addr())
            .await
            .expect("connects");
        let err = c.get("k").await.expect_err("no DataNode");
        assert!(err.to_string().contains("no cluster: no DataNode"), "{err}");
        drop(c);
        namenode.shutdown().await;
        assert!(matches!(
            Client::connect(Vec::<String>::new()).await,
            Err(Error::Invalid(_))
        ));
        // A DataNode that is gone: a per-node call reports the connection error.
        let node = start_datanode(None).await;
        let addr = node.addr();
        let c = crate::util::builder()
            .connect_standalone(addr)
            .await
            .expect("standalone connect");
        node.shutdown().await;
        let err = c.cmd_on(addr, ["PING"]).await.expect_err("node gone");
        assert!(matches!(err, Error::Connection { .. }), "{err}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_over_resp2_and_resp3() {
    bounded(Duration::from_secs(180), async {
        let mut config = crate::util::datanode_config(None);
        config.requirepass = Some(b"s3cret".to_vec());
        let node = chkv_datanode::server::start(config)
            .await
            .expect("DataNode starts");
        for resp3 in [false, true] {
            let c = crate::util::builder()
                .password("s3cret")
                .resp3(resp3)
                .connect_standalone(node.addr())
                .await
                .expect("authenticated connect");
            c.set("k", "v").await.expect("set");
            assert_eq!(c.get("k").await.expect("get"), b("v"));
            let err = crate::util::builder()
                .password("wrong")
                .resp3(resp3)
                .connect_standalone(node.addr())
                .await
                .expect_err("wrong password");
            assert_eq!(err.code(), Some("WRONGPASS"), "{err}");
        }
        let err = crate::util::builder()
            .connect_standalone(node.addr())
            .await
            .expect_err("no password");
        assert_eq!(err.code(), Some("NOAUTH"), "{err}");
        node.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_over_resp2_and_resp3() {
    bounded(Duration::from_secs(180), async {
        let node = crate::util::start_datanode(None).await;
        let admin = crate::util::builder()
            .connect_standalone(node.addr())
            .await
            .expect("connect");
        let ok = admin
            .cmd([
                "ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set",
            ])
            .await
            .expect("ACL SETUSER");
        assert_eq!(ok, chkv_client::Value::Okay);
        for resp3 in [false, true] {
            let c = crate::util::builder()
                .username("app")
                .password("pw")
                .resp3(resp3)
                .connect_standalone(node.addr())
                .await
                .expect("connects as app");
            c.set("app:1", "v").await.expect("set");
            assert_eq!(c.get("app:1").await.expect("get"), b("v"));
            let err = c.get("other").await.expect_err("not app's key");
            assert_eq!(err.code(), Some("NOPERM"), "{err}");
            let err = crate::util::builder()
                .username("app")
                .password("wrong")
                .resp3(resp3)
                .connect_standalone(node.addr())
                .await
                .expect_err("wrong password");
            assert_eq!(err.code(), Some("WRONGPASS"), "{err}");
        }
        node.shutdown().await;
    })
    .await
}

/// The blocking wrapper, from a thread without a runtime; the DataNode runs on its own.
#[test]
fn blocking_client() {
    let server = tokio::runtime::Runtime::new().expect("runtime");
    let node = server.block_on(crate::util::start_datanode(None));
    let c = chkv_client::blocking::Client::connect_standalone(crate::util::builder(), node.addr())
        .expect("blocking connect");
    c.set("a", "1").expect("set");
    assert_eq!(c.get("a").expect("get"), b("1"));
    assert_eq!(c.incrby("n", 5).expect("incrby"), 5);
    c.mset([("x", "1"), ("y", "2")]).expect("mset");
    assert_eq!(
        c.mget(["x", "y", "z"]).expect("mget"),
        vec![b("1"), b("2"), None]
    );
    assert_eq!(c.exists(["x", "y", "z"]).expect("exists"), 2);
    assert!(c.expire("x", 100).expect("expire"));
    assert!(c.ttl("x").expect("ttl").duration().is_some());
    assert_eq!(c.dbsize().expect("dbsize"), 4);
    assert_eq!(c.del(["x", "y"]).expect("del"), 2);
    let len: i64 = c
        .run(|c| async move { c.strlen("a").await })
        .expect("strlen");
    assert_eq!(len, 1);
    assert_eq!(c.cmd(["PING"]).expect("ping"), Value::Simple("PONG".into()));
    // A worker's queue: push, pop, and a blocking pop served by another thread's push.
    assert_eq!(c.rpush("jobs", ["j1", "j2"]).expect("rpush"), 2);
    assert_eq!(c.lpush("jobs", ["j0"]).expect("lpush"), 3);
    assert_eq!(c.llen("jobs").expect("llen"), 3);
    assert_eq!(
        c.lrange("jobs", 0, -1).expect("lrange"),
        ["j0", "j1", "j2"].map(|s| Bytes::from_static(s.as_bytes()))
    );
    assert_eq!(c.lpop("jobs").expect("lpop"), b("j0"));
    assert_eq!(c.rpop("jobs").expect("rpop"), b("j2"));
    assert_eq!(
        c.blpop(["jobs"], Duration::ZERO).expect("blpop"),
        Some((Bytes::from_static(b"jobs"), Bytes::from_static(b"j1")))
    );
    let pusher = c.as_async().clone();
    let handle = server.handle().clone();
    let push = std::thread::spawn(move || {
        handle.block_on(async {
            // Whether it lands before or after the pop blocks, the pop gets it.
            pusher.rpush("jobs", ["late"]).await.expect("rpush")
        })
    });
    assert_eq!(
        c.brpop(["jobs"], Duration::ZERO).expect("brpop"),
        Some((Bytes::from_static(b"jobs"), Bytes::from_static(b"late")))
    );
    push.join().expect("pusher");
    drop(c);
    server.block_on(node.shutdown());
}
