//! Hostile peers on the NameNode's DataNode port (issue 12): strangers without the cluster
//! secret, members speaking for other members, absurd epochs, huge lines. Each attack must
//! leave the membership and the published table exactly as they were.

use std::time::Duration;

use anyhow::{bail, Result};
use chkv_common::auth::{connect_lines, AuthError, ClusterSecret, Handshake, Purpose, NAMENODE_ID};
use chkv_common::{encode_line, DataNodeToNameNode, NodeId, SlotTable, PROTOCOL_VERSION};
use chkv_namenode::Config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::util::{
    assert_every_slot_owned_once, bounded, config, dial_as, http_get, start, FakeDataNode, Watcher,
};

const WAIT: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_millis(100);

fn secret() -> ClusterSecret {
    ClusterSecret::new(b"trust-test-secret-0123456789").expect("valid")
}

fn secured() -> Config {
    Config {
        cluster_secret: secret(),
        ..config(INTERVAL, Duration::ZERO)
    }
}

fn register(id: &str, epoch_seen: u64, owned: Option<Vec<(u16, u16)>>) -> Vec<u8> {
    encode_line(&DataNodeToNameNode::Register {
        version: PROTOCOL_VERSION,
        node_id: NodeId::from(id),
        client_addr: "127.0.0.1:7600".parse().expect("addr"),
        admin_addr: "127.0.0.1:17600".parse().expect("addr"),
        tls_port: None,
        epoch_seen,
        owned_slots: owned,
        leased: false,
        draining: false,
        life: 0,
        since: Vec::new(),
        suspects: Vec::new(),
    })
    .expect("encodes")
}

/// The NameNode's `/api/cluster` JSON.
async fn cluster_json(nn: &chkv_namenode::NameNodeHandle) -> Result<serde_json::Value> {
    let (status, body) = http_get(nn.http_addr(), "/api/cluster").await?;
    anyhow::ensure!(status == 200, "/api/cluster answered {status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

/// The ids of the members `/api/cluster` lists.
fn member_ids(cluster: &serde_json::Value) -> Vec<String> {
    cluster["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect()
}

/// Reads until the NameNode closes the connection; fails if it sends a welcome or a table.
async fn expect_refused(stream: TcpStream) -> Result<()> {
    let mut lines = BufReader::new(stream).lines();
    loop {
        match tokio::time::timeout(WAIT, lines.next_line()).await? {
            Ok(Some(line)) => {
                if line.contains("\"welcome\"") || line.contains("\"table\"") {
                    bail!("a stranger was sent {line}");
                }
            }
            Ok(None) | Err(_) => return Ok(()),
        }
    }
}

/// Two members, a watcher that has the table, and the table itself.
async fn members(
    nn: &chkv_namenode::NameNodeHandle,
) -> Result<(Vec<FakeDataNode>, Watcher, SlotTable)> {
    let mut nodes = Vec::new();
    for (i, id) in ["dn-a", "dn-b"].into_iter().enumerate() {
        let mut n = FakeDataNode::register_as(
            nn.datanode_addr(),
            id,
            7500 + i as u16,
            INTERVAL,
            None,
            &secret(),
        )
        .await?;
        n.welcome(WAIT).await?;
        nodes.push(n);
    }
    let mut watcher = Watcher::connect(nn.client_addr()).await?;
    let (mut table, _) = watcher.settled(WAIT).await?;
    while table.nodes().len() < 2 || table.assigned_slots() < chkv_common::SLOT_COUNT {
        table = watcher.settled(WAIT).await?.0;
    }
    assert_every_slot_owned_once(&table, &["dn-a", "dn-b"]);
    Ok((nodes, watcher, table))
}

/// Before: one `register` line gave a stranger thousands of slots. Now a register without the
/// handshake, a handshake with the wrong secret, and a stranger claiming every slot all get
/// nothing, and the table does not move.
#[tokio::test]
async fn strangers_cannot_register_or_claim_slots() -> Result<()> {
    bounded(180, async {
        let nn = start(secured()).await?;
        let (_nodes, mut watcher, table) = members(&nn).await?;

        // 1. A bare register line (the old protocol), claiming the whole keyspace.
        let mut s = TcpStream::connect(nn.datanode_addr()).await?;
        s.write_all(&register("dn-evil", 0, Some(vec![(0, 16383)])))
            .await?;
        expect_refused(s).await?;

        // 2. The handshake with a wrong secret: the NameNode's proof does not verify, so the
        //    stranger cannot even learn whether its guess was close; it gets nothing.
        let wrong = ClusterSecret::new(b"not-the-cluster-secret").expect("valid");
        let err = dial_as(nn.datanode_addr(), "dn-evil", &wrong)
            .await
            .expect_err("a wrong secret is refused");
        assert!(
            matches!(err.downcast_ref::<AuthError>(), Some(AuthError::BadProof)),
            "{err:#}"
        );

        // 2b. A node of another cluster that shares the secret (two local clusters started
        //     from one checkout): refused by name, and told which cluster it reached.
        let foreign = secret().named("another-cluster").expect("name");
        let err = dial_as(nn.datanode_addr(), "dn-other", &foreign)
            .await
            .expect_err("another cluster's node is refused");
        assert!(
            format!("{err:#}").contains("\"chkv\", not \"another-cluster\""),
            "{err:#}"
        );

        // 3. A stranger that forges a proof (random hex) after a real challenge.
        let s = TcpStream::connect(nn.datanode_addr()).await?;
        let (rd, mut wr) = s.into_split();
        let mut rd = BufReader::new(rd);
        wr.write_all(&encode_line(&Handshake::Hello {
            version: PROTOCOL_VERSION,
            node_id: "dn-a".into(),
            nonce: "00".repeat(32),
            cluster: chkv_common::auth::DEFAULT_CLUSTER.into(),
        })?)
        .await?;
        let mut line = String::new();
        rd.read_line(&mut line).await?;
        assert!(line.contains("\"challenge\""), "{line}");
        wr.write_all(&encode_line(&Handshake::Proof {
            proof: "ab".repeat(32),
        })?)
        .await?;
        wr.write_all(&register("dn-a", 0, Some(vec![(0, 16383)])))
            .await?;
        let mut rest = String::new();
        let _ = tokio::time::timeout(WAIT, rd.read_to_string(&mut rest)).await?;
        assert!(rest.contains("\"error\""), "{rest}");
        assert!(!rest.contains("welcome"), "{rest}");

        // Nothing changed: no new table, the two members only, at the same epoch.
        watcher.assert_quiet(Duration::from_millis(500)).await?;
        let cluster = cluster_json(&nn).await?;
        assert_eq!(member_ids(&cluster), ["dn-a", "dn-b"], "{cluster}");
        assert_eq!(cluster["epoch"], table.epoch(), "{cluster}");
        assert_eq!(cluster["slots_assigned"], 16384, "{cluster}");
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// Before: `register` with dn-a's id hijacked its address and `leave` force-drained it. Now a
/// member may speak only for the id it authenticated as.
#[tokio::test]
async fn a_member_cannot_speak_for_another() -> Result<()> {
    bounded(180, async {
        let nn = start(secured()).await?;
        let (_nodes, mut watcher, _table) = members(&nn).await?;
        let (rd, mut wr) = dial_as(nn.datanode_addr(), "dn-c", &secret()).await?;
        wr.write_all(&encode_line(&DataNodeToNameNode::Leave {
            node_id: NodeId::from("dn-a"),
        })?)
        .await?;
        let mut lines = rd.lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await??
            .unwrap_or_default();
        assert!(line.contains("authenticated as dn-c"), "{line}");
        watcher.assert_quiet(Duration::from_millis(500)).await?;
        let cluster = cluster_json(&nn).await?;
        assert_eq!(member_ids(&cluster), ["dn-a", "dn-b"], "{cluster}");
        assert_eq!(cluster["draining"], serde_json::json!([]), "{cluster}");
        assert_eq!(cluster["slots_moving"], 0, "{cluster}");
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// Before: `epoch_seen` = 2^64-1 wrapped the published epoch to 0 and every DataNode ignored
/// every later table. Now the register is refused and the epoch stays where it was.
#[tokio::test]
async fn an_absurd_epoch_is_refused() -> Result<()> {
    bounded(180, async {
        let nn = start(secured()).await?;
        let (_nodes, mut watcher, table) = members(&nn).await?;
        let (rd, mut wr) = dial_as(nn.datanode_addr(), "dn-x", &secret()).await?;
        wr.write_all(&register("dn-x", u64::MAX, Some(vec![(0, 5)])))
            .await?;
        let line = tokio::time::timeout(WAIT, rd.lines().next_line())
            .await??
            .unwrap_or_default();
        assert!(line.contains("beyond"), "{line}");
        watcher.assert_quiet(Duration::from_millis(500)).await?;
        let cluster = cluster_json(&nn).await?;
        assert_eq!(cluster["epoch"], table.epoch(), "{cluster}");
        assert_eq!(member_ids(&cluster), ["dn-a", "dn-b"], "{cluster}");
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// Before: a 1 MB node id and 2 MB lines took the NameNode to gigabytes. Now the handshake
/// line is capped at 1 KB: the connection is closed after that much.
#[tokio::test]
async fn huge_handshake_lines_are_cut_off() -> Result<()> {
    bounded(180, async {
        let nn = start(secured()).await?;
        let s = TcpStream::connect(nn.datanode_addr()).await?;
        let (rd, mut wr) = s.into_split();
        let writer = tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0usize;
            while sent < 8 << 20 {
                if wr.write_all(&chunk).await.is_err() {
                    return sent;
                }
                sent += chunk.len();
            }
            sent
        });
        let mut reply = String::new();
        let _ = tokio::time::timeout(WAIT, BufReader::new(rd).read_to_string(&mut reply)).await;
        assert!(reply.contains("longer than 1024"), "{reply}");
        let sent = tokio::time::timeout(WAIT, writer).await??;
        assert!(sent < 8 << 20, "the NameNode kept reading");
        nn.shutdown().await;
        Ok(())
    })
    .await
}

/// Without a secret, a NameNode refuses to listen beyond loopback, and says how to set one.
#[tokio::test]
async fn no_secret_means_loopback_only() -> Result<()> {
    let config = Config {
        datanode_bind: Some("0.0.0.0".parse()?),
        ..config(INTERVAL, Duration::ZERO)
    };
    let err = start(config).await.expect_err("refused");
    assert!(err.to_string().contains("--cluster-secret-file"), "{err}");
    assert!(err.to_string().contains("CHKV_CLUSTER_SECRET"), "{err}");
    // With a secret it may (port 0 on every address).
    let nn = start(Config {
        datanode_bind: Some("0.0.0.0".parse()?),
        ..secured()
    })
    .await?;
    assert!(nn.datanode_addr().ip().is_unspecified());
    assert!(nn.client_addr().ip().is_loopback());
    nn.shutdown().await;
    Ok(())
}

/// A member proves the secret with the NameNode's fixed identity.
#[tokio::test]
async fn members_see_the_namenode_prove_itself() -> Result<()> {
    let nn = start(secured()).await?;
    let s = TcpStream::connect(nn.datanode_addr()).await?;
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    let id = connect_lines(&mut rd, &mut wr, &secret(), Purpose::Control, "dn-a", None).await?;
    assert_eq!(id, NAMENODE_ID);
    nn.shutdown().await;
    Ok(())
}

/// Figures a member reports are summed and shown saturating: two members each claiming
/// 2^64-1 keys and bytes (and an epoch just under the limit) leave every page answering.
#[tokio::test]
async fn absurd_figures_from_members_do_not_break_the_pages() -> Result<()> {
    bounded(180, async {
        let nn = start(secured()).await?;
        let (nodes, _watcher, _table) = members(&nn).await?;
        for n in &nodes {
            n.stop_heartbeats();
            n.send(DataNodeToNameNode::Heartbeat {
                node_id: n.id.clone(),
                epoch: chkv_common::proto::MAX_EPOCH,
                keys: u64::MAX,
                used_memory: u64::MAX,
                ops: u64::MAX,
                seq: 0,
            })?;
        }
        let reported = crate::util::within(WAIT, "the figures arrive", async {
            loop {
                let cluster = cluster_json(&nn).await?;
                let all = cluster["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|n| n["keys"] == u64::MAX);
                if all {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(INTERVAL).await;
            }
        })
        .await?;
        reported?;
        for path in ["/", "/api/cluster", "/api/nodes", "/metrics"] {
            let (status, _) = http_get(nn.http_addr(), path).await?;
            assert_eq!(status, 200, "{path}");
        }
        nn.shutdown().await;
        Ok(())
    })
    .await
}
