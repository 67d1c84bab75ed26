//! [`Node`], the state one DataNode shares between its connections: the store, the runtime
//! config, the server counters, the client registry, the effective routing snapshot, and the
//! handles of the parts that own I/O or threads (the peer connections of [`crate::peer`], the
//! handoff queue of [`crate::handoff`], the lease, the Lua engines, pub/sub, tracking,
//! blocked clients, TLS, ACL). Commands take a `&Node`; its own methods read and swap state
//! and never wait on a socket (installing a routing snapshot invalidates, wakes and drops,
//! it does not send).

use crate::client::ClientInfo;
use crate::cluster::Routing;
use crate::config::Config;
use crate::ownership::{Install, Ownership};
use crate::peer::Peers;
use crate::store::Db;
use crate::striped::Counter;
use chkv_common::proto::NodeInfo;
use chkv_common::ring::NodeId;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use std::sync::Arc;
use std::time::Instant;

/// Server-wide counters reported by INFO.
#[derive(Default)]
pub struct ServerStats {
    pub total_connections: Counter,
    pub rejected_connections: Counter,
    pub total_commands: Counter,
    /// Commands per second over the last sampling period (updated by the server's cron).
    pub instantaneous_ops: AtomicU64,
    pub net_input_bytes: Counter,
    pub net_output_bytes: Counter,
    /// Requests, or parts of split requests, sent to the owning DataNode.
    pub forwarded_requests: Counter,
}

/// One DataNode's shared state.
pub struct Node {
    pub db: Db,
    /// Read with [`Node::config`], changed only with [`Node::update_config`].
    config: RwLock<Config>,
    /// Bumped after every change to `config`, so that connections can keep a copy of their
    /// limits instead of taking the lock per request.
    config_generation: AtomicU64,
    pub stats: ServerStats,
    pub clients: Arc<Mutex<BTreeMap<u64, Arc<ClientInfo>>>>,
    next_client_id: AtomicU64,
    pub started: Instant,
    /// The address the RESP listener is bound to (known once bound).
    pub addr: Mutex<Option<SocketAddr>>,
    pub run_id: String,
    /// This node's id in the cluster (40 hex characters).
    pub node_id: String,
    /// Why the last session with the NameNode ended (INFO cluster's
    /// `chkv_namenode_last_error`); `None` while none has failed.
    pub namenode_error: Mutex<Option<String>>,
    /// The base table and the handoff overrides: the one owner of the routing, which
    /// `routing` publishes (see [`crate::ownership`]).
    ownership: Mutex<Ownership>,
    routing: RwLock<Arc<Routing>>,
    /// The generation of the installed routing (see [`Routing::generation`]).
    routing_generation: AtomicU64,
    pub peers: Peers,
    pub handoff: crate::handoff::Handoff,
    /// The ownership lease (see [`crate::lease`]).
    pub lease: crate::lease::Lease,
    /// Lua engines, the script cache, function libraries and running scripts.
    pub scripting: crate::lua::Scripting,
    pub pubsub: Arc<crate::pubsub::PubSub>,
    /// CLIENT TRACKING: who read what, and their invalidations.
    pub tracking: Arc<crate::tracking::Tracking>,
    /// Clients blocked on keys (BLPOP and friends).
    pub blocking: Arc<crate::blocking::Blocking>,
    /// The TLS configuration new TLS connections get (none when TLS is off).
    pub tls: crate::tls::TlsSlot,
    /// ACL users.
    pub acl: crate::acl::Acl,
    /// Calls, errors and latency per command (`/metrics`).
    pub cmdstats: crate::cmdstats::CommandStats,
    /// Error replies by code (INFO errorstats).
    pub errors: crate::cmdstats::ErrorStats,
    /// `min-replicas-to-write`: CHKV has no replicas, so above 0 writes are refused
    /// (`-NOREPLICAS`), as Redis refuses them without enough good replicas.
    pub min_replicas_to_write: AtomicU32,
}

impl Node {
    pub fn new(config: Config) -> Node {
        let node_id = config.node_id.clone().unwrap_or_else(|| {
            let addr = config
                .advertise
                .unwrap_or(SocketAddr::new(config.bind, config.port));
            id_from_addr(&addr)
        });
        let peers = Peers::new(config.cluster_secret.clone(), node_id.clone());
        let db = Db::new();
        db.configure_eviction(&config.eviction);
        let pubsub = Arc::new(crate::pubsub::PubSub::default());
        pubsub.configure(&config);
        let notify = pubsub.clone();
        db.set_removal_hook(Box::new(move |why, key| {
            use crate::pubsub::events;
            match why {
                crate::store::Removal::Expired => {
                    notify.notify_keyspace(events::EXPIRED, "expired", key)
                }
                crate::store::Removal::Evicted => {
                    notify.notify_keyspace(events::EVICTED, "evicted", key)
                }
            }
        }));
        let blocking = Arc::new(crate::blocking::Blocking::new(db.blocked_slots()));
        let ready = blocking.clone();
        db.set_ready_hook(Box::new(move |key| ready.key_written(key)));
        let clients = Arc::new(Mutex::new(BTreeMap::new()));
        let tracking = Arc::new(crate::tracking::Tracking::new(
            db.tracked_slots(),
            clients.clone(),
            pubsub.clone(),
        ));
        tracking.set_max_keys(config.tracking_table_max_keys);
        db.set_track_sink(tracking.clone());
        let acl = crate::acl::Acl::default();
        acl.set_requirepass(config.requirepass.as_deref(), None);
        db.limits.store(&config.encodings);
        let scripting = crate::lua::Scripting::default();
        scripting.set_threshold(config.busy_reply_threshold_ms);
        Node {
            db,
            node_id,
            ownership: Mutex::new(Ownership::default()),
            routing: RwLock::new(Arc::new(Routing::standalone())),
            routing_generation: AtomicU64::new(0),
            peers,
            handoff: crate::handoff::Handoff::default(),
            lease: crate::lease::Lease::default(),
            scripting,
            pubsub,
            tracking,
            blocking,
            tls: Default::default(),
            acl,
            cmdstats: crate::cmdstats::CommandStats::new(crate::cmdstats::MAX_COMMANDS),
            errors: Default::default(),
            min_replicas_to_write: AtomicU32::new(0),
            config: RwLock::new(config),
            config_generation: AtomicU64::new(0),
            stats: ServerStats::default(),
            clients,
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            addr: Mutex::new(None),
            run_id: random_hex(40),
            namenode_error: Mutex::new(None),
        }
    }

    /// Whether a new connection starts authenticated: the `default` user is on and needs no
    /// password.
    pub fn default_user_open(&self) -> bool {
        self.acl
            .get(b"default")
            .is_some_and(|u| u.enabled && u.nopass)
    }

    /// Registers a new connection and returns its info handle.
    pub fn register_client(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientInfo> {
        let id = self.next_client_id.fetch_add(1, Relaxed);
        let info = Arc::new(ClientInfo::new(id, addr, laddr));
        self.clients.lock().insert(id, info.clone());
        info
    }

    pub fn unregister_client(&self, id: u64) {
        let info = self.clients.lock().remove(&id);
        if let Some(s) = info.as_ref().and_then(|c| c.subscriber.get()) {
            self.pubsub.drop_subscriber(s);
        }
        if let Some(c) = &info {
            self.tracking.disable(c);
        }
    }

    pub fn connected_clients(&self) -> usize {
        self.clients.lock().len()
    }

    /// The runtime config (CONFIG GET, limits, addresses...).
    pub fn config(&self) -> parking_lot::RwLockReadGuard<'_, Config> {
        self.config.read()
    }

    /// Changes the runtime config under its lock, then bumps [`Node::config_generation`].
    pub fn update_config<R>(&self, change: impl FnOnce(&mut Config) -> R) -> R {
        let mut c = self.config.write();
        let r = change(&mut c);
        self.config_generation.fetch_add(1, Release);
        r
    }

    /// Moves on every [`Node::update_config`]; a copy of the config taken after reading a
    /// generation is current until the generation moves.
    pub fn config_generation(&self) -> u64 {
        self.config_generation.load(Acquire)
    }

    /// The current routing snapshot.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.read().clone()
    }

    /// Installs the NameNode's table `base` with the handoff overrides it has not caught up
    /// with; an older epoch than the current table's is ignored. Returns whether it was
    /// applied. Slots it gives this node without a handoff are emptied first (see
    /// [`Ownership::table`]), under the gate's write side, so no command runs on such a slot
    /// before it is empty.
    pub fn set_routing(&self, base: Routing) -> bool {
        let _w = self.handoff.gate.write();
        let mut own = self.ownership.lock();
        match own.table(base, &self.my_info(), &self.routing()) {
            Some(install) => {
                self.install(install);
                true
            }
            None => false,
        }
    }

    /// Installs a welcome's table after emptying the slots in `lost`: slots the NameNode says
    /// this node lost without a handoff (it was declared dead, or a newer claim won after a
    /// restart). Under the gate's write side, so no command runs on the old view meanwhile:
    /// when it opens, the slots are empty and the table says who owns them. Their adoptions
    /// are forgotten, and the lease starts over (see [`crate::lease::Lease::reset`]).
    /// Returns whether the table's epoch was accepted.
    pub fn set_routing_dropping(&self, base: Routing, lost: &[(u16, u16)]) -> bool {
        if lost.is_empty() {
            return self.set_routing(base);
        }
        let _w = self.handoff.gate.write();
        let (accepted, slots, dropped) = {
            let mut own = self.ownership.lock();
            let d = own.table_dropping(base, lost, &self.my_info(), &self.routing());
            let dropped: usize = d.lost.iter().map(|&s| self.db.drop_slot(s)).sum();
            self.install(d.install);
            (d.accepted, d.lost.len(), dropped)
        };
        self.lease.reset();
        if dropped > 0 && self.handoff.draining.load(SeqCst) {
            self.handoff.lost_keys.fetch_add(dropped as u64, SeqCst);
            tracing::warn!(
                keys = dropped,
                "drain incomplete: declared dead mid-drain, this node dropped keys it had not handed over"
            );
        }
        tracing::info!(
            slots,
            keys = dropped,
            "dropped the slots this node lost without a handoff"
        );
        accepted
    }

    /// Records that `slots` now belong to this node (handed over by `from`).
    pub fn adopt(&self, from: &str, slots: &[u16]) {
        let mut own = self.ownership.lock();
        let install = own.adopt(from, slots, &self.my_info());
        self.install(install);
    }

    /// Records that `slots` now belong to `to`, as ordered in `epoch`.
    pub fn release(&self, to: &NodeInfo, epoch: u64, slots: &[u16]) {
        let mut own = self.ownership.lock();
        let install = own.release(to, epoch, slots, &self.my_info());
        self.install(install);
    }

    /// The node that handed `slot` to this one, while the NameNode's table has not caught up.
    pub fn adopted_from(&self, slot: u16) -> Option<String> {
        self.ownership.lock().adopted_from(slot).map(str::to_string)
    }

    /// The node this one handed `slot` to, while the NameNode's table has not caught up.
    pub fn released_to(&self, slot: u16) -> Option<String> {
        let own = self.ownership.lock();
        own.released_to(slot).map(|n| n.id.as_str().to_string())
    }

    /// The handoffs this node made that the NameNode's table has not caught up with (see
    /// [`Ownership::releases`]).
    pub fn unconfirmed_releases(&self) -> Vec<(NodeId, u64, Vec<u16>)> {
        self.ownership.lock().releases()
    }

    /// The NameNode's latest table, before overrides (standalone before the first one).
    pub fn base_table(&self) -> Arc<Routing> {
        self.ownership.lock().base().clone()
    }

    /// How many handoffs the NameNode's table has not caught up with.
    pub fn pending_handoffs(&self) -> usize {
        self.ownership.lock().pending()
    }

    /// Carries out an [`Install`]: empties its slots, then serves by its routing. The caller
    /// holds the ownership lock (one install at a time: a routing computed before another
    /// change but installed after it would undo that change), and the gate's write side when
    /// there are slots to empty.
    fn install(&self, install: Install) {
        let mut flushed = (0usize, 0usize);
        for &s in &install.flush {
            let keys = self.db.drop_slot(s);
            if keys > 0 {
                flushed = (flushed.0 + 1, flushed.1 + keys);
            }
        }
        if flushed.1 > 0 {
            tracing::info!(
                slots = flushed.0,
                keys = flushed.1,
                "dropped stale copies in slots given to this node without a handoff"
            );
        }
        self.install_routing(install.routing);
    }

    /// This node as the cluster knows it.
    fn my_info(&self) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(self.node_id.clone()),
            client_addr: self.advertised_addr(),
            admin_addr: self.config().admin_addr,
            tls_port: self.tls_port(),
            since: 0,
        }
    }

    /// Installs the effective routing snapshot (table plus overrides).
    fn install_routing(&self, mut r: Routing) {
        let keep: Vec<SocketAddr> = r.nodes.iter().map(|n| n.client_addr).collect();
        self.peers.learn_tls_ports(&r.nodes);
        let (installed, before) = {
            let mut current = self.routing.write();
            let before = current.clone();
            r.generation = current.generation + 1;
            // Published before the lock is released, so whoever sees the new routing's
            // effects (an unfrozen slot) also sees that older snapshots are stale.
            self.routing_generation.store(r.generation, SeqCst);
            *current = Arc::new(r);
            (current.clone(), before)
        };
        // Client caches of keys in slots that left: invalidated (and WATCHes of them fire)
        // as ownership moves, before the new owner takes writes for them.
        if self.tracking.clients() > 0 || self.tracking.total_keys() > 0 {
            use crate::cluster::Owner;
            for s in 0..chkv_common::SLOT_COUNT as u16 {
                if before.owner(s) == Owner::Local && installed.owner(s) != Owner::Local {
                    self.db.lock(s).modified_all();
                }
            }
        }
        // Shard subscribers of slots that moved away are told to go to the new owner.
        if !self.pubsub.is_empty() {
            let limit = self.pubsub.limit();
            self.pubsub.drop_shard_slots(
                |s| installed.owner(s) != crate::cluster::Owner::Local,
                limit,
                Instant::now(),
            );
        }
        // Clients blocked on keys of slots that left run their command again where the
        // slots went.
        self.blocking
            .slots_moved(|s| installed.owner(s) != crate::cluster::Owner::Local);
        self.peers.retain(|a| keep.contains(a));
    }

    /// The generation of the routing installed now.
    pub fn routing_generation(&self) -> u64 {
        self.routing_generation.load(SeqCst)
    }

    /// Loads the TLS material `s` names into the TLS port and the cluster links, or changes
    /// nothing and says why.
    pub fn load_tls(&self, s: &crate::tls::TlsSettings) -> Result<(), crate::tls::TlsError> {
        let cluster = self.tls.load(s)?;
        self.peers.set_tls(cluster);
        Ok(())
    }

    /// The TLS port this node listens on (advertised to the NameNode and peers).
    pub fn tls_port(&self) -> Option<u16> {
        let c = self.config();
        c.tls.port.filter(|&p| p != 0)
    }

    /// The address clients and peers use to reach this node.
    pub fn advertised_addr(&self) -> SocketAddr {
        let c = self.config();
        c.advertise
            .or(*self.addr.lock())
            .unwrap_or(SocketAddr::new(c.bind, c.port))
    }
}

/// A stable 40-hex-digit node id derived from an address (Redis Cluster ids are 40 hex digits).
pub fn id_from_addr(addr: &SocketAddr) -> String {
    let text = addr.to_string();
    let mut out = String::with_capacity(40);
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    while out.len() < 40 {
        let mut h = seed;
        for b in text.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        // splitmix64 finaliser, so ids of similar addresses look unrelated.
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        out.push_str(&format!("{h:016x}"));
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    out.truncate(40);
    out
}

/// `n` random hex digits (run ids).
pub fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..n)
        .map(|_| char::from_digit(r.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}
