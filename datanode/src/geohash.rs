//! Redis's geohash: a point is a 52-bit integer (26 bits of latitude and 26 of longitude,
//! interleaved), stored as a sorted set score, so GEO values are interchangeable with
//! Redis's (a GEOADD here gives the score redis-server gives, and the reverse).
//!
//! A search (GEOSEARCH, GEORADIUS) picks a geohash precision whose cells are about as large
//! as the search area, takes the cell of the centre and its eight neighbours (dropping
//! those the area cannot reach), and reads each cell as one score range of the sorted set;
//! every candidate is then checked against the exact shape. The steps and the order of
//! the cells follow Redis's, so a search finds the same members in the same order.
//!
//! Pure arithmetic, no I/O: the commands are in `cmd::geo`.

/// Bits per coordinate at full precision.
pub const STEP_MAX: u8 = 26;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// Web Mercator's latitude limits (what Redis accepts).
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// The earth's radius Redis computes distances with.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// A cell: `step` bits per coordinate, interleaved (latitude in the even bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The cell as a range of 52-bit scores, `[min, max)`.
    pub fn score_range(&self) -> (u64, u64) {
        let shift = 52 - self.step as u32 * 2;
        (self.bits << shift, (self.bits + 1) << shift)
    }
}

/// A cell's extent in degrees.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Area {
    pub lon_min: f64,
    pub lon_max: f64,
    pub lat_min: f64,
    pub lat_max: f64,
}

/// Spreads the 32 bits of `v` over the even bits of a u64.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// The even bits of `x`, packed.
fn squash(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Encodes a point with `step` bits per coordinate over the given ranges (`None` when it is
/// outside them).
pub fn encode_in(
    lon_range: (f64, f64),
    lat_range: (f64, f64),
    lon: f64,
    lat: f64,
    step: u8,
) -> Option<Hash> {
    if !(LONG_MIN..=LONG_MAX).contains(&lon)
        || !(LAT_MIN..=LAT_MAX).contains(&lat)
        || lat < lat_range.0
        || lat > lat_range.1
        || lon < lon_range.0
        || lon > lon_range.1
    {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_range.0) / (lat_range.1 - lat_range.0) * scale;
    let lon_off = (lon - lon_range.0) / (lon_range.1 - lon_range.0) * scale;
    // C's conversion to uint32_t: truncation.
    let bits = spread(lat_off as u32) | (spread(lon_off as u32) << 1);
    Some(Hash { bits, step })
}

/// Encodes a point at `step` over Redis's ranges (WGS84, latitude within ±85.05°).
pub fn encode(lon: f64, lat: f64, step: u8) -> Option<Hash> {
    encode_in((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX), lon, lat, step)
}

/// The score GEOADD stores for a point, or `None` outside the valid range.
pub fn score_of(lon: f64, lat: f64) -> Option<f64> {
    encode(lon, lat, STEP_MAX).map(|h| h.score_range().0 as f64)
}

/// The cell of `h` in degrees.
pub fn decode(h: Hash) -> Area {
    let lat_scale = LAT_MAX - LAT_MIN;
    let lon_scale = LONG_MAX - LONG_MIN;
    let ilat = squash(h.bits);
    let ilon = squash(h.bits >> 1);
    let div = (1u64 << h.step) as f64;
    Area {
        lat_min: LAT_MIN + (ilat as f64 / div) * lat_scale,
        lat_max: LAT_MIN + ((ilat as f64 + 1.0) / div) * lat_scale,
        lon_min: LONG_MIN + (ilon as f64 / div) * lon_scale,
        lon_max: LONG_MIN + ((ilon as f64 + 1.0) / div) * lon_scale,
    }
}

/// The point a score stands for (the centre of its cell): (longitude, latitude).
pub fn point_of(score: f64) -> (f64, f64) {
    // C's double to uint64_t conversion; scores that are not geohashes decode to something.
    let bits = if score >= 0.0 { score as u64 } else { 0 } & ((1u64 << 52) - 1);
    let a = decode(Hash {
        bits,
        step: STEP_MAX,
    });
    let lon = ((a.lon_min + a.lon_max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat_min + a.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The standard 11-character geohash of a score (GEOHASH): the point re-encoded over the
/// standard latitude range ±90°, base32.
pub fn geohash_string(score: f64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = point_of(score);
    let bits = encode_in((-180.0, 180.0), (-90.0, 90.0), lon, lat, STEP_MAX).map_or(0, |h| h.bits);
    (0..11)
        .map(|i| {
            let idx = if i == 10 {
                0
            } else {
                ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize
            };
            ALPHABET[idx] as char
        })
        .collect()
}

fn rad(deg: f64) -> f64 {
    deg * (std::f64::consts::PI / 180.0)
}

fn deg(rad: f64) -> f64 {
    rad / (std::f64::consts::PI / 180.0)
}

/// Distance along a meridian between two latitudes, in meters.
pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (rad(lat2) - rad(lat1)).abs()
}

/// Great-circle distance in meters (haversine, as Redis computes it).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (rad(lon1), rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (rad(lat1), rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// What a search covers, in meters (the unit's factor already applied).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    Radius(f64),
    /// Width and height.
    Box(f64, f64),
}

/// The distance from the centre when `(lon, lat)` is inside `shape` around `(clon, clat)`.
pub fn within(shape: Shape, clon: f64, clat: f64, lon: f64, lat: f64) -> Option<f64> {
    match shape {
        Shape::Radius(r) => {
            let d = distance(clon, clat, lon, lat);
            (d <= r).then_some(d)
        }
        Shape::Box(w, h) => {
            if lat_distance(lat, clat) > h / 2.0 {
                return None;
            }
            if distance(lon, lat, clon, lat) > w / 2.0 {
                return None;
            }
            Some(distance(clon, clat, lon, lat))
        }
    }
}

/// The precision whose cells are about as large as `range` meters at latitude `lat`.
fn steps_for_radius(range: f64, lat: f64) -> u8 {
    if range == 0.0 {
        return STEP_MAX;
    }
    let mut range = range;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    // Cells narrow towards the poles.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, STEP_MAX as i32) as u8
}

fn move_x(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> (64 - h.step as u32 * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - h.step as u32 * 2);
    h.bits = x | y;
}

fn move_y(h: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - h.step as u32 * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> (64 - h.step as u32 * 2);
    h.bits = x | y;
}

/// The cells a search around `(lon, lat)` reads, in Redis's order (the centre cell, then
/// north, south, east, west, north-east, north-west, south-east, south-west), skipping
/// the neighbours the search area cannot reach and repeats of the cell just before.
pub fn search_cells(lon: f64, lat: f64, shape: Shape) -> Vec<Hash> {
    let (half_h, half_w) = match shape {
        Shape::Radius(r) => (r, r),
        Shape::Box(w, h) => (h / 2.0, w / 2.0),
    };
    // The search area's bounding box.
    let lat_delta = deg(half_h / EARTH_RADIUS_M);
    let lon_delta_top = deg(half_w / EARTH_RADIUS_M / rad(lat + lat_delta).cos());
    let lon_delta_bottom = deg(half_w / EARTH_RADIUS_M / rad(lat - lat_delta).cos());
    let southern = lat < 0.0;
    let lon_d = if southern {
        lon_delta_bottom
    } else {
        lon_delta_top
    };
    let (min_lon, max_lon) = (lon - lon_d, lon + lon_d);
    let (min_lat, max_lat) = (lat - lat_delta, lat + lat_delta);
    let radius = match shape {
        Shape::Radius(r) => r,
        Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
    };
    let mut steps = steps_for_radius(radius, lat);
    let cells = |steps: u8| {
        let hash = encode(lon, lat, steps).unwrap_or_default();
        let n = |dx: i8, dy: i8| {
            let mut h = hash;
            move_x(&mut h, dx);
            move_y(&mut h, dy);
            h
        };
        // centre, N, S, E, W, NE, NW, SE, SW
        [
            hash,
            n(0, 1),
            n(0, -1),
            n(1, 0),
            n(-1, 0),
            n(1, 1),
            n(-1, 1),
            n(1, -1),
            n(-1, -1),
        ]
    };
    let mut c = cells(steps);
    // A step too coarse near the edge of its cell leaves part of the area outside the
    // nine cells: one step coarser then.
    let (north, south, east, west) = (decode(c[1]), decode(c[2]), decode(c[3]), decode(c[4]));
    let decrease = north.lat_max < max_lat
        || south.lat_min > min_lat
        || east.lon_max < max_lon
        || west.lon_min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        c = cells(steps);
    }
    let area = decode(c[0]);
    if steps >= 2 {
        let zero = Hash::default();
        if area.lat_min < min_lat {
            c[2] = zero;
            c[8] = zero;
            c[7] = zero;
        }
        if area.lat_max > max_lat {
            c[1] = zero;
            c[5] = zero;
            c[6] = zero;
        }
        if area.lon_min < min_lon {
            c[4] = zero;
            c[8] = zero;
            c[6] = zero;
        }
        if area.lon_max > max_lon {
            c[3] = zero;
            c[7] = zero;
            c[5] = zero;
        }
    }
    let mut out: Vec<Hash> = Vec::with_capacity(9);
    for h in c {
        if h.is_zero() {
            continue;
        }
        // With huge radii neighbours coincide: skip a repeat of the cell just read.
        if out.last().is_some_and(|l| *l == h) && out.len() > 1 {
            continue;
        }
        out.push(h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_redis() {
        // GEOADD on redis-server 7.0.15, then ZSCORE.
        assert_eq!(score_of(13.361389, 38.115556), Some(3479099956230698.0));
        assert_eq!(score_of(15.087269, 37.502669), Some(3479447370796909.0));
        assert_eq!(score_of(200.0, 10.0), None);
        assert_eq!(score_of(10.0, 86.0), None);
        let (lon, lat) = point_of(3479099956230698.0);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(geohash_string(3479099956230698.0), "sqc8b49rny0");
        assert_eq!(geohash_string(3479447370796909.0), "sqdtr74hyu0");
    }

    #[test]
    fn distances_match_redis() {
        // GEODIST Sicily Palermo Catania: 166274.1516 m.
        let (a, b) = (point_of(3479099956230698.0), point_of(3479447370796909.0));
        let d = distance(a.0, a.1, b.0, b.1);
        assert_eq!(format!("{d:.4}"), "166274.1516");
    }

    #[test]
    fn interleaving_round_trips() {
        for v in [0u32, 1, 0xffff_ffff, 0x1234_5678] {
            assert_eq!(squash(spread(v)), v);
            assert_eq!(squash(spread(v) << 1 >> 1), v);
        }
    }

    #[test]
    fn cells_cover_the_centre() {
        let cells = search_cells(15.0, 37.0, Shape::Radius(200_000.0));
        assert!(!cells.is_empty() && cells.len() <= 9);
        let s = score_of(15.0, 37.0).expect("valid");
        assert!(cells.iter().any(|c| {
            let (lo, hi) = c.score_range();
            (lo as f64..hi as f64).contains(&s)
        }));
    }
}
