//! The typed API of lists, the blocking pops included. Every command routes by its key; the
//! commands over several keys (LMOVE, RPOPLPUSH, LMPOP and their blocking forms, BLPOP and
//! BRPOP with several keys) need their keys in one slot (hash tags), like Redis Cluster.
//!
//! A blocking call (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) takes a connection of its own
//! for the call, so it holds up no other request, and its reply may take as long as its
//! timeout on top of the response timeout; [`Duration::ZERO`] blocks for ever (no response
//! timeout at all). When the key's slot moves to another node while the call waits (a join
//! or a drain), the call blocks again at the new owner for the time left, and is served
//! there. Dropping the future of a blocked call closes its connection, so the server
//! unblocks it instead of popping an element for nobody.

use std::time::Duration;

use crate::client::{timeout_arg, Block};
use crate::commands::keys_of;
use crate::error::{Error, Result};
use crate::routing::Target;
use crate::value::{FromValue, Value};
use crate::Client;
use bytes::Bytes;

/// The end of a list an element is taken from or put at (LMOVE's `LEFT`/`RIGHT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The head (index 0).
    Left,
    /// The tail (index -1).
    Right,
}

impl Direction {
    fn arg(self) -> &'static [u8] {
        match self {
            Direction::Left => b"LEFT",
            Direction::Right => b"RIGHT",
        }
    }
}

/// Where LINSERT puts the element, relative to the pivot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertPosition {
    Before,
    After,
}

/// LPOS's options: which match to start from and how far to look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LposOptions {
    rank: Option<i64>,
    maxlen: Option<u64>,
}

impl LposOptions {
    pub fn new() -> LposOptions {
        LposOptions::default()
    }

    /// RANK: start from the `rank`-th match (1 the first); negative counts from the tail.
    /// 0 is refused by the server.
    pub fn rank(mut self, rank: i64) -> Self {
        self.rank = Some(rank);
        self
    }

    /// MAXLEN: compare at most `len` elements (0: the whole list).
    pub fn maxlen(mut self, len: u64) -> Self {
        self.maxlen = Some(len);
        self
    }
}

/// A blocking command's timeout as an argument: whole seconds with milliseconds;
/// [`Duration::ZERO`] is `0`, for ever.
fn block_arg(timeout: Duration) -> String {
    if timeout.is_zero() {
        "0".into()
    } else {
        timeout_arg(timeout)
    }
}

/// `[key, element]` of BLPOP/BRPOP, or of nothing.
fn key_and_element(v: Value) -> Result<Option<(Bytes, Bytes)>> {
    let Some(items) = Option::<Vec<Bytes>>::from_value(v)? else {
        return Ok(None);
    };
    let [key, element]: [Bytes; 2] = items
        .try_into()
        .map_err(|_| Error::Type("a key and an element".into()))?;
    Ok(Some((key, element)))
}

/// `[key, [element ...]]` of LMPOP/BLMPOP, or of nothing.
fn key_and_elements(v: Value) -> Result<Option<(Bytes, Vec<Bytes>)>> {
    let Some(items) = Option::<Vec<Value>>::from_value(v)? else {
        return Ok(None);
    };
    let mut it = items.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(k), Some(elements), None) => Ok(Some((
            Bytes::from_value(k)?,
            Vec::<Bytes>::from_value(elements)?,
        ))),
        _ => Err(Error::Type("a key and its elements".into())),
    }
}

impl Client {
    /// A blocking command: to the owner of its first key's slot, on a connection of its own.
    async fn blocking<T: FromValue>(&self, args: &[&[u8]]) -> Result<T> {
        let block =
            Block::of(args).ok_or_else(|| Error::Invalid("not a blocking command".into()))?;
        let target = crate::client::target_of(args);
        if target == Target::Any {
            return Err(Error::Invalid("a blocking command needs a key".into()));
        }
        T::from_value(self.shared().run_blocking(target, args, block).await?)
    }

    async fn push<V: AsRef<[u8]>>(
        &self,
        name: &'static [u8],
        key: &[u8],
        elements: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        let elements: Vec<V> = elements.into_iter().collect();
        if elements.is_empty() {
            return Err(Error::Invalid(format!(
                "{} needs at least one element",
                String::from_utf8_lossy(name)
            )));
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(elements.len() + 2);
        args.push(name);
        args.push(key);
        args.extend(keys_of(&elements));
        self.keyed(key, &args).await
    }

    /// LPUSH: puts `elements` at the head, one after the other (the last ends up first);
    /// the list's length after.
    pub async fn lpush<V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        elements: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.push(b"LPUSH", key.as_ref(), elements).await
    }

    /// RPUSH: appends `elements` at the tail; the list's length after.
    pub async fn rpush<V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        elements: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.push(b"RPUSH", key.as_ref(), elements).await
    }

    /// LPUSHX: LPUSH only onto an existing list; its length after (0: no list).
    pub async fn lpushx<V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        elements: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.push(b"LPUSHX", key.as_ref(), elements).await
    }

    /// RPUSHX: RPUSH only onto an existing list; its length after (0: no list).
    pub async fn rpushx<V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        elements: impl IntoIterator<Item = V>,
    ) -> Result<i64> {
        self.push(b"RPUSHX", key.as_ref(), elements).await
    }

    /// LPOP: removes and returns the head, `None` when there is no list.
    pub async fn lpop(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"LPOP", key]).await
    }

    /// RPOP: removes and returns the tail, `None` when there is no list.
    pub async fn rpop(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"RPOP", key]).await
    }

    /// LPOP key count: removes and returns up to `count` elements from the head (empty when
    /// there is no list).
    pub async fn lpop_count(&self, key: impl AsRef<[u8]>, count: u64) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let c = count.to_string();
        let v: Option<Vec<Bytes>> = self.keyed(key, &[b"LPOP", key, c.as_bytes()]).await?;
        Ok(v.unwrap_or_default())
    }

    /// RPOP key count: removes and returns up to `count` elements from the tail, tail first
    /// (empty when there is no list).
    pub async fn rpop_count(&self, key: impl AsRef<[u8]>, count: u64) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let c = count.to_string();
        let v: Option<Vec<Bytes>> = self.keyed(key, &[b"RPOP", key, c.as_bytes()]).await?;
        Ok(v.unwrap_or_default())
    }

    /// LLEN: the number of elements (0 when there is no list).
    pub async fn llen(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"LLEN", key]).await
    }

    /// LRANGE: the elements from `start` to `stop`, both included; negative indexes count
    /// from the tail (-1 the last).
    pub async fn lrange(&self, key: impl AsRef<[u8]>, start: i64, stop: i64) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let (a, b) = (start.to_string(), stop.to_string());
        self.keyed(key, &[b"LRANGE", key, a.as_bytes(), b.as_bytes()])
            .await
    }

    /// LINDEX: the element at `index` (negative from the tail), `None` when out of range.
    pub async fn lindex(&self, key: impl AsRef<[u8]>, index: i64) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        let i = index.to_string();
        self.keyed(key, &[b"LINDEX", key, i.as_bytes()]).await
    }

    /// LSET: replaces the element at `index` (an error when out of range or no list).
    pub async fn lset(
        &self,
        key: impl AsRef<[u8]>,
        index: i64,
        element: impl AsRef<[u8]>,
    ) -> Result<()> {
        let key = key.as_ref();
        let i = index.to_string();
        self.keyed(key, &[b"LSET", key, i.as_bytes(), element.as_ref()])
            .await
    }

    /// LINSERT: puts `element` before or after the first `pivot`; the length after, -1 when
    /// the pivot is not there, 0 when there is no list.
    pub async fn linsert(
        &self,
        key: impl AsRef<[u8]>,
        position: InsertPosition,
        pivot: impl AsRef<[u8]>,
        element: impl AsRef<[u8]>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let where_ = match position {
            InsertPosition::Before => &b"BEFORE"[..],
            InsertPosition::After => b"AFTER",
        };
        self.keyed(
            key,
            &[b"LINSERT", key, where_, pivot.as_ref(), element.as_ref()],
        )
        .await
    }

    /// LREM: removes the first `count` occurrences of `element` from the head (negative:
    /// from the tail; 0: all); how many were removed.
    pub async fn lrem(
        &self,
        key: impl AsRef<[u8]>,
        count: i64,
        element: impl AsRef<[u8]>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let c = count.to_string();
        self.keyed(key, &[b"LREM", key, c.as_bytes(), element.as_ref()])
            .await
    }

    /// LTRIM: keeps only the elements from `start` to `stop` (both included).
    pub async fn ltrim(&self, key: impl AsRef<[u8]>, start: i64, stop: i64) -> Result<()> {
        let key = key.as_ref();
        let (a, b) = (start.to_string(), stop.to_string());
        self.keyed(key, &[b"LTRIM", key, a.as_bytes(), b.as_bytes()])
            .await
    }

    fn lpos_args<'a>(
        key: &'a [u8],
        element: &'a [u8],
        options: &LposOptions,
        count: Option<u64>,
        texts: &'a mut [String; 3],
    ) -> Vec<&'a [u8]> {
        texts[0] = options.rank.map(|r| r.to_string()).unwrap_or_default();
        texts[1] = count.map(|c| c.to_string()).unwrap_or_default();
        texts[2] = options.maxlen.map(|m| m.to_string()).unwrap_or_default();
        let [rank, count_text, maxlen] = &*texts;
        let mut args: Vec<&[u8]> = vec![b"LPOS", key, element];
        if options.rank.is_some() {
            args.extend([&b"RANK"[..], rank.as_bytes()]);
        }
        if count.is_some() {
            args.extend([&b"COUNT"[..], count_text.as_bytes()]);
        }
        if options.maxlen.is_some() {
            args.extend([&b"MAXLEN"[..], maxlen.as_bytes()]);
        }
        args
    }

    /// LPOS: the index of the first match of `element` (as `options` say), `None` when
    /// there is none.
    pub async fn lpos(
        &self,
        key: impl AsRef<[u8]>,
        element: impl AsRef<[u8]>,
        options: LposOptions,
    ) -> Result<Option<i64>> {
        let key = key.as_ref();
        let mut texts = Default::default();
        let args = Client::lpos_args(key, element.as_ref(), &options, None, &mut texts);
        self.keyed(key, &args).await
    }

    /// LPOS ... COUNT: the indexes of up to `count` matches (0: all of them).
    pub async fn lpos_count(
        &self,
        key: impl AsRef<[u8]>,
        element: impl AsRef<[u8]>,
        count: u64,
        options: LposOptions,
    ) -> Result<Vec<i64>> {
        let key = key.as_ref();
        let mut texts = Default::default();
        let args = Client::lpos_args(key, element.as_ref(), &options, Some(count), &mut texts);
        self.keyed(key, &args).await
    }

    /// LMOVE: moves one element from the `from` end of `src` to the `to` end of `dst` (one
    /// slot; the same key rotates it); the element, `None` when `src` is empty.
    pub async fn lmove(
        &self,
        src: impl AsRef<[u8]>,
        dst: impl AsRef<[u8]>,
        from: Direction,
        to: Direction,
    ) -> Result<Option<Bytes>> {
        self.same_slot(&[b"LMOVE", src.as_ref(), dst.as_ref(), from.arg(), to.arg()])
            .await
    }

    /// RPOPLPUSH: LMOVE from the tail of `src` to the head of `dst`.
    pub async fn rpoplpush(
        &self,
        src: impl AsRef<[u8]>,
        dst: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>> {
        self.same_slot(&[b"RPOPLPUSH", src.as_ref(), dst.as_ref()])
            .await
    }

    /// LMPOP: pops up to `count` elements from the `from` end of the first non-empty list of
    /// `keys` (one slot); that key and the elements.
    pub async fn lmpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        from: Direction,
        count: u64,
    ) -> Result<Option<(Bytes, Vec<Bytes>)>> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid("LMPOP needs at least one key".into()));
        }
        let (n, c) = (keys.len().to_string(), count.to_string());
        let mut args: Vec<&[u8]> = vec![b"LMPOP", n.as_bytes()];
        args.extend(keys_of(&keys));
        args.extend([from.arg(), b"COUNT", c.as_bytes()]);
        key_and_elements(self.same_slot(&args).await?)
    }

    async fn bpop<K: AsRef<[u8]>>(
        &self,
        name: &'static [u8],
        keys: impl IntoIterator<Item = K>,
        timeout: Duration,
    ) -> Result<Option<(Bytes, Bytes)>> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid(format!(
                "{} needs at least one key",
                String::from_utf8_lossy(name)
            )));
        }
        let t = block_arg(timeout);
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 2);
        args.push(name);
        args.extend(keys_of(&keys));
        args.push(t.as_bytes());
        key_and_element(self.blocking(&args).await?)
    }

    /// BLPOP: pops the head of the first non-empty list of `keys` (one slot), waiting up to
    /// `timeout` for one ([`Duration::ZERO`]: for ever; milliseconds count); the key and
    /// the element, `None` when the time ran out. Clients blocked on a key are served in the
    /// order they blocked.
    pub async fn blpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        timeout: Duration,
    ) -> Result<Option<(Bytes, Bytes)>> {
        self.bpop(b"BLPOP", keys, timeout).await
    }

    /// BRPOP: [`Client::blpop`] from the tail.
    pub async fn brpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        timeout: Duration,
    ) -> Result<Option<(Bytes, Bytes)>> {
        self.bpop(b"BRPOP", keys, timeout).await
    }

    /// BLMOVE: [`Client::lmove`], waiting up to `timeout` for `src` to hold an element
    /// ([`Duration::ZERO`]: for ever); `None` when the time ran out.
    pub async fn blmove(
        &self,
        src: impl AsRef<[u8]>,
        dst: impl AsRef<[u8]>,
        from: Direction,
        to: Direction,
        timeout: Duration,
    ) -> Result<Option<Bytes>> {
        let t = block_arg(timeout);
        self.blocking(&[
            b"BLMOVE",
            src.as_ref(),
            dst.as_ref(),
            from.arg(),
            to.arg(),
            t.as_bytes(),
        ])
        .await
    }

    /// BRPOPLPUSH: [`Client::blmove`] from the tail of `src` to the head of `dst`.
    pub async fn brpoplpush(
        &self,
        src: impl AsRef<[u8]>,
        dst: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Option<Bytes>> {
        let t = block_arg(timeout);
        self.blocking(&[b"BRPOPLPUSH", src.as_ref(), dst.as_ref(), t.as_bytes()])
            .await
    }

    /// BLMPOP: [`Client::lmpop`], waiting up to `timeout` for one of `keys` to hold an
    /// element ([`Duration::ZERO`]: for ever); `None` when the time ran out.
    pub async fn blmpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        from: Direction,
        count: u64,
        timeout: Duration,
    ) -> Result<Option<(Bytes, Vec<Bytes>)>> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid("BLMPOP needs at least one key".into()));
        }
        let (t, n, c) = (
            block_arg(timeout),
            keys.len().to_string(),
            count.to_string(),
        );
        let mut args: Vec<&[u8]> = vec![b"BLMPOP", t.as_bytes(), n.as_bytes()];
        args.extend(keys_of(&keys));
        args.extend([from.arg(), b"COUNT", c.as_bytes()]);
        key_and_elements(self.blocking(&args).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Value {
        Value::Bulk(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn timeouts_as_arguments() {
        assert_eq!(block_arg(Duration::ZERO), "0");
        assert_eq!(block_arg(Duration::from_secs(5)), "5.000");
        assert_eq!(block_arg(Duration::from_millis(1500)), "1.500");
        // Never rounded down to 0, which would block for ever.
        assert_eq!(block_arg(Duration::from_nanos(1)), "0.001");
        assert_eq!(block_arg(Duration::from_micros(2001)), "0.003");
    }

    #[test]
    fn replies_of_the_pops() {
        assert_eq!(key_and_element(Value::Nil).expect("nil"), None);
        assert_eq!(
            key_and_element(Value::Array(vec![b("k"), b("v")])).expect("pair"),
            Some((Bytes::from_static(b"k"), Bytes::from_static(b"v")))
        );
        assert!(key_and_element(Value::Array(vec![b("k")])).is_err());
        assert_eq!(key_and_elements(Value::Nil).expect("nil"), None);
        assert_eq!(
            key_and_elements(Value::Array(vec![
                b("k"),
                Value::Array(vec![b("a"), b("b")])
            ]))
            .expect("popped"),
            Some((
                Bytes::from_static(b"k"),
                vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
            ))
        );
        assert!(key_and_elements(Value::Array(vec![b("k")])).is_err());
    }
}
