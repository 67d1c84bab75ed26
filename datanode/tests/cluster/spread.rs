//! One keyspace through every node: keys written through one DataNode are read back through
//! each of the others and end up spread over all of them.

use crate::util::*;

const KEYS: usize = 10_000;
const BATCH: usize = 500;

fn key(i: usize) -> String {
    format!("spread:{i}")
}

fn value(i: usize) -> String {
    format!("value-{i}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_through_one_node_read_through_the_others() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();

        // Written through node 0, pipelined: two thirds are forwarded to their owners.
        let mut writer = connect(addrs[0]).await;
        for start in (0..KEYS).step_by(BATCH) {
            let mut pipe = redis::pipe();
            for i in start..start + BATCH {
                pipe.set(key(i), value(i));
            }
            let replies: Vec<String> = step("pipelined SETs", pipe.query_async(&mut writer))
                .await
                .expect("pipelined SETs");
            assert!(replies.iter().all(|r| r == "OK"), "{replies:?}");
        }

        for &addr in &addrs[1..] {
            let mut reader = connect(addr).await;
            for start in (0..KEYS).step_by(BATCH) {
                let mut args = vec!["MGET".to_string()];
                args.extend((start..start + BATCH).map(key));
                let got: Vec<Option<String>> = q(&mut reader, &args).await;
                let want: Vec<Option<String>> =
                    (start..start + BATCH).map(|i| Some(value(i))).collect();
                assert_eq!(got, want, "MGET of keys {start}.. through {addr}");
            }
            for i in (0..KEYS).step_by(97) {
                let got: Option<String> = q(&mut reader, &["GET", &key(i)]).await;
                assert_eq!(
                    got.as_deref(),
                    Some(value(i).as_str()),
                    "GET {} through {addr}",
                    key(i)
                );
            }
        }

        // One write holding a pipeline of GETs for keys of all three owners: the local
        // replies and the forwarded ones come back in request order.
        let mut raw = Raw::connect(addrs[1]).await;
        let mut pipeline = Vec::new();
        for i in 0..BATCH {
            pipeline.extend(resp(&["GET", &key(i)]));
        }
        raw.send(&pipeline).await;
        for i in 0..BATCH {
            let v = value(i);
            let want = format!("${}\r\n{v}\r\n", v.len());
            assert_eq!(show(&raw.reply().await), show(want.as_bytes()), "reply {i}");
        }

        // Values of any size cross the forwarding path intact, both ways.
        let mut far = connect(addrs[2]).await;
        for size in [0, 1, 100_000, 3_000_000] {
            let v: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            for k in 0..3 {
                let big = format!("big:{size}:{k}");
                let () = q(&mut writer, &["SET", &big, &v]).await;
                let got: String = q(&mut far, &["GET", &big]).await;
                assert!(got == v, "{big}: {} bytes back", got.len());
                let deleted: i64 = q(&mut far, &["DEL", &big]).await;
                assert_eq!(deleted, 1);
            }
        }

        // Each key lives on exactly one node, and every node holds its share.
        let map = SlotMap::of(addrs[0]).await;
        let mut total = 0;
        for &addr in &addrs {
            let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
            let owned = (0..KEYS).filter(|&i| map.owner(&key(i)) == addr).count();
            eprintln!(
                "{addr} holds {n} keys ({:.1}%)",
                100.0 * n as f64 / KEYS as f64
            );
            assert_eq!(
                n, owned,
                "{addr} holds exactly the keys whose slots it owns"
            );
            assert!(n * 100 > KEYS * 15, "{addr} holds only {n} of {KEYS} keys");
            total += n;
        }
        assert_eq!(total, KEYS);
        cluster.shutdown().await;
    })
    .await;
}
