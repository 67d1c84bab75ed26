//! The state one DataNode shares between its connections: the store, the runtime config,
//! the server counters and the client registry. Plain Rust, no I/O: commands take a `&Node`.

use crate::config::Config;
use crate::store::Db;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Server-wide counters reported by INFO.
#[derive(Default)]
pub struct ServerStats {
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub total_commands: AtomicU64,
    /// Commands per second over the last sampling period (updated by the server's cron).
    pub instantaneous_ops: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
}

/// What CLIENT LIST/INFO shows about one connection, shared with its task.
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    /// Seconds since `created` at the last command.
    pub last_active: AtomicU64,
    /// Index of the last command in the command table.
    pub last_cmd: AtomicU32,
    pub resp: AtomicU32,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<Bytes>>,
    pub lib_ver: Mutex<Option<Bytes>>,
}

impl ClientInfo {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            last_active: AtomicU64::new(0),
            last_cmd: AtomicU32::new(u32::MAX),
            resp: AtomicU32::new(2),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
        }
    }

    /// The CLIENT LIST line for this client (Redis's field names).
    pub fn describe(&self) -> String {
        let age = self.created.elapsed().as_secs();
        let idle = age.saturating_sub(self.last_active.load(Relaxed));
        let text = |m: &Mutex<Option<Bytes>>| {
            m.lock()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let cmd = crate::cmd::name_by_index(self.last_cmd.load(Relaxed)).unwrap_or("NULL");
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags=N db=0 sub=0 psub=0 \
             ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 \
             omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            text(&self.name),
            age,
            idle,
            cmd,
            self.resp.load(Relaxed),
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}

/// One DataNode's shared state.
pub struct Node {
    pub db: Db,
    pub config: RwLock<Config>,
    pub stats: ServerStats,
    pub clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    next_client_id: AtomicU64,
    pub started: Instant,
    /// The address the RESP listener is bound to (known once bound).
    pub addr: Mutex<Option<SocketAddr>>,
    pub run_id: String,
}

impl Node {
    pub fn new(config: Config) -> Node {
        Node {
            db: Db::new(),
            config: RwLock::new(config),
            stats: ServerStats::default(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            addr: Mutex::new(None),
            run_id: random_hex(40),
        }
    }

    /// Registers a new connection and returns its info handle.
    pub fn register_client(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientInfo> {
        let id = self.next_client_id.fetch_add(1, Relaxed);
        let info = Arc::new(ClientInfo::new(id, addr, laddr));
        self.clients.lock().insert(id, info.clone());
        info
    }

    pub fn unregister_client(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn connected_clients(&self) -> usize {
        self.clients.lock().len()
    }
}

/// `n` random hex digits (run ids).
pub fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..n)
        .map(|_| char::from_digit(r.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}
