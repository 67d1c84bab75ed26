//! Hostile clients and peers on a DataNode's client port (issue 12). Before: `CLUSTER IMPORT`
//! from redis-cli planted keys anywhere and `CLUSTER HANDOFF` flipped ownership into a split
//! brain. Now both exist only on authenticated peer sessions, and even there only for slots
//! the node is receiving from that peer.

use crate::util::*;
use bytes::BytesMut;
use chkv_common::auth::{nonce, ClusterSecret};
use chkv_common::key_slot;
use chkv_datanode::resp::Request;
use std::net::SocketAddr;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn encode(req: &Request) -> Vec<u8> {
    let mut out = BytesMut::new();
    req.encode_into(&mut out);
    out.to_vec()
}

/// Opens a raw connection and authenticates it as `id` with `secret`; `Err` with the reason
/// when the node refuses (or fails to prove itself).
async fn peer_session(addr: SocketAddr, id: &str, secret: &ClusterSecret) -> Result<Raw, String> {
    let mut c = Raw::connect(addr).await;
    let n = nonce();
    let reply = c
        .call(&encode(&chkv_datanode::trust::hello_request(id, &n)))
        .await;
    let (_, auth) = chkv_datanode::trust::answer_challenge(secret, id, &n, &reply)?;
    let ok = c.call(&encode(&auth)).await;
    if &ok[..] != b"+OK\r\n" {
        return Err(text(&ok));
    }
    Ok(c)
}

const UNKNOWN_IMPORT: &str = "-ERR unknown subcommand 'IMPORT'. Try CLUSTER HELP.\r\n";
const UNKNOWN_HANDOFF: &str = "-ERR unknown subcommand 'HANDOFF'. Try CLUSTER HELP.\r\n";

#[tokio::test]
async fn internal_commands_do_not_exist_for_clients() {
    bounded(async {
        let cluster = Cluster::start(2).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let mine = map.keys_of(addrs[0], "mine", 1).remove(0);
        let theirs = map.keys_of(addrs[1], "theirs", 1).remove(0);
        let other_id = my_id(addrs[1]).await;
        let mut c = Raw::connect(addrs[0]).await;
        for key in [&mine, &theirs] {
            let r = c
                .cmd(&["CLUSTER", "IMPORT", key.as_str(), "0", "planted"])
                .await;
            assert_eq!(text(&r), UNKNOWN_IMPORT);
        }
        let slot = key_slot(theirs.as_bytes()).to_string();
        let r = c
            .cmd(&["CLUSTER", "HANDOFF", other_id.as_str(), slot.as_str()])
            .await;
        assert_eq!(text(&r), UNKNOWN_HANDOFF);
        // Wrong arity does not reveal them either, nor does COMMAND.
        let r = c.cmd(&["CLUSTER", "IMPORT"]).await;
        assert_eq!(text(&r), UNKNOWN_IMPORT);
        let listed = text(&c.cmd(&["COMMAND", "LIST"]).await);
        assert!(listed.contains("cluster|slots"), "{listed}");
        assert!(!listed.contains("cluster|import"), "{listed}");
        assert!(!listed.contains("cluster|handoff"), "{listed}");
        // Nothing was stored, nothing moved.
        for addr in &addrs {
            let mut c = Raw::connect(*addr).await;
            assert_eq!(text(&c.cmd(&["DBSIZE"]).await), ":0\r\n");
        }
        assert_eq!(SlotMap::of(addrs[0]).await.owner(&theirs), addrs[1]);
        // A failed PEERAUTH leaves the connection a client's.
        let mut c = Raw::connect(addrs[0]).await;
        let n = nonce();
        let _ = c
            .call(&encode(&chkv_datanode::trust::hello_request("dn-x", &n)))
            .await;
        let r = c.cmd(&["CLUSTER", "PEERAUTH", &"ab".repeat(32)]).await;
        assert!(
            text(&r).starts_with("-ERR cluster peer authentication failed"),
            "{}",
            text(&r)
        );
        let r = c
            .cmd(&["CLUSTER", "IMPORT", mine.as_str(), "0", "planted"])
            .await;
        assert_eq!(text(&r), UNKNOWN_IMPORT);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_peer_imports_only_what_it_is_handing_over() {
    bounded(async {
        let cluster = Cluster::start(2).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let mine = map.keys_of(addrs[0], "mine", 1).remove(0);
        let theirs = map.keys_of(addrs[1], "theirs", 1).remove(0);
        let id0 = my_id(addrs[0]).await;
        let id1 = my_id(addrs[1]).await;
        // This test cluster has no secret: the empty key, loopback only.
        let none = ClusterSecret::none();
        let mut p = peer_session(addrs[0], &id1, &none)
            .await
            .expect("peer session");
        // Node 1 may not plant keys in node 0's own slots, nor flip them. (`-TRYAGAIN`: the
        // receiving node's table might be behind the sender's order; a real sender retries
        // for a few seconds, then gives up and the slots stay where they are.)
        let r = p
            .cmd(&["CLUSTER", "IMPORT", mine.as_str(), "0", "planted"])
            .await;
        assert!(text(&r).starts_with("-TRYAGAIN slot"), "{}", text(&r));
        let slot0 = key_slot(mine.as_bytes()).to_string();
        let r = p
            .cmd(&["CLUSTER", "HANDOFF", id1.as_str(), slot0.as_str()])
            .await;
        assert!(text(&r).starts_with("-TRYAGAIN"), "{}", text(&r));
        // Nor speak for node 0.
        let slot1 = key_slot(theirs.as_bytes()).to_string();
        let r = p
            .cmd(&["CLUSTER", "HANDOFF", id0.as_str(), slot1.as_str()])
            .await;
        assert_eq!(text(&r), "-ERR a node hands over only its own slots\r\n");
        // A member that is not in the table is handing nothing over.
        let mut q = peer_session(addrs[0], "dn-stranger", &none)
            .await
            .expect("session");
        let r = q
            .cmd(&["CLUSTER", "IMPORT", theirs.as_str(), "0", "planted"])
            .await;
        assert!(text(&r).starts_with("-TRYAGAIN slot"), "{}", text(&r));
        let mut c = Raw::connect(addrs[0]).await;
        assert_eq!(text(&c.cmd(&["DBSIZE"]).await), ":0\r\n");
        assert_eq!(SlotMap::of(addrs[0]).await.owner(&mine), addrs[0]);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_secret_gets_no_peer_session() {
    bounded(async {
        // A standalone node with a secret (a node in a cluster is tested the same way).
        let s = start_with(chkv_datanode::config::Config {
            cluster_secret: ClusterSecret::new(b"the-real-cluster-secret").expect("valid"),
            ..config()
        })
        .await;
        let wrong = ClusterSecret::new(b"a-guessed-cluster-secret").expect("valid");
        let err = peer_session(s.addr(), "dn-x", &wrong)
            .await
            .err()
            .expect("refused");
        assert!(err.contains("does not know the cluster secret"), "{err}");
        let err = peer_session(s.addr(), "dn-x", &ClusterSecret::none())
            .await
            .err()
            .expect("refused");
        assert!(err.contains("does not know the cluster secret"), "{err}");
        s.shutdown().await;
    })
    .await;
}

/// An admin connection: sends lines, reads lines.
struct Admin {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>,
    wr: tokio::net::tcp::OwnedWriteHalf,
}

impl Admin {
    async fn connect(addr: SocketAddr) -> Admin {
        use tokio::io::AsyncBufReadExt;
        let sock = step("admin connect", tokio::net::TcpStream::connect(addr))
            .await
            .expect("admin connect");
        let (rd, wr) = sock.into_split();
        let mut admin = Admin {
            lines: tokio::io::BufReader::new(rd).lines(),
            wr,
        };
        let banner = admin.line().await.expect("banner");
        assert!(banner.contains("admin; type help"), "{banner}");
        admin
    }

    async fn line(&mut self) -> Option<String> {
        step("admin line", self.lines.next_line())
            .await
            .ok()
            .flatten()
    }

    async fn say(&mut self, line: &[u8]) -> Option<String> {
        use tokio::io::AsyncWriteExt;
        step("admin send", self.wr.write_all(line))
            .await
            .expect("admin send");
        self.line().await
    }
}

/// Polls until the nodes own every slot between them, each some, in one epoch.
async fn converge(nodes: &[&chkv_datanode::server::ServerHandle]) {
    let ok = eventually(std::time::Duration::from_secs(30), || async {
        let routings: Vec<_> = nodes.iter().map(|n| n.node.routing()).collect();
        let total: usize = routings.iter().map(|r| r.my_slot_count()).sum();
        total == SLOTS
            && routings.windows(2).all(|w| w[0].epoch == w[1].epoch)
            && routings.iter().all(|r| r.my_slot_count() > 0)
    })
    .await;
    assert!(ok, "the nodes did not converge");
}

/// Before: with `--requirepass`, `k` from anyone drained and stopped the node, and after
/// `CONFIG SET requirepass` new links between DataNodes got WRONGPASS so a drain stayed at 0
/// slots moved. Now the admin port asks for the password, and peers never use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_rotation_during_a_drain_and_an_authenticated_admin_port() {
    bounded(async {
        let secret = ClusterSecret::new(b"rotation-test-cluster-secret").expect("valid");
        let nn = chkv_namenode::start(chkv_namenode::Config {
            timing: chkv_namenode::Timing::new(FAST_HEARTBEAT, TOLERANCE),
            cluster_secret: secret.clone(),
            ..chkv_namenode::Config::ephemeral()
        })
        .await
        .expect("namenode");
        let mut nodes = Vec::new();
        for _ in 0..2 {
            nodes.push(
                chkv_datanode::server::start(chkv_datanode::config::Config {
                    port: 0,
                    admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                    namenode: Some(nn.datanode_addr().into()),
                    heartbeat_ms: FAST_HEARTBEAT.as_millis() as u64,
                    requirepass: Some(b"old".to_vec()),
                    cluster_secret: secret.clone(),
                    ..chkv_datanode::config::Config::default()
                })
                .await
                .expect("datanode"),
            );
        }
        converge(&[&nodes[0], &nodes[1]]).await;
        let (a, b) = (nodes[0].addr(), nodes[1].addr());
        // Keys written straight to node 0's own slots: no link between the nodes exists yet.
        let mut c = Raw::connect(a).await;
        assert_eq!(text(&c.cmd(&["AUTH", "old"]).await), "+OK\r\n");
        let mut keys = Vec::new();
        for i in 0..2000 {
            let k = format!("rot:{i}");
            if nodes[0].node.routing().owner(key_slot(k.as_bytes()))
                == chkv_datanode::cluster::Owner::Local
            {
                assert_eq!(text(&c.cmd(&["SET", k.as_str(), "v"]).await), "+OK\r\n");
                keys.push(k);
            }
        }
        assert!(keys.len() > 100);
        // Rotated through one node: requirepass is the default user's password, which is
        // the same on every node of the cluster.
        let mut c = Raw::connect(a).await;
        assert_eq!(text(&c.cmd(&["AUTH", "old"]).await), "+OK\r\n");
        let r = c.cmd(&["CONFIG", "SET", "requirepass", "new"]).await;
        assert_eq!(text(&r), "+OK\r\n");
        for addr in [a, b] {
            let mut c = Raw::connect(addr).await;
            assert_eq!(text(&c.cmd(&["AUTH", "new"]).await), "+OK\r\n");
        }

        let mut admin = Admin::connect(nodes[0].admin_addr()).await;
        for line in [&b"k\r\n"[..], b"status\r\n"] {
            let r = admin.say(line).await.unwrap_or_default();
            assert_eq!(r, "ERR authentication required: auth <password>");
        }
        assert_eq!(
            admin.say(b"auth old\r\n").await.as_deref(),
            Some("ERR invalid password")
        );
        assert_eq!(
            admin.say(b"k\r\n").await.as_deref(),
            Some("ERR authentication required: auth <password>")
        );
        assert!(nodes[0].node.routing().my_slot_count() > 0, "not drained");
        assert_eq!(admin.say(b"auth new\r\n").await.as_deref(), Some("OK"));
        let mut last = admin.say(b"k\r\n").await.unwrap_or_default();
        while !last.starts_with("drained:") {
            last = admin.line().await.expect("drain report until the summary");
        }
        assert!(!last.contains(" 0 slots"), "{last}");
        step("drained", nodes[0].drained()).await;
        // Every key is at node 1 now, behind the new password.
        let mut c = Raw::connect(b).await;
        assert_eq!(text(&c.cmd(&["AUTH", "new"]).await), "+OK\r\n");
        assert_eq!(
            text(&c.cmd(&["DBSIZE"]).await),
            format!(":{}\r\n", keys.len())
        );
        for node in nodes {
            node.shutdown().await;
        }
        nn.shutdown().await;
    })
    .await;
}

/// The admin port bounds what strangers can do: a connection cap, a line limit that closes
/// the connection, no echo of control characters.
#[tokio::test]
async fn the_admin_port_is_bounded() {
    bounded(async {
        let s = start_with(chkv_datanode::config::Config {
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_password: Some(b"adm".to_vec()),
            ..config()
        })
        .await;
        let addr = s.admin_addr();
        let mut a = Admin::connect(addr).await;
        let r = a.say(b"\x1b[2J\x07boom\r\n").await.unwrap_or_default();
        assert!(!r.bytes().any(|b| b < 0x20), "{r:?}");
        assert!(r.contains("\\x1b[2J\\x07boom"), "{r}");
        // A line past the limit closes the connection.
        let r = a.say(&[b'x'; 4096]).await.unwrap_or_default();
        assert_eq!(r, "ERR line too long");
        assert_eq!(a.line().await, None);
        // At most 16 connections; the 17th is told and closed.
        let mut open = Vec::new();
        for _ in 0..chkv_datanode::admin::MAX_CONNS {
            open.push(Admin::connect(addr).await);
        }
        let mut extra = Raw::connect(addr).await;
        let r = extra.read_to_eof().await;
        assert_eq!(text(&r), "ERR too many admin connections\r\n");
        drop(open);
        // Room again once they are gone.
        let ok = eventually(std::time::Duration::from_secs(10), || async {
            let mut c = Raw::connect(addr).await;
            let r = c.read_for(std::time::Duration::from_millis(200)).await;
            text(&r).contains("admin; type help")
        })
        .await;
        assert!(ok);
        s.shutdown().await;
    })
    .await;
}

/// A fake NameNode that answers every DataNode's hello with `reply` (a forged welcome, or an
/// endless line). Returns its address and a counter of connections.
async fn fake_namenode(
    reply: Vec<u8>,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(&reply).await;
                let _ = sock.read(&mut buf).await;
            });
        }
    });
    (addr, conns)
}

/// Before: with no NameNode (or anything answering at its address) a DataNode reported
/// `cluster_state:ok` owning all 16384 slots, and read unbounded lines from whatever answered.
/// Now it serves nothing until an authenticated welcome, and reads bounded lines.
#[tokio::test]
async fn no_authenticated_namenode_no_slots() {
    bounded(async {
        let forged = br#"{"type":"welcome","version":1,"epoch":7,"table":{"epoch":7,"nodes":["x"],"ranges":[[0,16383,0]]},"nodes":[]}"#;
        let mut forged = forged.to_vec();
        forged.push(b'\n');
        let (forger, forged_conns) = fake_namenode(forged).await;
        let (flooder, flood_conns) = fake_namenode(vec![b'x'; 8 << 20]).await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let mut nodes = Vec::new();
        for nn in [forger, flooder, closed] {
            nodes.push(
                chkv_datanode::server::start(chkv_datanode::config::Config {
                    port: 0,
                    admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                    namenode: Some(nn.into()),
                    heartbeat_ms: 100,
                    ..chkv_datanode::config::Config::default()
                })
                .await
                .expect("datanode"),
            );
        }
        let talked = eventually(std::time::Duration::from_secs(20), || async {
            forged_conns.load(std::sync::atomic::Ordering::Relaxed) >= 2
                && flood_conns.load(std::sync::atomic::Ordering::Relaxed) >= 2
        })
        .await;
        assert!(talked, "the DataNodes did not retry their NameNodes");
        for n in &nodes {
            let mut c = Raw::connect(n.addr()).await;
            let info = text(&c.cmd(&["CLUSTER", "INFO"]).await);
            assert!(info.contains("cluster_state:fail"), "{info}");
            assert!(info.contains("cluster_slots_assigned:0"), "{info}");
            let r = text(&c.cmd(&["SET", "k", "v"]).await);
            assert!(r.starts_with("-CLUSTERDOWN"), "{r}");
            // Nothing is served before a lease from an authenticated NameNode, not even this
            // node's (empty) keyspace: it may hold slots handed to it before its welcome.
            let r = text(&c.cmd(&["DBSIZE"]).await);
            assert!(r.starts_with("-TRYAGAIN"), "{r}");
            assert_eq!(n.node.routing().my_slot_count(), 0);
        }
        for n in nodes {
            n.shutdown().await;
        }
    })
    .await;
}

/// `client-output-buffer-limit` with Redis's defaults and syntax; a plain client over the
/// normal class's hard limit is closed.
#[tokio::test]
async fn client_output_buffer_limit() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        let r = c
            .cmd(&["CONFIG", "GET", "client-output-buffer-limit"])
            .await;
        assert!(
            text(&r)
                .contains("normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
            "{}",
            text(&r)
        );
        let r = c
            .cmd(&["CONFIG", "SET", "client-output-buffer-limit", "bogus 1 2 3"])
            .await;
        assert!(text(&r).contains("Invalid client class"), "{}", text(&r));
        let r = c
            .cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 1mb 0 0",
            ])
            .await;
        assert_eq!(text(&r), "+OK\r\n");
        let big = "x".repeat(600 << 10);
        assert_eq!(text(&c.cmd(&["SET", "big", big.as_str()]).await), "+OK\r\n");
        // A 600 KB reply fits, pipelined too (each is written before the next is made); a
        // 1.5 MB one is over the hard limit and the connection is closed, as in Redis.
        assert_eq!(c.cmd(&["GET", "big"]).await.len(), big.len() + 11);
        c.send(&resp(&["GET", "big"]).repeat(4)).await;
        for _ in 0..4 {
            assert_eq!(c.reply().await.len(), big.len() + 11);
        }
        let huge = "y".repeat(1536 << 10);
        assert_eq!(
            text(&c.cmd(&["SET", "huge", huge.as_str()]).await),
            "+OK\r\n"
        );
        c.send(&resp(&["GET", "huge"])).await;
        let got = c.read_to_eof().await;
        assert!(got.is_empty(), "closed without the reply");
        assert_alive(s.addr()).await;
        s.shutdown().await;
    })
    .await;
}

/// The `normal` class applies to forwarded replies as to local ones: through a node that does
/// not own the key, a reply under the hard limit is served and one over it closes the
/// connection (before: forwarded replies had no bound at all).
#[tokio::test]
async fn output_limits_apply_to_forwarded_replies() {
    bounded(async {
        let cluster = Cluster::start(2).await;
        let addrs = cluster.addrs();
        let map = SlotMap::of(addrs[0]).await;
        let far = map.keys_of(addrs[1], "far", 2);
        let (small, big) = ("s".repeat(600 << 10), "b".repeat(1536 << 10));
        let mut owner = Raw::connect(addrs[1]).await;
        for (k, v) in far.iter().zip([&small, &big]) {
            let r = owner.cmd(&["SET", k.as_str(), v.as_str()]).await;
            assert_eq!(text(&r), "+OK\r\n");
        }
        let mut c = Raw::connect(addrs[0]).await;
        let r = c
            .cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 1mb 0 0",
            ])
            .await;
        assert_eq!(text(&r), "+OK\r\n");
        assert_eq!(
            c.cmd(&["GET", far[0].as_str()]).await.len(),
            small.len() + 11
        );
        c.send(&resp(&["GET", far[1].as_str()])).await;
        let got = c.read_to_eof().await;
        assert!(
            got.is_empty(),
            "closed without the reply ({} bytes)",
            got.len()
        );
        assert_alive(addrs[0]).await;
        cluster.shutdown().await;
    })
    .await;
}

/// Over the soft limit for longer than its seconds, a client that does not read is closed,
/// also while the node is blocked writing to it (Redis's rule; before, only the pubsub class
/// had a limit).
#[tokio::test]
async fn a_client_that_stops_reading_over_the_soft_limit_is_closed() {
    bounded(async {
        let s = start().await;
        let mut c = Raw::connect(s.addr()).await;
        let r = c
            .cmd(&[
                "CONFIG",
                "SET",
                "client-output-buffer-limit",
                "normal 0 1mb 1",
            ])
            .await;
        assert_eq!(text(&r), "+OK\r\n");
        // Far more than the socket buffers on the way hold, so the write blocks.
        let huge = "h".repeat(48 << 20);
        assert_eq!(
            text(&c.cmd(&["SET", "huge", huge.as_str()]).await),
            "+OK\r\n"
        );
        let clients = |info: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix("connected_clients:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let mut stuck = Raw::connect(s.addr()).await;
        stuck.send(&resp(&["GET", "huge"])).await;
        let closed = eventually(std::time::Duration::from_secs(60), || {
            let addr = s.addr();
            async move {
                let mut probe = Raw::connect(addr).await;
                let info = text(&probe.cmd(&["INFO", "clients"]).await);
                // `c` and the probe itself.
                clients(&info) == 2
            }
        })
        .await;
        assert!(closed, "the client over its soft limit was never closed");
        let got = stuck.read_to_eof().await;
        assert!(got.len() < huge.len(), "got the whole reply");
        s.shutdown().await;
    })
    .await;
}
