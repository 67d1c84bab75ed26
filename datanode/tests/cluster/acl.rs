//! ACL users in a cluster: a request is checked with the caller's permissions on the node the
//! client is connected to, before it is forwarded, so a restricted user gets the same answers
//! through every node, for keys any node owns.

use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_user_gets_the_same_answers_through_every_node() {
    bounded(async {
        let cluster = Cluster::start(3).await;
        let addrs = cluster.addrs();
        // Users are node-local for now: the same rules on every node.
        for &addr in &addrs {
            let () = q(
                &mut connect(addr).await,
                &["ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set"],
            )
            .await;
        }
        let map = SlotMap::of(addrs[0]).await;
        for (i, &via) in addrs.iter().enumerate() {
            let mut con = connect(via).await;
            let () = q(&mut con, &["AUTH", "app", "pw"]).await;
            for (j, &owner) in addrs.iter().enumerate() {
                let key = &map.keys_of(owner, &format!("app:{i}:"), 1)[0];
                let () = q(&mut con, &["SET", key, &format!("{i}{j}")]).await;
                let got: String = q(&mut con, &["GET", key]).await;
                assert_eq!(got, format!("{i}{j}"), "via node {i}, key owned by node {j}");
                let other = &map.keys_of(owner, "other:", 1)[0];
                let e = q_err(&mut con, &["GET", other]).await;
                assert_eq!(
                    e,
                    "NOPERM this user has no permissions to access one of the keys used as arguments",
                    "via node {i}, key owned by node {j}"
                );
                let e = q_err(&mut con, &["DEL", key]).await;
                assert_eq!(
                    e,
                    "NOPERM this user has no permissions to run the 'del' command"
                );
            }
            // The denial is in the ACL LOG of the node the client used, which did the check.
            let mut admin = connect(via).await;
            let log: Vec<redis::Value> = q(&mut admin, &["ACL", "LOG"]).await;
            assert!(!log.is_empty(), "node {i} logged its denials");
        }
        // Nothing was written for the denied requests: the other: keys do not exist anywhere.
        for &addr in &addrs {
            let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
            assert_eq!(n, 3, "one app: key per client node on each owner");
        }
        cluster.shutdown().await;
    })
    .await
}
