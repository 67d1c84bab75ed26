//! The per-node pool: shared pipelined connections used round-robin, and dedicated ones for
//! blocking commands.

use super::*;

/// A few connections to one node, used round-robin and replaced when they close.
pub(crate) struct NodePool {
    addr: SocketAddr,
    config: Arc<ConnConfig>,
    conns: Box<[RwLock<Option<Conn>>]>,
    next: AtomicUsize,
    /// Dedicated connections between blocking calls.
    idle: Mutex<Vec<Conn>>,
}

impl NodePool {
    pub fn new(addr: SocketAddr, config: Arc<ConnConfig>, size: usize) -> NodePool {
        NodePool {
            addr,
            config,
            conns: (0..size.max(1)).map(|_| RwLock::new(None)).collect(),
            next: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection of its own for one blocking call: an idle one, or a new one.
    pub fn dedicated(self: &Arc<Self>) -> Dedicated {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // The closed ones on the way are dropped.
            std::iter::from_fn(|| idle.pop()).find(|conn| !conn.is_closed())
        };
        let conn = idle.unwrap_or_else(|| spawn(self.addr, self.config.clone()));
        Dedicated {
            conn: Some(conn),
            pool: self.clone(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues `data` with the reply slot `waiter` makes; the reply comes back through the
    /// returned [`Pending`].
    fn send_to<T>(
        &self,
        data: Bytes,
        waiter: impl FnOnce(oneshot::Sender<Result<T>>) -> Waiter,
    ) -> Result<Pending<T>> {
        let (tx, rx) = oneshot::channel();
        self.push(Job::new(data, waiter(tx)))?;
        Ok(Pending {
            rx,
            addr: self.addr,
        })
    }

    /// Sends one request.
    pub fn send(&self, data: Bytes) -> Result<Pending<Value>> {
        self.send_to(data, Waiter::One)
    }

    /// Sends `count` pipelined requests; their replies come back together, in order.
    pub fn send_many(&self, data: Bytes, count: usize) -> Result<Pending<Vec<Value>>> {
        if count == 0 {
            // A slot that wants no reply would take the next request's.
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Ok(Vec::new()));
            return Ok(Pending {
                rx,
                addr: self.addr,
            });
        }
        self.send_to(data, |tx| Waiter::Many {
            want: count,
            got: Vec::with_capacity(count),
            tx,
        })
    }

    /// Sends `CLIENT CACHING YES` and a GET (`data` holds both) whose reply fills the
    /// near-cache through `fill` before it is handed over.
    pub fn send_cached(&self, data: Bytes, fill: Fill) -> Result<Pending<Value>> {
        self.send_to(data, |tx| {
            Waiter::Cached(Box::new(CachedGet {
                caching: None,
                fill,
                tx,
            }))
        })
    }

    /// The error requests get once `conn` is gone.
    fn closed(&self, conn: &Conn) -> Error {
        conn.state().error().unwrap_or_else(|| Error::Connection {
            addr: self.addr,
            message: "connection closed".into(),
        })
    }

    fn push(&self, job: Job<Waiter>) -> Result<()> {
        let i = if self.conns.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len()
        };
        let cell = &self.conns[i];
        // Fast path: a live connection, used under the read lock (sending does not block).
        let mut job = {
            let guard = cell.read().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                Some(conn) if !conn.is_closed() => match conn.send(job) {
                    Ok(()) => return Ok(()),
                    Err(job) => job,
                },
                _ => job,
            }
        };
        let mut guard = cell.write().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = guard.as_ref() {
            if !conn.is_closed() {
                // Another caller replaced it meanwhile.
                match conn.send(job) {
                    Ok(()) => return Ok(()),
                    Err(j) => job = j,
                }
            } else if !conn.state().connected() && conn.state().closed_within(FAIL_FAST) {
                // The node refused us a moment ago: do not dial it again on every request.
                return Err(self.closed(conn));
            }
        }
        let conn = spawn(self.addr, self.config.clone());
        let pushed = conn.send(job);
        let error = self.closed(&conn);
        *guard = Some(conn);
        pushed.map_err(|_| error)
    }
}

/// A connection lent to one blocking call. [`Dedicated::finish`] gives it back to its pool
/// once the reply is in; dropped before that (the caller gave up, or the request failed), it
/// is closed, so the server unblocks the client rather than serving it.
pub(crate) struct Dedicated {
    conn: Option<Conn>,
    pool: Arc<NodePool>,
}

impl Dedicated {
    /// Sends `count` pipelined requests (ASKING and a command, or one command) that may wait
    /// as `patience` says; their replies come back together.
    pub fn send(
        &self,
        data: Bytes,
        count: usize,
        patience: Patience,
    ) -> Result<Pending<Vec<Value>>> {
        let addr = self.pool.addr;
        let Some(conn) = self.conn.as_ref() else {
            return Err(Error::Connection {
                addr,
                message: "connection closed".into(),
            });
        };
        let (tx, rx) = oneshot::channel();
        conn.send(Job {
            patience,
            ..Job::new(
                data,
                Waiter::Many {
                    want: count.max(1),
                    got: Vec::with_capacity(count.max(1)),
                    tx,
                },
            )
        })
        .map_err(|_| self.pool.closed(conn))?;
        Ok(Pending { rx, addr })
    }

    /// The call is answered: the connection goes back to the pool's idle ones (a few are
    /// kept; the rest close).
    pub fn finish(mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.is_closed() {
                return;
            }
            let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < IDLE_DEDICATED {
                idle.push(conn);
            }
        }
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.kill();
        }
    }
}
