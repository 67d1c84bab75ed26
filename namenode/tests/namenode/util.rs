//! Test helpers: an in-process NameNode on free loopback ports, fake DataNodes and watchers
//! speaking the JSON-lines control protocol, and a time bound for every test.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chkv_common::auth::{connect_lines, ClusterSecret, Purpose, NAMENODE_ID};
use chkv_common::{
    decode_line, encode_line, ClientToNameNode, DataNodeToNameNode, NameNodeToClient,
    NameNodeToDataNode, NodeId, NodeInfo, Ring, Slot, SlotTable, PROTOCOL_VERSION, SLOT_COUNT,
};
use chkv_namenode::{Config, NameNodeHandle, Timing};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Fails the test if `test` runs longer than `secs` seconds.
/// Longest a change may take to settle (every handoff it starts confirmed and published):
/// liveness, so generous for a test process that waits seconds for a core.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// Heartbeat intervals of silence before a node is suspected: 2 s at the tests' 100 ms
/// heartbeats. With the default 3 (300 ms), a test process whose tasks waited that long for
/// a core (the workspace's tests on a loaded 2-core machine) saw its healthy fake nodes
/// suspected, probed and declared dead, and tables the test did not expect.
pub const PATIENT_TOLERANCE: u32 = 20;
/// Gap between the three probes of a suspect node: one that answers within 3 s stays.
pub const PATIENT_PROBE: Duration = Duration::from_secs(1);

pub async fn bounded<F: Future<Output = Result<()>>>(secs: u64, test: F) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(secs), test)
        .await
        .with_context(|| format!("test did not finish within {secs} s"))?
}

/// Waits at most `within` for `fut`.
pub async fn within<T>(within: Duration, what: &str, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(within, fut)
        .await
        .with_context(|| format!("timed out after {within:?} waiting for {what}"))
}

/// A config on free loopback ports with `interval` heartbeats, the given startup grace, and
/// patient failure detection ([`PATIENT_TOLERANCE`], [`PATIENT_PROBE`]): tests that are not
/// about detection never see a healthy node suspected.
pub fn config(interval: Duration, grace: Duration) -> Config {
    let tolerance = NonZeroU32::new(PATIENT_TOLERANCE).expect("nonzero");
    let mut timing = Timing::new(interval, tolerance);
    timing.probe_interval = PATIENT_PROBE;
    timing.startup_grace = grace;
    Config {
        timing,
        ..Config::ephemeral()
    }
}

pub async fn start(config: Config) -> Result<NameNodeHandle> {
    Ok(chkv_namenode::start(config).await?)
}

/// Connects to the NameNode's DataNode port and authenticates as `id` with `secret`
/// (none: the loopback-only empty key). Returns the connection ready for `register`.
pub async fn dial_as(
    namenode: SocketAddr,
    id: &str,
    secret: &ClusterSecret,
) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf)> {
    let stream = TcpStream::connect(namenode).await?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    connect_lines(
        &mut rd,
        &mut wr,
        secret,
        Purpose::Control,
        id,
        Some(NAMENODE_ID),
    )
    .await?;
    Ok((rd, wr))
}

/// [`dial_as`] without a secret.
pub async fn dial(
    namenode: SocketAddr,
    id: &str,
) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf)> {
    dial_as(namenode, id, &ClusterSecret::none()).await
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Asserts that every slot has exactly one owner and that the owners are `members`.
pub fn assert_every_slot_owned_once(table: &SlotTable, members: &[&str]) {
    assert_eq!(table.assigned_slots(), SLOT_COUNT, "unowned slots");
    let owners: Vec<&str> = table.nodes().iter().map(NodeId::as_str).collect();
    assert_eq!(owners, members);
    let runs = table.ranges();
    let mut next = 0u32;
    for (start, end, _) in &runs {
        assert_eq!(u32::from(*start), next, "runs must tile the slots");
        next = u32::from(*end) + 1;
    }
    assert_eq!(next as usize, SLOT_COUNT);
    let total: usize = table.nodes().iter().map(|n| table.slots_of(n)).sum();
    assert_eq!(total, SLOT_COUNT);
}

/// The table the NameNode settles on for `members` once every handoff is confirmed (fake
/// nodes confirm at once): the ring's, a pure function of the membership.
pub fn ring_table<'a>(members: impl IntoIterator<Item = &'a NodeId>) -> SlotTable {
    let mut ring = Ring::default();
    for m in members {
        ring.add(m.clone());
    }
    ring.slot_table()
}

/// Whether `a` and `b` give every slot the same owner (epochs aside).
pub fn same_owners(a: &SlotTable, b: &SlotTable) -> bool {
    Slot::all().all(|s| a.owner(s) == b.owner(s))
}

/// What a fake DataNode received.
#[derive(Debug)]
pub enum Received {
    Welcome(SlotTable, Vec<NodeInfo>),
    Table(SlotTable),
    Error(String),
    /// The NameNode closed the connection.
    Closed,
}

/// The member ids listed with each table a fake node received, by epoch.
type Members = Arc<std::sync::Mutex<std::collections::BTreeMap<u64, Vec<NodeId>>>>;

/// A DataNode as far as the NameNode can tell: registers, heartbeats every interval with its
/// newest epoch, answers pings, applies tables. Switches make it go quiet.
pub struct FakeDataNode {
    pub id: NodeId,
    received: mpsc::UnboundedReceiver<Received>,
    commands: mpsc::UnboundedSender<DataNodeToNameNode>,
    heartbeats: Arc<AtomicBool>,
    pongs: Arc<AtomicBool>,
    /// The members each received table's message listed, by epoch.
    members: Members,
    /// The newest epoch [`FakeDataNode::next`] returned a table of.
    seen: u64,
    task: JoinHandle<()>,
}

impl FakeDataNode {
    /// Connects to `namenode` and registers as `id`, reporting `epoch_seen` and the slots of
    /// `id` in `owned` (a restarted NameNode rebuilds its state from this).
    pub async fn register(
        namenode: SocketAddr,
        id: &str,
        port: u16,
        interval: Duration,
        owned: Option<&SlotTable>,
    ) -> Result<FakeDataNode> {
        Self::register_as(namenode, id, port, interval, owned, &ClusterSecret::none()).await
    }

    /// [`FakeDataNode::register`], proving `secret`.
    pub async fn register_as(
        namenode: SocketAddr,
        id: &str,
        port: u16,
        interval: Duration,
        owned: Option<&SlotTable>,
        secret: &ClusterSecret,
    ) -> Result<FakeDataNode> {
        let (rd, mut wr) = dial_as(namenode, id, secret).await?;
        let node_id = NodeId::from(id);
        let epoch_seen = owned.map_or(0, SlotTable::epoch);
        let register = DataNodeToNameNode::Register {
            version: PROTOCOL_VERSION,
            node_id: node_id.clone(),
            client_addr: addr(port),
            admin_addr: addr(port + 10000),
            tls_port: None,
            epoch_seen,
            owned_slots: owned.map(|t| t.ranges_of(&node_id)),
            leased: false,
            draining: false,
            life: 0,
            since: Vec::new(),
            suspects: Vec::new(),
        };
        wr.write_all(&encode_line(&register)?).await?;

        let (sent, received) = mpsc::unbounded_channel();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let heartbeats = Arc::new(AtomicBool::new(true));
        let pongs = Arc::new(AtomicBool::new(true));
        let epoch = Arc::new(AtomicU64::new(epoch_seen));
        let members = Members::default();
        let task = tokio::spawn(run_datanode(
            node_id.clone(),
            rd.lines(),
            wr,
            interval,
            sent,
            command_rx,
            heartbeats.clone(),
            pongs.clone(),
            epoch,
            members.clone(),
        ));
        Ok(FakeDataNode {
            id: node_id,
            received,
            commands,
            heartbeats,
            pongs,
            members,
            seen: 0,
            task,
        })
    }

    /// Registers, waits for the welcome, then for the tables that follow as the slots this
    /// node takes over are handed to it (fake nodes hand over at once), until they stop.
    pub async fn join(
        namenode: SocketAddr,
        id: &str,
        port: u16,
        interval: Duration,
    ) -> Result<(FakeDataNode, SlotTable)> {
        let mut node = FakeDataNode::register(namenode, id, port, interval, None).await?;
        let (mut table, members) = match node.next(SETTLE_LIMIT).await? {
            Received::Welcome(table, nodes) => (table, nodes),
            other => bail!("expected a welcome, got {other:?}"),
        };
        // Every member, this one included, holds its ring share once the handoffs the join
        // started are confirmed: a condition, not a quiet spell (a table that came after a
        // pause was taken for the last one, and a later one surprised the test).
        let target = ring_table(members.iter().map(|n| &n.id));
        let deadline = Instant::now() + SETTLE_LIMIT;
        while !same_owners(&table, &target) {
            let left = deadline.saturating_duration_since(Instant::now());
            table = node.table(left).await?;
        }
        Ok((node, table))
    }

    /// The next message from the NameNode, tables it sent before left out: the NameNode
    /// sends a member that looks behind (a heartbeat that crossed the table) its current
    /// table again, so on a loaded machine a table may arrive twice.
    pub async fn next(&mut self, wait: Duration) -> Result<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = within(left, "a message from the namenode", self.received.recv())
                .await?
                .context("fake datanode task ended")?;
            match &msg {
                Received::Table(t) if t.epoch() <= self.seen => continue,
                Received::Table(t) | Received::Welcome(t, _) => {
                    self.seen = self.seen.max(t.epoch())
                }
                Received::Error(_) | Received::Closed => {}
            }
            return Ok(msg);
        }
    }

    /// Waits for the welcome and returns its table.
    pub async fn welcome(&mut self, wait: Duration) -> Result<SlotTable> {
        match self.next(wait).await? {
            Received::Welcome(table, nodes) => {
                // A newcomer is listed before its slots have been handed to it.
                assert!(table.nodes().len() <= nodes.len(), "every owner is listed");
                Ok(table)
            }
            other => bail!("expected a welcome, got {other:?}"),
        }
    }

    /// Waits for the next pushed table.
    /// Waits for the next (new) table.
    pub async fn table(&mut self, wait: Duration) -> Result<SlotTable> {
        match self.next(wait).await? {
            Received::Table(table) => Ok(table),
            other => bail!("expected a table, got {other:?}"),
        }
    }

    /// Waits for a table, then takes the ones that follow until every member holds its
    /// ring share (a membership change publishes the new member first, then a table per
    /// completed handoff); that one.
    pub async fn settled(&mut self, wait: Duration) -> Result<SlotTable> {
        let mut table = self.table(wait).await?;
        let deadline = Instant::now() + SETTLE_LIMIT;
        loop {
            let members = self
                .members
                .lock()
                .expect("members")
                .get(&table.epoch())
                .cloned();
            if members.is_some_and(|m| same_owners(&table, &ring_table(&m))) {
                return Ok(table);
            }
            table = self
                .table(deadline.saturating_duration_since(Instant::now()))
                .await?;
        }
    }

    /// Sends `msg` as this node.
    pub fn send(&self, msg: DataNodeToNameNode) -> Result<()> {
        self.commands
            .send(msg)
            .ok()
            .context("fake datanode task ended")
    }

    pub fn leave(&self) -> Result<()> {
        self.send(DataNodeToNameNode::Leave {
            node_id: self.id.clone(),
        })
    }

    /// Stops heartbeating; pings are still answered.
    pub fn stop_heartbeats(&self) {
        self.heartbeats.store(false, Ordering::SeqCst);
    }

    /// Hangs: no heartbeats, no pongs, connection left open (a stuck process).
    pub fn hang(&self) {
        self.stop_heartbeats();
        self.pongs.store(false, Ordering::SeqCst);
    }

    /// Like kill -9: the process is gone, the kernel closes its socket.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for FakeDataNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_datanode(
    id: NodeId,
    mut lines: Lines<BufReader<OwnedReadHalf>>,
    mut wr: OwnedWriteHalf,
    interval: Duration,
    sent: mpsc::UnboundedSender<Received>,
    mut commands: mpsc::UnboundedReceiver<DataNodeToNameNode>,
    heartbeats: Arc<AtomicBool>,
    pongs: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
    members: Members,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reply = tokio::select! {
            _ = tick.tick() => {
                if !heartbeats.load(Ordering::SeqCst) {
                    continue;
                }
                DataNodeToNameNode::Heartbeat {
                    node_id: id.clone(),
                    epoch: epoch.load(Ordering::SeqCst),
                    keys: 100,
                    used_memory: 1 << 20,
                    ops: 5,
                    seq: 0,
                }
            }
            command = commands.recv() => match command {
                Some(msg) => msg,
                None => return,
            },
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    Ok(None) | Err(_) => {
                        let _ = sent.send(Received::Closed);
                        return;
                    }
                };
                match decode_line::<NameNodeToDataNode>(line.as_bytes()) {
                    Ok(NameNodeToDataNode::Welcome { table, nodes, .. }) => {
                        epoch.fetch_max(table.epoch(), Ordering::SeqCst);
                        let _ = sent.send(Received::Welcome(table, nodes));
                        continue;
                    }
                    Ok(NameNodeToDataNode::Table { table, nodes, .. }) => {
                        epoch.fetch_max(table.epoch(), Ordering::SeqCst);
                        // Members that own nothing yet (a join in progress) are listed too.
                        assert!(table.nodes().len() <= nodes.len());
                        let ids = nodes.into_iter().map(|n| n.id).collect();
                        members.lock().expect("members").insert(table.epoch(), ids);
                        let _ = sent.send(Received::Table(table));
                        continue;
                    }
                    Ok(NameNodeToDataNode::Ping { nonce }) => {
                        if !pongs.load(Ordering::SeqCst) {
                            continue;
                        }
                        DataNodeToNameNode::Pong { node_id: id.clone(), nonce }
                    }
                    Ok(NameNodeToDataNode::Error { message }) => {
                        let _ = sent.send(Received::Error(message));
                        continue;
                    }
                    // Like a real node: an operator's drain is answered with `leave`.
                    Ok(NameNodeToDataNode::Drain) => DataNodeToNameNode::Leave { node_id: id.clone() },
                    // A fake node holds no data: it hands slots over at once.
                    Ok(NameNodeToDataNode::Migrate { epoch, slots, to, .. }) => {
                        DataNodeToNameNode::HandoffDone { node_id: id.clone(), epoch, slots, to: Some(to) }
                    }
                    // It asks for no lease; lists are acknowledged like a real node does.
                    Ok(NameNodeToDataNode::Lease { .. }) => continue,
                    Ok(NameNodeToDataNode::Suspects(list)) => {
                        DataNodeToNameNode::SuspectsAck { node_id: id.clone(), version: list.version }
                    }
                    Err(e) => panic!("namenode sent a bad line {line:?}: {e}"),
                }
            }
        };
        let Ok(line) = encode_line(&reply) else {
            return;
        };
        if wr.write_all(&line).await.is_err() {
            let _ = sent.send(Received::Closed);
            return;
        }
    }
}

/// A client watching the ring.
pub struct Watcher {
    lines: Lines<BufReader<OwnedReadHalf>>,
    _wr: OwnedWriteHalf,
}

impl Watcher {
    pub async fn connect(namenode: SocketAddr) -> Result<Watcher> {
        let stream = TcpStream::connect(namenode).await?;
        let (rd, mut wr) = stream.into_split();
        let watch = ClientToNameNode::Watch {
            version: PROTOCOL_VERSION,
        };
        wr.write_all(&encode_line(&watch)?).await?;
        Ok(Watcher {
            lines: BufReader::new(rd).lines(),
            _wr: wr,
        })
    }

    /// The next table pushed, with the node list.
    pub async fn next(&mut self, wait: Duration) -> Result<(SlotTable, Vec<NodeInfo>)> {
        let line = within(
            wait,
            "a table on the watch connection",
            self.lines.next_line(),
        )
        .await??
        .context("namenode closed the watch connection")?;
        let NameNodeToClient::Table {
            epoch,
            table,
            nodes,
        } = decode_line(line.as_bytes())?;
        assert_eq!(epoch, table.epoch());
        Ok((table, nodes))
    }

    pub async fn table(&mut self, wait: Duration) -> Result<SlotTable> {
        Ok(self.next(wait).await?.0)
    }

    /// The first table within `wait`, then the ones that follow until every member holds
    /// its ring share (the handoffs of the change are confirmed); that one.
    pub async fn settled(&mut self, wait: Duration) -> Result<(SlotTable, Vec<NodeInfo>)> {
        let mut last = self.next(wait).await?;
        let deadline = Instant::now() + SETTLE_LIMIT;
        while !same_owners(&last.0, &ring_table(last.1.iter().map(|n| &n.id))) {
            let left = deadline.saturating_duration_since(Instant::now());
            last = self.next(left).await?;
        }
        Ok(last)
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) -> Result<()> {
        if let Ok(line) = tokio::time::timeout(quiet, self.lines.next_line()).await {
            bail!("expected no table, got {line:?}");
        }
        Ok(())
    }
}

/// An HTTP response as the tests look at it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`); `headers` are extra
/// header lines.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse> {
    use tokio::io::AsyncReadExt;
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    // The server may answer (413) before reading a large body and close: ignore write errors.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    within(
        Duration::from_secs(10),
        "the http response",
        stream.read_to_end(&mut raw),
    )
    .await??;
    let response = String::from_utf8(raw).context("response is not UTF-8")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .context("no status")?
        .parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    };
    if method != "HEAD" {
        let length: usize = response
            .header("content-length")
            .context("no Content-Length")?
            .parse()?;
        assert_eq!(
            length,
            response.body.len(),
            "Content-Length matches the body"
        );
    }
    Ok(response)
}

/// One HTTP GET; returns the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let r = http_request(addr, "GET", path, &[], b"").await?;
    Ok((r.status, r.body))
}
