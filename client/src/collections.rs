//! The typed API of hashes and sets. Every command routes by its key; the multi-key set
//! commands need their keys in one slot (hash tags), like Redis Cluster.

use crate::commands::keys_of;
use crate::error::{Error, Result};
use crate::value::{FromValue, Value};
use crate::Client;
use bytes::Bytes;

/// Field-value pairs from a RESP2 flat array or a RESP3 map.
fn pairs(v: Value) -> Result<Vec<(Bytes, Bytes)>> {
    match v {
        Value::Map(m) => m
            .into_iter()
            .map(|(f, v)| Ok((Bytes::from_value(f)?, Bytes::from_value(v)?)))
            .collect(),
        Value::Array(items) => {
            if !items.len().is_multiple_of(2) {
                return Err(Error::Type("an odd number of field-value items".into()));
            }
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                out.push((Bytes::from_value(f)?, Bytes::from_value(v)?));
            }
            Ok(out)
        }
        other => Vec::<Bytes>::from_value(other).map(|_| Vec::new()),
    }
}

/// Builds `[name, key, items...]`.
fn with_items<'a, I: AsRef<[u8]>>(name: &'a [u8], key: &'a [u8], items: &'a [I]) -> Vec<&'a [u8]> {
    let mut args: Vec<&[u8]> = Vec::with_capacity(items.len() + 2);
    args.push(name);
    args.push(key);
    args.extend(keys_of(items));
    args
}

impl Client {
    // ---- hashes -----------------------------------------------------------------------------

    /// HSET: sets each field to its value; how many fields were new.
    pub async fn hset<F: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: impl IntoIterator<Item = (F, V)>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let fields: Vec<(F, V)> = fields.into_iter().collect();
        if fields.is_empty() {
            return Err(Error::Invalid("HSET needs at least one field".into()));
        }
        let mut args: Vec<&[u8]> = vec![b"HSET", key];
        for (f, v) in &fields {
            args.push(f.as_ref());
            args.push(v.as_ref());
        }
        self.keyed(key, &args).await
    }

    /// HSETNX: sets `field` only if it does not exist; whether it did.
    pub async fn hsetnx(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool> {
        let key = key.as_ref();
        self.keyed(key, &[b"HSETNX", key, field.as_ref(), value.as_ref()])
            .await
    }

    /// HGET: the value of `field`, `None` when the field or the key is missing.
    pub async fn hget(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"HGET", key, field.as_ref()]).await
    }

    /// HMGET: the values of `fields`, in order.
    pub async fn hmget<F: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: impl IntoIterator<Item = F>,
    ) -> Result<Vec<Option<Bytes>>> {
        let key = key.as_ref();
        let fields: Vec<F> = fields.into_iter().collect();
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        self.keyed(key, &with_items(b"HMGET", key, &fields)).await
    }

    /// HGETALL: every field and value.
    pub async fn hgetall(&self, key: impl AsRef<[u8]>) -> Result<Vec<(Bytes, Bytes)>> {
        let key = key.as_ref();
        pairs(self.keyed(key, &[b"HGETALL", key]).await?)
    }

    /// HDEL: removes `fields`; how many existed.
    pub async fn hdel<F: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        fields: impl IntoIterator<Item = F>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let fields: Vec<F> = fields.into_iter().collect();
        if fields.is_empty() {
            return Ok(0);
        }
        self.keyed(key, &with_items(b"HDEL", key, &fields)).await
    }

    /// HLEN: the number of fields.
    pub async fn hlen(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"HLEN", key]).await
    }

    /// HSTRLEN: the length of `field`'s value (0 when missing).
    pub async fn hstrlen(&self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"HSTRLEN", key, field.as_ref()]).await
    }

    /// HEXISTS: whether `field` exists.
    pub async fn hexists(&self, key: impl AsRef<[u8]>, field: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.keyed(key, &[b"HEXISTS", key, field.as_ref()]).await
    }

    /// HKEYS: every field.
    pub async fn hkeys(&self, key: impl AsRef<[u8]>) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"HKEYS", key]).await
    }

    /// HVALS: every value.
    pub async fn hvals(&self, key: impl AsRef<[u8]>) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"HVALS", key]).await
    }

    /// HINCRBY: adds `delta` to the integer in `field` (0 when missing); the new value.
    pub async fn hincrby(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: i64,
    ) -> Result<i64> {
        let key = key.as_ref();
        let d = delta.to_string();
        self.keyed(key, &[b"HINCRBY", key, field.as_ref(), d.as_bytes()])
            .await
    }

    /// HINCRBYFLOAT: adds `delta` to the number in `field`; the new value.
    pub async fn hincrbyfloat(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        delta: f64,
    ) -> Result<f64> {
        if !delta.is_finite() {
            return Err(Error::Invalid(
                "HINCRBYFLOAT needs a finite increment".into(),
            ));
        }
        let key = key.as_ref();
        let d = delta.to_string();
        self.keyed(key, &[b"HINCRBYFLOAT", key, field.as_ref(), d.as_bytes()])
            .await
    }

    /// HRANDFIELD key count: up to `count` distinct fields, or with a negative count
    /// exactly `-count` fields that may repeat.
    pub async fn hrandfield(&self, key: impl AsRef<[u8]>, count: i64) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let c = count.to_string();
        self.keyed(key, &[b"HRANDFIELD", key, c.as_bytes()]).await
    }

    /// HRANDFIELD key count WITHVALUES: like [`Client::hrandfield`], with the values.
    pub async fn hrandfield_withvalues(
        &self,
        key: impl AsRef<[u8]>,
        count: i64,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let key = key.as_ref();
        let c = count.to_string();
        let v: Value = self
            .keyed(key, &[b"HRANDFIELD", key, c.as_bytes(), b"WITHVALUES"])
            .await?;
        match v {
            // RESP3: an array of [field, value] pairs.
            Value::Array(items)
                if items.iter().all(|i| matches!(i, Value::Array(_))) && !items.is_empty() =>
            {
                items
                    .into_iter()
                    .map(|p| {
                        let [f, v]: [Bytes; 2] = Vec::<Bytes>::from_value(p)?
                            .try_into()
                            .map_err(|_| Error::Type("a field-value pair".into()))?;
                        Ok((f, v))
                    })
                    .collect()
            }
            other => pairs(other),
        }
    }

    /// HSCAN: one step from `cursor`; the next cursor (0 when done) and field-value pairs.
    pub async fn hscan(
        &self,
        key: impl AsRef<[u8]>,
        cursor: u64,
        pattern: Option<&str>,
        count: Option<u64>,
    ) -> Result<(u64, Vec<(Bytes, Bytes)>)> {
        let key = key.as_ref();
        let (cursor, items) = self.scan_cmd(b"HSCAN", key, cursor, pattern, count).await?;
        Ok((cursor, pairs(items)?))
    }

    pub(crate) async fn scan_cmd(
        &self,
        name: &[u8],
        key: &[u8],
        cursor: u64,
        pattern: Option<&str>,
        count: Option<u64>,
    ) -> Result<(u64, Value)> {
        let c = cursor.to_string();
        let n = count.map(|n| n.to_string());
        let mut args: Vec<&[u8]> = vec![name, key, c.as_bytes()];
        if let Some(p) = pattern {
            args.extend([&b"MATCH"[..], p.as_bytes()]);
        }
        if let Some(n) = &n {
            args.extend([&b"COUNT"[..], n.as_bytes()]);
        }
        let v: Vec<Value> = self.keyed(key, &args).await?;
        let mut it = v.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(c), Some(items), None) => Ok((u64::from_value(c)?, items)),
            _ => Err(Error::Type("a cursor and a list of items".into())),
        }
    }

    // ---- sets -------------------------------------------------------------------------------

    /// SADD: adds `members`; how many were new.
    pub async fn sadd<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = M>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let members: Vec<M> = members.into_iter().collect();
        if members.is_empty() {
            return Err(Error::Invalid("SADD needs at least one member".into()));
        }
        self.keyed(key, &with_items(b"SADD", key, &members)).await
    }

    /// SREM: removes `members`; how many were there.
    pub async fn srem<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = M>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let members: Vec<M> = members.into_iter().collect();
        if members.is_empty() {
            return Ok(0);
        }
        self.keyed(key, &with_items(b"SREM", key, &members)).await
    }

    /// SMEMBERS: every member.
    pub async fn smembers(&self, key: impl AsRef<[u8]>) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"SMEMBERS", key]).await
    }

    /// SISMEMBER: whether `member` is in the set.
    pub async fn sismember(&self, key: impl AsRef<[u8]>, member: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.keyed(key, &[b"SISMEMBER", key, member.as_ref()]).await
    }

    /// SMISMEMBER: for each of `members`, whether it is in the set.
    pub async fn smismember<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = M>,
    ) -> Result<Vec<bool>> {
        let key = key.as_ref();
        let members: Vec<M> = members.into_iter().collect();
        if members.is_empty() {
            return Ok(Vec::new());
        }
        self.keyed(key, &with_items(b"SMISMEMBER", key, &members))
            .await
    }

    /// SCARD: the number of members.
    pub async fn scard(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"SCARD", key]).await
    }

    /// SPOP: removes and returns a random member.
    pub async fn spop(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.keyed(key, &[b"SPOP", key]).await
    }

    /// SPOP key count: removes and returns up to `count` random members.
    pub async fn spop_count(&self, key: impl AsRef<[u8]>, count: u64) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let c = count.to_string();
        self.keyed(key, &[b"SPOP", key, c.as_bytes()]).await
    }

    /// SRANDMEMBER key count: up to `count` distinct members, or with a negative count
    /// exactly `-count` members that may repeat.
    pub async fn srandmember(&self, key: impl AsRef<[u8]>, count: i64) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let c = count.to_string();
        self.keyed(key, &[b"SRANDMEMBER", key, c.as_bytes()]).await
    }

    /// SMOVE: moves `member` from `src` to `dst` (one slot); whether it was moved.
    pub async fn smove(
        &self,
        src: impl AsRef<[u8]>,
        dst: impl AsRef<[u8]>,
        member: impl AsRef<[u8]>,
    ) -> Result<bool> {
        self.same_slot(&[b"SMOVE", src.as_ref(), dst.as_ref(), member.as_ref()])
            .await
    }

    async fn set_op<K: AsRef<[u8]>, T: FromValue>(
        &self,
        name: &[u8],
        dst: Option<&[u8]>,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<T> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid(
                "a set operation needs at least one key".into(),
            ));
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 2);
        args.push(name);
        args.extend(dst);
        args.extend(keys_of(&keys));
        self.same_slot(&args).await
    }

    /// SINTER: the members every set has (keys in one slot).
    pub async fn sinter<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Bytes>> {
        self.set_op(b"SINTER", None, keys).await
    }

    /// SUNION: the members any set has (keys in one slot).
    pub async fn sunion<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Bytes>> {
        self.set_op(b"SUNION", None, keys).await
    }

    /// SDIFF: the members of the first set that no other has (keys in one slot).
    pub async fn sdiff<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Bytes>> {
        self.set_op(b"SDIFF", None, keys).await
    }

    /// SINTERSTORE: stores the intersection at `dst`; its size.
    pub async fn sinterstore<K: AsRef<[u8]>>(
        &self,
        dst: impl AsRef<[u8]>,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<i64> {
        self.set_op(b"SINTERSTORE", Some(dst.as_ref()), keys).await
    }

    /// SUNIONSTORE: stores the union at `dst`; its size.
    pub async fn sunionstore<K: AsRef<[u8]>>(
        &self,
        dst: impl AsRef<[u8]>,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<i64> {
        self.set_op(b"SUNIONSTORE", Some(dst.as_ref()), keys).await
    }

    /// SDIFFSTORE: stores the difference at `dst`; its size.
    pub async fn sdiffstore<K: AsRef<[u8]>>(
        &self,
        dst: impl AsRef<[u8]>,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<i64> {
        self.set_op(b"SDIFFSTORE", Some(dst.as_ref()), keys).await
    }

    /// SINTERCARD: the size of the intersection, counting at most `limit` (0: no limit).
    pub async fn sintercard<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        limit: u64,
    ) -> Result<i64> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid("SINTERCARD needs at least one key".into()));
        }
        let n = keys.len().to_string();
        let l = limit.to_string();
        let mut args: Vec<&[u8]> = vec![b"SINTERCARD", n.as_bytes()];
        args.extend(keys_of(&keys));
        args.extend([&b"LIMIT"[..], l.as_bytes()]);
        self.same_slot(&args).await
    }

    /// SSCAN: one step from `cursor`; the next cursor (0 when done) and members.
    pub async fn sscan(
        &self,
        key: impl AsRef<[u8]>,
        cursor: u64,
        pattern: Option<&str>,
        count: Option<u64>,
    ) -> Result<(u64, Vec<Bytes>)> {
        let key = key.as_ref();
        let (cursor, items) = self.scan_cmd(b"SSCAN", key, cursor, pattern, count).await?;
        Ok((cursor, Vec::<Bytes>::from_value(items)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_from_either_protocol() {
        let b = |s: &'static str| Value::Bulk(Bytes::from_static(s.as_bytes()));
        let want = vec![(Bytes::from_static(b"f"), Bytes::from_static(b"v"))];
        assert_eq!(
            pairs(Value::Array(vec![b("f"), b("v")])).expect("flat"),
            want
        );
        assert_eq!(
            pairs(Value::Map(vec![(b("f"), b("v"))])).expect("map"),
            want
        );
        assert!(pairs(Value::Array(vec![b("f")])).is_err());
        assert!(pairs(Value::Int(1)).is_err());
        assert!(pairs(Value::Array(vec![])).expect("empty").is_empty());
    }
}
