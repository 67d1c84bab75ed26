//! Pub/Sub across DataNodes: a PUBLISH on any node reaches subscribers on every node, and
//! shard subscriptions live on their slot's owner, end with a `sunsubscribe` notice when the
//! slot moves away (a drain), and work again at the new owner.

use crate::util::*;
use std::time::Duration;

fn push(kind: &str, a: &str, b: &str) -> String {
    format!(
        "*3\r\n${}\r\n{kind}\r\n${}\r\n{a}\r\n${}\r\n{b}\r\n",
        kind.len(),
        a.len(),
        b.len()
    )
}

fn sub_reply(kind: &str, channel: &str, count: i64) -> String {
    format!(
        "*3\r\n${}\r\n{kind}\r\n${}\r\n{channel}\r\n:{count}\r\n",
        kind.len(),
        channel.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_on_any_of_three_real_nodes_reaches_subscribers_on_all() {
    bounded(async {
        let cluster = Spec::new(3).processes().start().await;
        let addrs = cluster.addrs();
        let mut subs = Vec::new();
        for &a in &addrs {
            let mut s = Raw::connect(a).await;
            assert_eq!(
                show(&s.cmd(&["SUBSCRIBE", "news"]).await),
                show(sub_reply("subscribe", "news", 1).as_bytes())
            );
            subs.push(s);
        }
        let mut psub = Raw::connect(addrs[2]).await;
        psub.cmd(&["PSUBSCRIBE", "n*"]).await;
        for (i, &a) in addrs.iter().enumerate() {
            let mut publisher = Raw::connect(a).await;
            let text = format!("hello from {i}");
            // Redis Cluster counts the receivers of the node that took the PUBLISH.
            let local = if i == 2 { 2 } else { 1 };
            assert_eq!(
                publisher.cmd(&["PUBLISH", "news", &text]).await,
                format!(":{local}\r\n").as_str()
            );
            for s in &mut subs {
                assert_eq!(
                    show(&s.reply().await),
                    show(push("message", "news", &text).as_bytes())
                );
            }
            let want = format!(
                "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n${}\r\n{text}\r\n",
                text.len()
            );
            assert_eq!(show(&psub.reply().await), show(want.as_bytes()));
        }
        // The peer-only command is refused on a client connection.
        let mut c = Raw::connect(addrs[0]).await;
        assert!(c
            .cmd(&["CHKV.PUBLISH", "news", "x"])
            .await
            .starts_with(b"-ERR"));
        cluster.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_subscribers_are_told_to_move_when_their_slot_is_drained() {
    // A drain on a loaded machine, with the other cluster tests running, can take longer
    // than the usual test limit: a generous one of its own.
    let limit = Duration::from_secs(120);
    let body = async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let channel = map.keys_of(addrs[1], "shard:", 1).remove(0);
        let slot = chkv_common::key_slot(channel.as_bytes());

        // Not the owner: every connection is sent to the owner (a subscription cannot be
        // forwarded).
        let mut wrong = Raw::connect(addrs[0]).await;
        assert_eq!(
            wrong.cmd(&["SSUBSCRIBE", &channel]).await,
            format!("-MOVED {slot} {}\r\n", addrs[1]).as_str()
        );
        let mut sub = Raw::connect(addrs[1]).await;
        assert_eq!(
            show(&sub.cmd(&["SSUBSCRIBE", &channel]).await),
            show(sub_reply("ssubscribe", &channel, 1).as_bytes())
        );
        // SPUBLISH from another node's plain connection is forwarded to the owner.
        let mut publisher = Raw::connect(addrs[2]).await;
        assert_eq!(
            publisher.cmd(&["SPUBLISH", &channel, "one"]).await,
            ":1\r\n"
        );
        assert_eq!(
            show(&sub.reply().await),
            show(push("smessage", &channel, "one").as_bytes())
        );

        let DataNode::InProcess(n1) = &cluster.nodes[1] else {
            panic!("in-process nodes")
        };
        let summary = drain(n1.admin_addr()).await;
        eprintln!("{summary}");
        // The subscriber learns that its channel has gone.
        assert_eq!(
            show(&sub.reply().await),
            show(sub_reply("sunsubscribe", &channel, 0).as_bytes())
        );
        let rest = [addrs[0], addrs[2]];
        wait_converged(&rest, 2).await;
        let owner = SlotMap::of(addrs[0]).await.owner(&channel);
        assert!(rest.contains(&owner));
        let mut sub2 = Raw::connect(owner).await;
        sub2.cmd(&["SSUBSCRIBE", &channel]).await;
        // Publish through the node that does not own it: forwarded to the new owner.
        let other = if owner == rest[0] { rest[1] } else { rest[0] };
        let mut publisher = Raw::connect(other).await;
        assert_eq!(
            publisher.cmd(&["SPUBLISH", &channel, "two"]).await,
            ":1\r\n"
        );
        assert_eq!(
            show(&sub2.reply().await),
            show(push("smessage", &channel, "two").as_bytes())
        );
        cluster.shutdown().await;
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("the test finishes within its limit");
}

/// A RESP3 connection of the `redis` crate whose pushes (subscription notices, messages,
/// invalidations) arrive on the returned receiver.
async fn resp3(
    addr: std::net::SocketAddr,
) -> (
    redis::aio::MultiplexedConnection,
    tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    let client = redis::Client::open(format!("{}?protocol=resp3", url(addr))).expect("url");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(STEP_LIMIT))
        .set_response_timeout(Some(STEP_LIMIT))
        .set_push_sender(tx);
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    (con, rx)
}

/// The next push on `rx`, within a generous liveness limit.
async fn next_push(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) -> redis::PushInfo {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a push in time")
        .expect("connection alive")
}

/// A shard channel's name in each of `n` equal ranges of slots, so that a node joining (it
/// takes about a quarter of the slots of a cluster of 3, in arcs of the ring spread over the
/// slot space) takes some of them.
fn spread(prefix: &str, n: u16) -> Vec<String> {
    let width = SLOTS as u16 / n;
    (0..n)
        .map(|b| {
            (0u64..)
                .map(|i| format!("{prefix}{i}"))
                .find(|c| chkv_common::key_slot(c.as_bytes()) / width == b)
                .expect("a name in every range")
        })
        .collect()
}

/// What the invalidations received on one tracking connection said.
#[derive(Debug, Default)]
struct Told {
    keys: std::collections::BTreeSet<String>,
    /// A null invalidation, "drop everything": a node whose ownership lease lapses (a node
    /// starved of CPU on a loaded machine) says it to every tracking client and forgets
    /// what they read. Always safe, so allowed at any time.
    everything: bool,
}

impl Told {
    fn covers(&self, want: &std::collections::BTreeSet<String>) -> bool {
        self.everything || want.is_subset(&self.keys)
    }
}

/// Adds the invalidations received so far on `rx` to `told`.
fn invalidated(rx: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>, told: &mut Told) {
    while let Ok(p) = rx.try_recv() {
        add_invalidated(p, told);
    }
}

/// Adds the invalidation `p` to `told`.
fn add_invalidated(p: redis::PushInfo, told: &mut Told) {
    assert_eq!(p.kind, redis::PushKind::Invalidate, "{p:?}");
    match &p.data[..] {
        [redis::Value::Nil] => told.everything = true,
        [redis::Value::Array(keys)] => {
            for k in keys {
                let redis::Value::BulkString(k) = k else {
                    panic!("a key: {p:?}")
                };
                told.keys
                    .insert(String::from_utf8(k.clone()).expect("utf-8"));
            }
        }
        _ => panic!("an invalidation: {p:?}"),
    }
}

/// Waits until every key of `want` was invalidated on `rx` (or everything was), then says
/// what was.
async fn invalidated_at_least(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    want: &std::collections::BTreeSet<String>,
) -> Told {
    let mut told = Told::default();
    while !told.covers(want) {
        add_invalidated(next_push(rx).await, &mut told);
    }
    invalidated(rx, &mut told);
    told
}

/// Slots leave a node two ways, a node joining takes them and a drain gives them away; both
/// times every `redis` crate connection subscribed (SSUBSCRIBE) to a shard channel of a slot
/// that left gets Redis's `sunsubscribe` push, every client tracking a key of such a slot
/// gets its invalidation, and nothing else is said to the others (but for a null
/// invalidation, which a node whose lease lapses under load may send at any time): their
/// shard subscriptions keep receiving SPUBLISHed messages. Subscribing again at the new owner works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_taken_by_a_join_or_given_away_by_a_drain_end_shard_subscriptions_and_tracked_keys() {
    // Two rebalances on a loaded machine, with the other cluster tests running: a generous
    // limit of its own.
    let limit = Duration::from_secs(300);
    let body = async {
        use redis::{PushKind, Value as V};
        use std::collections::BTreeSet;
        let mut cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        let before = SlotMap::of(addrs[0]).await;
        let channels = spread("sc:", 64);
        let keys = spread("tk:", 64);

        // One subscriber connection per shard channel (a connection's shard channels share a
        // slot), at its owner.
        let mut subs = Vec::new();
        for ch in &channels {
            let owner = before.owner(ch);
            let (mut con, mut rx) = resp3(owner).await;
            let _: V = redis::cmd("SSUBSCRIBE")
                .arg(ch)
                .query_async(&mut con)
                .await
                .expect("SSUBSCRIBE");
            let p = next_push(&mut rx).await;
            assert_eq!(p.kind, PushKind::SSubscribe, "{p:?}");
            assert_eq!(p.data, vec![bulk(ch), V::Int(1)]);
            subs.push((ch.clone(), owner, con, rx));
        }
        // One tracking connection per node, each reading the keys its node owns.
        let mut trackers = Vec::new();
        let mut writer = connect(addrs[0]).await;
        for &a in &addrs {
            let (mut con, rx) = resp3(a).await;
            let _: () = q(&mut con, &["CLIENT", "TRACKING", "ON"]).await;
            let mine: BTreeSet<String> = keys
                .iter()
                .filter(|k| before.owner(k) == a)
                .cloned()
                .collect();
            for k in &mine {
                let _: () = q(&mut writer, &["SET", k, "v"]).await;
                let v: String = q(&mut con, &["GET", k]).await;
                assert_eq!(v, "v");
            }
            trackers.push((a, con, rx, mine));
        }

        // A node joins and takes slots from the three.
        let joiner = start_in_process(cluster.namenode_addr(), FAST_HEARTBEAT, false, None).await;
        let joined = joiner.addr();
        cluster.nodes.push(DataNode::InProcess(joiner));
        cluster.settle(4).await;
        let after = SlotMap::of(joined).await;
        // A join only takes slots, and only for itself.
        for ch in channels.iter().chain(&keys) {
            let (old, new) = (before.owner(ch), after.owner(ch));
            assert!(old == new || new == joined, "{ch}: {old} -> {new}");
        }
        let moved = |k: &String| after.owner(k) == joined;
        // With 64 channels spread over the slot space, a joiner that takes no slot of any
        // of them would have to own under 1/64 of the slots.
        assert!(
            channels.iter().any(moved),
            "the join took no channel's slot"
        );
        assert!(
            keys.iter().any(moved),
            "the join took no tracked key's slot"
        );
        eprintln!(
            "the join took the slots of {} of 64 shard channels and {} of 64 tracked keys",
            channels.iter().filter(|c| moved(c)).count(),
            keys.iter().filter(|k| moved(k)).count()
        );
        for (ch, _, _, rx) in &mut subs {
            if moved(ch) {
                let p = next_push(rx).await;
                assert_eq!(p.kind, PushKind::SUnsubscribe, "{ch}: {p:?}");
                assert_eq!(p.data, vec![bulk(&*ch), V::Int(0)]);
            }
        }
        for (a, _, rx, mine) in &mut trackers {
            let want: BTreeSet<String> = mine.iter().filter(|k| moved(k)).cloned().collect();
            let told = invalidated_at_least(rx, &want).await;
            // Exactly the moved keys (a null invalidation, if any, covers them too).
            assert!(told.keys.is_subset(&want), "invalidations on {a}: {told:?}");
            assert!(told.everything || told.keys == want, "{a}: {told:?}");
            if told.everything {
                // The node forgot what was read: nothing is tracked there any more.
                mine.clear();
            }
            mine.retain(|k| !moved(k));
        }
        // The subscriptions whose slot stayed heard nothing and still receive; the moved
        // ones work again at the joiner, through a node that does not own them.
        let mut publisher = Raw::connect(addrs[0]).await;
        for (ch, owner, con, rx) in &mut subs {
            if moved(ch) {
                *owner = joined;
                let (c, r) = resp3(joined).await;
                (*con, *rx) = (c, r);
                let _: V = redis::cmd("SSUBSCRIBE")
                    .arg(&*ch)
                    .query_async(con)
                    .await
                    .expect("SSUBSCRIBE at the new owner");
                assert_eq!(next_push(rx).await.kind, PushKind::SSubscribe);
            }
            assert_eq!(
                publisher.cmd(&["SPUBLISH", ch, "after-join"]).await,
                ":1\r\n",
                "{ch}"
            );
            let p = next_push(rx).await;
            assert_eq!(p.kind, PushKind::SMessage, "{ch}: {p:?}");
            assert_eq!(p.data, vec![bulk(&*ch), bulk("after-join")]);
        }

        // Node 1 drains: every slot it has leaves it.
        let DataNode::InProcess(n1) = &cluster.nodes[1] else {
            panic!("in-process nodes")
        };
        let summary = drain(n1.admin_addr()).await;
        eprintln!("{summary}");
        for (ch, owner, _, rx) in &mut subs {
            if *owner == addrs[1] {
                let p = next_push(rx).await;
                assert_eq!(p.kind, PushKind::SUnsubscribe, "{ch}: {p:?}");
                assert_eq!(p.data, vec![bulk(&*ch), V::Int(0)]);
            }
        }
        let (_, _, rx, mine) = &mut trackers[1];
        let want = mine.clone();
        let told = invalidated_at_least(rx, &want).await;
        assert!(told.keys.is_subset(&want), "{told:?}");
        // The others were told of no key (only, maybe, a lapsed lease's null invalidation).
        for (a, _, rx, _) in &mut trackers {
            if *a != addrs[1] {
                let mut told = Told::default();
                invalidated(rx, &mut told);
                assert!(told.keys.is_empty(), "{a}: {told:?}");
            }
        }
        for (ch, owner, _, rx) in &mut subs {
            if *owner != addrs[1] {
                assert!(rx.try_recv().is_err(), "{ch} was told something");
            }
        }
        let n1 = cluster.nodes.remove(1);
        let DataNode::InProcess(n1) = n1 else {
            panic!("in-process nodes")
        };
        step("drained node shutdown", n1.shutdown()).await;
        cluster.settle(3).await;
        cluster.shutdown().await;
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("the test finishes within its limit");
}

/// A peer that stops reading (SIGSTOP, kept in the table by a patient NameNode) while a
/// client floods PUBLISH on another node: the messages queued for it stay within the pubsub
/// hard limit (the rest are dropped and counted), the publisher is never held up, and once
/// the peer resumes, its subscribers receive again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_for_a_peer_that_stops_reading_are_bounded_by_the_pubsub_limit() {
    let limit = Duration::from_secs(240);
    let body = async {
        // 600 missed heartbeats of 200 ms: the paused node stays in the table for 2 minutes.
        let mut cluster = Spec::new(1).tolerance(600).start().await;
        let b = Process::spawn(cluster.namenode_addr(), FAST_HEARTBEAT, &[]).await;
        let b_addr = b.addr;
        cluster.nodes.push(DataNode::Process(b));
        cluster.settle(2).await;
        let a_addr = cluster.addrs()[0];
        let DataNode::InProcess(a) = &cluster.nodes[0] else {
            panic!("node 0 is in-process")
        };
        let mut c = Raw::connect(a_addr).await;
        assert_eq!(
            c.cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "pubsub 1mb 0 0"
            ])
            .await,
            "+OK\r\n"
        );
        let mut sub = Raw::connect(b_addr).await;
        sub.cmd(&["SUBSCRIBE", "news"]).await;
        // The link from a to b is up and carries PUBLISH.
        assert_eq!(c.cmd(&["PUBLISH", "news", "before"]).await, ":0\r\n");
        assert_eq!(
            show(&sub.reply().await),
            show(push("message", "news", "before").as_bytes())
        );

        let DataNode::Process(b) = &cluster.nodes[1] else {
            panic!("node 1 is a process")
        };
        b.signal(libc::SIGSTOP);
        // 128 MB of messages, in batches of 64 pipelined PUBLISHes of 64 KB.
        let payload = "x".repeat(64 << 10);
        let mut batch = Vec::new();
        for _ in 0..64 {
            batch.extend_from_slice(&resp(&["PUBLISH", "flood", payload.as_str()]));
        }
        for _ in 0..32 {
            c.send(&batch).await;
            for _ in 0..64 {
                assert_eq!(c.reply().await, ":0\r\n");
            }
            let queued = a.node.peers.queued_bounded(b_addr);
            assert!(
                queued <= 1 << 20,
                "{queued} bytes queued for the stopped peer"
            );
        }
        let info = String::from_utf8(c.cmd(&["INFO", "stats"]).await.to_vec()).expect("utf-8");
        let dropped: u64 = info_field(&info, "pubsub_fanout_dropped");
        // At most the limit and the sockets' buffers took the other messages.
        assert!(dropped > 1024, "only {dropped} of 2048 messages dropped");

        b.signal(libc::SIGCONT);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        'received: for i in 0u64.. {
            assert!(
                std::time::Instant::now() < deadline,
                "b's subscriber never received"
            );
            let text = format!("after{i}");
            assert_eq!(c.cmd(&["PUBLISH", "news", &text]).await, ":0\r\n");
            while let Ok(m) = tokio::time::timeout(Duration::from_millis(500), sub.reply()).await {
                let want = push("message", "news", &text);
                if show(&m) == show(want.as_bytes()) {
                    break 'received;
                }
                // An earlier round's message, delivered late.
                assert!(show(&m).contains("after"), "{}", show(&m));
            }
        }
        cluster.shutdown().await;
    };
    tokio::time::timeout(limit, body)
        .await
        .expect("the test finishes within its limit");
}

/// Keyspace notifications are published on the node that holds the key, as in Redis
/// Cluster: a write sent to another node (forwarded to the owner) is announced to the
/// owner's subscribers, and the node that forwarded it says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_events_are_published_on_the_node_that_holds_the_key() {
    bounded(async {
        let cluster = Cluster::start(2).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let key = map.keys_of(addrs[1], "ks:", 1).remove(0);
        let mut subs = Vec::new();
        for &a in &addrs {
            let mut c = Raw::connect(a).await;
            assert_eq!(
                c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"])
                    .await,
                "+OK\r\n"
            );
            let mut s = Raw::connect(a).await;
            s.cmd(&["PSUBSCRIBE", "__keyspace@0__:*"]).await;
            subs.push(s);
        }
        let mut c = Raw::connect(addrs[0]).await;
        assert_eq!(c.cmd(&["SET", &key, "v"]).await, "+OK\r\n");
        let chan = format!("__keyspace@0__:{key}");
        let want = format!(
            "*4\r\n$8\r\npmessage\r\n$16\r\n__keyspace@0__:*\r\n${}\r\n{chan}\r\n$3\r\nset\r\n",
            chan.len()
        );
        assert_eq!(show(&subs[1].reply().await), show(want.as_bytes()));
        // Had the forwarding node announced it, that message would come before this PING's
        // reply (it would have been queued before the SET was answered).
        assert_eq!(
            show(&subs[0].cmd(&["PING"]).await),
            show(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
        );
        cluster.shutdown().await;
    })
    .await
}

/// Requests that reach the real binary on two connections run in the order they arrived,
/// also when one poll finds both ready: an UNSUBSCRIBE sent on one connection and then a
/// PUBLISH on another (neither waiting for the other's reply) delivers nothing, as in
/// Redis's suite ("PUBLISH/SUBSCRIBE after UNSUBSCRIBE without arguments"). With tokio's
/// LIFO slot the task woken last ran first, and 299-300 of the 300 rounds delivered the
/// message.
///
/// The bound is a tenth of the rounds, not none: no server can promise the order of two
/// sockets' requests when it is late to poll. The kernel's ready list keeps each socket
/// where its first event since the last poll put it, and reports its readiness as it is
/// when polled: the ACK of the PING's reply makes `publ` writable, and if the worker polls
/// only after both requests arrived (just after start, or on a loaded machine) `publ` comes
/// first, readable. Measured on a 2-core VM with both cores busy (a CPU burner and
/// `redis-benchmark` against another server): a node running for a while delivered in 0 of
/// 20,000 rounds (release) and 1 of 10,000 (debug); a fresh node in round 0 in 7 to 17 of
/// 40 to 60 starts (none after a 200 ms pause or one PING first); CI saw 1 of 300 once;
/// redis-server 7.0.15 delivered in 144 to 378 of 3,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_requests_run_in_the_order_they_arrived() {
    bounded(async {
        let node = Process::spawn_standalone(&[]).await;
        let mut delivered = Vec::new();
        for round in 0..300 {
            let mut sub = Raw::connect(node.addr).await;
            let mut publ = Raw::connect(node.addr).await;
            for c in [&sub, &publ] {
                c.sock.set_nodelay(true).expect("nodelay");
            }
            let ch = format!("ch{round:03}");
            assert_eq!(
                show(&sub.cmd(&["SUBSCRIBE", &ch]).await),
                show(sub_reply("subscribe", &ch, 1).as_bytes())
            );
            // Both connections accepted and idle before the two requests go out.
            assert_eq!(publ.cmd(&["PING"]).await, "+PONG\r\n");
            sub.send(&resp(&["UNSUBSCRIBE", &ch])).await;
            if publ.cmd(&["PUBLISH", &ch, "x"]).await != ":0\r\n" {
                delivered.push(round);
            }
        }
        assert!(
            delivered.len() < 30,
            "delivered after UNSUBSCRIBE in {} of 300 rounds: {delivered:?}",
            delivered.len()
        );
    })
    .await;
}
