//! The client: its builder, the routing state it shares with the NameNode watcher, and the
//! retry loop every routed request goes through. The builder and its options are in `builder`.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chkv_common::{NodeInfo, SlotTable};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::conn::{ConnConfig, NodePool, Patience, Pending};
use crate::error::{Error, Result, Retry};
use crate::nearcache::{NearCache, NearCacheOptions};
use crate::resp;
use crate::routing::{blocking_timeout, key_spec, slot_of, Routes, Split, Target};
use crate::url::RedisUrl;
use crate::value::Value;
use crate::watcher;
use chkv_common::split::{self, Merged, Share};

mod builder;

pub use builder::{Builder, NameNodes, RetryBudget, Tls};

/// The cluster as the client last heard of it from the NameNode (see
/// [`Client::watch_ring`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingInfo {
    /// The table's epoch; it grows by one at every ring change.
    pub epoch: u64,
    /// The DataNodes of the table (members, including any that own no slot yet).
    pub nodes: Vec<NodeInfo>,
    /// Slots with an owner (16384 when the cluster is whole).
    pub assigned_slots: usize,
}

impl RingInfo {
    /// How many DataNodes the table lists.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// A CHKV client: routes each key to the DataNode that owns its slot, over pipelined
/// connections, and follows the ring as it changes. Cheap to clone; clones share
/// connections. The background work stops when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    watcher: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.inner.shared.routes();
        f.debug_struct("Client")
            .field("epoch", &routes.epoch)
            .field("nodes", &routes.nodes.len())
            .finish()
    }
}

/// An attempt the server held this long was a wait (a blocking command, blocked until its
/// slot moved), not a quick redirect: the retries after it start a fresh budget.
const BLOCKED_ATTEMPT: Duration = Duration::from_secs(1);

/// A blocking command's call (BLPOP, BLMOVE, BZPOPMIN, ...): where its timeout argument is
/// and how long it may block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    /// Index of the timeout argument.
    pub pos: usize,
    /// How long the call may block; `None` for ever (a timeout of 0).
    pub timeout: Option<Duration>,
    /// When the call began: a retry elsewhere blocks only for what is left.
    pub called: Instant,
}

impl Block {
    /// The blocking call of `args`, `None` for a command that does not block. A timeout
    /// that is not a number, negative or out of range is sent as it is, for the server's
    /// error reply, and waited for without a limit (the reply comes at once).
    pub fn of(args: &[&[u8]]) -> Option<Block> {
        let pos = blocking_timeout(args.first()?, args.len())?;
        let timeout = std::str::from_utf8(args[pos])
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .and_then(|t| Duration::try_from_secs_f64(t).ok());
        Some(Block {
            pos,
            timeout,
            called: Instant::now(),
        })
    }

    /// The timeout argument for a call that started `elapsed` ago, when it changed (a retry
    /// blocks only for what is left, rounded up to a millisecond so it never reads as 0);
    /// `Err` when no time is left.
    fn left(&self, elapsed: Duration) -> std::result::Result<(Patience, Option<String>), ()> {
        let Some(timeout) = self.timeout else {
            return Ok((Patience::Forever, None));
        };
        let left = timeout.saturating_sub(elapsed);
        if left.is_zero() {
            return Err(());
        }
        let arg = (elapsed >= Duration::from_millis(1)).then(|| timeout_arg(left));
        Ok((Patience::Longer(left), arg))
    }
}

/// A blocking command's timeout in seconds, with milliseconds, rounded up (a positive
/// duration never becomes 0, which would block for ever).
pub(crate) fn timeout_arg(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Where one attempt goes.
#[derive(Clone, Copy, Debug)]
enum Dest {
    /// The owner of the target in the current routes.
    Route(Target),
    /// This node (a `-MOVED` said so).
    Node(SocketAddr),
    /// This node, once, after `ASKING`.
    Asking(SocketAddr),
}

/// What the client and its watcher share.
pub(crate) struct Shared {
    pub routes: RwLock<Arc<Routes>>,
    /// The public view of the latest table.
    pub ring: watch::Sender<RingInfo>,
    /// Tables installed so far: retries wait on it for the next one.
    pub tables: watch::Sender<u64>,
    /// Why the last NameNode connection attempt failed (for connect's error).
    pub watch_error: std::sync::Mutex<Option<String>>,
    /// The last watch attempt at each NameNode address (for connect's error).
    attempts: std::sync::Mutex<Vec<(String, watcher::Attempt)>>,
    conn_config: Arc<ConnConfig>,
    pool_size: usize,
    pub retry: RetryBudget,
    /// The near-cache, when on.
    pub near: Option<Arc<NearCache>>,
}

impl Shared {
    fn new(b: &Builder, cluster: bool) -> Shared {
        let near = b.near.clone().map(|o| Arc::new(NearCache::new(o)));
        Shared {
            routes: RwLock::new(Arc::new(Routes::empty())),
            ring: watch::channel(RingInfo::default()).0,
            tables: watch::channel(0).0,
            watch_error: std::sync::Mutex::new(None),
            attempts: std::sync::Mutex::new(Vec::new()),
            conn_config: Arc::new(ConnConfig {
                connect_timeout: b.connect_timeout,
                password: b.password.clone(),
                username: b.username.clone(),
                resp3: b.resp3 || near.is_some(),
                cluster,
                response_timeout: b.response_timeout,
                near: near.clone(),
                tls: b.tls.as_ref().map(|t| {
                    Arc::new(crate::conn::TlsLinks {
                        config: t.0.clone(),
                        addrs: RwLock::new(Default::default()),
                    })
                }),
            }),
            pool_size: b.pool_size,
            retry: b.retry,
            near,
        }
    }

    /// How this client's connections are opened (subscriptions open their own).
    pub(crate) fn conn_config(&self) -> &ConnConfig {
        &self.conn_config
    }

    pub fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn new_pool(&self, addr: SocketAddr) -> Arc<NodePool> {
        Arc::new(NodePool::new(
            addr,
            self.conn_config.clone(),
            self.pool_size,
        ))
    }

    /// The pool of `addr` in `routes`, or a new one.
    fn pool_in(&self, routes: &Routes, addr: SocketAddr) -> Arc<NodePool> {
        routes
            .nodes
            .iter()
            .find(|p| p.addr() == addr)
            .cloned()
            .unwrap_or_else(|| self.new_pool(addr))
    }

    pub(crate) fn record_attempt(&self, addr: &str, attempt: watcher::Attempt) {
        let mut a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        match a.iter_mut().find(|(x, _)| x == addr) {
            Some((_, last)) => *last = attempt,
            None => a.push((addr.to_string(), attempt)),
        }
    }

    /// When every address in `addrs` has failed its last attempt for want of a NameNode
    /// (nothing there, or something else there), the error saying so.
    fn definite_failure(&self, addrs: &[String]) -> Option<Error> {
        let a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let last = |addr: &String| a.iter().find(|(x, _)| x == addr).map(|(_, at)| at.clone());
        let all: Vec<(String, watcher::Attempt)> = addrs
            .iter()
            .map(|addr| last(addr).map(|at| (addr.clone(), at)))
            .collect::<Option<_>>()?;
        let definite = |at: &watcher::Attempt| {
            matches!(
                at,
                watcher::Attempt::Unreachable(_) | watcher::Attempt::NotNameNode(_)
            )
        };
        if !all.iter().all(|(_, at)| definite(at)) {
            return None;
        }
        // Something that answers wrongly is the more useful news.
        if let Some((addr, watcher::Attempt::NotNameNode(m))) = all
            .iter()
            .find(|(_, at)| matches!(at, watcher::Attempt::NotNameNode(_)))
        {
            return Some(Error::NotNameNode {
                addr: addr.clone(),
                message: m.clone(),
            });
        }
        let message = all
            .iter()
            .map(|(addr, at)| match at {
                watcher::Attempt::Unreachable(m) => format!("{addr}: {m}"),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        Some(Error::NameNodeUnreachable {
            addrs: addrs.join(", "),
            message,
        })
    }

    fn watch_error(&self) -> Option<String> {
        self.watch_error.lock().ok().and_then(|e| e.clone())
    }

    /// Installs a table from the NameNode. Pools of nodes that stay are reused; those of
    /// nodes that left are dropped with the old routes, which closes their connections once
    /// their last replies are in.
    pub fn install_table(&self, table: &SlotTable, nodes: Vec<NodeInfo>) {
        if let Some(tls) = &self.conn_config.tls {
            tls.learn(&nodes);
        }
        let info = {
            let mut guard = self.routes.write().unwrap_or_else(|p| p.into_inner());
            let previous = guard.clone();
            let routes = Routes::from_table(table, nodes, &previous, &mut |addr| {
                self.pool_in(&previous, addr)
            });
            let info = RingInfo {
                epoch: routes.epoch,
                nodes: routes.infos.clone(),
                assigned_slots: routes.assigned(),
            };
            if let Some(near) = &self.near {
                near.slots_moved(&previous.moved_in(&routes));
            }
            *guard = Arc::new(routes);
            info
        };
        info!(
            epoch = info.epoch,
            nodes = info.nodes.len(),
            slots = info.assigned_slots,
            "slot table installed"
        );
        self.ring.send_replace(info);
        self.tables.send_modify(|n| *n += 1);
    }

    /// Records that `slot` is served by `addr` now (a `-MOVED`).
    fn apply_moved(&self, slot: u16, addr: SocketAddr) {
        // Routes speak of client addresses; over TLS the node named its TLS port.
        let addr = self
            .conn_config
            .tls
            .as_ref()
            .map_or(addr, |t| t.client_of(addr));
        let mut guard = self.routes.write().unwrap_or_else(|p| p.into_inner());
        let current = guard.clone();
        if let Some(next) = current.with_moved(slot, addr, &mut |a| self.pool_in(&current, a)) {
            debug!(slot, %addr, "slot moved");
            if let Some(near) = &self.near {
                near.slots_moved(&[slot]);
            }
            *guard = Arc::new(next);
        }
    }

    /// Sends one request to the owner of `target`, under the routes lock (no pool clone).
    fn send(&self, target: Target, data: Bytes) -> Result<Pending<Value>> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let pool = match target {
            Target::Slot(slot) => routes.owner(slot),
            Target::Any => routes.any(),
        };
        match (pool, target) {
            (Some(pool), _) => pool.send(data),
            (None, Target::Slot(slot)) => {
                Err(Error::NoCluster(format!("no DataNode owns slot {slot}")))
            }
            (None, Target::Any) => Err(Error::NoCluster("no DataNode in the slot table".into())),
        }
    }

    /// Runs one command routed to `target`, retrying within the budget.
    ///
    /// The time budget counts from the first failure (the first attempt is bounded by the
    /// response timeout), which keeps the clock off the path of requests that succeed.
    pub async fn run(&self, target: Target, args: &[&[u8]]) -> Result<Value> {
        if self.near.is_some() {
            self.own_write(args);
            let result = self.run_plain(target, args).await;
            self.own_write(args);
            return result;
        }
        self.run_plain(target, args).await
    }

    async fn run_plain(&self, target: Target, args: &[&[u8]]) -> Result<Value> {
        let first = match self.send(target, resp::command(args)) {
            Ok(pending) => pending.wait().await,
            Err(e) => Err(e),
        };
        match first {
            Ok(Value::Error(e)) => {
                self.retry(target, args, Error::Server(e), Instant::now(), None)
                    .await
            }
            Ok(v) => Ok(v),
            Err(e) => self.retry(target, args, e, Instant::now(), None).await,
        }
    }

    /// Runs a blocking command (see [`Block`]) on a connection of its own, retrying within
    /// the budget like [`Shared::run`]. When the key's slot moves while the command waits, the
    /// node answers `-MOVED` and the command blocks again at the new owner, for the time left.
    pub async fn run_blocking(
        &self,
        target: Target,
        args: &[&[u8]],
        block: Block,
    ) -> Result<Value> {
        self.own_write(args);
        let result = self.run_blocking_plain(target, args, block).await;
        self.own_write(args);
        result
    }

    async fn run_blocking_plain(
        &self,
        target: Target,
        args: &[&[u8]],
        block: Block,
    ) -> Result<Value> {
        match self.attempt(Dest::Route(target), args, Some(&block)).await {
            Ok(Value::Error(e)) => {
                self.retry(target, args, Error::Server(e), Instant::now(), Some(&block))
                    .await
            }
            Ok(v) => Ok(v),
            Err(e) => {
                self.retry(target, args, e, Instant::now(), Some(&block))
                    .await
            }
        }
    }

    /// One attempt of a command: on the shared connections, or for a blocking command on a
    /// dedicated one with the timeout that is left (nil when none is: the command timed
    /// out).
    async fn attempt(&self, dest: Dest, args: &[&[u8]], block: Option<&Block>) -> Result<Value> {
        // A blocking call: where its timeout goes, and what is left of it.
        let blocking = match block {
            Some(b) => match b.left(b.called.elapsed()) {
                Ok(left) => Some((b.pos, left)),
                Err(()) => return Ok(Value::Nil),
            },
            None => None,
        };
        let (pool, asking) = match dest {
            Dest::Route(target) if blocking.is_none() => {
                return self.send(target, resp::command(args))?.wait().await;
            }
            Dest::Route(target) => {
                let routes = self.routes();
                let pool = match target {
                    Target::Slot(slot) => routes.owner(slot),
                    Target::Any => routes.any(),
                };
                match pool {
                    Some(pool) => (pool.clone(), false),
                    None => return Err(Error::NoCluster("no DataNode owns the slot".into())),
                }
            }
            Dest::Node(addr) => (self.pool_in(&self.routes(), addr), false),
            Dest::Asking(addr) => (self.pool_in(&self.routes(), addr), true),
        };
        let mut data = BytesMut::new();
        if asking {
            resp::encode_command(&["ASKING"], &mut data);
        }
        let count = 1 + usize::from(asking);
        let Some((pos, (patience, timeout))) = blocking else {
            resp::encode_command(args, &mut data);
            let replies = pool.send_many(data.freeze(), count)?.wait().await?;
            return last_reply(pool.addr(), replies);
        };
        let mut args = args.to_vec();
        if let (Some(t), Some(slot)) = (&timeout, args.get_mut(pos)) {
            *slot = t.as_bytes();
        }
        resp::encode_command(&args, &mut data);
        let conn = pool.dedicated();
        let replies = conn.send(data.freeze(), count, patience)?.wait().await?;
        conn.finish();
        last_reply(pool.addr(), replies)
    }

    /// The retry loop: one `match` on what the last failure means.
    async fn retry(
        &self,
        target: Target,
        args: &[&[u8]],
        mut error: Error,
        mut started: Instant,
        block: Option<&Block>,
    ) -> Result<Value> {
        let mut attempts = 1u32;
        let mut waits = 0u32;
        let mut hops = 0u32;
        // Time spent in attempts (waiting for answers), which the time budget leaves out.
        let mut answering = Duration::ZERO;
        loop {
            let waited = started.elapsed().saturating_sub(answering);
            debug!(?target, attempts, error = %error, "retrying");
            let direct = match error.retry() {
                Retry::No => return Err(error),
                Retry::Moved { slot, addr } => {
                    self.apply_moved(slot, addr);
                    hops += 1;
                    // A redirect leads forward during a handoff: follow it at once. Beyond the
                    // second for one request, nodes disagree for the moment (one has not
                    // applied the newest table): wait for the cluster to settle, not bounce.
                    if hops > 2 {
                        self.wait_for_table(hops - 2, waited).await;
                    }
                    Dest::Node(addr)
                }
                Retry::Ask { addr } => Dest::Asking(addr),
                Retry::Later => {
                    waits += 1;
                    self.wait_for_table(waits, waited).await;
                    Dest::Route(target)
                }
            };
            let waited = started.elapsed().saturating_sub(answering);
            if attempts >= self.retry.attempts || waited >= self.retry.time {
                debug!(attempts, error = %error, "retry budget exhausted");
                return Err(Error::RetriesExhausted {
                    attempts,
                    elapsed: started.elapsed(),
                    last: Box::new(error),
                });
            }
            attempts += 1;
            let asked = Instant::now();
            error = match self.attempt(direct, args, block).await {
                Ok(Value::Error(e)) => Error::Server(e),
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if block.is_some() && asked.elapsed() >= BLOCKED_ATTEMPT {
                // It blocked, then its slot moved (or its node went): a new start.
                (attempts, waits, hops, started) = (1, 0, 0, Instant::now());
                answering = Duration::ZERO;
            } else {
                answering += asked.elapsed();
            }
        }
    }

    /// Waits for a new table, or a backoff (5 ms doubling to 250 ms), whichever comes
    /// first, never past the time budget.
    async fn wait_for_table(&self, waits: u32, waited: Duration) {
        let backoff = Duration::from_millis((5u64 << waits.saturating_sub(1).min(6)).min(250));
        let left = self.retry.time.saturating_sub(waited);
        let mut tables = self.tables.subscribe();
        let _ = tokio::time::timeout(backoff.min(left), tables.changed()).await;
    }

    /// Runs several commands, each routed by its target: grouped per node, one pipelined
    /// write per node, all nodes at once; replies come back in the commands' order. Commands
    /// that need a retry are retried one by one afterwards, in order.
    pub async fn run_many(&self, parts: &[(Target, Vec<&[u8]>)]) -> Vec<Result<Value>> {
        if self.near.is_some() {
            for (_, args) in parts {
                self.own_write(args);
            }
            let results = self.run_many_plain(parts).await;
            for (_, args) in parts {
                self.own_write(args);
            }
            return results;
        }
        self.run_many_plain(parts).await
    }

    async fn run_many_plain(&self, parts: &[(Target, Vec<&[u8]>)]) -> Vec<Result<Value>> {
        let mut results: Vec<Option<Result<Value>>> = vec![None; parts.len()];
        // Retry candidates: (part index, first error).
        let mut again: Vec<(usize, Error)> = Vec::new();
        let mut sent: Vec<Sent> = Vec::new();
        {
            let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
            let groups = split::group(0..parts.len(), |i| match parts[i].0 {
                Target::Slot(slot) => routes.owner_index(slot),
                Target::Any => routes
                    .any()
                    .and_then(|p| routes.nodes.iter().position(|n| Arc::ptr_eq(n, p))),
            });
            for (node, members) in groups {
                let Some(node) = node else {
                    let unowned = || Error::NoCluster("no DataNode owns the slot".into());
                    again.extend(members.into_iter().map(|i| (i, unowned())));
                    continue;
                };
                let pool = &routes.nodes[node];
                let mut data = BytesMut::new();
                for &i in &members {
                    resp::encode_command(&parts[i].1, &mut data);
                }
                let count = members.len();
                sent.push((members, pool.addr(), pool.send_many(data.freeze(), count)));
            }
        }
        for (members, addr, pending) in sent {
            let replies = match pending {
                Ok(p) => p.wait().await,
                Err(e) => Err(e),
            };
            match replies {
                Ok(values) if values.len() == members.len() => {
                    for (i, value) in members.into_iter().zip(values) {
                        match value {
                            Value::Error(e) => {
                                let e = Error::Server(e);
                                match e.retry() {
                                    Retry::No => results[i] = Some(Err(e)),
                                    _ => again.push((i, e)),
                                }
                            }
                            v => results[i] = Some(Ok(v)),
                        }
                    }
                }
                Ok(_) => {
                    for i in members {
                        results[i] = Some(Err(Error::Protocol {
                            addr,
                            message: "wrong number of replies to a pipeline".into(),
                        }));
                    }
                }
                Err(e) => match e.retry() {
                    Retry::No => {
                        for i in members {
                            results[i] = Some(Err(e.clone()));
                        }
                    }
                    _ => again.extend(members.into_iter().map(|i| (i, e.clone()))),
                },
            }
        }
        again.sort_by_key(|(i, _)| *i);
        for (i, error) in again {
            let (target, args) = &parts[i];
            // Each retried command has its own budget, counted from now: the batch's first
            // attempt (a slow answer) and the retries before it do not use it up.
            results[i] = Some(self.retry(*target, args, error, Instant::now(), None).await);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::Invalid("command not sent".into()))))
            .collect()
    }

    /// A command of this client may change keys: the near-cache forgets them (before the
    /// command is sent, and again when its reply is in, so a GET that raced it is not kept),
    /// and a caller reads its own writes. Reads that cannot change a key are left alone.
    pub(crate) fn own_write(&self, args: &[&[u8]]) {
        let (Some(near), Some(name)) = (&self.near, args.first()) else {
            return;
        };
        if crate::nearcache::keeps_keys(name) {
            return;
        }
        if crate::nearcache::drops_everything(name) {
            near.clear(false);
            return;
        }
        let spec = key_spec(name);
        for p in spec.positions(args.len()) {
            if let Some(key) = args.get(p) {
                near.invalidate(key, slot_of(key), false);
            }
        }
    }

    /// GET through the near-cache: a hit when the key was read through the node that owns
    /// its slot now and not invalidated since; else `CLIENT CACHING YES` and GET to the
    /// owner, whose reply fills the cache. Anything but a plain reply (a redirect, a lost
    /// connection) falls back to the uncached GET with its retries.
    pub async fn cached_get(&self, near: &Arc<NearCache>, key: &[u8]) -> Result<Value> {
        let slot = slot_of(key);
        let pending = {
            let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
            match routes.owner(slot) {
                Some(pool) => {
                    if let Some(hit) = near.lookup(key, slot, Some(pool.addr()), Instant::now()) {
                        return Ok(hit.map_or(Value::Nil, Value::Bulk));
                    }
                    let fill = near.begin(key, slot);
                    let mut data = BytesMut::new();
                    resp::encode_command(&["CLIENT", "CACHING", "YES"], &mut data);
                    resp::encode_command(&[&b"GET"[..], key], &mut data);
                    pool.send_cached(data.freeze(), fill)
                }
                None => Err(Error::NoCluster(format!("no DataNode owns slot {slot}"))),
            }
        };
        let args: [&[u8]; 2] = [b"GET", key];
        let target = Target::Slot(slot);
        match pending.map(Pending::wait) {
            Ok(p) => match p.await {
                Ok(Value::Error(e)) => {
                    self.retry(target, &args, Error::Server(e), Instant::now(), None)
                        .await
                }
                Ok(v) => Ok(v),
                Err(e) => self.retry(target, &args, e, Instant::now(), None).await,
            },
            Err(e) => self.retry(target, &args, e, Instant::now(), None).await,
        }
    }

    /// Runs a command whose keys may live in several slots: split by slot (`split` says how
    /// to merge), sent to every owner at once, answered in key order.
    pub async fn run_split(&self, args: &[&[u8]]) -> Result<Value> {
        let Some(name) = args.first() else {
            return Err(Error::Invalid("empty command".into()));
        };
        if let Some(block) = Block::of(args) {
            return self.run_blocking(target_of(args), args, block).await;
        }
        let spec = key_spec(name);
        let positions: Vec<usize> = spec.positions(args.len()).collect();
        if spec.split == Split::No || positions.is_empty() {
            return self.run(target_of(args), args).await;
        }
        if spec.split == Split::Mset && args.len().is_multiple_of(2) {
            // A key without its value: the server's own arity error, from any node.
            return self.run(Target::Any, args).await;
        }
        let groups = split::group(positions.iter().copied(), |p| slot_of(args[p]));
        if groups.len() == 1 {
            return self.run(Target::Slot(groups[0].0), args).await;
        }
        let parts: Vec<(Target, Vec<&[u8]>)> = groups
            .iter()
            .map(|(slot, members)| {
                let sub = split::share(name, members, spec.split.step(), |i| args[i]);
                (Target::Slot(*slot), sub)
            })
            .collect();
        let mut shares = Vec::with_capacity(parts.len());
        for reply in self.run_many(&parts).await {
            shares.push(match reply? {
                // A share of the wrong kind is named as the client names values.
                Value::Array(items) if spec.split == Split::Mget => Share::Array(items),
                Value::Int(n) if spec.split == Split::Sum => Share::Integer(n),
                other => Share::Other(other.kind()),
            });
        }
        let merged = split::merge(spec.split, &positions, &groups, shares)
            .map_err(|e| Error::Type(e.to_string()))?;
        Ok(match merged {
            Merged::Values(values) => {
                let nil = |v: Option<Value>| v.unwrap_or(Value::Nil);
                Value::Array(values.into_iter().map(nil).collect())
            }
            Merged::Ok => Value::Okay,
            Merged::Integer(n) => Value::Int(n),
        })
    }
}

/// The last of the replies to `ASKING` and a command (or the command alone).
fn last_reply(addr: SocketAddr, mut replies: Vec<Value>) -> Result<Value> {
    replies.pop().ok_or_else(|| Error::Protocol {
        addr,
        message: "missing reply".into(),
    })
}

/// One node's share of [`Shared::run_many`]: the commands' indexes, the node, the replies.
type Sent = (Vec<usize>, SocketAddr, Result<Pending<Vec<Value>>>);

/// Where a single command goes: the slot its keys share, or any node when it has none.
/// Keys in different slots go to the first key's slot, whose node answers `-CROSSSLOT`
/// (Redis Cluster's rule).
pub(crate) fn target_of(args: &[&[u8]]) -> Target {
    let Some(name) = args.first() else {
        return Target::Any;
    };
    let spec = key_spec(name);
    let mut keys = spec.positions(args.len()).map(|i| args[i]);
    match keys.next() {
        Some(first) => Target::Slot(slot_of(first)),
        None => Target::Any,
    }
}

impl Client {
    /// Connects through the NameNode(s) at `namenodes` with the default options; see
    /// [`Builder::connect`].
    pub async fn connect(namenodes: impl NameNodes) -> Result<Client> {
        Builder::default().connect(namenodes).await
    }

    /// Options: timeouts, connections per node, retry budget, password, RESP3.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The latest table's epoch and nodes, updated at every ring change. `changed().await`
    /// on the receiver waits for the next one.
    pub fn watch_ring(&self) -> watch::Receiver<RingInfo> {
        self.shared().ring.subscribe()
    }

    /// The latest table's epoch and nodes.
    pub fn ring(&self) -> RingInfo {
        self.shared().ring.borrow().clone()
    }

    /// The address of the DataNode `key` is sent to now.
    pub fn node_for_key(&self, key: impl AsRef<[u8]>) -> Option<SocketAddr> {
        self.shared().routes().owner_addr(slot_of(key.as_ref()))
    }

    /// The DataNodes that own slots now: where node-wide commands ([`dbsize`],
    /// [`flushall`], [`keys`], [`scan_all`]) go.
    ///
    /// [`dbsize`]: Client::dbsize
    /// [`flushall`]: Client::flushall
    /// [`keys`]: Client::keys
    /// [`scan_all`]: Client::scan_all
    pub fn nodes(&self) -> Vec<SocketAddr> {
        self.shared()
            .routes()
            .owning_nodes()
            .iter()
            .map(|p| p.addr())
            .collect()
    }

    /// Sends any command and returns the raw reply. Routed by its keys when the command is
    /// one CHKV serves (the first key's slot; MGET, MSET, DEL, UNLINK, EXISTS and TOUCH are
    /// split per slot and merged like a single node would answer), else to any node, whose
    /// `-MOVED` is then followed. Error replies are [`Error::Server`].
    ///
    /// ```no_run
    /// # async fn demo(client: chkv_client::Client) -> chkv_client::Result<()> {
    /// let reply = client.cmd(["SET", "greeting", "hello", "EX", "60"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn cmd<I, A>(&self, args: I) -> Result<Value>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let owned: Vec<A> = args.into_iter().collect();
        let args: Vec<&[u8]> = owned.iter().map(AsRef::as_ref).collect();
        if args.is_empty() {
            return Err(Error::Invalid("empty command".into()));
        }
        self.shared().run_split(&args).await
    }

    /// Sends a command to one DataNode, unrouted and without retries: for node-local
    /// commands (INFO, DBSIZE, KEYS, SCAN, CONFIG, ...). A key the node does not own gets
    /// `-MOVED` as the reply.
    pub async fn cmd_on<I, A>(&self, node: SocketAddr, args: I) -> Result<Value>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        let owned: Vec<A> = args.into_iter().collect();
        let args: Vec<&[u8]> = owned.iter().map(AsRef::as_ref).collect();
        if args.is_empty() {
            return Err(Error::Invalid("empty command".into()));
        }
        self.run_on(node, &args).await
    }

    pub(crate) async fn run_on(&self, node: SocketAddr, args: &[&[u8]]) -> Result<Value> {
        let shared = self.shared();
        let pool = shared.pool_in(&shared.routes(), node);
        shared.own_write(args);
        let reply = pool.send(resp::command(args))?.wait().await;
        shared.own_write(args);
        match reply? {
            Value::Error(e) => Err(Error::Server(e)),
            v => Ok(v),
        }
    }

    /// The near-cache's counters; `None` when it is off ([`Builder::near_cache`]).
    pub fn near_cache_stats(&self) -> Option<crate::NearCacheStats> {
        self.shared().near.as_ref().map(|n| n.stats())
    }

    /// Empties the near-cache (GETs in flight are not kept either).
    pub fn near_cache_clear(&self) {
        if let Some(near) = &self.shared().near {
            near.clear(false);
        }
    }
}
