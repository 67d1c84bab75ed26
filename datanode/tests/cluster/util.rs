//! Cluster helpers: an in-process NameNode with N DataNodes, either in-process
//! (`server::start`) or as real `chkv-datanode` processes (`chkv_testkit::process`, SIGKILLed
//! and reaped on drop); convergence polling on `CLUSTER INFO`; and the slot map as
//! `CLUSTER SLOTS` reports it, to pick keys owned by a given node.

pub use crate::server_util::*;
pub use chkv_testkit::process::Process;

use chkv_common::key_slot;
use chkv_datanode::config::Config as DataNodeConfig;
use chkv_datanode::server::{self, ServerHandle};
use chkv_namenode::{NameNodeHandle, Timing};
use redis::Value;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// Heartbeat interval of the fast clusters most tests use.
pub const FAST_HEARTBEAT: Duration = Duration::from_millis(200);
/// Missed heartbeats before the NameNode probes a node, in the clusters of tests that are
/// not about failure detection: 5 s of silence at the fast heartbeat (the lease is as long).
/// A test process, its in-process DataNodes and a parallel build share two cores; a node
/// stalled for a second must not be declared dead there, or its slots move under a test that
/// did not ask for it (7 of 44 tests failed that way at load 13 with a tolerance of 3).
pub const TOLERANCE: NonZeroU32 = match NonZeroU32::new(25) {
    Some(n) => n,
    None => panic!("25 is not zero"),
};
/// The tolerance of the fault tests (kill, pause past detection): a node silent for 3
/// heartbeats is probed. Their safety assertions hold whoever is declared dead; their pauses
/// are long enough to pass this detection on a loaded machine.
pub const FAST_TOLERANCE: u32 = 3;
/// Longest wait for every DataNode to show the same complete table.
pub const CONVERGE_LIMIT: Duration = Duration::from_secs(60);
/// All the slots.
pub const SLOTS: usize = chkv_common::SLOT_COUNT;

/// How the DataNodes of a test cluster run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `server::start` in the test's runtime.
    InProcess,
    /// The real `chkv-datanode` binary, so it can be killed with SIGKILL.
    Process,
}

/// What to start: a NameNode and `nodes` DataNodes heartbeating every `heartbeat`.
pub struct Spec {
    nodes: usize,
    heartbeat: Duration,
    /// Missed heartbeats before a silent node is probed.
    tolerance: NonZeroU32,
    kind: Kind,
    /// Node 0 answers `-MOVED` to every connection (`--cluster-redirects`).
    redirect_first: bool,
    /// `tls-cluster`: every in-process DataNode gets these settings, and the NameNode's
    /// DataNode port the same files.
    tls: Option<chkv_datanode::tls::TlsSettings>,
}

impl Spec {
    /// `nodes` in-process DataNodes with the fast heartbeat.
    pub fn new(nodes: usize) -> Spec {
        Spec {
            nodes,
            heartbeat: FAST_HEARTBEAT,
            tolerance: TOLERANCE,
            kind: Kind::InProcess,
            redirect_first: false,
            tls: None,
        }
    }

    /// Links between the nodes and to the NameNode over TLS (`tls-cluster yes`) with the
    /// files `settings` names (in-process DataNodes only).
    pub fn tls_cluster(mut self, settings: chkv_datanode::tls::TlsSettings) -> Spec {
        assert!(settings.cluster, "tls-cluster settings");
        self.tls = Some(settings);
        self
    }

    pub fn heartbeat(mut self, interval: Duration) -> Spec {
        self.heartbeat = interval;
        self
    }

    /// Missed heartbeats before a silent node is probed (the fault tests use
    /// [`FAST_TOLERANCE`]).
    pub fn tolerance(mut self, missed: u32) -> Spec {
        self.tolerance = NonZeroU32::new(missed).expect("a tolerance above 0");
        self
    }

    pub fn processes(mut self) -> Spec {
        self.kind = Kind::Process;
        self
    }

    pub fn redirect_first(mut self) -> Spec {
        self.redirect_first = true;
        self
    }

    /// Starts the NameNode and the DataNodes and waits until every DataNode has the full
    /// table.
    pub async fn start(self) -> Cluster {
        let nn_config = chkv_namenode::Config {
            timing: Timing::new(self.heartbeat, self.tolerance),
            cluster_tls: self.tls.as_ref().map(|t| chkv_namenode::ClusterTls {
                cert_file: t.cert_file.clone().expect("tls-cert-file"),
                key_file: t.key_file.clone().expect("tls-key-file"),
                ca_cert_file: t.ca_cert_file.clone().expect("tls-ca-cert-file"),
            }),
            ..chkv_namenode::Config::ephemeral()
        };
        let namenode = step(
            "starting the NameNode",
            chkv_namenode::start(nn_config.clone()),
        )
        .await
        .expect("NameNode starts");
        let nn = namenode.datanode_addr();
        let mut nodes = Vec::with_capacity(self.nodes);
        for i in 0..self.nodes {
            let redirects = self.redirect_first && i == 0;
            nodes.push(match self.kind {
                Kind::InProcess => DataNode::InProcess(
                    start_in_process(nn, self.heartbeat, redirects, self.tls.clone()).await,
                ),
                Kind::Process => {
                    let extra: &[&str] = if redirects {
                        &["--cluster-redirects"]
                    } else {
                        &[]
                    };
                    DataNode::Process(Process::spawn(nn, self.heartbeat, extra).await)
                }
            });
        }
        let cluster = Cluster {
            namenode: Some(namenode),
            nn_config,
            nodes,
        };
        let took = cluster.settle(self.nodes).await;
        eprintln!(
            "cluster of {} {:?} DataNodes (heartbeat {:?}) converged in {took:?}",
            self.nodes, self.kind, self.heartbeat
        );
        cluster
    }
}

pub async fn start_in_process(
    namenode: SocketAddr,
    heartbeat: Duration,
    redirects: bool,
    tls: Option<chkv_datanode::tls::TlsSettings>,
) -> ServerHandle {
    let config = DataNodeConfig {
        port: 0,
        namenode: Some(namenode.into()),
        heartbeat_ms: heartbeat.as_millis() as u64,
        cluster_redirects: redirects,
        admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: tls.unwrap_or_default(),
        ..DataNodeConfig::default()
    };
    step("starting a DataNode", server::start(config))
        .await
        .expect("DataNode starts")
}

/// A NameNode and its DataNodes.
pub struct Cluster {
    namenode: Option<NameNodeHandle>,
    nn_config: chkv_namenode::Config,
    pub nodes: Vec<DataNode>,
}

impl Cluster {
    /// `nodes` in-process DataNodes with the fast heartbeat, converged.
    pub async fn start(nodes: usize) -> Cluster {
        Spec::new(nodes).start().await
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(DataNode::addr).collect()
    }

    /// Shuts the NameNode down; the DataNodes keep serving with their last table.
    pub async fn stop_namenode(&mut self) {
        let namenode = self.namenode.take().expect("the NameNode is running");
        self.nn_config.datanode_port = namenode.datanode_addr().port();
        step("NameNode shutdown", namenode.shutdown()).await;
    }

    /// Starts a new NameNode on the DataNode port of the previous one.
    pub async fn start_namenode(&mut self) -> &NameNodeHandle {
        assert!(self.namenode.is_none(), "the NameNode is already running");
        let namenode = step(
            "restarting the NameNode",
            chkv_namenode::start(self.nn_config.clone()),
        )
        .await
        .expect("NameNode restarts on the same port");
        self.namenode.insert(namenode)
    }

    /// Waits until every DataNode has the same complete table of `n` nodes and no slot is
    /// moving any more (equal tables are not the end of a join: slots still move batch by
    /// batch), then for equal tables again; returns how long that took.
    pub async fn settle(&self, n: usize) -> Duration {
        let mut took = wait_converged(&self.addrs(), n).await;
        let deadline = Instant::now() + CONVERGE_LIMIT;
        while self.namenode_status().await["slots_moving"] != 0 {
            assert!(Instant::now() < deadline, "slot moves did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        took += wait_converged(&self.addrs(), n).await;
        took
    }

    /// Where DataNodes register.
    pub fn namenode_addr(&self) -> SocketAddr {
        let namenode = self.namenode.as_ref().expect("NameNode running");
        namenode.datanode_addr()
    }

    /// The NameNode's HTTP and watch ports.
    pub fn namenode_http_and_watch(&self) -> (SocketAddr, SocketAddr) {
        let namenode = self.namenode.as_ref().expect("NameNode running");
        (namenode.http_addr(), namenode.client_addr())
    }

    /// The NameNode's `/cluster` JSON (over HTTPS with `tls-cluster`).
    pub async fn namenode_status(&self) -> serde_json::Value {
        let addr = self
            .namenode
            .as_ref()
            .expect("NameNode running")
            .http_addr();
        // A NameNode busy publishing tables may answer 503 (its core did not answer the
        // request in time): a liveness matter, asked again until CONVERGE_LIMIT.
        let deadline = Instant::now() + CONVERGE_LIMIT;
        let request = b"GET /cluster HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        loop {
            let response = match &self.nn_config.cluster_tls {
                None => {
                    let mut c = Raw::connect(addr).await;
                    c.send(request).await;
                    c.read_to_eof().await.to_vec()
                }
                // tls-cluster: HTTPS, with the nodes' certificate as the client's.
                Some(t) => https_request(addr, t, request).await,
            };
            let text = String::from_utf8(response).expect("utf-8 response");
            let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
            if head.starts_with("HTTP/1.1 503") && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            return serde_json::from_str(body).expect("JSON body");
        }
    }

    /// Stops every DataNode (in-process ones gracefully, processes with SIGKILL) and the
    /// NameNode.
    pub async fn shutdown(mut self) {
        for node in self.nodes.drain(..) {
            match node {
                DataNode::InProcess(h) => step("DataNode shutdown", h.shutdown()).await,
                DataNode::Process(p) => drop(p),
            }
        }
        if let Some(nn) = self.namenode.take() {
            step("NameNode shutdown", nn.shutdown()).await;
        }
    }
}

/// One DataNode of a test cluster.
pub enum DataNode {
    InProcess(ServerHandle),
    Process(Process),
}

impl DataNode {
    pub fn addr(&self) -> SocketAddr {
        match self {
            DataNode::InProcess(h) => h.addr(),
            DataNode::Process(p) => p.addr,
        }
    }
}

/// What `CLUSTER INFO` says, in the fields the tests look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub state_ok: bool,
    pub assigned: usize,
    pub known: usize,
    pub epoch: u64,
}

pub fn parse_info(text: &str) -> Info {
    Info {
        state_ok: text.contains("cluster_state:ok"),
        assigned: info_field(text, "cluster_slots_assigned"),
        known: info_field(text, "cluster_known_nodes"),
        epoch: info_field(text, "cluster_current_epoch"),
    }
}

/// `CLUSTER INFO` of the node at `addr`.
pub async fn cluster_info(con: &mut redis::aio::MultiplexedConnection) -> Info {
    parse_info(&q::<String, _>(con, &["CLUSTER", "INFO"]).await)
}

/// Polls `CLUSTER INFO` on every node in `addrs` until all report state ok, `n` known nodes
/// and the same epoch; returns how long that took. Fails after [`CONVERGE_LIMIT`].
pub async fn wait_converged(addrs: &[SocketAddr], n: usize) -> Duration {
    let started = Instant::now();
    let mut cons = Vec::new();
    for &addr in addrs {
        cons.push(connect(addr).await);
    }
    let deadline = started + CONVERGE_LIMIT;
    loop {
        let mut infos = Vec::with_capacity(cons.len());
        for con in &mut cons {
            infos.push(cluster_info(con).await);
        }
        let epoch = infos[0].epoch;
        if infos
            .iter()
            .all(|i| i.state_ok && i.assigned == SLOTS && i.known == n && i.epoch == epoch)
        {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "no convergence on {n} nodes within {CONVERGE_LIMIT:?}: {infos:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One run of `CLUSTER SLOTS`: first and last slot, owner id and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: u16,
    pub end: u16,
    pub id: String,
    pub addr: SocketAddr,
}

/// The slot table as one node reports it in `CLUSTER SLOTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotMap {
    pub runs: Vec<Run>,
}

fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).expect("utf-8"),
        Value::SimpleString(s) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

impl SlotMap {
    /// `CLUSTER SLOTS` of the node at `addr`, on a connection of its own (asking for it
    /// makes a connection cluster-aware).
    pub async fn of(addr: SocketAddr) -> SlotMap {
        let mut con = connect(addr).await;
        let Value::Array(runs) = val(&mut con, &["CLUSTER", "SLOTS"]).await else {
            panic!("CLUSTER SLOTS is not an array");
        };
        let runs = runs
            .iter()
            .map(|run| {
                let Value::Array(fields) = run else {
                    panic!("a CLUSTER SLOTS run is not an array: {run:?}")
                };
                let Value::Array(node) = &fields[2] else {
                    panic!("no node in {fields:?}")
                };
                let ip: std::net::IpAddr = text_of(&node[0]).parse().expect("ip");
                Run {
                    start: int_of(&fields[0]) as u16,
                    end: int_of(&fields[1]) as u16,
                    addr: SocketAddr::new(ip, int_of(&node[1]) as u16),
                    id: text_of(&node[2]),
                }
            })
            .collect();
        SlotMap { runs }
    }

    fn run_of(&self, slot: u16) -> &Run {
        self.runs
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .unwrap_or_else(|| panic!("slot {slot} has no owner"))
    }

    /// Address of the owner of `key`.
    pub fn owner(&self, key: &str) -> SocketAddr {
        self.run_of(key_slot(key.as_bytes())).addr
    }

    /// Slots covered by the runs, counting overlaps twice.
    pub fn covered(&self) -> usize {
        self.runs
            .iter()
            .map(|r| (r.end - r.start) as usize + 1)
            .sum()
    }

    /// The distinct owner ids.
    pub fn ids(&self) -> std::collections::BTreeSet<String> {
        self.runs.iter().map(|r| r.id.clone()).collect()
    }

    /// `n` keys `{prefix}{i}` owned by the node at `owner`.
    pub fn keys_of(&self, owner: SocketAddr, prefix: &str, n: usize) -> Vec<String> {
        let keys: Vec<String> = (0..1_000_000)
            .map(|i| format!("{prefix}{i}"))
            .filter(|k| self.owner(k) == owner)
            .take(n)
            .collect();
        assert_eq!(keys.len(), n, "not enough keys owned by {owner}");
        keys
    }
}

/// The node id of the DataNode at `addr` (`CLUSTER MYID`).
pub async fn my_id(addr: SocketAddr) -> String {
    q(&mut connect(addr).await, &["CLUSTER", "MYID"]).await
}

/// Waits until INFO on `addr` says `n` clients are blocked (within [`CONVERGE_LIMIT`]).
pub async fn blocked_on(addr: SocketAddr, n: usize) {
    blocked_clients_within(addr, n, CONVERGE_LIMIT).await
}

/// Sends `k` to an admin port and reads until the drain's summary line.
pub async fn drain(admin: SocketAddr) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let sock = tokio::net::TcpStream::connect(admin)
        .await
        .expect("admin connect");
    let (rd, mut wr) = sock.into_split();
    wr.write_all(b"k\r\n").await.expect("send k");
    let mut lines = BufReader::new(rd).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("drain finishes in time")
            .expect("admin read")
            .expect("a summary before EOF");
        if line.starts_with("drained:") {
            return line;
        }
    }
}

/// One HTTP request over TLS to a NameNode with `tls-cluster`, presenting the nodes'
/// certificate; the whole response.
pub async fn https_request(
    addr: SocketAddr,
    tls: &chkv_namenode::ClusterTls,
    request: &[u8],
) -> Vec<u8> {
    try_https_request(addr, tls, request)
        .await
        .unwrap_or_else(|e| panic!("HTTPS to {addr}: {e}"))
}

/// [`https_request`], or why it failed.
pub async fn try_https_request(
    addr: SocketAddr,
    tls: &chkv_namenode::ClusterTls,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = chkv_common::tls::client_config(
        &tls.ca_cert_file,
        Some((&tls.cert_file, &tls.key_file)),
        chkv_common::tls::ServerNames::Check,
    )
    .map_err(|e| e.to_string())?;
    let tcp = step("HTTPS connect", tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|e| e.to_string())?;
    let name = chkv_common::tls::server_name("127.0.0.1").map_err(|e| e.to_string())?;
    let mut stream = step(
        "HTTPS handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|e| format!("TLS handshake: {e}"))?;
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // A close without close_notify still ends the response.
    let _ = step("HTTPS response", stream.read_to_end(&mut out)).await;
    if out.is_empty() {
        return Err("no response".into());
    }
    Ok(out)
}

/// Writes `n` keys `prefix{i}` = `v{i}` through `addr`, 500 per MSET.
pub async fn fill(addr: std::net::SocketAddr, prefix: &str, n: usize) {
    let mut con = connect(addr).await;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut args = vec!["MSET".to_string()];
        for i in chunk {
            args.push(format!("{prefix}{i}"));
            args.push(format!("v{i}"));
        }
        let () = q(&mut con, &args).await;
    }
}

/// Every key `prefix{i}` reads `v{i}` through `addr`, and the nodes hold exactly `n` keys.
pub async fn check_all(addrs: &[std::net::SocketAddr], prefix: &str, n: usize) {
    let mut con = connect(addrs[0]).await;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut args = vec!["MGET".to_string()];
        args.extend(chunk.iter().map(|i| format!("{prefix}{i}")));
        let got: Vec<Option<String>> = q(&mut con, &args).await;
        for (i, v) in chunk.iter().zip(got) {
            assert_eq!(v, Some(format!("v{i}")), "{prefix}{i}");
        }
    }
    let mut total = 0;
    for &addr in addrs {
        let n: usize = q(&mut connect(addr).await, &["DBSIZE"]).await;
        total += n;
    }
    assert_eq!(total, n, "keys across the survivors");
}
