//! The `redis` crate's cluster client: it reads `CLUSTER SLOTS` and routes each command to the
//! owner itself, following `-MOVED`, like it does against Redis Cluster.

use crate::util::*;
use redis::cluster::ClusterClient;
use redis::AsyncCommands;

const KEYS: usize = 1_000;
const TASKS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_client_sets_and_gets_through_the_slot_map() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        // Liveness bounds, not the crate's short defaults: slow is not failed on a loaded
        // machine.
        let client = ClusterClient::builder(vec![url(addrs[1])])
            .connection_timeout(STEP_LIMIT)
            .response_timeout(STEP_LIMIT)
            .build()
            .expect("cluster client");
        let con = step("cluster connect", client.get_async_connection())
            .await
            .expect("cluster connection");

        // 1,000 keys, ten writers at a time.
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..TASKS {
            let mut con = con.clone();
            tasks.spawn(async move {
                for i in (t..KEYS).step_by(TASKS) {
                    let () = con
                        .set(format!("cc:{i}"), format!("v{i}"))
                        .await
                        .unwrap_or_else(|e| panic!("SET cc:{i}: {e}"));
                }
                for i in (t..KEYS).step_by(TASKS) {
                    let got: Option<String> = con
                        .get(format!("cc:{i}"))
                        .await
                        .unwrap_or_else(|e| panic!("GET cc:{i}: {e}"));
                    assert_eq!(got, Some(format!("v{i}")));
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("writer task");
        }

        // The keys sit on their owners, as the map the client read says.
        let map = SlotMap::of(addrs[0]).await;
        let mut total = 0;
        for &addr in &addrs {
            let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
            let owned = (0..KEYS)
                .filter(|i| map.owner(&format!("cc:{i}")) == addr)
                .count();
            assert_eq!(n, owned, "keys on {addr}");
            total += n;
        }
        assert_eq!(total, KEYS);

        // Hash tags keep multi-key commands on one slot, hence one node.
        let mut con = con;
        let tagged: Vec<(String, String)> = (0..10)
            .map(|i| (format!("{{user1000}}.f{i}"), format!("t{i}")))
            .collect();
        let () = con.mset(&tagged).await.expect("MSET with a hash tag");
        let keys: Vec<&String> = tagged.iter().map(|(k, _)| k).collect();
        let got: Vec<String> = con.mget(&keys).await.expect("MGET with a hash tag");
        let want: Vec<String> = tagged.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(got, want);
        let owner = map.owner("user1000");
        let n: i64 = q(
            &mut connect(owner).await,
            &[
                "CLUSTER",
                "COUNTKEYSINSLOT",
                &chkv_common::key_slot(b"user1000").to_string(),
            ],
        )
        .await;
        assert_eq!(n, 10, "all tagged keys on {owner}");

        // The client splits an MGET over slots by itself and keeps the order.
        let keys: Vec<String> = (0..100).map(|i| format!("cc:{i}")).collect();
        let got: Vec<Option<String>> = con.mget(&keys).await.expect("MGET across slots");
        let want: Vec<Option<String>> = (0..100).map(|i| Some(format!("v{i}"))).collect();
        assert_eq!(got, want);
        drop(con);
        cluster.shutdown().await;
    })
    .await;
}
