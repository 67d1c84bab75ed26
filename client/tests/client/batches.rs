//! Batches across nodes: MGET/MSET/DEL/EXISTS and pipelines are split per node, sent at
//! once, and answered in the caller's order.

use std::collections::HashSet;
use std::time::Duration;

use chkv_client::{Bytes, Value};

use crate::util::{bounded, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_keep_the_callers_order() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let c = &cluster.client;
        let keys: Vec<String> = (0..500).map(|i| format!("batch:{i}")).collect();
        let owners: HashSet<_> = keys.iter().map(|k| c.node_for_key(k)).collect();
        assert_eq!(owners.len(), 3, "the keys span every node");

        c.mset(keys.iter().map(|k| (k.clone(), format!("v-{k}"))))
            .await
            .expect("mset");
        // Reversed, with repeats and missing keys interleaved.
        let mut asked: Vec<String> = keys.iter().rev().cloned().collect();
        asked.insert(7, "batch:missing".into());
        asked.push(keys[3].clone());
        let got = c.mget(&asked).await.expect("mget");
        assert_eq!(got.len(), asked.len());
        for (k, v) in asked.iter().zip(&got) {
            let want = (k != "batch:missing").then(|| Bytes::from(format!("v-{k}")));
            assert_eq!(v, &want, "{k}");
        }
        assert_eq!(
            c.exists(asked.iter().map(String::as_str))
                .await
                .expect("exists"),
            501
        );
        assert_eq!(c.del(&keys[..250]).await.expect("del"), 250);
        assert_eq!(c.exists(&keys).await.expect("exists"), 250);
        let got = c.mget(&keys).await.expect("mget");
        assert!(got[..250].iter().all(Option::is_none));
        assert!(got[250..].iter().all(Option::is_some));
        assert_eq!(c.unlink(&keys).await.expect("unlink"), 250);
        assert_eq!(
            c.mget(Vec::<String>::new()).await.expect("empty mget"),
            vec![]
        );
        cluster.shutdown().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_answer_in_order() {
    bounded(Duration::from_secs(240), async {
        let cluster = Cluster::start(3).await;
        let c = &cluster.client;
        let mut p = c.pipeline();
        for i in 0..200 {
            p.set(format!("p:{i}"), i.to_string());
        }
        for i in 0..200 {
            p.incr(format!("p:{i}"));
        }
        p.cmd(["PING"]);
        for i in (0..200).rev() {
            p.get(format!("p:{i}"));
        }
        p.cmd(["GET"]); // the server's arity error, in its place
        p.cmd(Vec::<String>::new()); // refused before sending
        assert_eq!(p.len(), 603);
        let replies = p.execute_each().await;
        assert_eq!(replies.len(), 603);
        for r in &replies[..200] {
            assert_eq!(r.as_ref().expect("set"), &Value::Okay);
        }
        for (i, r) in replies[200..400].iter().enumerate() {
            assert_eq!(r.as_ref().expect("incr"), &Value::Int(i as i64 + 1));
        }
        assert_eq!(
            replies[400].as_ref().expect("ping"),
            &Value::Simple("PONG".into())
        );
        for (j, r) in replies[401..601].iter().enumerate() {
            let i = 199 - j;
            assert_eq!(
                r.as_ref().expect("get"),
                &Value::Bulk(Bytes::from((i + 1).to_string())),
                "p:{i}"
            );
        }
        let err = replies[601].as_ref().expect_err("arity");
        assert_eq!(
            err.to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert!(replies[602].is_err());
        // `execute` gives the first error.
        let err = c
            .pipeline()
            .set("p:x", "1")
            .cmd(["INCR", "p:x", "extra"])
            .execute()
            .await
            .expect_err("arity");
        assert_eq!(err.code(), Some("ERR"));
        let ok = c
            .pipeline()
            .get("p:x")
            .del("p:x")
            .execute()
            .await
            .expect("ok");
        assert_eq!(
            ok,
            vec![Value::Bulk(Bytes::from_static(b"1")), Value::Int(1)]
        );
        cluster.shutdown().await;
    })
    .await
}
