//! GEO commands: points kept in sorted sets, their score the 52-bit geohash Redis uses
//! (see [`crate::geohash`]), so a GEO key is a sorted set to every other command and its
//! values are interchangeable with Redis's. Semantics, replies and error texts are Redis
//! 7's; coordinates print as Redis prints them (`%.17Lf` without trailing zeros) and
//! distances with four decimals.

use super::flags::*;
use super::zset::{score_ranks, store_result, ScoreBound};
use super::*;
use crate::geohash::{self, Shape};
use crate::store::Zset;

const G: &str = "geo";

pub static COMMANDS: &[CommandSpec] = &[
    spec("geoadd", -5, WRITE | DENYOOM, (1, 1, 1), G, "3.2.0",
        "Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
        "key [NX | XX] [CH] longitude latitude member [longitude latitude member ...]", geoadd),
    spec("geopos", -2, READONLY, (1, 1, 1), G, "3.2.0",
        "Returns the longitude and latitude of members from a geospatial index.",
        "key [member [member ...]]", geopos),
    spec("geodist", -4, READONLY, (1, 1, 1), G, "3.2.0",
        "Returns the distance between two members of a geospatial index.",
        "key member1 member2 [M | KM | FT | MI]", geodist),
    spec("geohash", -2, READONLY, (1, 1, 1), G, "3.2.0",
        "Returns members from a geospatial index as geohash strings.", "key [member [member ...]]", geohash),
    spec("georadius", -6, WRITE | DENYOOM | STORE_OPT, (1, 1, 1), G, "3.2.0",
        "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.",
        "key longitude latitude radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC] [STORE key | STOREDIST key]",
        georadius),
    spec("georadius_ro", -6, READONLY, (1, 1, 1), G, "3.2.10",
        "Returns members from a geospatial index that are within a distance from a coordinate.",
        "key longitude latitude radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC]",
        georadius_ro),
    spec("georadiusbymember", -5, WRITE | DENYOOM | STORE_OPT, (1, 1, 1), G, "3.2.0",
        "Queries a geospatial index for members within a distance from a member, optionally stores the result.",
        "key member radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC] [STORE key | STOREDIST key]",
        georadiusbymember),
    spec("georadiusbymember_ro", -5, READONLY, (1, 1, 1), G, "3.2.10",
        "Returns members from a geospatial index that are within a distance from a member.",
        "key member radius M | KM | FT | MI [WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC | DESC]",
        georadiusbymember_ro),
    spec("geosearch", -7, READONLY, (1, 1, 1), G, "6.2.0",
        "Queries a geospatial index for members inside an area of a box or a circle.",
        "key FROMMEMBER member | FROMLONLAT longitude latitude BYRADIUS radius M | KM | FT | MI | BYBOX width height M | KM | FT | MI [ASC | DESC] [COUNT count [ANY]] [WITHCOORD] [WITHDIST] [WITHHASH]",
        geosearch),
    spec("geosearchstore", -8, WRITE | DENYOOM, (1, 2, 1), G, "6.2.0",
        "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.",
        "destination source FROMMEMBER member | FROMLONLAT longitude latitude BYRADIUS radius M | KM | FT | MI | BYBOX width height M | KM | FT | MI [ASC | DESC] [COUNT count [ANY]] [STOREDIST]",
        geosearchstore),
];

/// A coordinate as Redis prints one (`%.17Lf`, trailing zeros removed).
fn coord_text(x: f64) -> String {
    let s = format!("{x:.17}");
    let t = s.trim_end_matches('0').trim_end_matches('.');
    if t == "-0" {
        "0".into()
    } else {
        t.into()
    }
}

fn coord_frame(ctx: &Ctx<'_>, x: f64) -> Frame {
    if ctx.session.proto == crate::resp::Protocol::Resp3 {
        Frame::Double(x)
    } else {
        Frame::bulk(coord_text(x))
    }
}

/// A distance as Redis prints one: rounded to four decimals.
fn distance_frame(d: f64) -> Frame {
    let scaled = (d * 10000.0).round_ties_even();
    if d == 0.0 || !scaled.is_finite() {
        return Frame::bulk(if d == 0.0 {
            "0.0000".into()
        } else {
            format!("{d:.4}")
        });
    }
    let v = scaled as i64;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    Frame::bulk(format!("{sign}{}.{:04}", a / 10000, a % 10000))
}

/// Reads `longitude latitude` (Redis's `extractLongLatOrReply`).
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Frame> {
    let lon = parse_double(lon).ok_or(ERR_NOT_FLOAT)?;
    let lat = parse_double(lat).ok_or(ERR_NOT_FLOAT)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(Frame::error(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Meters in one `unit`.
fn unit(a: &[u8]) -> Result<f64, Frame> {
    if is(a, "m") {
        Ok(1.0)
    } else if is(a, "km") {
        Ok(1000.0)
    } else if is(a, "ft") {
        Ok(0.3048)
    } else if is(a, "mi") {
        Ok(1609.34)
    } else {
        Err(Frame::err(
            "ERR unsupported unit provided. please use M, KM, FT, MI",
        ))
    }
}

fn geoadd(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut i = 2;
    let (mut nx, mut xx, mut ch) = (false, false, false);
    while i < req.len() {
        let a = req.arg(i);
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if is(a, "CH") {
            ch = true;
        } else {
            break;
        }
        i += 1;
    }
    if !(req.len() - i).is_multiple_of(3) || (nx && xx) {
        return Err(ERR_SYNTAX);
    }
    // As ZADD key [NX|XX] [CH] score member ...
    let mut args: Vec<Vec<u8>> = vec![b"zadd".to_vec(), req.arg(1).to_vec()];
    for (flag, on) in [("NX", nx), ("XX", xx), ("CH", ch)] {
        if on {
            args.push(flag.as_bytes().to_vec());
        }
    }
    for j in (i..req.len()).step_by(3) {
        let (lon, lat) = lon_lat(req.arg(j), req.arg(j + 1))?;
        let score = geohash::score_of(lon, lat).unwrap_or(0.0);
        args.push(itoa::Buffer::new().format(score as u64).as_bytes().to_vec());
        args.push(req.arg(j + 2).to_vec());
    }
    let zadd = Request::from_args(args.iter().map(|a| &a[..]));
    super::zset::zadd(ctx, &zadd)
}

fn geopos(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let scores = read_collection(ctx, req.arg(1), |z: &Zset| {
        req.iter().skip(2).map(|m| z.score(m)).collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| req.iter().skip(2).map(|_| None).collect());
    Ok(Frame::Array(
        scores
            .into_iter()
            .map(|s| match s {
                None => Frame::NullArray,
                Some(s) => {
                    let (lon, lat) = geohash::point_of(s);
                    Frame::Array(vec![coord_frame(ctx, lon), coord_frame(ctx, lat)])
                }
            })
            .collect(),
    ))
}

fn geodist(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let to_meter = match req.len() {
        4 => 1.0,
        5 => unit(req.arg(4))?,
        _ => return Err(ERR_SYNTAX),
    };
    let r = read_collection(ctx, req.arg(1), |z: &Zset| {
        Some((z.score(req.arg(2))?, z.score(req.arg(3))?))
    })?
    .flatten();
    Ok(match r {
        None => Frame::Null,
        Some((a, b)) => {
            let (p, q) = (geohash::point_of(a), geohash::point_of(b));
            distance_frame(geohash::distance(p.0, p.1, q.0, q.1) / to_meter)
        }
    })
}

fn geohash(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let scores = read_collection(ctx, req.arg(1), |z: &Zset| {
        req.iter().skip(2).map(|m| z.score(m)).collect::<Vec<_>>()
    })?
    .unwrap_or_else(|| req.iter().skip(2).map(|_| None).collect());
    Ok(Frame::Array(
        scores
            .into_iter()
            .map(|s| s.map_or(Frame::Null, |s| Frame::bulk(geohash::geohash_string(s))))
            .collect(),
    ))
}

// ---- searches ----

/// Which search command runs (Redis's `georadiusGeneric` flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GEORADIUS: centre from coordinates.
    RadiusCoords { store: bool },
    /// GEORADIUSBYMEMBER: centre from a member.
    RadiusMember { store: bool },
    /// GEOSEARCH and GEOSEARCHSTORE.
    Search { store: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A found point.
struct Found {
    member: Vec<u8>,
    score: f64,
    dist: f64,
    lon: f64,
    lat: f64,
}

/// Where the centre comes from.
enum From<'a> {
    Coords(f64, f64),
    Member(&'a [u8]),
}

struct Search<'a> {
    from: Option<From<'a>>,
    /// The shape as given and its unit's factor.
    shape: Option<(Shape, f64)>,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    sort: Sort,
    count: usize,
    any: bool,
    store: Option<&'a [u8]>,
    storedist: bool,
}

/// Parses a search request (everything but the source key's contents).
fn parse_search<'a>(req: &'a Request, kind: Kind) -> Result<Search<'a>, Frame> {
    let mut s = Search {
        from: None,
        shape: None,
        withdist: false,
        withhash: false,
        withcoord: false,
        sort: Sort::None,
        count: 0,
        any: false,
        store: None,
        storedist: false,
    };
    let base = match kind {
        Kind::RadiusCoords { .. } => {
            let (lon, lat) = lon_lat(req.arg(2), req.arg(3))?;
            s.from = Some(From::Coords(lon, lat));
            s.shape = Some(radius(req.arg(4), req.arg(5))?);
            6
        }
        Kind::RadiusMember { .. } => {
            s.from = Some(From::Member(req.arg(2)));
            5
        }
        Kind::Search { store } => {
            if store {
                s.store = Some(req.arg(1));
                3
            } else {
                2
            }
        }
    };
    let radius_store = matches!(
        kind,
        Kind::RadiusCoords { store: true } | Kind::RadiusMember { store: true }
    );
    let search = matches!(kind, Kind::Search { .. });
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut i = base;
    while i < req.len() {
        let a = req.arg(i);
        let left = req.len() - i - 1;
        if is(a, "WITHDIST") {
            s.withdist = true;
        } else if is(a, "WITHHASH") {
            s.withhash = true;
        } else if is(a, "WITHCOORD") {
            s.withcoord = true;
        } else if is(a, "ANY") {
            s.any = true;
        } else if is(a, "ASC") {
            s.sort = Sort::Asc;
        } else if is(a, "DESC") {
            s.sort = Sort::Desc;
        } else if is(a, "COUNT") && left >= 1 {
            let n = int_arg(req.arg(i + 1))?;
            if n <= 0 {
                return Err(Frame::err("ERR COUNT must be > 0"));
            }
            s.count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 1;
        } else if (is(a, "STORE") || is(a, "STOREDIST")) && left >= 1 && radius_store {
            s.store = Some(req.arg(i + 1));
            s.storedist = is(a, "STOREDIST");
            i += 1;
        } else if is(a, "STOREDIST") && matches!(kind, Kind::Search { store: true }) {
            s.storedist = true;
        } else if is(a, "FROMMEMBER") && left >= 1 && search && !fromloc {
            s.from = Some(From::Member(req.arg(i + 1)));
            frommember = true;
            i += 1;
        } else if is(a, "FROMLONLAT") && left >= 2 && search && !frommember {
            let (lon, lat) = lon_lat(req.arg(i + 1), req.arg(i + 2))?;
            s.from = Some(From::Coords(lon, lat));
            fromloc = true;
            i += 2;
        } else if is(a, "BYRADIUS") && left >= 2 && search && !bybox {
            s.shape = Some(radius(req.arg(i + 1), req.arg(i + 2))?);
            byradius = true;
            i += 2;
        } else if is(a, "BYBOX") && left >= 3 && search && !byradius {
            let w = parse_double(req.arg(i + 1)).ok_or(Frame::err("ERR need numeric width"))?;
            let h = parse_double(req.arg(i + 2)).ok_or(Frame::err("ERR need numeric height"))?;
            if h < 0.0 || w < 0.0 {
                return Err(Frame::err("ERR height or width cannot be negative"));
            }
            s.shape = Some((Shape::Box(w, h), unit(req.arg(i + 3))?));
            bybox = true;
            i += 3;
        } else {
            return Err(ERR_SYNTAX);
        }
        i += 1;
    }
    if s.store.is_some() && (s.withdist || s.withhash || s.withcoord) {
        return Err(Frame::error(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if matches!(kind, Kind::Search { store: true }) {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(req.arg(0));
    if search && !(frommember || fromloc) {
        return Err(Frame::error(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(Frame::error(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if s.any && s.count == 0 {
        return Err(Frame::err("ERR the ANY argument requires COUNT argument"));
    }
    Ok(s)
}

/// `radius unit` (Redis's `extractDistanceOrReply`).
fn radius(r: &[u8], u: &[u8]) -> Result<(Shape, f64), Frame> {
    let r = parse_double(r).ok_or(Frame::err("ERR need numeric radius"))?;
    if r < 0.0 {
        return Err(Frame::err("ERR radius cannot be negative"));
    }
    Ok((Shape::Radius(r), unit(u)?))
}

const ERR_MEMBER: Frame = Frame::err("ERR could not decode requested zset member");

/// The points of `z` inside the search, in the order Redis finds them, stopping at
/// `limit` (0: no limit).
fn find(z: &Zset, lon: f64, lat: f64, shape: Shape, limit: usize) -> Vec<Found> {
    let mut out = Vec::new();
    for cell in geohash::search_cells(lon, lat, shape) {
        if limit > 0 && out.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let (lo, hi) = score_ranks(
            z,
            ScoreBound {
                value: min as f64,
                exclusive: false,
            },
            ScoreBound {
                value: max as f64,
                exclusive: true,
            },
        );
        let mut stop = false;
        z.range(lo, hi, false, |m, score| {
            if stop {
                return;
            }
            let (plon, plat) = geohash::point_of(score);
            if let Some(dist) = geohash::within(shape, lon, lat, plon, plat) {
                out.push(Found {
                    member: m.to_vec(),
                    score,
                    dist,
                    lon: plon,
                    lat: plat,
                });
                if limit > 0 && out.len() >= limit {
                    stop = true;
                }
            }
        });
    }
    out
}

fn search_generic(ctx: &mut Ctx<'_>, req: &Request, kind: Kind) -> Reply {
    let src = req.arg(if matches!(kind, Kind::Search { store: true }) {
        2
    } else {
        1
    });
    // The source's type is checked first, then GEORADIUSBYMEMBER's member and radius (only
    // when the key exists, as in Redis), then the options.
    let has_member = read_collection(ctx, src, |z: &Zset| z.score(req.arg(2)).is_some())?;
    let member_shape = match (kind, has_member) {
        (Kind::RadiusMember { .. }, Some(false)) => return Err(ERR_MEMBER),
        (Kind::RadiusMember { .. }, Some(true)) => Some(radius(req.arg(3), req.arg(4))?),
        _ => None,
    };
    let mut s = parse_search(req, kind)?;
    if member_shape.is_some() {
        s.shape = member_shape;
    }
    let lock_keys: Vec<&[u8]> = std::iter::once(src).chain(s.store).collect();
    let mut g = ctx.node.db.lock_keys(lock_keys.iter().copied());
    let found = match g.slot_of(src).get(src, ctx.now) {
        None => None,
        Some(e) => {
            let z = e.collection::<Zset>().map_err(|_| ERR_WRONGTYPE)?;
            let (lon, lat) = match s.from {
                Some(From::Coords(lon, lat)) => (lon, lat),
                Some(From::Member(m)) => geohash::point_of(z.score(m).ok_or(ERR_MEMBER)?),
                None => return Err(ERR_SYNTAX),
            };
            let (shape, conv) = s.shape.ok_or(ERR_SYNTAX)?;
            let meters = match shape {
                Shape::Radius(r) => Shape::Radius(r * conv),
                Shape::Box(w, h) => Shape::Box(w * conv, h * conv),
            };
            if s.count > 0 && s.sort == Sort::None && !s.any {
                s.sort = Sort::Asc;
            }
            let mut f = find(&z, lon, lat, meters, if s.any { s.count } else { 0 });
            match s.sort {
                Sort::Asc => f.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
                Sort::Desc => f.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
                Sort::None => {}
            }
            if s.count > 0 {
                f.truncate(s.count);
            }
            for p in &mut f {
                p.dist /= conv;
            }
            Some(f)
        }
    };
    if let Some(dst) = s.store {
        let mut items: Vec<(&[u8], f64)> = found
            .iter()
            .flatten()
            .map(|p| (&p.member[..], if s.storedist { p.dist } else { p.score }))
            .collect();
        items.sort_by(|a, b| crate::store::zset::cmp_elem(a.1, a.0, b.1, b.0));
        let event = if matches!(kind, Kind::Search { .. }) {
            "geosearchstore"
        } else {
            "georadiusstore"
        };
        let evs = store_result(ctx, &mut g, dst, &items, event);
        drop(g);
        for (class, e) in evs {
            super::pubsub::notify(ctx, class, e, dst);
        }
        return Ok(Frame::Integer(items.len() as i64));
    }
    drop(g);
    let options = s.withdist as usize + s.withhash as usize + s.withcoord as usize;
    let mut out = Vec::new();
    for p in found.unwrap_or_default() {
        if options == 0 {
            out.push(Frame::bulk(&p.member));
            continue;
        }
        let mut item = vec![Frame::bulk(&p.member)];
        if s.withdist {
            item.push(distance_frame(p.dist));
        }
        if s.withhash {
            item.push(Frame::Integer(p.score as i64));
        }
        if s.withcoord {
            item.push(Frame::Array(vec![
                coord_frame(ctx, p.lon),
                coord_frame(ctx, p.lat),
            ]));
        }
        out.push(Frame::Array(item));
    }
    Ok(Frame::Array(out))
}

fn georadius(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    search_generic(ctx, req, Kind::RadiusCoords { store: true })
}

fn georadius_ro(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    search_generic(ctx, req, Kind::RadiusCoords { store: false })
}

fn georadiusbymember(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    search_generic(ctx, req, Kind::RadiusMember { store: true })
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    search_generic(ctx, req, Kind::RadiusMember { store: false })
}

fn geosearch(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    search_generic(ctx, req, Kind::Search { store: false })
}

fn geosearchstore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    search_generic(ctx, req, Kind::Search { store: true })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn sicily(h: &mut Harness) {
        assert_eq!(
            h.run(&[
                "GEOADD",
                "Sicily",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania"
            ]),
            int(2)
        );
    }

    #[test]
    fn add_pos_dist_hash() {
        let mut h = Harness::new();
        sicily(&mut h);
        assert_eq!(
            h.run(&["ZSCORE", "Sicily", "Palermo"]),
            Frame::Double(3479099956230698.0)
        );
        assert_eq!(
            h.run(&["GEOPOS", "Sicily", "Palermo", "nope"]),
            Frame::Array(vec![
                Frame::Array(vec![
                    bulk("13.36138933897018433"),
                    bulk("38.11555639549629859")
                ]),
                Frame::NullArray,
            ])
        );
        assert_eq!(
            h.run(&["GEODIST", "Sicily", "Palermo", "Catania"]),
            bulk("166274.1516")
        );
        assert_eq!(
            h.run(&["GEODIST", "Sicily", "Palermo", "Catania", "km"]),
            bulk("166.2742")
        );
        assert_eq!(h.run(&["GEODIST", "Sicily", "Palermo", "x"]), Frame::Null);
        assert_eq!(
            h.run(&["GEODIST", "Sicily", "Palermo", "Catania", "yd"]),
            err("ERR unsupported unit provided. please use M, KM, FT, MI")
        );
        assert_eq!(
            h.run(&["GEOHASH", "Sicily", "Palermo", "Catania", "x"]),
            Frame::Array(vec![bulk("sqc8b49rny0"), bulk("sqdtr74hyu0"), Frame::Null])
        );
        assert_eq!(
            h.run(&["GEOADD", "Sicily", "200", "100", "x"]),
            err("ERR invalid longitude,latitude pair 200.000000,100.000000")
        );
        assert_eq!(
            h.run(&["GEOADD", "Sicily", "1", "2"]),
            err("ERR wrong number of arguments for 'geoadd' command")
        );
        assert_eq!(
            h.run(&["GEOADD", "Sicily", "NX", "1", "2"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn searches() {
        let mut h = Harness::new();
        sicily(&mut h);
        assert_eq!(
            h.run(&[
                "GEOSEARCH",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "ASC",
                "WITHDIST"
            ]),
            Frame::Array(vec![
                Frame::Array(vec![bulk("Catania"), bulk("56.4413")]),
                Frame::Array(vec![bulk("Palermo"), bulk("190.4424")]),
            ])
        );
        assert_eq!(
            h.run(&["GEORADIUS", "Sicily", "15", "37", "100", "km"]),
            Frame::Array(vec![bulk("Catania")])
        );
        assert_eq!(
            h.run(&[
                "GEORADIUSBYMEMBER",
                "Sicily",
                "Palermo",
                "200",
                "km",
                "DESC",
                "COUNT",
                "1"
            ]),
            Frame::Array(vec![bulk("Catania")])
        );
        assert_eq!(
            h.run(&[
                "GEOSEARCH",
                "Sicily",
                "FROMMEMBER",
                "Palermo",
                "BYBOX",
                "400",
                "400",
                "km",
                "ASC"
            ]),
            Frame::Array(vec![bulk("Palermo"), bulk("Catania")])
        );
        assert_eq!(
            h.run(&[
                "GEOSEARCHSTORE",
                "{Sicily}d",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "STOREDIST"
            ]),
            int(2)
        );
        let d = h.run(&["ZSCORE", "{Sicily}d", "Catania"]);
        assert!(
            matches!(d, Frame::Double(km) if (km - 56.4413).abs() < 1e-4),
            "{d:?}"
        );
        assert_eq!(
            h.run(&[
                "GEOSEARCH",
                "Sicily",
                "BYRADIUS",
                "1",
                "km",
                "ASC",
                "WITHDIST"
            ]),
            err("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for GEOSEARCH")
        );
        assert_eq!(
            h.run(&[
                "GEOSEARCH",
                "Sicily",
                "FROMMEMBER",
                "nope",
                "BYRADIUS",
                "1",
                "km"
            ]),
            err("ERR could not decode requested zset member")
        );
        assert_eq!(
            h.run(&["GEORADIUS", "Sicily", "15", "37", "1", "km", "ANY"]),
            err("ERR the ANY argument requires COUNT argument")
        );
        assert_eq!(
            h.run(&["GEORADIUS", "Sicily", "15", "37", "1", "km", "WITHDIST", "STORE", "x"]),
            err("ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options")
        );
        assert_eq!(
            h.run(&[
                "GEORADIUS_RO",
                "Sicily",
                "15",
                "37",
                "1",
                "km",
                "STORE",
                "x"
            ]),
            err("ERR syntax error")
        );
        assert_eq!(
            h.run(&["GEORADIUS", "none", "15", "37", "1", "km"]),
            Frame::Array(vec![])
        );
    }
}
