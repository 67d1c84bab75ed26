//! The DataNode's link to the NameNode.
//!
//! Registers (with the epoch and slots it last knew, so a restarted NameNode can rebuild its
//! state from the DataNodes), heartbeats, applies every pushed table and answers probes. When
//! the NameNode is away the node keeps serving with its last table and reconnects with
//! backoff. Messages are newline-delimited JSON (see `chkv_common::proto`), after the
//! authentication handshake (`chkv_common::auth`): the node believes nothing that arrives
//! before the NameNode has proved the cluster secret, and reads every line bounded.

use crate::cluster::Routing;
use crate::node::Node;
use crate::resp::{Protocol, Request};
use chkv_common::auth::{connect_lines, Purpose, NAMENODE_ID};
use chkv_common::lines::LineReader;
use chkv_common::proto::{
    check_epoch, decode_line, encode_line, DataNodeToNameNode, NameNodeToDataNode, MAX_LINE_BYTES,
    MAX_REPORTED_MEMBERS, PROTOCOL_VERSION,
};
use chkv_common::ring::NodeId;
use chkv_common::HostPort;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Why a session with the NameNode ended.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("i/o with the NameNode: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad message from the NameNode: {0}")]
    Proto(#[from] chkv_common::ProtoError),
    #[error("the NameNode closed the connection")]
    Closed,
    #[error("the NameNode refused us: {0}")]
    Refused(String),
    #[error("authenticating with the NameNode: {0}")]
    Auth(#[from] chkv_common::auth::AuthError),
    #[error("cannot reach the NameNode at {addr}: {source}")]
    Unreachable {
        addr: HostPort,
        source: std::io::Error,
    },
    /// Something answers there, but not as a NameNode's DataNode port does.
    #[error("{addr} is not a NameNode's DataNode port (--datanode-port, 10101 by default; 10102 is for clients, 10180 for HTTP): {what}")]
    NotNameNode { addr: HostPort, what: String },
}

/// First wait before reconnecting to the NameNode.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Runs until `stop` fires: connect, register, serve the session, reconnect.
///
/// The wait between attempts doubles but never exceeds one heartbeat interval, and starts
/// over after a session that was welcomed: a restarted NameNode collects re-registrations
/// for two intervals only, and a node that comes back later makes it publish a table with
/// other owners (and then another one when the node rejoins).
pub async fn run(
    node: Arc<Node>,
    namenode: HostPort,
    admin_addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let cap = heartbeat_period(&node);
    let mut backoff = FIRST_BACKOFF.min(cap);
    loop {
        let mut welcomed = false;
        let session = session(&node, &namenode, admin_addr, &mut stop, &mut welcomed);
        match session.await {
            Ok(()) => return,
            Err(e) => {
                warn!(%namenode, error = %e, "NameNode session ended; serving with the last table");
                *node.namenode_error.lock() = Some(e.to_string());
            }
        }
        if welcomed {
            backoff = FIRST_BACKOFF.min(cap);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(cap);
    }
}

/// How often this node heartbeats.
fn heartbeat_period(node: &Node) -> Duration {
    Duration::from_millis(node.config().heartbeat_ms.max(10))
}

/// My slot runs in `routing`, for re-registration.
fn owned_ranges(r: &Routing) -> Option<Vec<(u16, u16)>> {
    if r.standalone {
        return None;
    }
    let me = r.me?;
    Some(
        r.owners
            .runs()
            .into_iter()
            .filter(|(_, _, o)| *o == me)
            .map(|(s, e, _)| (s, e))
            .collect(),
    )
}

/// The members of the NameNode's table `base` and the epoch each has been a member since
/// (those it gives one), as a registration reports them.
fn members_since(base: &Routing) -> Vec<(NodeId, u64)> {
    if base.standalone {
        return Vec::new();
    }
    base.nodes
        .iter()
        .filter(|n| n.since > 0)
        .take(MAX_REPORTED_MEMBERS)
        .map(|n| (n.id.clone(), n.since))
        .collect()
}

/// The connection to the NameNode: TCP, or TLS with `tls-cluster`.
trait ControlStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ControlStream for T {}

async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &DataNodeToNameNode,
) -> Result<(), AgentError> {
    let line = encode_line(msg)?;
    w.write_all(&line).await?;
    // A TLS stream may keep the line in its buffer until flushed (a no-op for TCP).
    w.flush().await?;
    Ok(())
}

/// Looks the advertised host name up again, so a node whose address changed under the same
/// name registers with its new one.
async fn refresh_advertised(node: &Node) {
    let Some(name) = node.config().advertise_host.clone() else {
        return;
    };
    let found = tokio::net::lookup_host(name.to_string()).await;
    match found {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if let Some(a) = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
                if node.config().advertise != Some(*a) {
                    info!(advertise = %name, addr = %a, "advertised address resolved");
                    node.update_config(|c| c.advertise = Some(*a));
                }
            }
        }
        Err(e) => {
            warn!(advertise = %name, error = %e, "cannot resolve the advertised host; keeping the last address")
        }
    }
}

/// Sends a heartbeat, numbered so the NameNode's lease grant can be matched to when it left.
async fn heartbeat<W: AsyncWrite + Unpin>(
    w: &mut W,
    node: &Node,
    node_id: &NodeId,
) -> Result<(), AgentError> {
    let r = node.routing();
    let msg = DataNodeToNameNode::Heartbeat {
        node_id: node_id.clone(),
        epoch: if r.standalone { 0 } else { r.epoch },
        keys: node.db.len(),
        used_memory: node.db.used_memory(),
        ops: node.stats.total_commands.get(),
        seq: node.lease.heartbeat_sent(),
    };
    send(w, &msg).await
}

async fn session(
    node: &Arc<Node>,
    namenode: &HostPort,
    admin_addr: SocketAddr,
    stop: &mut watch::Receiver<bool>,
    welcomed: &mut bool,
) -> Result<(), AgentError> {
    refresh_advertised(node).await;
    let unreachable = |source| AgentError::Unreachable {
        addr: namenode.clone(),
        source,
    };
    // The host is looked up at every connect, so a NameNode that moved is found again.
    let connect = TcpStream::connect((namenode.host.as_str(), namenode.port));
    let sock = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| {
            unreachable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out after 2 s",
            ))
        })?
        .map_err(unreachable)?;
    let _ = sock.set_nodelay(true);
    let sock: Box<dyn ControlStream> = match node.tls.cluster() {
        None => Box::new(sock),
        Some(config) => {
            // The NameNode's certificate must chain to the CA; its name is not checked
            // (see crate::tls::cluster_config), the cluster secret proves who it is.
            let name = chkv_common::tls::server_name(&namenode.host).unwrap_or(
                rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
            );
            let connector = tokio_rustls::TlsConnector::from(config);
            let tls = tokio::time::timeout(Duration::from_secs(2), connector.connect(name, sock))
                .await
                .map_err(|_| {
                    unreachable(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "TLS handshake timed out after 2 s (tls-cluster)",
                    ))
                })?
                .map_err(|e| {
                    unreachable(std::io::Error::new(
                        e.kind(),
                        format!("TLS handshake (tls-cluster): {e}"),
                    ))
                })?;
            Box::new(tls)
        }
    };
    let (rd, mut wr) = tokio::io::split(sock);
    let mut rd = BufReader::new(rd);
    let secret = node.config().cluster_secret.clone();
    connect_lines(
        &mut rd,
        &mut wr,
        &secret,
        Purpose::Control,
        &node.node_id,
        Some(NAMENODE_ID),
    )
    .await
    .map_err(|e| match e {
        // Something answers there, but not the handshake: another port, or not CHKV.
        chkv_common::auth::AuthError::Protocol(what) => AgentError::NotNameNode {
            addr: namenode.clone(),
            what,
        },
        e => AgentError::Auth(e),
    })?;
    let mut lines = LineReader::new(rd, MAX_LINE_BYTES);
    let node_id = NodeId::new(node.node_id.clone());
    let routing = node.routing();
    let base = node.base_table();
    send(
        &mut wr,
        &DataNodeToNameNode::Register {
            version: PROTOCOL_VERSION,
            node_id: node_id.clone(),
            client_addr: node.advertised_addr(),
            admin_addr,
            tls_port: node.tls_port(),
            epoch_seen: if routing.standalone { 0 } else { routing.epoch },
            owned_slots: owned_ranges(&routing),
            leased: true,
            // A drain that started before this session goes on (after a pause that got the
            // node declared dead, or a NameNode restart).
            draining: node.handoff.draining.load(Relaxed),
            // Where the table was numbered, and who had been a member since when: a
            // restarted NameNode honours this node's claims when it was merely a table
            // behind (see `namenode/src/membership/startup.rs`).
            life: if base.epoch == routing.epoch {
                base.life
            } else {
                0
            },
            since: if base.epoch == routing.epoch {
                members_since(&base)
            } else {
                Vec::new()
            },
            suspects: node
                .lease
                .suspects()
                .into_iter()
                .take(MAX_REPORTED_MEMBERS)
                .map(NodeId::new)
                .collect(),
        },
    )
    .await?;
    // Handoffs whose `handoff_done` may have been lost (they were made while no session was
    // open, the nodes renewing each other's leases): reported again. The NameNode credits
    // a report only where this node still owns the slots, and a restarted one moves the
    // claim in its startup grace (the target may have registered before the flip).
    for (to, epoch, slots) in node.unconfirmed_releases() {
        send(
            &mut wr,
            &DataNodeToNameNode::HandoffDone {
                node_id: node_id.clone(),
                epoch,
                slots: chkv_common::slot::runs(&slots),
                to: Some(to),
            },
        )
        .await?;
    }
    // Grants answer heartbeats of this session only.
    node.lease.new_session();
    debug!(%namenode, id = %node.node_id, "registration sent");
    // Until the NameNode's first message, a close or a line that is not the NameNode's
    // protocol means the address is some other port (a watcher port closes on a register
    // line; Redis or HTTP answer with their own errors).
    let mut heard = false;
    let not_namenode = |what: String| AgentError::NotNameNode {
        addr: namenode.clone(),
        what,
    };
    // Messages from the handoff worker (handoff_done) and the admin port (leave).
    let (to_nn, mut from_node) = tokio::sync::mpsc::unbounded_channel();
    node.handoff.set_namenode_channel(Some(to_nn));
    let period = heartbeat_period(node);
    let mut beat = tokio::time::interval(period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else {
                    return Err(if heard {
                        AgentError::Closed
                    } else {
                        not_namenode("it closed the connection on our registration".into())
                    });
                };
                if line.trim_ascii().is_empty() {
                    continue;
                }
                let msg = match decode_line::<NameNodeToDataNode>(line) {
                    Ok(m) => m,
                    Err(_) if !heard => {
                        let shown = chkv_common::auth::escape(&line[..line.len().min(60)]);
                        return Err(not_namenode(format!("it answered {shown:?}")));
                    }
                    Err(e) => return Err(e.into()),
                };
                heard = true;
                if let NameNodeToDataNode::Welcome { epoch, .. }
                | NameNodeToDataNode::Table { epoch, .. }
                | NameNodeToDataNode::Migrate { epoch, .. } = &msg
                {
                    check_epoch(*epoch)?;
                }
                if matches!(msg, NameNodeToDataNode::Welcome { .. }) {
                    *welcomed = true;
                    *node.namenode_error.lock() = None;
                    info!(%namenode, id = %node.node_id, "registered with the NameNode");
                }
                match msg {
                    NameNodeToDataNode::Welcome { table, nodes, lease_ms, suspects, flush, life, .. } => {
                        // The list first: from the moment the table is installed, grants
                        // follow it.
                        let acked = suspects.map(|s| {
                            node.lease.set_suspects(s.version, s.nodes.into_iter().map(|n| n.as_str().to_string()));
                            s.version
                        });
                        let member = nodes.iter().any(|n| n.id.as_str() == node.node_id);
                        let r = Routing::from_table(&table, &nodes, &node.node_id).with_life(life);
                        let epoch = r.epoch;
                        node.lease.table_installed(&r, true);
                        if node.set_routing_dropping(r, &flush) {
                            debug!(epoch, slots = node.routing().my_slot_count(), "applied slot table");
                        }
                        node.lease.set_duration_ms(lease_ms);
                        if let Some(version) = acked {
                            send(&mut wr, &DataNodeToNameNode::SuspectsAck { node_id: node_id.clone(), version }).await?;
                        }
                        crate::migration::check_drained(node, member);
                        if *node.handoff.drained.borrow() {
                            info!("drained and deregistered; leaving the NameNode");
                            return Ok(());
                        }
                        // A heartbeat with the welcomed table at once: its answer is the
                        // first lease of this session.
                        heartbeat(&mut wr, node, &node_id).await?;
                        beat.reset();
                    }
                    NameNodeToDataNode::Table { table, nodes, life, .. } => {
                        let member = nodes.iter().any(|n| n.id.as_str() == node.node_id);
                        let r = Routing::from_table(&table, &nodes, &node.node_id).with_life(life);
                        let epoch = r.epoch;
                        if epoch >= node.base_table().epoch {
                            node.lease.table_installed(&r, false);
                        }
                        if node.set_routing(r) {
                            debug!(epoch, slots = node.routing().my_slot_count(), "applied slot table");
                        }
                        crate::migration::check_drained(node, member);
                        if *node.handoff.drained.borrow() {
                            // Deregistered: stay away. Registering again would put this node
                            // back in the ring and have data handed to a process about to exit.
                            info!("drained and deregistered; leaving the NameNode");
                            return Ok(());
                        }
                    }
                    NameNodeToDataNode::Lease { seq } => node.lease.granted(seq),
                    NameNodeToDataNode::Suspects(list) => {
                        node.lease.set_suspects(list.version, list.nodes.into_iter().map(|n| n.as_str().to_string()));
                        send(&mut wr, &DataNodeToNameNode::SuspectsAck { node_id: node_id.clone(), version: list.version }).await?;
                    }
                    NameNodeToDataNode::Ping { nonce } => {
                        send(&mut wr, &DataNodeToNameNode::Pong { node_id: node_id.clone(), nonce }).await?;
                    }
                    NameNodeToDataNode::Migrate { epoch, slots, to, to_addr, to_tls_port } => {
                        node.peers.learn_tls_port(to_addr, to_tls_port);
                        crate::migration::enqueue(node, crate::handoff::MigrateOrder { epoch, slots, to, to_addr, to_tls_port });
                    }
                    NameNodeToDataNode::Drain => {
                        info!("the NameNode asked this node to drain");
                        if !crate::migration::start_drain(node) {
                            warn!("cannot drain: no NameNode session to leave through");
                        }
                    }
                    NameNodeToDataNode::Error { message } => return Err(AgentError::Refused(message)),
                }
            }
            _ = beat.tick() => heartbeat(&mut wr, node, &node_id).await?,
            Some(msg) = from_node.recv() => send(&mut wr, &msg).await?,
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Renews the ownership lease ([`crate::lease`]) through the peers whenever the NameNode is
/// late, until `stop`.
pub async fn renew_lease(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut failed = false;
    loop {
        let lease = &node.lease;
        let duration = lease.duration_us();
        let wait = if duration == 0 {
            Duration::from_secs(1)
        } else if failed {
            Duration::from_micros((duration / 8).max(20_000))
        } else {
            // Until half of the lease is left, checked at least every quarter lease.
            let left = lease.remaining_us();
            Duration::from_micros(
                left.saturating_sub(duration / 2)
                    .clamp(5_000, (duration / 4).max(5_000)),
            )
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = lease.wake.notified() => {}
            _ = stop.changed() => return,
        }
        let duration = lease.duration_us();
        if !crate::lease::needs_renewal(lease.remaining_us(), duration) {
            failed = false;
            continue;
        }
        failed = !renew_once(&node, duration).await;
    }
}

/// Asks every other node of the table for a lease; true when all granted (and the lease
/// was extended).
async fn renew_once(node: &Arc<Node>, duration_us: u64) -> bool {
    let table = node.base_table();
    if !table.has_table() {
        return false;
    }
    let me = node.node_id.as_str();
    let peers: Vec<_> = table
        .nodes
        .iter()
        .filter(|n| n.id.as_str() != me)
        .map(|n| n.client_addr)
        .collect();
    if peers.is_empty() {
        // Alone in the table: only the NameNode can renew.
        return false;
    }
    let epoch = table.epoch.to_string();
    let req = Request::from_args([
        b"CLUSTER".as_slice(),
        b"LEASE",
        me.as_bytes(),
        epoch.as_bytes(),
    ]);
    // Read before anything is sent: the lease counts from no later than the requests.
    let sent = crate::lease::now_us();
    let waits: Vec<_> = peers
        .iter()
        .map(|&addr| (addr, node.peers.send_request(addr, Protocol::Resp2, &req)))
        .collect();
    // An answer is worth waiting for as long as it can still extend the lease.
    let deadline = tokio::time::Instant::now() + Duration::from_micros(duration_us.max(50_000));
    let mut granted = 0;
    for (addr, wait) in waits {
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(Ok(reply))) if reply.as_ref() == b"+OK\r\n" => granted += 1,
            Ok(Ok(Ok(reply))) => {
                debug!(%addr, reply = %String::from_utf8_lossy(&reply).trim(), "lease refused")
            }
            Ok(Ok(Err(e))) => debug!(%addr, error = %e, "lease request failed"),
            Ok(Err(_)) => debug!(%addr, "lease request dropped"),
            Err(_) => debug!(%addr, "lease request timed out"),
        }
    }
    if granted == peers.len() {
        node.lease.extend_from(sent);
        debug!(peers = granted, "lease renewed through the peers");
        true
    } else {
        false
    }
}
