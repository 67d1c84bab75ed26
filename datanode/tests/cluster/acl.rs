//! ACL users in a cluster: a request is checked with the caller's permissions on the node the
//! client is connected to, before it is forwarded, so a restricted user gets the same answers
//! through every node, for keys any node owns.

use crate::util::*;
use std::time::{Duration, Instant};

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

const KEY_DENIED: &str =
    "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n";

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A raw connection to `addr` logged in as `user`.
async fn login(addr: std::net::SocketAddr, user: &str, pass: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    assert_eq!(
        s(&c.cmd(&["AUTH", user, pass]).await),
        "+OK\r\n",
        "AUTH on {addr}"
    );
    c
}

/// Polls `AUTH user pass` on `addr` until it succeeds (a liveness bound: a node that has
/// just joined learns the users within a sync period of appearing in the table).
async fn auth_eventually(addr: std::net::SocketAddr, user: &str, pass: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = Raw::connect(addr).await;
        let r = s(&c.cmd(&["AUTH", user, pass]).await);
        if r == "+OK\r\n" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} never learned {user}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Real DataNode processes: a user created through one node logs in through every node as
/// soon as SETUSER returns, with the same permissions for keys every node owns; changes,
/// deletions and `requirepass` reach every node; a node that joins later gets the users;
/// scripts and transactions are checked before they leave the first node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_the_same_on_every_node_including_late_joiners() {
    bounded(async {
        let mut cluster = Spec::new(3).processes().start().await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let mut admin0 = Raw::connect(addrs[0]).await;
        assert_eq!(
            s(&admin0
                .cmd(&["ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set"])
                .await),
            "+OK\r\n"
        );
        // The exchange between nodes is internal: a client does not see it.
        assert!(s(&admin0.cmd(&["CLUSTER", "USERS", "DIGEST"]).await)
            .starts_with("-ERR unknown subcommand"));
        for (i, &via) in addrs.iter().enumerate() {
            // Known on every node as soon as SETUSER has returned.
            let mut c = login(via, "app", "pw").await;
            assert_eq!(
                s(&c.cmd(&["ACL", "WHOAMI"]).await),
                "-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n"
            );
            for (j, &owner) in addrs.iter().enumerate() {
                let key = &map.keys_of(owner, &format!("app:{i}:"), 1)[0];
                assert_eq!(
                    s(&c.cmd(&["SET", key, "v"]).await),
                    "+OK\r\n",
                    "via {i}, owner {j}"
                );
                assert_eq!(s(&c.cmd(&["GET", key]).await), "$1\r\nv\r\n");
                let other = &map.keys_of(owner, "other:", 1)[0];
                assert_eq!(
                    s(&c.cmd(&["SET", other, "v"]).await),
                    KEY_DENIED,
                    "via {i}, owner {j}"
                );
                assert_eq!(s(&c.cmd(&["GET", other]).await), KEY_DENIED);
                assert_eq!(
                    s(&c.cmd(&["DEL", key]).await),
                    "-NOPERM this user has no permissions to run the 'del' command\r\n"
                );
                // Scripts and transactions are checked before they are forwarded too.
                assert_eq!(
                    s(
                        &c.cmd(&["EVAL", "return redis.call('del', KEYS[1])", "1", key])
                            .await
                    ),
                    "-NOPERM this user has no permissions to run the 'eval' command\r\n"
                );
                assert_eq!(
                    s(&c.cmd(&["MULTIEXEC", "2", "DEL", key]).await),
                    "-NOPERM this user has no permissions to run the 'multiexec' command\r\n"
                );
                assert_eq!(
                    s(&c.cmd(&["MULTI"]).await),
                    "-NOPERM this user has no permissions to run the 'multi' command\r\n"
                );
                assert_eq!(s(&c.cmd(&["GET", key]).await), "$1\r\nv\r\n");
            }
        }
        // A user who may run transactions and scripts: each command is checked when queued,
        // and what a script calls is checked against the user on the node that runs it.
        assert_eq!(
            s(&admin0
                .cmd(&[
                    "ACL", "SETUSER", "tx", "on", ">pw", "~app:*", "+get", "+set", "+multi",
                    "+exec", "+eval"
                ])
                .await),
            "+OK\r\n"
        );
        for (i, &via) in addrs.iter().enumerate() {
            let mut c = login(via, "tx", "pw").await;
            for (j, &owner) in addrs.iter().enumerate() {
                let key = &map.keys_of(owner, &format!("app:{i}:"), 1)[0];
                let other = &map.keys_of(owner, "other:", 1)[0];
                assert_eq!(s(&c.cmd(&["MULTI"]).await), "+OK\r\n");
                assert_eq!(s(&c.cmd(&["SET", key, "w"]).await), "+QUEUED\r\n");
                assert_eq!(s(&c.cmd(&["SET", other, "w"]).await), KEY_DENIED);
                assert_eq!(
                    s(&c.cmd(&["EXEC"]).await),
                    "-EXECABORT Transaction discarded because of previous errors.\r\n"
                );
                assert_eq!(s(&c.cmd(&["MULTI"]).await), "+OK\r\n");
                assert_eq!(s(&c.cmd(&["SET", key, "t"]).await), "+QUEUED\r\n");
                assert_eq!(
                    s(&c.cmd(&["EXEC"]).await),
                    "*1\r\n+OK\r\n",
                    "via {i}, owner {j}"
                );
                let r = s(&c
                    .cmd(&["EVAL", "return redis.call('del', KEYS[1])", "1", key])
                    .await);
                assert!(
                    r.starts_with('-') && r.contains("'del'"),
                    "via {i}, owner {j}: {r}"
                );
                assert_eq!(
                    s(
                        &c.cmd(&["EVAL", "return redis.call('get', KEYS[1])", "1", key])
                            .await
                    ),
                    "$1\r\nt\r\n"
                );
                let r = s(&c
                    .cmd(&["EVAL", "return redis.call('get', KEYS[1])", "1", other])
                    .await);
                assert!(
                    r.starts_with(KEY_DENIED.trim_end()),
                    "via {i}, owner {j}: {r}"
                );
            }
        }
        // Nothing was written for the denied requests.
        for &addr in &addrs {
            let mut c = Raw::connect(addr).await;
            assert_eq!(s(&c.cmd(&["DBSIZE"]).await), ":3\r\n", "{addr}");
        }

        // A change through node 1 applies to a client of node 2 at its next command; a
        // deletion through node 2 disconnects the user's clients of node 0.
        let mut on2 = login(addrs[2], "app", "pw").await;
        let mut on0 = login(addrs[0], "app", "pw").await;
        let key = &map.keys_of(addrs[0], "app:del:", 1)[0];
        assert_eq!(s(&on2.cmd(&["SET", key, "x"]).await), "+OK\r\n");
        let mut admin1 = Raw::connect(addrs[1]).await;
        assert_eq!(
            s(&admin1.cmd(&["ACL", "SETUSER", "app", "+del"]).await),
            "+OK\r\n"
        );
        assert_eq!(s(&on2.cmd(&["DEL", key]).await), ":1\r\n");
        let mut admin2 = Raw::connect(addrs[2]).await;
        assert_eq!(s(&admin2.cmd(&["ACL", "DELUSER", "app"]).await), ":1\r\n");
        assert_eq!(
            s(&on0.cmd(&["GET", key]).await),
            "-ERR the user of this connection was deleted\r\n"
        );
        for &addr in &addrs {
            let mut c = Raw::connect(addr).await;
            assert_eq!(
                s(&c.cmd(&["AUTH", "app", "pw"]).await),
                "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            );
            assert_eq!(
                s(&c.cmd(&["ACL", "USERS"]).await),
                "*2\r\n$7\r\ndefault\r\n$2\r\ntx\r\n"
            );
        }

        // A user created before a node joins reaches it, with its permissions.
        assert_eq!(
            s(&admin1
                .cmd(&["ACL", "SETUSER", "late", "on", ">pw2", "~app:*", "+get", "+set"])
                .await),
            "+OK\r\n"
        );
        let nn = cluster.namenode_addr();
        cluster.nodes.push(DataNode::Process(
            Process::spawn(nn, FAST_HEARTBEAT, &[]).await,
        ));
        let addrs = cluster.addrs();
        wait_converged(&addrs, 4).await;
        auth_eventually(addrs[3], "late", "pw2").await;
        let map = SlotMap::of(addrs[3]).await;
        let mut c = login(addrs[3], "late", "pw2").await;
        for &owner in &addrs {
            let key = &map.keys_of(owner, "app:late:", 1)[0];
            let other = &map.keys_of(owner, "other:late:", 1)[0];
            assert_eq!(s(&c.cmd(&["SET", key, "v"]).await), "+OK\r\n");
            assert_eq!(s(&c.cmd(&["GET", key]).await), "$1\r\nv\r\n");
            assert_eq!(s(&c.cmd(&["SET", other, "v"]).await), KEY_DENIED);
        }
        // requirepass set through one node is the default user's password on every node.
        assert_eq!(
            s(&admin0
                .cmd(&["CONFIG", "SET", "requirepass", "rootpw"])
                .await),
            "+OK\r\n"
        );
        for &addr in &addrs {
            let mut c = Raw::connect(addr).await;
            assert_eq!(
                s(&c.cmd(&["GET", "x"]).await),
                "-NOAUTH Authentication required.\r\n",
                "{addr}"
            );
            assert_eq!(s(&c.cmd(&["AUTH", "rootpw"]).await), "+OK\r\n");
        }
        cluster.shutdown().await;
    })
    .await
}
