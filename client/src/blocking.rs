//! A blocking wrapper for programs without an async runtime.
//!
//! It owns a small tokio runtime (one worker thread, so the ring watch and the connections
//! keep running between calls) and blocks the calling thread on each request. Do not use it
//! from inside an async runtime (tokio forbids blocking there); use [`crate::Client`].
//!
//! ```no_run
//! let client = chkv_client::blocking::Client::connect("127.0.0.1:10102")?;
//! client.set("greeting", "hello")?;
//! assert_eq!(client.get("greeting")?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), chkv_client::Error>(())
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::{Builder, Error, NameNodes, Result, RingInfo, SetOptions, SetReply, Ttl, Value};

/// A [`crate::Client`] whose methods block.
pub struct Client {
    // Declared first so it is dropped before the runtime its tasks live on.
    client: crate::Client,
    runtime: tokio::runtime::Runtime,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("chkv-client")
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start a tokio runtime: {e}")))
}

impl Client {
    /// Connects through the NameNode(s) at `namenodes`; see [`Builder::connect`].
    pub fn connect(namenodes: impl NameNodes) -> Result<Client> {
        Client::with_builder(crate::Client::builder(), namenodes)
    }

    /// Connects with the options of `builder`.
    pub fn with_builder(builder: Builder, namenodes: impl NameNodes) -> Result<Client> {
        let runtime = runtime()?;
        let client = runtime.block_on(builder.connect(namenodes))?;
        Ok(Client { client, runtime })
    }

    /// Connects to one DataNode without a NameNode; see [`Builder::connect_standalone`].
    pub fn connect_standalone(builder: Builder, addr: SocketAddr) -> Result<Client> {
        let runtime = runtime()?;
        let client = runtime.block_on(builder.connect_standalone(addr))?;
        Ok(Client { client, runtime })
    }

    /// Runs any async call of the underlying client to completion:
    /// `client.run(|c| async move { c.getrange("k", 0, 3).await })`.
    pub fn run<F, T>(&self, call: impl FnOnce(crate::Client) -> F) -> T
    where
        F: Future<Output = T>,
    {
        self.runtime.block_on(call(self.client.clone()))
    }

    /// The async client inside (for use on another runtime, e.g. in a spawned thread).
    pub fn as_async(&self) -> &crate::Client {
        &self.client
    }

    /// The latest ring, as [`crate::Client::ring`].
    pub fn ring(&self) -> RingInfo {
        self.client.ring()
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.runtime.block_on(self.client.get(key))
    }

    pub fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.runtime.block_on(self.client.set(key, value))
    }

    pub fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: SetOptions,
    ) -> Result<SetReply> {
        self.runtime
            .block_on(self.client.set_with(key, value, options))
    }

    pub fn mget<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>> {
        self.runtime.block_on(self.client.mget(keys))
    }

    pub fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        self.runtime.block_on(self.client.mset(pairs))
    }

    pub fn del<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<i64> {
        self.runtime.block_on(self.client.del(keys))
    }

    pub fn exists<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<i64> {
        self.runtime.block_on(self.client.exists(keys))
    }

    pub fn incr(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.runtime.block_on(self.client.incr(key))
    }

    pub fn incrby(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        self.runtime.block_on(self.client.incrby(key, delta))
    }

    pub fn expire(&self, key: impl AsRef<[u8]>, seconds: i64) -> Result<bool> {
        self.runtime.block_on(self.client.expire(key, seconds))
    }

    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl> {
        self.runtime.block_on(self.client.ttl(key))
    }

    pub fn lpush<V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        elements: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.runtime.block_on(self.client.lpush(key, elements))
    }

    pub fn rpush<V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        elements: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.runtime.block_on(self.client.rpush(key, elements))
    }

    pub fn lpop(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.runtime.block_on(self.client.lpop(key))
    }

    pub fn rpop(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.runtime.block_on(self.client.rpop(key))
    }

    pub fn llen(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        self.runtime.block_on(self.client.llen(key))
    }

    pub fn lrange(&self, key: impl AsRef<[u8]>, start: i64, stop: i64) -> Result<Vec<Bytes>> {
        self.runtime.block_on(self.client.lrange(key, start, stop))
    }

    /// BLPOP, as [`crate::Client::blpop`]: blocks the thread up to `timeout`
    /// ([`Duration::ZERO`]: for ever).
    pub fn blpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        timeout: Duration,
    ) -> Result<Option<(Bytes, Bytes)>> {
        self.runtime.block_on(self.client.blpop(keys, timeout))
    }

    /// BRPOP, as [`crate::Client::brpop`].
    pub fn brpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        timeout: Duration,
    ) -> Result<Option<(Bytes, Bytes)>> {
        self.runtime.block_on(self.client.brpop(keys, timeout))
    }

    pub fn dbsize(&self) -> Result<u64> {
        self.runtime.block_on(self.client.dbsize())
    }

    /// Any command, as [`crate::Client::cmd`].
    pub fn cmd<I, A>(&self, args: I) -> Result<Value>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        self.runtime.block_on(self.client.cmd(args))
    }
}
