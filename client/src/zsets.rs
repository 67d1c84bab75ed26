//! The typed API of sorted sets and GEO. Every command routes by its key; the commands over
//! several keys (ZUNION, ZINTERSTORE, ZRANGESTORE, ZMPOP, GEOSEARCHSTORE, ...) need their
//! keys in one slot (hash tags), like Redis Cluster.
//!
//! Score bounds are Redis's own syntax, as text: `"1.5"`, `"(1.5"` (exclusive), `"-inf"`,
//! `"+inf"`; lex bounds `"[a"`, `"(a"`, `"-"`, `"+"`.

use crate::commands::keys_of;
use crate::error::{Error, Result};
use crate::value::{FromValue, Value};
use crate::Client;
use bytes::Bytes;

/// Members with scores from a RESP2 flat array or RESP3 `[member, score]` pairs.
fn scored(v: Value) -> Result<Vec<(Bytes, f64)>> {
    let items = match v {
        Value::Array(items) | Value::Set(items) => items,
        Value::Nil => return Ok(Vec::new()),
        other => return Vec::<Bytes>::from_value(other).map(|_| Vec::new()),
    };
    if items.iter().all(|i| matches!(i, Value::Array(_))) {
        return items
            .into_iter()
            .map(|pair| {
                let mut it = Vec::<Value>::from_value(pair)?.into_iter();
                match (it.next(), it.next(), it.next()) {
                    (Some(m), Some(s), None) => Ok((Bytes::from_value(m)?, f64::from_value(s)?)),
                    _ => Err(Error::Type("a member and a score".into())),
                }
            })
            .collect();
    }
    if !items.len().is_multiple_of(2) {
        return Err(Error::Type("an odd number of member-score items".into()));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        out.push((Bytes::from_value(m)?, f64::from_value(s)?));
    }
    Ok(out)
}

/// A score as an argument (`inf` and `-inf` spelled as Redis reads them).
fn score_arg(s: f64) -> Result<String> {
    if s.is_nan() {
        return Err(Error::Invalid("a score cannot be NaN".into()));
    }
    Ok(if s == f64::INFINITY {
        "inf".into()
    } else if s == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        // Rust prints the shortest text that reads back as the same double.
        s.to_string()
    })
}

/// ZADD's conditions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZAddOptions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
}

impl ZAddOptions {
    pub fn new() -> ZAddOptions {
        ZAddOptions::default()
    }
    /// Only add new members.
    pub fn nx(mut self) -> Self {
        self.nx = true;
        self
    }
    /// Only update existing members.
    pub fn xx(mut self) -> Self {
        self.xx = true;
        self
    }
    /// Only update when the new score is greater.
    pub fn gt(mut self) -> Self {
        self.gt = true;
        self
    }
    /// Only update when the new score is less.
    pub fn lt(mut self) -> Self {
        self.lt = true;
        self
    }
    /// Count changed members as well as new ones.
    pub fn ch(mut self) -> Self {
        self.ch = true;
        self
    }

    fn args(&self) -> impl Iterator<Item = &'static [u8]> + '_ {
        [
            (self.nx, &b"NX"[..]),
            (self.xx, b"XX"),
            (self.gt, b"GT"),
            (self.lt, b"LT"),
            (self.ch, b"CH"),
        ]
        .into_iter()
        .filter_map(|(on, a)| on.then_some(a))
    }
}

/// How ZUNION and ZINTER combine a member's scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Aggregate {
    #[default]
    Sum,
    Min,
    Max,
}

/// A GEO search's centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GeoFrom<'a> {
    Member(&'a [u8]),
    LonLat(f64, f64),
}

/// Distance units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeoUnit {
    #[default]
    M,
    Km,
    Ft,
    Mi,
}

impl GeoUnit {
    fn arg(self) -> &'static [u8] {
        match self {
            GeoUnit::M => b"m",
            GeoUnit::Km => b"km",
            GeoUnit::Ft => b"ft",
            GeoUnit::Mi => b"mi",
        }
    }
}

/// A GEO search's area.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GeoBy {
    Radius(f64, GeoUnit),
    /// Width and height.
    Box(f64, f64, GeoUnit),
}

/// GEOSEARCH's ordering and count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeoSearchOptions {
    /// Nearest first (`Some(true)`), farthest first (`Some(false)`) or as found.
    pub ascending: Option<bool>,
    /// At most this many results (0: all).
    pub count: u64,
    /// With a count: stop at the first `count` matches rather than the nearest.
    pub any: bool,
}

/// A GEOSEARCH result with its distance (in the search's unit), hash and coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct GeoMatch {
    pub member: Bytes,
    pub distance: f64,
    pub hash: i64,
    pub lon: f64,
    pub lat: f64,
}

fn geo_args<'a>(
    args: &mut Vec<Vec<u8>>,
    from: GeoFrom<'a>,
    by: GeoBy,
    opts: GeoSearchOptions,
) -> Result<()> {
    match from {
        GeoFrom::Member(m) => {
            args.push(b"FROMMEMBER".to_vec());
            args.push(m.to_vec());
        }
        GeoFrom::LonLat(lon, lat) => {
            args.push(b"FROMLONLAT".to_vec());
            args.push(score_arg(lon)?.into_bytes());
            args.push(score_arg(lat)?.into_bytes());
        }
    }
    match by {
        GeoBy::Radius(r, u) => {
            args.push(b"BYRADIUS".to_vec());
            args.push(score_arg(r)?.into_bytes());
            args.push(u.arg().to_vec());
        }
        GeoBy::Box(w, h, u) => {
            args.push(b"BYBOX".to_vec());
            args.push(score_arg(w)?.into_bytes());
            args.push(score_arg(h)?.into_bytes());
            args.push(u.arg().to_vec());
        }
    }
    match opts.ascending {
        Some(true) => args.push(b"ASC".to_vec()),
        Some(false) => args.push(b"DESC".to_vec()),
        None => {}
    }
    if opts.count > 0 {
        args.push(b"COUNT".to_vec());
        args.push(opts.count.to_string().into_bytes());
        if opts.any {
            args.push(b"ANY".to_vec());
        }
    }
    Ok(())
}

fn refs(args: &[Vec<u8>]) -> Vec<&[u8]> {
    args.iter().map(|a| &a[..]).collect()
}

impl Client {
    // ---- sorted sets ------------------------------------------------------------------------

    /// ZADD: adds or updates `members` (score, member); how many were new.
    pub async fn zadd<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = (f64, M)>,
    ) -> Result<i64> {
        self.zadd_with(key, ZAddOptions::new(), members).await
    }

    /// ZADD with NX, XX, GT, LT or CH: how many were new (and, with CH, changed).
    pub async fn zadd_with<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        opts: ZAddOptions,
        members: impl IntoIterator<Item = (f64, M)>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let members: Vec<(String, M)> = members
            .into_iter()
            .map(|(s, m)| Ok((score_arg(s)?, m)))
            .collect::<Result<_>>()?;
        if members.is_empty() {
            return Err(Error::Invalid("ZADD needs at least one member".into()));
        }
        let mut args: Vec<&[u8]> = vec![b"ZADD", key];
        for a in opts.args() {
            args.push(a);
        }
        for (s, m) in &members {
            args.push(s.as_bytes());
            args.push(m.as_ref());
        }
        self.keyed(key, &args).await
    }

    /// ZINCRBY: adds `delta` to `member`'s score (0 when new); the new score.
    pub async fn zincrby(
        &self,
        key: impl AsRef<[u8]>,
        delta: f64,
        member: impl AsRef<[u8]>,
    ) -> Result<f64> {
        let key = key.as_ref();
        let d = score_arg(delta)?;
        self.keyed(key, &[b"ZINCRBY", key, d.as_bytes(), member.as_ref()])
            .await
    }

    /// ZREM: removes `members`; how many existed.
    pub async fn zrem<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = M>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let members: Vec<M> = members.into_iter().collect();
        if members.is_empty() {
            return Ok(0);
        }
        let mut args: Vec<&[u8]> = vec![b"ZREM", key];
        args.extend(keys_of(&members));
        self.keyed(key, &args).await
    }

    /// ZCARD: the number of members.
    pub async fn zcard(&self, key: impl AsRef<[u8]>) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"ZCARD", key]).await
    }

    /// ZSCORE: `member`'s score, `None` when it or the key is missing.
    pub async fn zscore(
        &self,
        key: impl AsRef<[u8]>,
        member: impl AsRef<[u8]>,
    ) -> Result<Option<f64>> {
        let key = key.as_ref();
        self.keyed(key, &[b"ZSCORE", key, member.as_ref()]).await
    }

    /// ZMSCORE: the scores of `members`, in order.
    pub async fn zmscore<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Option<f64>>> {
        let key = key.as_ref();
        let members: Vec<M> = members.into_iter().collect();
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<&[u8]> = vec![b"ZMSCORE", key];
        args.extend(keys_of(&members));
        self.keyed(key, &args).await
    }

    /// ZRANK (or ZREVRANK when `rev`): `member`'s 0-based position and score.
    pub async fn zrank(
        &self,
        key: impl AsRef<[u8]>,
        member: impl AsRef<[u8]>,
        rev: bool,
    ) -> Result<Option<(i64, f64)>> {
        let key = key.as_ref();
        let name: &[u8] = if rev { b"ZREVRANK" } else { b"ZRANK" };
        let v: Option<Vec<Value>> = self
            .keyed(key, &[name, key, member.as_ref(), b"WITHSCORE"])
            .await?;
        let Some(v) = v else {
            return Ok(None);
        };
        let mut it = v.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(r), Some(s), None) => Ok(Some((i64::from_value(r)?, f64::from_value(s)?))),
            _ => Err(Error::Type("a rank and a score".into())),
        }
    }

    /// ZCOUNT: how many members have scores within `min..=max` (Redis's bound syntax).
    pub async fn zcount(
        &self,
        key: impl AsRef<[u8]>,
        min: impl AsRef<[u8]>,
        max: impl AsRef<[u8]>,
    ) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"ZCOUNT", key, min.as_ref(), max.as_ref()])
            .await
    }

    /// ZLEXCOUNT: how many members sort within the lex range `min..=max`.
    pub async fn zlexcount(
        &self,
        key: impl AsRef<[u8]>,
        min: impl AsRef<[u8]>,
        max: impl AsRef<[u8]>,
    ) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"ZLEXCOUNT", key, min.as_ref(), max.as_ref()])
            .await
    }

    /// ZRANGE by rank, `start..=stop` (negative counts from the end), from the top when
    /// `rev`.
    pub async fn zrange(
        &self,
        key: impl AsRef<[u8]>,
        start: i64,
        stop: i64,
        rev: bool,
    ) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let (a, b) = (start.to_string(), stop.to_string());
        let mut args: Vec<&[u8]> = vec![b"ZRANGE", key, a.as_bytes(), b.as_bytes()];
        if rev {
            args.push(b"REV");
        }
        self.keyed(key, &args).await
    }

    /// [`Client::zrange`] with the scores.
    pub async fn zrange_withscores(
        &self,
        key: impl AsRef<[u8]>,
        start: i64,
        stop: i64,
        rev: bool,
    ) -> Result<Vec<(Bytes, f64)>> {
        let key = key.as_ref();
        let (a, b) = (start.to_string(), stop.to_string());
        let mut args: Vec<&[u8]> = vec![b"ZRANGE", key, a.as_bytes(), b.as_bytes()];
        if rev {
            args.push(b"REV");
        }
        args.push(b"WITHSCORES");
        scored(self.keyed(key, &args).await?)
    }

    /// ZRANGE BYSCORE with scores: members with scores within `min..=max`, lowest first
    /// (`rev`: highest first, still given as `min`, `max`), after skipping `offset` and at
    /// most `count` of them when `limit` is given.
    pub async fn zrangebyscore(
        &self,
        key: impl AsRef<[u8]>,
        min: impl AsRef<[u8]>,
        max: impl AsRef<[u8]>,
        rev: bool,
        limit: Option<(i64, i64)>,
    ) -> Result<Vec<(Bytes, f64)>> {
        let key = key.as_ref();
        let (min, max) = (min.as_ref(), max.as_ref());
        let (lo, hi) = if rev { (max, min) } else { (min, max) };
        let lim = limit.map(|(o, c)| (o.to_string(), c.to_string()));
        let mut args: Vec<&[u8]> = vec![b"ZRANGE", key, lo, hi, b"BYSCORE"];
        if rev {
            args.push(b"REV");
        }
        if let Some((o, c)) = &lim {
            args.extend([&b"LIMIT"[..], o.as_bytes(), c.as_bytes()]);
        }
        args.push(b"WITHSCORES");
        scored(self.keyed(key, &args).await?)
    }

    /// ZRANGE BYLEX: members within the lex range `min..=max` (all scores equal).
    pub async fn zrangebylex(
        &self,
        key: impl AsRef<[u8]>,
        min: impl AsRef<[u8]>,
        max: impl AsRef<[u8]>,
        rev: bool,
        limit: Option<(i64, i64)>,
    ) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let (min, max) = (min.as_ref(), max.as_ref());
        let (lo, hi) = if rev { (max, min) } else { (min, max) };
        let lim = limit.map(|(o, c)| (o.to_string(), c.to_string()));
        let mut args: Vec<&[u8]> = vec![b"ZRANGE", key, lo, hi, b"BYLEX"];
        if rev {
            args.push(b"REV");
        }
        if let Some((o, c)) = &lim {
            args.extend([&b"LIMIT"[..], o.as_bytes(), c.as_bytes()]);
        }
        self.keyed(key, &args).await
    }

    /// ZRANGESTORE by rank: stores ranks `start..=stop` of `src` at `dst` (one slot); how
    /// many.
    pub async fn zrangestore(
        &self,
        dst: impl AsRef<[u8]>,
        src: impl AsRef<[u8]>,
        start: i64,
        stop: i64,
    ) -> Result<i64> {
        let (a, b) = (start.to_string(), stop.to_string());
        self.same_slot(&[
            b"ZRANGESTORE",
            dst.as_ref(),
            src.as_ref(),
            a.as_bytes(),
            b.as_bytes(),
        ])
        .await
    }

    /// ZPOPMIN (or ZPOPMAX when `max`): removes and returns up to `count` members.
    pub async fn zpop(
        &self,
        key: impl AsRef<[u8]>,
        count: u64,
        max: bool,
    ) -> Result<Vec<(Bytes, f64)>> {
        let key = key.as_ref();
        let c = count.to_string();
        let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        scored(self.keyed(key, &[name, key, c.as_bytes()]).await?)
    }

    /// ZMPOP: pops up to `count` members from the first non-empty set of `keys` (one
    /// slot); that key and its members.
    pub async fn zmpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        max: bool,
        count: u64,
    ) -> Result<Option<(Bytes, Vec<(Bytes, f64)>)>> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid("ZMPOP needs at least one key".into()));
        }
        let (n, c) = (keys.len().to_string(), count.to_string());
        let mut args: Vec<&[u8]> = vec![b"ZMPOP", n.as_bytes()];
        args.extend(keys_of(&keys));
        args.extend([
            if max { &b"MAX"[..] } else { b"MIN" },
            b"COUNT",
            c.as_bytes(),
        ]);
        let v: Option<Vec<Value>> = self.same_slot(&args).await?;
        let Some(v) = v else {
            return Ok(None);
        };
        let mut it = v.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(items), None) => Ok(Some((Bytes::from_value(k)?, scored(items)?))),
            _ => Err(Error::Type("a key and its members".into())),
        }
    }

    /// ZRANDMEMBER key count WITHSCORES: up to `count` distinct members, or with a negative
    /// count exactly `-count` members that may repeat.
    pub async fn zrandmember(
        &self,
        key: impl AsRef<[u8]>,
        count: i64,
    ) -> Result<Vec<(Bytes, f64)>> {
        let key = key.as_ref();
        let c = count.to_string();
        scored(
            self.keyed(key, &[b"ZRANDMEMBER", key, c.as_bytes(), b"WITHSCORES"])
                .await?,
        )
    }

    /// ZREMRANGEBYRANK: removes ranks `start..=stop`; how many.
    pub async fn zremrangebyrank(
        &self,
        key: impl AsRef<[u8]>,
        start: i64,
        stop: i64,
    ) -> Result<i64> {
        let key = key.as_ref();
        let (a, b) = (start.to_string(), stop.to_string());
        self.keyed(key, &[b"ZREMRANGEBYRANK", key, a.as_bytes(), b.as_bytes()])
            .await
    }

    /// ZREMRANGEBYSCORE: removes the members with scores within `min..=max`; how many.
    pub async fn zremrangebyscore(
        &self,
        key: impl AsRef<[u8]>,
        min: impl AsRef<[u8]>,
        max: impl AsRef<[u8]>,
    ) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"ZREMRANGEBYSCORE", key, min.as_ref(), max.as_ref()])
            .await
    }

    /// ZREMRANGEBYLEX: removes the members within the lex range `min..=max`; how many.
    pub async fn zremrangebylex(
        &self,
        key: impl AsRef<[u8]>,
        min: impl AsRef<[u8]>,
        max: impl AsRef<[u8]>,
    ) -> Result<i64> {
        let key = key.as_ref();
        self.keyed(key, &[b"ZREMRANGEBYLEX", key, min.as_ref(), max.as_ref()])
            .await
    }

    /// The arguments of ZUNION, ZINTER, ZDIFF and their STORE forms.
    fn zcombine_args<K: AsRef<[u8]>>(
        name: &'static [u8],
        dst: Option<&[u8]>,
        keys: &[K],
        weights: &[f64],
        aggregate: Aggregate,
        withscores: bool,
    ) -> Result<Vec<Vec<u8>>> {
        if keys.is_empty() {
            return Err(Error::Invalid(format!(
                "{} needs at least one key",
                String::from_utf8_lossy(name)
            )));
        }
        if !weights.is_empty() && weights.len() != keys.len() {
            return Err(Error::Invalid("one weight per key".into()));
        }
        let mut args: Vec<Vec<u8>> = vec![name.to_vec()];
        args.extend(dst.map(<[u8]>::to_vec));
        args.push(keys.len().to_string().into_bytes());
        args.extend(keys.iter().map(|k| k.as_ref().to_vec()));
        if !weights.is_empty() {
            args.push(b"WEIGHTS".to_vec());
            for w in weights {
                args.push(score_arg(*w)?.into_bytes());
            }
        }
        if aggregate != Aggregate::Sum {
            args.push(b"AGGREGATE".to_vec());
            args.push(
                match aggregate {
                    Aggregate::Min => "MIN",
                    _ => "MAX",
                }
                .into(),
            );
        }
        if withscores {
            args.push(b"WITHSCORES".to_vec());
        }
        Ok(args)
    }

    /// ZUNION with scores: every member of `keys` (one slot), scores combined by
    /// `aggregate` after multiplying by `weights` (empty: all 1).
    pub async fn zunion<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        weights: &[f64],
        aggregate: Aggregate,
    ) -> Result<Vec<(Bytes, f64)>> {
        let keys: Vec<K> = keys.into_iter().collect();
        let args = Self::zcombine_args(b"ZUNION", None, &keys, weights, aggregate, true)?;
        scored(self.same_slot(&refs(&args)).await?)
    }

    /// ZINTER with scores: the members every set of `keys` has (one slot).
    pub async fn zinter<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        weights: &[f64],
        aggregate: Aggregate,
    ) -> Result<Vec<(Bytes, f64)>> {
        let keys: Vec<K> = keys.into_iter().collect();
        let args = Self::zcombine_args(b"ZINTER", None, &keys, weights, aggregate, true)?;
        scored(self.same_slot(&refs(&args)).await?)
    }

    /// ZDIFF with scores: the members of the first set no other has (one slot).
    pub async fn zdiff<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<(Bytes, f64)>> {
        let keys: Vec<K> = keys.into_iter().collect();
        let args = Self::zcombine_args(b"ZDIFF", None, &keys, &[], Aggregate::Sum, true)?;
        scored(self.same_slot(&refs(&args)).await?)
    }

    /// ZUNIONSTORE: stores the union at `dst` (one slot with `keys`); its size.
    pub async fn zunionstore<K: AsRef<[u8]>>(
        &self,
        dst: impl AsRef<[u8]>,
        keys: impl IntoIterator<Item = K>,
        weights: &[f64],
        aggregate: Aggregate,
    ) -> Result<i64> {
        let keys: Vec<K> = keys.into_iter().collect();
        let args = Self::zcombine_args(
            b"ZUNIONSTORE",
            Some(dst.as_ref()),
            &keys,
            weights,
            aggregate,
            false,
        )?;
        self.same_slot(&refs(&args)).await
    }

    /// ZINTERSTORE: stores the intersection at `dst`; its size.
    pub async fn zinterstore<K: AsRef<[u8]>>(
        &self,
        dst: impl AsRef<[u8]>,
        keys: impl IntoIterator<Item = K>,
        weights: &[f64],
        aggregate: Aggregate,
    ) -> Result<i64> {
        let keys: Vec<K> = keys.into_iter().collect();
        let args = Self::zcombine_args(
            b"ZINTERSTORE",
            Some(dst.as_ref()),
            &keys,
            weights,
            aggregate,
            false,
        )?;
        self.same_slot(&refs(&args)).await
    }

    /// ZDIFFSTORE: stores the difference at `dst`; its size.
    pub async fn zdiffstore<K: AsRef<[u8]>>(
        &self,
        dst: impl AsRef<[u8]>,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<i64> {
        let keys: Vec<K> = keys.into_iter().collect();
        let args = Self::zcombine_args(
            b"ZDIFFSTORE",
            Some(dst.as_ref()),
            &keys,
            &[],
            Aggregate::Sum,
            false,
        )?;
        self.same_slot(&refs(&args)).await
    }

    /// ZINTERCARD: the size of the intersection, counting at most `limit` (0: no limit).
    pub async fn zintercard<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        limit: u64,
    ) -> Result<i64> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(Error::Invalid("ZINTERCARD needs at least one key".into()));
        }
        let (n, l) = (keys.len().to_string(), limit.to_string());
        let mut args: Vec<&[u8]> = vec![b"ZINTERCARD", n.as_bytes()];
        args.extend(keys_of(&keys));
        args.extend([&b"LIMIT"[..], l.as_bytes()]);
        self.same_slot(&args).await
    }

    /// ZSCAN: one step from `cursor`; the next cursor (0 when done) and members with scores.
    pub async fn zscan(
        &self,
        key: impl AsRef<[u8]>,
        cursor: u64,
        pattern: Option<&str>,
        count: Option<u64>,
    ) -> Result<(u64, Vec<(Bytes, f64)>)> {
        let key = key.as_ref();
        let (cursor, items) = self.scan_cmd(b"ZSCAN", key, cursor, pattern, count).await?;
        Ok((cursor, scored(items)?))
    }

    // ---- GEO --------------------------------------------------------------------------------

    /// GEOADD: adds `points` (longitude, latitude, member); how many were new.
    pub async fn geoadd<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        points: impl IntoIterator<Item = (f64, f64, M)>,
    ) -> Result<i64> {
        let key = key.as_ref();
        let mut args: Vec<Vec<u8>> = vec![b"GEOADD".to_vec(), key.to_vec()];
        for (lon, lat, m) in points {
            args.push(score_arg(lon)?.into_bytes());
            args.push(score_arg(lat)?.into_bytes());
            args.push(m.as_ref().to_vec());
        }
        if args.len() == 2 {
            return Err(Error::Invalid("GEOADD needs at least one point".into()));
        }
        self.keyed(key, &refs(&args)).await
    }

    /// GEOPOS: the (longitude, latitude) of `members`, in order.
    pub async fn geopos<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Option<(f64, f64)>>> {
        let key = key.as_ref();
        let members: Vec<M> = members.into_iter().collect();
        let mut args: Vec<&[u8]> = vec![b"GEOPOS", key];
        args.extend(keys_of(&members));
        let v: Vec<Option<Vec<f64>>> = self.keyed(key, &args).await?;
        v.into_iter()
            .map(|p| match p.as_deref() {
                None => Ok(None),
                Some(&[lon, lat]) => Ok(Some((lon, lat))),
                Some(_) => Err(Error::Type("a longitude and a latitude".into())),
            })
            .collect()
    }

    /// GEODIST: the distance between two members in `unit`, `None` when one is missing.
    pub async fn geodist(
        &self,
        key: impl AsRef<[u8]>,
        a: impl AsRef<[u8]>,
        b: impl AsRef<[u8]>,
        unit: GeoUnit,
    ) -> Result<Option<f64>> {
        let key = key.as_ref();
        self.keyed(key, &[b"GEODIST", key, a.as_ref(), b.as_ref(), unit.arg()])
            .await
    }

    /// GEOHASH: the 11-character geohash of `members`, in order.
    pub async fn geohash<M: AsRef<[u8]>>(
        &self,
        key: impl AsRef<[u8]>,
        members: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Option<String>>> {
        let key = key.as_ref();
        let members: Vec<M> = members.into_iter().collect();
        let mut args: Vec<&[u8]> = vec![b"GEOHASH", key];
        args.extend(keys_of(&members));
        self.keyed(key, &args).await
    }

    /// GEOSEARCH: the members within the area.
    pub async fn geosearch(
        &self,
        key: impl AsRef<[u8]>,
        from: GeoFrom<'_>,
        by: GeoBy,
        opts: GeoSearchOptions,
    ) -> Result<Vec<Bytes>> {
        let key = key.as_ref();
        let mut args = vec![b"GEOSEARCH".to_vec(), key.to_vec()];
        geo_args(&mut args, from, by, opts)?;
        self.keyed(key, &refs(&args)).await
    }

    /// GEOSEARCH WITHDIST WITHHASH WITHCOORD.
    pub async fn geosearch_with(
        &self,
        key: impl AsRef<[u8]>,
        from: GeoFrom<'_>,
        by: GeoBy,
        opts: GeoSearchOptions,
    ) -> Result<Vec<GeoMatch>> {
        let key = key.as_ref();
        let mut args = vec![b"GEOSEARCH".to_vec(), key.to_vec()];
        geo_args(&mut args, from, by, opts)?;
        args.extend([
            b"WITHDIST".to_vec(),
            b"WITHHASH".to_vec(),
            b"WITHCOORD".to_vec(),
        ]);
        let v: Vec<Vec<Value>> = self.keyed(key, &refs(&args)).await?;
        v.into_iter()
            .map(|item| {
                let mut it = item.into_iter();
                match (it.next(), it.next(), it.next(), it.next(), it.next()) {
                    (Some(m), Some(d), Some(h), Some(c), None) => {
                        let c = Vec::<f64>::from_value(c)?;
                        let [lon, lat] = c[..] else {
                            return Err(Error::Type("a longitude and a latitude".into()));
                        };
                        Ok(GeoMatch {
                            member: Bytes::from_value(m)?,
                            distance: f64::from_value(d)?,
                            hash: i64::from_value(h)?,
                            lon,
                            lat,
                        })
                    }
                    _ => Err(Error::Type(
                        "a member, distance, hash and coordinates".into(),
                    )),
                }
            })
            .collect()
    }

    /// GEOSEARCHSTORE: stores the members within the area at `dst` (one slot with `src`),
    /// scored by geohash or, with `storedist`, by distance; how many.
    pub async fn geosearchstore(
        &self,
        dst: impl AsRef<[u8]>,
        src: impl AsRef<[u8]>,
        from: GeoFrom<'_>,
        by: GeoBy,
        opts: GeoSearchOptions,
        storedist: bool,
    ) -> Result<i64> {
        let mut args = vec![
            b"GEOSEARCHSTORE".to_vec(),
            dst.as_ref().to_vec(),
            src.as_ref().to_vec(),
        ];
        geo_args(&mut args, from, by, opts)?;
        if storedist {
            args.push(b"STOREDIST".to_vec());
        }
        self.same_slot(&refs(&args)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scored_from_either_protocol() {
        let b = |s: &'static str| Value::Bulk(Bytes::from_static(s.as_bytes()));
        let want = vec![(Bytes::from_static(b"a"), 1.5)];
        assert_eq!(
            scored(Value::Array(vec![b("a"), b("1.5")])).expect("flat"),
            want
        );
        assert_eq!(
            scored(Value::Array(vec![Value::Array(vec![
                b("a"),
                Value::Double(1.5)
            ])]))
            .expect("pairs"),
            want
        );
        assert!(scored(Value::Array(vec![b("a")])).is_err());
        assert!(scored(Value::Nil).expect("nil").is_empty());
        assert_eq!(
            scored(Value::Array(vec![b("x"), b("-inf")])).expect("inf"),
            vec![(Bytes::from_static(b"x"), f64::NEG_INFINITY)]
        );
    }

    #[test]
    fn scores_as_arguments() {
        assert_eq!(score_arg(1.5).expect("ok"), "1.5");
        assert_eq!(score_arg(f64::INFINITY).expect("ok"), "inf");
        assert_eq!(score_arg(0.1).expect("ok"), "0.1");
        assert!(score_arg(f64::NAN).is_err());
    }
}
