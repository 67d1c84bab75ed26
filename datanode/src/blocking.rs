//! Clients blocked on keys: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX
//! and BZMPOP, and any other command that waits for a key to hold something: each names a
//! [`Kind`] to wait for and which blocking command it is ([`Serve`]). This module is the
//! registry of waiters and their wake-ups; running a waiter's command when a key serves it is
//! the command side's, [`crate::cmd::blocking`].
//!
//! A blocking command first tries to run at once. When none of its keys can serve it, it
//! registers a [`Waiter`] on each of them ([`crate::cmd::blocking::block`]) while it still
//! holds every key's slot, so no write slips in between the try and the registration, and its
//! connection awaits the waiter's outcome ([`Blocked`]), holding no thread.
//!
//! The store reports every write to a key in a slot that has waiters (its ready hook, under
//! the slot's lock); such a key is queued here when it has waiters. After each request, and
//! so after a whole transaction or script, never inside one,
//! [`crate::cmd::blocking::serve_ready`] serves the queued keys: each key's waiters, oldest
//! first, for as long as the key holds a value of the kind they wait for. Serving runs the
//! waiter's command for that key (the function its [`Serve`] names) with the slots of all the
//! command's keys locked, and hands the reply to the waiting connection. What a served
//! command writes (BLMOVE's push) queues more keys, served in the same round, so chains of
//! BLMOVEs settle before the writer's reply goes out, as in Redis.
//!
//! A waiter ends exactly once (an atomic claim), whichever comes first: served, timed out,
//! unblocked (CLIENT UNBLOCK), its connection closed, or moved: when a key's slot stops being
//! this node's (a handoff's flip, a new table), its waiters get [`Wake::Moved`] and their
//! connections run the command again where the slot is now (forwarded, `-MOVED`, or
//! blocked again there). A waiter whose keys are frozen by a handoff in progress is not
//! served until the flip (or, if the move fails, the unfreeze) settles where it runs.

use crate::client::ClientInfo;
use crate::resp::{Frame, Protocol, Request};
use crate::store::{BlockedSlots, Kind};
use bytes::Bytes;
use chkv_common::key_slot;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Which blocking command a waiter is: what to run when a key becomes ready for it
/// ([`crate::cmd::blocking`] maps each to its command's serve function).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serve {
    /// BLPOP and BRPOP.
    Bpop,
    /// BLMOVE and BRPOPLPUSH.
    Blmove,
    /// BLMPOP.
    Blmpop,
    /// BZPOPMIN and BZPOPMAX.
    Bzpop,
    /// BZMPOP.
    Bzmpop,
}

/// How a waiter ended, for its connection.
#[derive(Debug)]
pub enum Wake {
    /// The command's reply (served, timed out or unblocked).
    Reply(Frame),
    /// A key's slot left this node: run the command again where it is now.
    Moved,
}

/// One blocked command. What it is (client, request, slots, kind, command) is fixed when it
/// blocks; how it ends is [`Blocking`]'s.
pub struct Waiter {
    pub(crate) client: Arc<ClientInfo>,
    pub(crate) proto: Protocol,
    pub(crate) req: Request,
    /// The distinct keys it waits on, in the command's order.
    keys: Vec<Bytes>,
    /// The slots of every key of the command (destinations too): locked to serve it.
    pub(crate) slots: Vec<u16>,
    pub(crate) kind: Kind,
    pub(crate) serve: Serve,
    timeout_reply: Frame,
    done: AtomicBool,
    tx: Mutex<Option<oneshot::Sender<Wake>>>,
}

impl Waiter {
    /// Ends the waiter; true for the one caller that gets to.
    fn claim(&self) -> bool {
        !self.done.swap(true, Ordering::AcqRel)
    }

    /// Whether it has ended (served, timed out, unblocked, closed or moved).
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Hands the outcome to the waiting connection.
    pub(crate) fn send(&self, w: Wake) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(w);
        }
    }
}

#[derive(Default)]
struct Registry {
    /// Waiters of each key, oldest first.
    keys: HashMap<Bytes, VecDeque<Arc<Waiter>>>,
    /// Waiters by client id (CLIENT UNBLOCK).
    clients: HashMap<u64, Arc<Waiter>>,
    /// Key registrations per slot; a slot's [`BlockedSlots`] bit is on while it has any.
    slots: HashMap<u16, usize>,
    /// Clients of this node whose blocking command waits on another node (forwarded): how
    /// to unblock them there.
    remote: HashMap<u64, RemoteBlocked>,
}

/// A client whose blocking command was forwarded: its id on the owner's side.
#[derive(Clone, Debug)]
pub struct RemoteBlocked {
    pub addr: std::net::SocketAddr,
    pub peer_client_id: i64,
}

/// The registry of blocked clients of one node.
pub struct Blocking {
    reg: Mutex<Registry>,
    bits: Arc<BlockedSlots>,
    /// Keys written while they had waiters, to be served.
    ready: Mutex<Vec<Bytes>>,
    has_ready: AtomicBool,
    /// Blocked clients (INFO `blocked_clients`), forwarded ones included.
    count: AtomicUsize,
}

impl Blocking {
    pub fn new(bits: Arc<BlockedSlots>) -> Blocking {
        Blocking {
            reg: Mutex::new(Registry::default()),
            bits,
            ready: Mutex::new(Vec::new()),
            has_ready: AtomicBool::new(false),
            count: AtomicUsize::new(0),
        }
    }

    /// Clients blocked now (INFO `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Keys with at least one local waiter (INFO `total_blocking_keys`).
    pub fn blocking_keys(&self) -> usize {
        self.reg.lock().keys.len()
    }

    /// The store's ready hook: `key` was written (its slot is locked).
    pub fn key_written(&self, key: &[u8]) {
        if !self.reg.lock().keys.contains_key(key) {
            return;
        }
        let mut r = self.ready.lock();
        r.push(Bytes::copy_from_slice(key));
        self.has_ready.store(true, Ordering::Release);
    }

    fn register(&self, w: &Arc<Waiter>) {
        let mut reg = self.reg.lock();
        for k in &w.keys {
            reg.keys.entry(k.clone()).or_default().push_back(w.clone());
            let slot = key_slot(k);
            *reg.slots.entry(slot).or_default() += 1;
            self.bits.set(slot, true);
        }
        reg.clients.insert(w.client.id, w.clone());
        w.client.blocked.store(true, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a claimed waiter out of the registry.
    fn remove(&self, w: &Arc<Waiter>) {
        let mut reg = self.reg.lock();
        for k in &w.keys {
            if let Some(q) = reg.keys.get_mut(k) {
                q.retain(|x| !Arc::ptr_eq(x, w));
                if q.is_empty() {
                    reg.keys.remove(k);
                }
            }
            let slot = key_slot(k);
            if let Some(n) = reg.slots.get_mut(&slot) {
                *n -= 1;
                if *n == 0 {
                    reg.slots.remove(&slot);
                    self.bits.set(slot, false);
                }
            }
        }
        if reg
            .clients
            .get(&w.client.id)
            .is_some_and(|x| Arc::ptr_eq(x, w))
        {
            reg.clients.remove(&w.client.id);
        }
        w.client.blocked.store(false, Ordering::Relaxed);
        self.count.fetch_sub(1, Ordering::Relaxed);
    }

    /// Ends `w` with `wake` if nobody else ended it first.
    fn finish(&self, w: &Arc<Waiter>, wake: Wake) -> bool {
        if !w.claim() {
            return false;
        }
        self.remove(w);
        w.send(wake);
        true
    }

    /// CLIENT UNBLOCK: ends the blocked command of client `id` with its timeout reply, or
    /// with `-UNBLOCKED` when `error`. Returns whether the client was blocked here (a
    /// forwarded one is unblocked on its owner by the caller, see [`Blocking::remote_of`]).
    pub fn unblock(&self, id: u64, error: bool) -> bool {
        let w = self.reg.lock().clients.get(&id).cloned();
        let Some(w) = w else {
            return false;
        };
        let reply = if error {
            Frame::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        } else {
            w.timeout_reply.clone()
        };
        self.finish(&w, Wake::Reply(reply))
    }

    /// Where client `id`'s forwarded blocking command waits, if it does.
    pub fn remote_of(&self, id: u64) -> Option<RemoteBlocked> {
        self.reg.lock().remote.get(&id).cloned()
    }

    /// Records that client `id` is blocked on another node (until the guard drops).
    pub fn remote_blocked(
        self: &Arc<Self>,
        client: &Arc<ClientInfo>,
        at: RemoteBlocked,
    ) -> RemoteGuard {
        self.reg.lock().remote.insert(client.id, at);
        client.blocked.store(true, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        RemoteGuard {
            reg: self.clone(),
            client: client.clone(),
        }
    }

    /// Tells every waiter with a key in a slot for which `gone` holds that it moved.
    pub fn slots_moved(&self, gone: impl Fn(u16) -> bool) {
        if self.blocked_clients() == 0 {
            return;
        }
        let moved: Vec<Arc<Waiter>> = self
            .reg
            .lock()
            .clients
            .values()
            .filter(|w| w.keys.iter().any(|k| gone(key_slot(k))))
            .cloned()
            .collect();
        for w in moved {
            self.finish(&w, Wake::Moved);
        }
    }

    /// Queues the keys of `slots` that have waiters (after a handoff released its freeze
    /// without moving them: writes made them ready while serving was held back).
    pub fn slots_unfrozen(&self, slots: &[u16]) {
        let keys: Vec<Bytes> = self
            .reg
            .lock()
            .keys
            .keys()
            .filter(|k| slots.contains(&key_slot(k)))
            .cloned()
            .collect();
        if keys.is_empty() {
            return;
        }
        self.ready.lock().extend(keys);
        self.has_ready.store(true, Ordering::Release);
    }

    /// The waiters of `key`, oldest first (some may have ended since).
    pub(crate) fn waiters(&self, key: &[u8]) -> Vec<Arc<Waiter>> {
        match self.reg.lock().keys.get(key) {
            Some(q) => q.iter().cloned().collect(),
            None => Vec::new(),
        }
    }

    /// Claims `w` to serve it and takes it out of the registry; false when it already ended.
    /// The claimer then [`Waiter::send`]s the reply.
    pub(crate) fn take(&self, w: &Arc<Waiter>) -> bool {
        if !w.claim() {
            return false;
        }
        self.remove(w);
        true
    }

    /// The keys that writes made ready since the last call, if any (one atomic load when
    /// none).
    pub(crate) fn take_ready(&self) -> Option<Vec<Bytes>> {
        if !self.has_ready.load(Ordering::Acquire) {
            return None;
        }
        let mut r = self.ready.lock();
        self.has_ready.store(false, Ordering::Release);
        Some(std::mem::take(&mut *r))
    }

    /// Blocks `req` of `client` as `wait` says: registers its waiter on each key and returns
    /// the connection's wait.
    pub fn block(
        self: &Arc<Self>,
        client: Arc<ClientInfo>,
        proto: Protocol,
        req: &Request,
        wait: Wait<'_>,
    ) -> Blocked {
        let Wait {
            keys,
            slots,
            kind,
            timeout,
            timeout_reply,
            serve,
        } = wait;
        let mut distinct: Vec<Bytes> = Vec::with_capacity(keys.len());
        for k in keys {
            if !distinct.iter().any(|d| d == k) {
                distinct.push(Bytes::copy_from_slice(k));
            }
        }
        let (tx, rx) = oneshot::channel();
        let w = Arc::new(Waiter {
            client,
            proto,
            req: req.clone(),
            keys: distinct,
            slots,
            kind,
            serve,
            timeout_reply,
            done: AtomicBool::new(false),
            tx: Mutex::new(Some(tx)),
        });
        self.register(&w);
        Blocked {
            reg: self.clone(),
            waiter: w,
            rx,
            deadline: timeout.map(|t| tokio::time::Instant::now() + t),
            started: Instant::now(),
        }
    }
}

/// Keeps a forwarded client counted as blocked while its command waits on another node.
pub struct RemoteGuard {
    reg: Arc<Blocking>,
    client: Arc<ClientInfo>,
}

impl Drop for RemoteGuard {
    fn drop(&mut self) {
        self.reg.reg.lock().remote.remove(&self.client.id);
        self.client.blocked.store(false, Ordering::Relaxed);
        self.reg.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a blocking command may block now: not inside a transaction or a script, where
/// Redis runs it as its non-blocking form.
pub fn may_block() -> bool {
    !crate::store::Db::in_tx()
}

/// Parses a blocking command's timeout in seconds (fractions allowed, 0 = forever), with
/// Redis's error texts.
pub fn timeout_arg(a: &[u8]) -> Result<Option<Duration>, Frame> {
    let secs = crate::args::parse_f64(a)
        .ok_or(Frame::err("ERR timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    if ms > i64::MAX as f64 {
        return Err(Frame::err("ERR timeout is out of range"));
    }
    if ms < 0.0 {
        return Err(Frame::err("ERR timeout is negative"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// What a blocking command waits for.
pub struct Wait<'a> {
    /// The keys it waits on.
    pub keys: &'a [&'a [u8]],
    /// Every slot the command touches when served (destinations too).
    pub slots: Vec<u16>,
    /// The type a key must hold to serve it.
    pub kind: Kind,
    /// `None`: forever.
    pub timeout: Option<Duration>,
    /// The reply on timeout (and CLIENT UNBLOCK's default).
    pub timeout_reply: Frame,
    /// Which command to run when a key serves it.
    pub serve: Serve,
}

/// A connection's wait for its blocked command ([`Blocking::block`]). Dropped unfinished (the
/// connection closed), it takes the waiter out.
pub struct Blocked {
    reg: Arc<Blocking>,
    waiter: Arc<Waiter>,
    rx: oneshot::Receiver<Wake>,
    deadline: Option<tokio::time::Instant>,
    started: Instant,
}

impl Blocked {
    /// Waits for the outcome.
    pub async fn wait(&mut self) -> Wake {
        let deadline = self.deadline;
        let timed_out = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut self.rx => return r.unwrap_or(Wake::Moved),
            _ = timed_out => {}
        }
        // Timed out, unless something else ended the waiter first: either way its reply is
        // in the channel (or about to be).
        let reply = self.waiter.timeout_reply.clone();
        self.reg.finish(&self.waiter, Wake::Reply(reply));
        (&mut self.rx).await.unwrap_or(Wake::Moved)
    }

    /// The request to run again after [`Wake::Moved`]: its timeout reduced by the time
    /// already waited (a timeout of 0 stays 0).
    pub fn request_again(&self) -> Request {
        with_remaining_timeout(&self.waiter.req, self.started.elapsed())
    }

    /// The blocked request as sent.
    pub fn request(&self) -> &Request {
        &self.waiter.req
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if self.waiter.claim() {
            self.reg.remove(&self.waiter);
        }
    }
}

/// The argument index of a blocking command's timeout, if `req` is one.
pub fn timeout_index(req: &Request) -> Option<usize> {
    let name = req.arg(0);
    let last = req.len().checked_sub(1)?;
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("blmpop") || is("bzmpop") {
        (req.len() > 1).then_some(1)
    } else if is("blpop")
        || is("brpop")
        || is("brpoplpush")
        || is("blmove")
        || is("bzpopmin")
        || is("bzpopmax")
    {
        Some(last)
    } else {
        None
    }
}

/// `req` with its timeout reduced by `elapsed` (at least a millisecond left; 0 stays 0).
pub fn with_remaining_timeout(req: &Request, elapsed: Duration) -> Request {
    let Some(i) = timeout_index(req) else {
        return req.clone();
    };
    let Ok(Some(t)) = timeout_arg(req.arg(i)) else {
        return req.clone();
    };
    let left = t.saturating_sub(elapsed).max(Duration::from_millis(1));
    let secs = format!("{:.3}", left.as_secs_f64());
    let args: Vec<&[u8]> = (0..req.len())
        .map(|k| if k == i { secs.as_bytes() } else { req.arg(k) })
        .collect();
    Request::from_args(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(timeout_arg(b"0"), Ok(None));
        assert_eq!(timeout_arg(b"1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(timeout_arg(b"0.0001"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(
            timeout_arg(b"-1"),
            Err(Frame::err("ERR timeout is negative"))
        );
        assert_eq!(
            timeout_arg(b"x"),
            Err(Frame::err("ERR timeout is not a float or out of range"))
        );
        assert_eq!(
            timeout_arg(b"inf"),
            Err(Frame::err("ERR timeout is out of range"))
        );
    }

    #[test]
    fn remaining_timeouts() {
        let r = Request::from_args(["BLPOP", "a", "b", "10"]);
        let again = with_remaining_timeout(&r, Duration::from_millis(2500));
        assert_eq!(again.arg(3), b"7.500");
        let r = Request::from_args(["BLMPOP", "2", "1", "a", "LEFT"]);
        assert_eq!(
            with_remaining_timeout(&r, Duration::from_secs(5)).arg(1),
            b"0.001"
        );
        let r = Request::from_args(["BLPOP", "a", "0"]);
        assert_eq!(
            with_remaining_timeout(&r, Duration::from_secs(5)).arg(2),
            b"0"
        );
        let r = Request::from_args(["GET", "a"]);
        assert_eq!(
            with_remaining_timeout(&r, Duration::from_secs(5)).arg(1),
            b"a"
        );
    }
}
