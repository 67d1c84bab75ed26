//! One connection as the node sees it: [`ClientInfo`] (what CLIENT LIST, CLIENT INFO and
//! the client registry show and share with the connection's task) and [`Tracker`], its
//! CLIENT TRACKING mode. Plain state: the commands that read or change it live in
//! [`crate::cmd`], the tracking table in [`crate::tracking`].

use crate::pubsub::Subscriber;
use bytes::Bytes;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What CLIENT LIST/INFO shows about one connection, shared with its task.
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    /// When the connection was made, a [`crate::clock::stamp`]: each round of its requests
    /// reads its age ([`ClientInfo::age_secs`]) at the cost of a tick read.
    created: u64,
    /// Seconds since `created` at the last command.
    pub last_active: AtomicU64,
    /// Index of the last command in the command table.
    pub last_cmd: AtomicU32,
    pub resp: AtomicU32,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<Bytes>>,
    pub lib_ver: Mutex<Option<Bytes>>,
    /// Set on the first (P|S)SUBSCRIBE; the node forgets its subscriptions when it leaves.
    pub subscriber: std::sync::OnceLock<Arc<crate::pubsub::Subscriber>>,
    /// The ACL user the connection runs as (CLIENT LIST's `user=`).
    pub user: Mutex<Bytes>,
    /// Blocked in a blocking command (CLIENT LIST's `b` flag).
    pub blocked: std::sync::atomic::AtomicBool,
    /// Its CLIENT TRACKING mode while tracking is on.
    pub tracking: Mutex<Option<Arc<Tracker>>>,
}

impl ClientInfo {
    /// Whole seconds since the connection was made, on the clock `last_active` is kept by.
    #[inline]
    pub fn age_secs(&self) -> u64 {
        crate::clock::elapsed_us(self.created) / 1_000_000
    }

    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            created: crate::clock::stamp(),
            last_active: AtomicU64::new(0),
            last_cmd: AtomicU32::new(u32::MAX),
            resp: AtomicU32::new(2),
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            subscriber: std::sync::OnceLock::new(),
            user: Mutex::new(Bytes::from_static(b"default")),
            blocked: Default::default(),
            tracking: Mutex::new(None),
        }
    }
}

/// One client's tracking mode. Fixed once made: CLIENT TRACKING ON again installs a new one.
pub struct Tracker {
    pub id: u64,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// The client invalidations go to (0: the tracking client itself).
    pub redirect: u64,
    /// BCAST prefixes (the empty prefix matches every key).
    pub prefixes: Vec<Bytes>,
    /// The redirect target was gone when a message was due (CLIENT LIST's `R`).
    pub(crate) broken: AtomicBool,
    /// The client's own outbox.
    pub(crate) sub: Arc<Subscriber>,
}

impl Tracker {
    pub fn broken(&self) -> bool {
        self.broken.load(Relaxed)
    }

    /// CLIENT TRACKINGINFO's flags after `on`.
    pub fn flags(&self, caching: bool) -> Vec<&'static str> {
        let mut f = vec!["on"];
        if self.bcast {
            f.push("bcast");
        }
        if self.optin {
            f.push("optin");
            if caching {
                f.push("caching-yes");
            }
        }
        if self.optout {
            f.push("optout");
            if caching {
                f.push("caching-no");
            }
        }
        if self.noloop {
            f.push("noloop");
        }
        if self.broken() {
            f.push("broken_redirect");
        }
        f
    }
}
