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
