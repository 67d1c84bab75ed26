//! Lists and the blocking pops through the typed API: every command on a 3-node cluster and
//! over RESP3, and the blocking ones on three DataNode processes: past the response timeout,
//! timed out, given up by the caller, and blocked on a key whose slot moves in a drain.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chkv_client::{
    Bytes, Client, Direction, Error, InsertPosition, LposOptions, RetryBudget, Value,
};

use crate::util::{
    bounded, drain, namenode_config, settle, start_datanode, start_namenode, step, ChildDataNode,
    STEP_LIMIT,
};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn bs(items: &[&str]) -> Vec<Bytes> {
    items.iter().map(|s| b(s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_across_nodes() {
    bounded(Duration::from_secs(240), async {
        let namenode = start_namenode(namenode_config()).await;
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(start_datanode(Some(namenode.datanode_addr())).await);
        }
        // Timeouts as liveness bounds: the machine may be loaded.
        let c = &patient_client(namenode.client_addr()).await;
        settle(c, namenode.http_addr(), 3).await;

        // Queues spread over the nodes: each goes to its owner.
        for i in 0..30 {
            let key = format!("queue:{i}");
            assert_eq!(c.rpush(&key, ["b", "c"]).await.expect("rpush"), 2);
            assert_eq!(c.lpush(&key, ["a", "z"]).await.expect("lpush"), 4);
            assert_eq!(c.llen(&key).await.expect("llen"), 4);
            assert_eq!(
                c.lrange(&key, 0, -1).await.expect("lrange"),
                bs(&["z", "a", "b", "c"])
            );
        }
        let k = "queue:0";
        assert_eq!(c.lpop(k).await.expect("lpop"), Some(b("z")));
        assert_eq!(c.rpop(k).await.expect("rpop"), Some(b("c")));
        assert_eq!(c.lpop("nothing").await.expect("lpop"), None);
        assert_eq!(
            c.lpop_count("queue:1", 3).await.expect("lpop n"),
            bs(&["z", "a", "b"])
        );
        assert_eq!(
            c.rpop_count("queue:2", 2).await.expect("rpop n"),
            bs(&["c", "b"])
        );
        assert!(c.lpop_count("nothing", 2).await.expect("lpop n").is_empty());
        assert_eq!(c.lpushx("nothing", ["x"]).await.expect("lpushx"), 0);
        assert_eq!(c.rpushx(k, ["d", "b"]).await.expect("rpushx"), 4);
        assert_eq!(c.lindex(k, -1).await.expect("lindex"), Some(b("b")));
        assert_eq!(c.lindex(k, 99).await.expect("lindex"), None);
        c.lset(k, 0, "A").await.expect("lset");
        assert!(matches!(c.lset(k, 99, "x").await, Err(Error::Server(_))));
        assert_eq!(
            c.linsert(k, InsertPosition::Before, "d", "c")
                .await
                .expect("linsert"),
            5
        );
        assert_eq!(
            c.linsert(k, InsertPosition::After, "nope", "x")
                .await
                .expect("linsert"),
            -1
        );
        assert_eq!(
            c.lrange(k, 0, -1).await.expect("lrange"),
            bs(&["A", "b", "c", "d", "b"])
        );
        assert_eq!(
            c.lpos(k, "b", LposOptions::new()).await.expect("lpos"),
            Some(1)
        );
        assert_eq!(
            c.lpos(k, "b", LposOptions::new().rank(-1))
                .await
                .expect("lpos"),
            Some(4)
        );
        assert_eq!(
            c.lpos(k, "b", LposOptions::new().maxlen(1))
                .await
                .expect("lpos"),
            None
        );
        assert_eq!(
            c.lpos_count(k, "b", 0, LposOptions::new())
                .await
                .expect("lpos count"),
            [1, 4]
        );
        assert_eq!(c.lrem(k, -1, "b").await.expect("lrem"), 1);
        c.ltrim(k, 1, -1).await.expect("ltrim");
        assert_eq!(
            c.lrange(k, 0, -1).await.expect("lrange"),
            bs(&["b", "c", "d"])
        );
        // A string is not a list: Redis's WRONGTYPE, from the owner.
        c.set("plain", "v").await.expect("set");
        let e = c.lpush("plain", ["x"]).await.expect_err("wrong type");
        assert_eq!(e.code(), Some("WRONGTYPE"));

        // Several keys in one slot: moves and multi-pops.
        c.rpush("{q}a", ["1", "2", "3"]).await.expect("rpush");
        assert_eq!(
            c.lmove("{q}a", "{q}b", Direction::Left, Direction::Right)
                .await
                .expect("lmove"),
            Some(b("1"))
        );
        assert_eq!(
            c.rpoplpush("{q}a", "{q}b").await.expect("rpoplpush"),
            Some(b("3"))
        );
        assert_eq!(
            c.lrange("{q}b", 0, -1).await.expect("lrange"),
            bs(&["3", "1"])
        );
        assert_eq!(
            c.lmove("{q}none", "{q}b", Direction::Left, Direction::Left)
                .await
                .expect("lmove"),
            None
        );
        assert_eq!(
            c.lmpop(["{q}none", "{q}b"], Direction::Right, 5)
                .await
                .expect("lmpop"),
            Some((b("{q}b"), bs(&["1", "3"])))
        );
        assert_eq!(
            c.lmpop(["{q}none"], Direction::Left, 1)
                .await
                .expect("lmpop"),
            None
        );
        // Keys in different slots: Redis Cluster's refusal, from the server.
        let e = c
            .lmove("{q}a", "{other}b", Direction::Left, Direction::Left)
            .await
            .expect_err("cross slot");
        assert_eq!(e.code(), Some("CROSSSLOT"));

        // The blocking forms serve at once when something is there, wherever the key lives.
        for i in 0..10 {
            let key = format!("ready:{i}");
            c.rpush(&key, ["x", "y"]).await.expect("rpush");
            assert_eq!(
                c.blpop([&key], Duration::ZERO).await.expect("blpop"),
                Some((b(&key), b("x")))
            );
            assert_eq!(
                c.brpop([&key], Duration::from_secs(1))
                    .await
                    .expect("brpop"),
                Some((b(&key), b("y")))
            );
        }
        c.rpush("{q}src", ["1", "2", "3", "4"])
            .await
            .expect("rpush");
        assert_eq!(
            c.blmove(
                "{q}src",
                "{q}dst",
                Direction::Right,
                Direction::Left,
                Duration::ZERO
            )
            .await
            .expect("blmove"),
            Some(b("4"))
        );
        assert_eq!(
            c.brpoplpush("{q}src", "{q}dst", Duration::from_millis(100))
                .await
                .expect("brpoplpush"),
            Some(b("3"))
        );
        assert_eq!(
            c.blmpop(["{q}empty", "{q}src"], Direction::Left, 5, Duration::ZERO)
                .await
                .expect("blmpop"),
            Some((b("{q}src"), bs(&["1", "2"])))
        );
        // Timed out: nil, not an error.
        assert_eq!(
            c.blpop(["{q}empty", "{q}src"], Duration::from_millis(50))
                .await
                .expect("blpop"),
            None
        );
        assert_eq!(
            c.blmpop(["{q}empty"], Direction::Left, 1, Duration::from_millis(50))
                .await
                .expect("blmpop"),
            None
        );
        // Raw blocking commands take the blocking path too.
        c.rpush("raw", ["r"]).await.expect("rpush");
        assert_eq!(
            c.cmd(["BLPOP", "raw", "0"]).await.expect("raw blpop"),
            Value::Array(vec![Value::Bulk(b("raw")), Value::Bulk(b("r"))])
        );
        let e = c
            .cmd(["BLPOP", "raw", "-1"])
            .await
            .expect_err("negative timeout");
        assert_eq!(e.code(), Some("ERR"));
        for node in nodes {
            node.shutdown().await;
        }
        namenode.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_over_resp3() {
    bounded(Duration::from_secs(60), async {
        let node = start_datanode(None).await;
        let c = crate::util::builder()
            .resp3(true)
            .connect_standalone(node.addr())
            .await
            .expect("connect");
        c.rpush("l", ["a", "b", "c"]).await.expect("rpush");
        assert_eq!(
            c.lmpop(["l"], Direction::Left, 2).await.expect("lmpop"),
            Some((b("l"), bs(&["a", "b"])))
        );
        assert_eq!(
            c.blpop(["l"], Duration::ZERO).await.expect("blpop"),
            Some((b("l"), b("c")))
        );
        assert_eq!(
            c.brpop(["l"], Duration::from_millis(20))
                .await
                .expect("brpop"),
            None
        );
        assert_eq!(
            c.blmpop(["l"], Direction::Right, 1, Duration::from_millis(20))
                .await
                .expect("blmpop"),
            None
        );
        assert!(c.lpop_count("l", 1).await.expect("lpop").is_empty());
        drop(c);
        node.shutdown().await;
    })
    .await;
}

/// `blocked_clients` of INFO at `node`.
async fn blocked_clients(c: &Client, node: SocketAddr) -> Option<u64> {
    let info = c.cmd_on(node, ["INFO", "clients"]).await.ok()?;
    let text = String::from_utf8(info.as_bytes()?.to_vec()).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until `nodes` have `n` blocked clients in all (wherever the ring put their keys).
async fn wait_blocked(c: &Client, nodes: &[SocketAddr], n: u64) {
    let started = Instant::now();
    loop {
        let mut counts = Vec::new();
        for &node in nodes {
            counts.push(blocked_clients(c, node).await);
        }
        if counts.iter().map(|c| c.unwrap_or(u64::MAX)).sum::<u64>() == n {
            return;
        }
        assert!(
            started.elapsed() < STEP_LIMIT,
            "{nodes:?} never had {n} blocked clients (have {counts:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A key `prefix:N` owned by `node` (as the client routes now).
fn key_on(c: &Client, node: SocketAddr, prefix: &str) -> String {
    (0..100_000)
        .map(|i| format!("{prefix}:{i}"))
        .find(|k| c.node_for_key(k) == Some(node))
        .expect("some key lands on the node")
}

/// A client whose timeouts are liveness bounds on a loaded machine.
async fn patient_client(namenode: SocketAddr) -> Client {
    crate::util::builder()
        .response_timeout(Duration::from_secs(30))
        .retry_budget(RetryBudget {
            attempts: 1000,
            time: Duration::from_secs(30),
        })
        .connect(namenode)
        .await
        .expect("client connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocked_pops_outlive_the_response_timeout_and_follow_a_drain() {
    bounded(Duration::from_secs(300), async {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let namenode = start_namenode(namenode_config()).await;
        let nn = namenode.datanode_addr();
        let mut procs = Vec::new();
        for _ in 0..3 {
            procs.push(ChildDataNode::spawn(nn).await);
        }
        let all: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
        // Pushes and checks on a patient client; the blocking calls on a default one (a 2 s
        // response timeout, which they must outlast).
        let client = patient_client(namenode.client_addr()).await;
        let blocker = step("client connect", Client::connect(namenode.client_addr()))
            .await
            .expect("client connects");
        settle(&client, namenode.http_addr(), 3).await;
        settle(&blocker, namenode.http_addr(), 3).await;
        let first = procs[0].addr;
        let on_first = |prefix| key_on(&client, first, prefix);
        let (jobs, multi, given_up) = (on_first("jobs"), on_first("multi"), on_first("given-up"));
        // BLMOVE's two keys share a slot: `{tag}src` and `{tag}dst`.
        let tag = on_first("mv");
        let (moves, moves_dst) = (format!("{{{tag}}}src"), format!("{{{tag}}}dst"));

        // Blocked for ever, for 60 s, and for ever again.
        let c = blocker.clone();
        let key = jobs.clone();
        let blpop = tokio::spawn(async move { c.blpop([&key], Duration::ZERO).await });
        let c = blocker.clone();
        let (src, dst) = (moves.clone(), moves_dst.clone());
        let blmove = tokio::spawn(async move {
            c.blmove(
                &src,
                &dst,
                Direction::Left,
                Direction::Right,
                Duration::from_secs(60),
            )
            .await
        });
        let c = blocker.clone();
        let key = multi.clone();
        let blmpop =
            tokio::spawn(
                async move { c.blmpop([&key], Direction::Right, 10, Duration::ZERO).await },
            );
        wait_blocked(&client, &all, 3).await;

        // Past the client's 2 s response timeout they still wait (nothing could serve them).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!blpop.is_finished() && !blmove.is_finished() && !blmpop.is_finished());

        // A call given up by its caller leaves no client blocked, and pops nothing.
        let c = blocker.clone();
        let key = given_up.clone();
        let abandoned = tokio::spawn(async move { c.blpop([&key], Duration::ZERO).await });
        wait_blocked(&client, &all, 4).await;
        abandoned.abort();
        wait_blocked(&client, &all, 3).await;
        assert_eq!(client.rpush(&given_up, ["kept"]).await.expect("rpush"), 1);

        // A timed call outlasts the response timeout and times out with nil.
        let timed = blocker
            .brpop(["nothing-here"], Duration::from_millis(2300))
            .await
            .expect("a timeout is not an error");
        assert_eq!(timed, None);

        // The node that holds `jobs` drains: its slots move, and the calls blocked there
        // block again at the new owners.
        let victim_addr = client.node_for_key(&jobs).expect("an owner");
        let at = procs
            .iter()
            .position(|p| p.addr == victim_addr)
            .expect("a DataNode of ours");
        let victim = procs.remove(at);
        let lines = drain(victim.admin).await;
        assert!(
            lines.last().is_some_and(|l| l.starts_with("drained:")),
            "{lines:?}"
        );
        settle(&client, namenode.http_addr(), 2).await;
        let rest: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
        assert!(client.node_for_key(&jobs).is_some_and(|o| o != victim.addr));
        wait_blocked(&client, &rest, 3).await;
        assert!(!blpop.is_finished() && !blmove.is_finished() && !blmpop.is_finished());
        // The abandoned call's element moved with its key, still there.
        assert_eq!(
            client.lrange(&given_up, 0, -1).await.expect("lrange"),
            bs(&["kept"])
        );

        // Pushes afterwards serve them where their keys are now.
        assert_eq!(client.rpush(&jobs, ["job-1"]).await.expect("rpush"), 1);
        assert_eq!(
            step("blpop served", blpop)
                .await
                .expect("task")
                .expect("blpop"),
            Some((b(&jobs), b("job-1")))
        );
        client.rpush(&moves, ["m-1"]).await.expect("rpush");
        assert_eq!(
            step("blmove served", blmove)
                .await
                .expect("task")
                .expect("blmove"),
            Some(b("m-1"))
        );
        assert_eq!(
            client.lrange(&moves_dst, 0, -1).await.expect("lrange"),
            bs(&["m-1"])
        );
        client.rpush(&multi, ["a", "b"]).await.expect("rpush");
        assert_eq!(
            step("blmpop served", blmpop)
                .await
                .expect("task")
                .expect("blmpop"),
            Some((b(&multi), bs(&["b", "a"])))
        );
        for k in [&jobs, &moves, &multi] {
            assert_eq!(client.llen(k).await.expect("llen"), 0, "{k} is empty");
        }
        wait_blocked(&client, &rest, 0).await;
        drop((client, blocker, victim, procs));
        namenode.shutdown().await;
    })
    .await;
}
