//! Score, lex and rank bounds and the rank ranges they select, found in O(log n).

use super::*;

/// A score range bound: the value and whether it is exclusive (`(1.5`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(in crate::cmd) struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// Parses `min` or `max` of a score range as Redis's `zslParseRange` does (C `strtod` on
/// the rest, after an optional `(`).
pub(super) fn score_bound(a: &[u8]) -> Option<ScoreBound> {
    let (exclusive, t) = match a.first() {
        Some(b'(') => (true, &a[1..]),
        _ => (false, a),
    };
    let (value, used, _) = strtod(t);
    (used == t.len() && !value.is_nan()).then_some(ScoreBound { value, exclusive })
}

/// A lex range bound.
#[derive(Clone, Debug, PartialEq)]
pub(in crate::cmd) enum LexBound<'a> {
    NegInf,
    PosInf,
    Incl(&'a [u8]),
    Excl(&'a [u8]),
}

pub(super) fn lex_bound(a: &[u8]) -> Option<LexBound<'_>> {
    match a {
        b"-" => Some(LexBound::NegInf),
        b"+" => Some(LexBound::PosInf),
        [b'[', rest @ ..] => Some(LexBound::Incl(rest)),
        [b'(', rest @ ..] => Some(LexBound::Excl(rest)),
        _ => None,
    }
}

/// Ranks `lo..hi` of the elements with scores within `[min, max]`.
pub(in crate::cmd) fn score_ranks(z: &Zset, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
    let lo = z.count_below_score(min.value, min.exclusive);
    let hi = z.count_below_score(max.value, !max.exclusive);
    (lo, hi.max(lo))
}

impl LexBound<'_> {
    /// Whether `m` is at or above this bound taken as a minimum.
    fn below_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(b) => m >= *b,
            LexBound::Excl(b) => m > *b,
        }
    }

    /// Whether `m` is at or below this bound taken as a maximum.
    fn above_ok(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(b) => m <= *b,
            LexBound::Excl(b) => m < *b,
        }
    }
}

/// Whether a lex range can hold nothing (min above max, or equal with an exclusive end).
fn lex_range_empty(min: &LexBound<'_>, max: &LexBound<'_>) -> bool {
    use std::cmp::Ordering::*;
    fn key<'a>(b: &LexBound<'a>) -> (u8, &'a [u8], bool) {
        match b {
            LexBound::NegInf => (0u8, &b""[..], false),
            LexBound::PosInf => (2, &b""[..], false),
            LexBound::Incl(m) => (1, m, false),
            LexBound::Excl(m) => (1, m, true),
        }
    }
    let ((ka, ma, xa), (kb, mb, xb)) = (key(min), key(max));
    match ka.cmp(&kb).then(ma.cmp(mb)) {
        Greater => true,
        Equal => xa || xb || ka != 1,
        Less => false,
    }
}

/// Ranks `lo..hi` of the elements with members within `[min, max]`: from the first
/// member at or above `min`, while members stay at or below `max` (`rev`: from the last
/// member at or below `max`, while members stay at or above `min`). Lex ranges are meant
/// for sets whose scores are all equal; on others this is what Redis's listpack walk
/// returns (a skip list's answer there depends on its random levels).
pub(in crate::cmd) fn lex_ranks(
    z: &Zset,
    min: &LexBound<'_>,
    max: &LexBound<'_>,
    rev: bool,
) -> (usize, usize) {
    if lex_range_empty(min, max) || z.is_empty() {
        return (0, 0);
    }
    if let Zset::Listpack(_) = z {
        let (Some((first, _)), Some((last, _))) = (z.get(0), z.get(z.len() - 1)) else {
            return (0, 0);
        };
        if !min.below_ok(last) || !max.above_ok(first) {
            return (0, 0);
        }
        if rev {
            let all = z.collect_range(0, z.len(), false);
            let Some(j) = all.iter().rposition(|(m, _)| max.above_ok(m)) else {
                return (0, 0);
            };
            if !min.below_ok(&all[j].0) {
                return (0, 0);
            }
            let mut i = j;
            while i > 0 && min.below_ok(&all[i - 1].0) {
                i -= 1;
            }
            return (i, j + 1);
        }
        let mut lo = None;
        let mut hi = 0;
        let mut i = 0;
        z.for_each(|m, _| {
            match lo {
                None if min.below_ok(m) => {
                    if max.above_ok(m) {
                        lo = Some(i);
                        hi = i + 1;
                    } else {
                        lo = Some(usize::MAX);
                    }
                }
                Some(l) if l != usize::MAX && hi == i && max.above_ok(m) => hi = i + 1,
                _ => {}
            }
            i += 1;
        });
        return match lo {
            Some(l) if l != usize::MAX => (l, hi),
            _ => (0, 0),
        };
    }
    let lo = match min {
        LexBound::NegInf => 0,
        LexBound::PosInf => z.len(),
        LexBound::Incl(m) => z.count_below_member(m, false),
        LexBound::Excl(m) => z.count_below_member(m, true),
    };
    let hi = match max {
        LexBound::NegInf => 0,
        LexBound::PosInf => z.len(),
        LexBound::Incl(m) => z.count_below_member(m, true),
        LexBound::Excl(m) => z.count_below_member(m, false),
    };
    (lo, hi.max(lo))
}

/// Ranks `lo..hi` (ascending) for a rank range `start..=stop` (negative: from the end),
/// counted from the top when `rev`.
pub(in crate::cmd) fn rank_ranks(len: usize, start: i64, stop: i64, rev: bool) -> (usize, usize) {
    let n = len as i64;
    let mut start = if start < 0 { n + start } else { start };
    let mut stop = if stop < 0 { n + stop } else { stop };
    start = start.max(0);
    if start > stop || start >= n {
        return (0, 0);
    }
    stop = stop.min(n - 1);
    let (lo, hi) = if rev {
        (n - 1 - stop, n - start)
    } else {
        (start, stop + 1)
    };
    (lo as usize, hi as usize)
}

/// Applies LIMIT `offset count` to ranks `lo..hi` read ascending or (`rev`) from the top:
/// a negative offset selects nothing, a negative count everything after the offset.
pub(super) fn apply_limit(
    lo: usize,
    hi: usize,
    offset: i64,
    count: i64,
    rev: bool,
) -> (usize, usize) {
    if offset < 0 || count == 0 {
        return (lo, lo);
    }
    let avail = hi - lo;
    let off = usize::try_from(offset).unwrap_or(usize::MAX).min(avail);
    let take = if count < 0 {
        avail - off
    } else {
        usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(avail - off)
    };
    if rev {
        (hi - off - take, hi - off)
    } else {
        (lo + off, lo + off + take)
    }
}
