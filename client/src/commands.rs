//! The typed API: one method per command the DataNode serves, with Redis's semantics and
//! Rust types in and out. Keys and values are anything byte-like (`&str`, `String`,
//! `&[u8]`, `Vec<u8>`, `Bytes`, ...).
//!
//! Every keyed command goes to the owner of its key's slot and is retried within the budget
//! when the ring moves. Multi-key commands that Redis Cluster would refuse across slots are
//! split per slot here instead (MGET, MSET, DEL, UNLINK, EXISTS, TOUCH); MSETNX, RENAME,
//! RENAMENX and COPY are atomic on one node, so their keys must share a slot (use hash tags:
//! `{user42}.name`, `{user42}.email`), else they fail with `CROSSSLOT`, as in Redis Cluster.
//!
//! [`bits`]: bitmaps, LCS and HyperLogLog.

pub(crate) mod bits;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::client::{target_of, Client};
use crate::error::{Error, Result};
use crate::routing::{slot_of, Target};
use crate::value::{FromValue, Value};

/// SET's condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    /// Only set a key that does not exist (`NX`).
    Nx,
    /// Only set a key that exists (`XX`).
    Xx,
}

/// SET's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetExpiry {
    /// Seconds from now (`EX`).
    Ex(u64),
    /// Milliseconds from now (`PX`).
    Px(u64),
    /// Unix time in seconds (`EXAT`).
    ExAt(u64),
    /// Unix time in milliseconds (`PXAT`).
    PxAt(u64),
    /// Keep the key's current TTL (`KEEPTTL`).
    KeepTtl,
}

/// Options of [`Client::set_with`]: `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL]`.
///
/// ```
/// use chkv_client::SetOptions;
/// use std::time::Duration;
/// let opts = SetOptions::new().nx().ttl(Duration::from_millis(1500));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    pub condition: Option<SetCondition>,
    pub expiry: Option<SetExpiry>,
    /// Return the previous value (`GET`).
    pub get: bool,
}

impl SetOptions {
    pub fn new() -> SetOptions {
        SetOptions::default()
    }

    pub fn nx(mut self) -> SetOptions {
        self.condition = Some(SetCondition::Nx);
        self
    }

    pub fn xx(mut self) -> SetOptions {
        self.condition = Some(SetCondition::Xx);
        self
    }

    pub fn get(mut self) -> SetOptions {
        self.get = true;
        self
    }

    pub fn ex(mut self, seconds: u64) -> SetOptions {
        self.expiry = Some(SetExpiry::Ex(seconds));
        self
    }

    pub fn px(mut self, milliseconds: u64) -> SetOptions {
        self.expiry = Some(SetExpiry::Px(milliseconds));
        self
    }

    pub fn exat(mut self, unix_seconds: u64) -> SetOptions {
        self.expiry = Some(SetExpiry::ExAt(unix_seconds));
        self
    }

    pub fn pxat(mut self, unix_milliseconds: u64) -> SetOptions {
        self.expiry = Some(SetExpiry::PxAt(unix_milliseconds));
        self
    }

    pub fn keepttl(mut self) -> SetOptions {
        self.expiry = Some(SetExpiry::KeepTtl);
        self
    }

    /// Expire after `ttl` (sent as `PX`, millisecond precision).
    pub fn ttl(self, ttl: Duration) -> SetOptions {
        self.px(ttl.as_millis().min(u128::from(u64::MAX)) as u64)
    }
}

/// What [`Client::set_with`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetReply {
    /// The value was set.
    Set,
    /// `NX`/`XX` was not met; nothing changed.
    NotSet,
    /// With `GET`: the previous value (`None` when the key did not exist). Combined with NX,
    /// a previous value means nothing was set (Redis 7).
    Previous(Option<Bytes>),
}

impl SetReply {
    /// Whether the value was set, when the reply says so (not with `GET`).
    pub fn was_set(&self) -> Option<bool> {
        match self {
            SetReply::Set => Some(true),
            SetReply::NotSet => Some(false),
            SetReply::Previous(_) => None,
        }
    }
}

/// GETEX's expiry change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetExpiry {
    /// Seconds from now (`EX`).
    Ex(u64),
    /// Milliseconds from now (`PX`).
    Px(u64),
    /// Unix time in seconds (`EXAT`).
    ExAt(u64),
    /// Unix time in milliseconds (`PXAT`).
    PxAt(u64),
    /// Remove the TTL (`PERSIST`).
    Persist,
}

/// The condition of EXPIRE and friends (Redis 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireCondition {
    /// Only if the key has no TTL.
    Nx,
    /// Only if the key has a TTL.
    Xx,
    /// Only if the new expiry is later than the current one.
    Gt,
    /// Only if the new expiry is earlier than the current one.
    Lt,
}

impl ExpireCondition {
    fn arg(self) -> &'static [u8] {
        match self {
            ExpireCondition::Nx => b"NX",
            ExpireCondition::Xx => b"XX",
            ExpireCondition::Gt => b"GT",
            ExpireCondition::Lt => b"LT",
        }
    }
}

/// A key's time to live (TTL, PTTL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist (-2).
    Missing,
    /// The key exists and does not expire (-1).
    Persistent,
    /// The key expires after this long.
    ExpiresIn(Duration),
}

impl Ttl {
    /// The time left, when the key expires.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Ttl::ExpiresIn(d) => Some(d),
            _ => None,
        }
    }

    fn from_reply(n: i64, unit: fn(u64) -> Duration) -> Ttl {
        match u64::try_from(n) {
            Ok(n) => Ttl::ExpiresIn(unit(n)),
            Err(_) if n == -2 => Ttl::Missing,
            Err(_) => Ttl::Persistent,
        }
    }
}

/// When a key expires (EXPIRETIME, PEXPIRETIME).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireTime {
    /// The key does not exist (-2).
    Missing,
    /// The key exists and does not expire (-1).
    Persistent,
    /// The key expires at this time.
    At(SystemTime),
}

impl ExpireTime {
    fn from_reply(n: i64, unit: fn(u64) -> Duration) -> Result<ExpireTime> {
        match u64::try_from(n) {
            // SystemTime cannot hold every u64 of seconds; `+` would panic past its range.
            Ok(n) => UNIX_EPOCH
                .checked_add(unit(n))
                .map(ExpireTime::At)
                .ok_or_else(|| Error::Type(format!("expiry time {n} out of range"))),
            Err(_) if n == -2 => Ok(ExpireTime::Missing),
            Err(_) => Ok(ExpireTime::Persistent),
        }
    }
}

/// SCAN's options: `MATCH pattern`, `COUNT hint`, `TYPE type`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanOptions {
    pub pattern: Option<String>,
    pub count: Option<u64>,
    pub key_type: Option<String>,
}

impl ScanOptions {
    pub fn new() -> ScanOptions {
        ScanOptions::default()
    }

    /// Only keys matching the glob-style `pattern`.
    pub fn pattern(mut self, pattern: impl Into<String>) -> ScanOptions {
        self.pattern = Some(pattern.into());
        self
    }

    /// About this many keys per call.
    pub fn count(mut self, count: u64) -> ScanOptions {
        self.count = Some(count);
        self
    }

    /// Only keys of this type (`string`).
    pub fn key_type(mut self, key_type: impl Into<String>) -> ScanOptions {
        self.key_type = Some(key_type.into());
        self
    }
}

pub(crate) fn keys_of<K: AsRef<[u8]>>(keys: &[K]) -> impl Iterator<Item = &[u8]> {
    keys.iter().map(AsRef::as_ref)
}

impl Client {
    /// A keyed command: to the owner of `key`'s slot, converted to `T`.
    pub(crate) async fn keyed<T: FromValue>(&self, key: &[u8], args: &[&[u8]]) -> Result<T> {
        T::from_value(self.shared().run(Target::Slot(slot_of(key)), args).await?)
    }

    /// A multi-key command that may be split per slot.
    async fn split<T: FromValue>(&self, args: &[&[u8]]) -> Result<T> {
        T::from_value(self.shared().run_split(args).await?)
    }

    /// A command whose keys must share a slot.
    pub(crate) async fn same_slot<T: FromValue>(&self, args: &[&[u8]]) -> Result<T> {
        T::from_value(self.shared().run(target_of(args), args).await?)
    }

    // ---- strings ----------------------------------------------------------------------------

    /// GET: the value of `key`, `None` when it does not exist.
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        if let Some(near) = &self.shared().near {
            return Option::<Bytes>::from_value(self.shared().cached_get(near, key).await?);
        }
        self.keyed(key, &[b"GET", key]).await
    }

    /// SET: stores `value` at `key`, replacing any value and TTL.
    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let key = key.as_ref();
        self.keyed(key, &[b"SET", key, value.as_ref()]).await
    }

    /// SET with options: a condition (NX/XX), GET, and an expiry (EX/PX/EXAT/PXAT/KEEPTTL).
    pub async fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: SetOptions,
    ) -> Result<SetReply> {
        let key = key.as_ref();
        let mut args: Vec<&[u8]> = vec![b"SET", key, value.as_ref()];
        match options.condition {
            Some(SetCondition::Nx) => args.push(b"NX"),
            Some(SetCondition::Xx) => args.push(b"XX"),
            None => {}
        }
        if options.get {
            args.push(b"GET");
        }
        let number;
        match options.expiry {
            None => {}
            Some(SetExpiry::KeepTtl) => args.push(b"KEEPTTL"),
            Some(e) => {
                let (name, n): (&[u8], u64) = match e {
                    SetExpiry::Ex(n) => (b"EX", n),
                    SetExpiry::Px(n) => (b"PX", n),
                    SetExpiry::ExAt(n) => (b"EXAT", n),
                    SetExpiry::PxAt(n) => (b"PXAT", n),
                    SetExpiry::KeepTtl => (b"KEEPTTL", 0),
                };
                number = n.to_string();
                args.push(name);
                args.push(number.as_bytes());
            }
        }
        let reply: Value = self.keyed(key, &args).await?;
        Ok(if options.get {
            SetReply::Previous(reply.convert()?)
        } else if reply.is_nil() {
            SetReply::NotSet
        } else {
            SetReply::Set
        })
    }

    /// SETNX: sets `key` only if it does not exist; whether it did.
    pub async fn setnx(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.keyed(key, &[b"SETNX", key, value.as_ref()]).await
    }

    /// SETEX: sets `key` to expire after `seconds`.
    pub async fn setex(
        &self,
        key: impl AsRef<[u8]>,
        seconds: u64,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        let key = key.as_ref();
        let n = seconds.to_string();
        self.keyed(key, &[b"SETEX", key, n.as_bytes(), value.as_ref()])
            .await
    }

    /// PSETEX: sets `key` to expire after `milliseconds`.
    pub async fn psetex(
        &self,
        key: impl AsRef<[u8]>,
        milliseconds: u64,
        value: impl AsRef<[u8]>,
    ) -> Result<()> {
        let key = key.as_ref();
        let n = milliseconds.to_string();
        self.keyed(key, &[b"PSETEX", key, n.as_bytes(), value.as_ref()])
            .await
    }

    /// GETSET: sets `key` and returns its previous value.
    pub async fn getset(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"GETSET", key, value.as_ref()]).await
    }

    /// GETDEL: returns the value of `key` and deletes it.
    pub async fn getdel(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"GETDEL", key]).await
    }

    /// GETEX: returns the value of `key` and changes its expiry (`None`: leave it).
    pub async fn getex(
        &self,
        key: impl AsRef<[u8]>,
        expiry: Option<GetExpiry>,
    ) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        let mut args: Vec<&[u8]> = vec![b"GETEX", key];
        let number;
        match expiry {
            None => {}
            Some(GetExpiry::Persist) => args.push(b"PERSIST"),
            Some(e) => {
                let (name, n): (&[u8], u64) = match e {
                    GetExpiry::Ex(n) => (b"EX", n),
                    GetExpiry::Px(n) => (b"PX", n),
                    GetExpiry::ExAt(n) => (b"EXAT", n),
                    GetExpiry::PxAt(n) => (b"PXAT", n),
                    GetExpiry::Persist => (b"PERSIST", 0),
                };
                number = n.to_string();
                args.push(name);
                args.push(number.as_bytes());
            }
        }
        self.keyed(key, &args).await
    }

    /// MGET: the values of `keys`, in order (`None` for missing keys). Keys in different
    /// slots are fetched from their nodes at once.
    pub async fn mget<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"MGET");
        args.extend(keys_of(&keys));
        self.split(&args).await
    }

    /// MSET: sets every pair; pairs in different slots are written to their nodes at once
    /// (atomic per slot, not across slots).
    pub async fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        if pairs.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(pairs.len() * 2 + 1);
        args.push(b"MSET");
        for (k, v) in &pairs {
            args.push(k.as_ref());
            args.push(v.as_ref());
        }
        self.split(&args).await
    }

    /// MSETNX: sets every pair only if no key exists; whether it did. Atomic, so the keys
    /// must share a slot.
    pub async fn msetnx<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<bool> {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        if pairs.is_empty() {
            return Err(Error::Invalid("MSETNX needs at least one pair".into()));
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(pairs.len() * 2 + 1);
        args.push(b"MSETNX");
        for (k, v) in &pairs {
            args.push(k.as_ref());
            args.push(v.as_ref());
        }
        self.same_slot(&args).await
    }

    /// APPEND: appends `value`; the new length.
    pub async fn append(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"APPEND", key, value.as_ref()]).await
    }

    /// STRLEN: the length of the value (0 for a missing key).
    pub async fn strlen(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"STRLEN", key]).await
    }

    /// GETRANGE: the substring between `start` and `end` (inclusive, negative from the end).
    pub async fn getrange(&self, key: impl AsRef<[u8]>, start: i64, end: i64) -> Result<Bytes> {
        let key = key.as_ref();
        let (s, e) = (start.to_string(), end.to_string());
        self.keyed(key, &[b"GETRANGE", key, s.as_bytes(), e.as_bytes()])
            .await
    }

    /// SETRANGE: overwrites from `offset` (zero-padding as needed); the new length.
    pub async fn setrange(
        &self,
        key: impl AsRef<[u8]>,
        offset: u64,
        value: impl AsRef<[u8]>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let o = offset.to_string();
        self.keyed(key, &[b"SETRANGE", key, o.as_bytes(), value.as_ref()])
            .await
    }

    /// INCR: adds one to the integer at `key` (0 when missing); the new value.
    pub async fn incr(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"INCR", key]).await
    }

    /// DECR: subtracts one; the new value.
    pub async fn decr(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"DECR", key]).await
    }

    /// INCRBY: adds `delta`; the new value.
    pub async fn incrby(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        let key = key.as_ref();
        let d = delta.to_string();
        self.keyed(key, &[b"INCRBY", key, d.as_bytes()]).await
    }

    /// DECRBY: subtracts `delta`; the new value.
    pub async fn decrby(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64> {
        let key = key.as_ref();
        let d = delta.to_string();
        self.keyed(key, &[b"DECRBY", key, d.as_bytes()]).await
    }

    /// INCRBYFLOAT: adds `delta` to the number at `key`; the new value.
    pub async fn incrbyfloat(&self, key: impl AsRef<[u8]>, delta: f64) -> Result<f64> {
        if !delta.is_finite() {
            return Err(Error::Invalid(
                "INCRBYFLOAT needs a finite increment".into(),
            ));
        }
        let key = key.as_ref();
        let d = delta.to_string();
        self.keyed(key, &[b"INCRBYFLOAT", key, d.as_bytes()]).await
    }

    // ---- keys -------------------------------------------------------------------------------

    /// DEL: deletes `keys`; how many existed. Split per slot.
    pub async fn del<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<i64> {
        self.count_keys(b"DEL", keys).await
    }

    /// UNLINK: like DEL (CHKV frees memory at once either way); how many existed.
    pub async fn unlink<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<i64> {
        self.count_keys(b"UNLINK", keys).await
    }

    /// EXISTS: how many of `keys` exist (a key given twice counts twice).
    pub async fn exists<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<i64> {
        self.count_keys(b"EXISTS", keys).await
    }

    /// TOUCH: updates the last access time of `keys`; how many existed.
    pub async fn touch<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<i64> {
        self.count_keys(b"TOUCH", keys).await
    }

    async fn count_keys<K: AsRef<[u8]>>(
        &self,
        name: &[u8],
        keys: impl IntoIterator<Item = K>,
    ) -> Result<i64> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(name);
        args.extend(keys_of(&keys));
        self.split(&args).await
    }

    /// TYPE: `string`, or `none` for a missing key.
    pub async fn key_type(&self, key: impl AsRef<[u8]>) -> Result<String> {
        let key = key.as_ref();
        self.keyed(key, &[b"TYPE", key]).await
    }

    async fn expire_cmd(
        &self,
        name: &[u8],
        key: &[u8],
        n: i64,
        condition: Option<ExpireCondition>,
    ) -> Result<bool> {
        let n = n.to_string();
        match condition {
            None => self.keyed(key, &[name, key, n.as_bytes()]).await,
            Some(c) => self.keyed(key, &[name, key, n.as_bytes(), c.arg()]).await,
        }
    }

    /// EXPIRE: expires `key` after `seconds` (zero or less deletes it); whether it exists.
    pub async fn expire(&self, key: impl AsRef<[u8]>, seconds: i64) -> Result<bool> {
        self.expire_cmd(b"EXPIRE", key.as_ref(), seconds, None)
            .await
    }

    /// EXPIRE with NX/XX/GT/LT; whether the expiry was set.
    pub async fn expire_with(
        &self,
        key: impl AsRef<[u8]>,
        seconds: i64,
        condition: ExpireCondition,
    ) -> Result<bool> {
        self.expire_cmd(b"EXPIRE", key.as_ref(), seconds, Some(condition))
            .await
    }

    /// PEXPIRE: expires `key` after `milliseconds`.
    pub async fn pexpire(&self, key: impl AsRef<[u8]>, milliseconds: i64) -> Result<bool> {
        self.expire_cmd(b"PEXPIRE", key.as_ref(), milliseconds, None)
            .await
    }

    /// PEXPIRE with NX/XX/GT/LT.
    pub async fn pexpire_with(
        &self,
        key: impl AsRef<[u8]>,
        milliseconds: i64,
        condition: ExpireCondition,
    ) -> Result<bool> {
        self.expire_cmd(b"PEXPIRE", key.as_ref(), milliseconds, Some(condition))
            .await
    }

    /// EXPIREAT: expires `key` at a Unix time in seconds.
    pub async fn expireat(&self, key: impl AsRef<[u8]>, unix_seconds: i64) -> Result<bool> {
        self.expire_cmd(b"EXPIREAT", key.as_ref(), unix_seconds, None)
            .await
    }

    /// EXPIREAT with NX/XX/GT/LT.
    pub async fn expireat_with(
        &self,
        key: impl AsRef<[u8]>,
        unix_seconds: i64,
        condition: ExpireCondition,
    ) -> Result<bool> {
        self.expire_cmd(b"EXPIREAT", key.as_ref(), unix_seconds, Some(condition))
            .await
    }

    /// PEXPIREAT: expires `key` at a Unix time in milliseconds.
    pub async fn pexpireat(&self, key: impl AsRef<[u8]>, unix_milliseconds: i64) -> Result<bool> {
        self.expire_cmd(b"PEXPIREAT", key.as_ref(), unix_milliseconds, None)
            .await
    }

    /// PEXPIREAT with NX/XX/GT/LT.
    pub async fn pexpireat_with(
        &self,
        key: impl AsRef<[u8]>,
        unix_milliseconds: i64,
        condition: ExpireCondition,
    ) -> Result<bool> {
        self.expire_cmd(
            b"PEXPIREAT",
            key.as_ref(),
            unix_milliseconds,
            Some(condition),
        )
        .await
    }

    /// TTL, in whole seconds.
    pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl> {
        let key = key.as_ref();
        let n: i64 = self.keyed(key, &[b"TTL", key]).await?;
        Ok(Ttl::from_reply(n, Duration::from_secs))
    }

    /// PTTL, in milliseconds.
    pub async fn pttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl> {
        let key = key.as_ref();
        let n: i64 = self.keyed(key, &[b"PTTL", key]).await?;
        Ok(Ttl::from_reply(n, Duration::from_millis))
    }

    /// EXPIRETIME: when `key` expires, to the second.
    pub async fn expiretime(&self, key: impl AsRef<[u8]>) -> Result<ExpireTime> {
        let key = key.as_ref();
        let n: i64 = self.keyed(key, &[b"EXPIRETIME", key]).await?;
        ExpireTime::from_reply(n, Duration::from_secs)
    }

    /// PEXPIRETIME: when `key` expires, to the millisecond.
    pub async fn pexpiretime(&self, key: impl AsRef<[u8]>) -> Result<ExpireTime> {
        let key = key.as_ref();
        let n: i64 = self.keyed(key, &[b"PEXPIRETIME", key]).await?;
        ExpireTime::from_reply(n, Duration::from_millis)
    }

    /// PERSIST: removes the TTL; whether there was one.
    pub async fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.keyed(key, &[b"PERSIST", key]).await
    }

    /// RENAME: renames `key` to `new_key` (both in one slot), replacing `new_key`.
    pub async fn rename(&self, key: impl AsRef<[u8]>, new_key: impl AsRef<[u8]>) -> Result<()> {
        self.same_slot(&[b"RENAME", key.as_ref(), new_key.as_ref()])
            .await
    }

    /// RENAMENX: renames only if `new_key` does not exist; whether it did.
    pub async fn renamenx(&self, key: impl AsRef<[u8]>, new_key: impl AsRef<[u8]>) -> Result<bool> {
        self.same_slot(&[b"RENAMENX", key.as_ref(), new_key.as_ref()])
            .await
    }

    /// COPY: copies `source` to `destination` (both in one slot); with `replace`, over an
    /// existing destination. Whether it copied.
    pub async fn copy(
        &self,
        source: impl AsRef<[u8]>,
        destination: impl AsRef<[u8]>,
        replace: bool,
    ) -> Result<bool> {
        let (s, d) = (source.as_ref(), destination.as_ref());
        if replace {
            self.same_slot(&[b"COPY", s, d, b"REPLACE"]).await
        } else {
            self.same_slot(&[b"COPY", s, d]).await
        }
    }

    // ---- node-wide --------------------------------------------------------------------------

    /// PING every DataNode that owns slots; fails with the first that does not answer.
    pub async fn ping(&self) -> Result<()> {
        for node in self.nodes() {
            self.run_on(node, &[b"PING"]).await?;
        }
        Ok(())
    }

    /// DBSIZE summed over the DataNodes: the number of keys in the cluster.
    pub async fn dbsize(&self) -> Result<u64> {
        let mut total = 0;
        for node in self.nodes() {
            total += u64::from_value(self.run_on(node, &[b"DBSIZE"]).await?)?;
        }
        Ok(total)
    }

    /// FLUSHALL on every DataNode that owns slots: deletes every key in the cluster.
    pub async fn flushall(&self) -> Result<()> {
        for node in self.nodes() {
            self.run_on(node, &[b"FLUSHALL"]).await?;
        }
        Ok(())
    }

    /// KEYS `pattern` on every DataNode, concatenated. Like KEYS, it walks every key: for
    /// large data sets prefer [`scan_all`](Client::scan_all).
    pub async fn keys(&self, pattern: impl AsRef<[u8]>) -> Result<Vec<Bytes>> {
        let mut all = Vec::new();
        for node in self.nodes() {
            all.extend(self.keys_on(node, pattern.as_ref()).await?);
        }
        Ok(all)
    }

    /// KEYS `pattern` on one DataNode: the keys it holds.
    pub async fn keys_on(&self, node: SocketAddr, pattern: impl AsRef<[u8]>) -> Result<Vec<Bytes>> {
        self.run_on(node, &[b"KEYS", pattern.as_ref()])
            .await?
            .convert()
    }

    /// One SCAN call on one DataNode: the next cursor (0 when done) and a batch of keys.
    pub async fn scan_on(
        &self,
        node: SocketAddr,
        cursor: u64,
        options: &ScanOptions,
    ) -> Result<(u64, Vec<Bytes>)> {
        let c = cursor.to_string();
        let count = options.count.map(|n| n.to_string());
        let mut args: Vec<&[u8]> = vec![b"SCAN", c.as_bytes()];
        if let Some(p) = &options.pattern {
            args.extend([&b"MATCH"[..], p.as_bytes()]);
        }
        if let Some(n) = &count {
            args.extend([&b"COUNT"[..], n.as_bytes()]);
        }
        if let Some(t) = &options.key_type {
            args.extend([&b"TYPE"[..], t.as_bytes()]);
        }
        let reply = self.run_on(node, &args).await?;
        let Value::Array(mut parts) = reply else {
            return Err(Error::Type(format!(
                "SCAN returned {}, not an array",
                reply.kind()
            )));
        };
        if parts.len() != 2 {
            return Err(Error::Type("SCAN returned a wrong number of parts".into()));
        }
        let keys: Vec<Bytes> = parts.pop().map_or(Ok(Vec::new()), Value::convert)?;
        let next: u64 = parts.pop().map_or(Ok(0), Value::convert)?;
        Ok((next, keys))
    }

    /// Every key in the cluster, node after node, through SCAN. Like SCAN it guarantees that
    /// a key present for the whole iteration is returned; while slots move between nodes a
    /// key may also come twice or (if it moves ahead of the scan) be missed.
    ///
    /// ```no_run
    /// # async fn demo(client: chkv_client::Client) -> chkv_client::Result<()> {
    /// use chkv_client::ScanOptions;
    /// let mut keys = client.scan_all(ScanOptions::new().pattern("user:*"));
    /// while let Some(key) = keys.next().await {
    ///     println!("{:?}", key?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn scan_all(&self, options: ScanOptions) -> ScanAll {
        ScanAll {
            client: self.clone(),
            nodes: self.nodes(),
            node: 0,
            cursor: 0,
            buffer: VecDeque::new(),
            options,
        }
    }
}

/// The cluster-wide SCAN of [`Client::scan_all`].
pub struct ScanAll {
    client: Client,
    nodes: Vec<SocketAddr>,
    node: usize,
    cursor: u64,
    buffer: VecDeque<Bytes>,
    options: ScanOptions,
}

impl ScanAll {
    /// The next key; `None` when every node is done. An error ends the iteration.
    pub async fn next(&mut self) -> Option<Result<Bytes>> {
        loop {
            if let Some(key) = self.buffer.pop_front() {
                return Some(Ok(key));
            }
            let node = *self.nodes.get(self.node)?;
            match self.client.scan_on(node, self.cursor, &self.options).await {
                Ok((next, keys)) => {
                    self.buffer.extend(keys);
                    if next == 0 {
                        self.node += 1;
                    }
                    self.cursor = next;
                }
                Err(e) => {
                    self.node = self.nodes.len();
                    return Some(Err(e));
                }
            }
        }
    }

    /// All remaining keys.
    pub async fn collect(mut self) -> Result<Vec<Bytes>> {
        let mut all = Vec::new();
        while let Some(key) = self.next().await {
            all.push(key?);
        }
        Ok(all)
    }
}
