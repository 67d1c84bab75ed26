//! Argument parsing and the error replies shared by the command files and whatever else
//! reads a request (the handoff's imports, RDB payloads, blocking timeouts): integers,
//! doubles (with Redis's `strtod` rules), expiry times, option names, arity. Depends on
//! nothing but the reply type.

use crate::resp::Frame;
use crate::store::NO_EXPIRY;

pub const ERR_NOT_INT: Frame = Frame::err("ERR value is not an integer or out of range");
pub const ERR_NOT_FLOAT: Frame = Frame::err("ERR value is not a valid float");
pub const ERR_SYNTAX: Frame = Frame::err("ERR syntax error");
pub const ERR_OOM: Frame = Frame::err("OOM command not allowed when used memory > 'maxmemory'.");
pub const ERR_WRONGTYPE: Frame =
    Frame::err("WRONGTYPE Operation against a key holding the wrong kind of value");

/// Parses an integer argument with Redis's strict rules (no spaces, no `+`, no leading zeros).
pub fn parse_i64(a: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty()
        || s.len() > 20
        || s.starts_with('+')
        || (s.len() > 1 && s.starts_with('0'))
        || s.starts_with("-0")
    {
        return None;
    }
    s.parse().ok()
}

pub fn int_arg(a: &[u8]) -> Result<i64, Frame> {
    parse_i64(a).ok_or(ERR_NOT_INT)
}

/// Parses a float argument as Redis's `strtold` check does: no spaces, no NaN.
pub fn parse_f64(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

pub fn float_arg(a: &[u8]) -> Result<f64, Frame> {
    parse_f64(a).ok_or(ERR_NOT_FLOAT)
}

/// C's `strtod` on `s`, which Redis's double arguments go through: leading whitespace, a
/// sign, then decimal (`1.5e3`, `.5`), hexadecimal (`0x1.8p1`), `inf`/`infinity` or `nan`.
/// Returns the value, how many bytes formed the number (0: none) and whether the value
/// is out of range (overflowed to an infinity, or underflowed to zero: C's `ERANGE`).
pub fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = s
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .count();
    let start = i;
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = |v: f64| if neg { -v } else { v };
    let rest = &s[i..];
    let word = |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
    if word(b"infinity") {
        return (sign(f64::INFINITY), i + 8, false);
    }
    if word(b"inf") {
        return (sign(f64::INFINITY), i + 3, false);
    }
    if word(b"nan") {
        let mut end = i + 3;
        // `nan(chars)`
        if s.get(end) == Some(&b'(') {
            if let Some(close) = s[end..].iter().position(|&c| c == b')') {
                if s[end + 1..end + close]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    end += close + 1;
                }
            }
        }
        return (f64::NAN, end, false);
    }
    let digits = |from: usize, hex: bool| {
        s[from..]
            .iter()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count()
    };
    if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        let at = i + 2;
        let int = digits(at, true);
        let (frac_at, frac) = if s.get(at + int) == Some(&b'.') {
            (at + int + 1, digits(at + int + 1, true))
        } else {
            (at + int, 0)
        };
        if int + frac > 0 {
            let mut mant: u64 = 0;
            let mut exp: i64 = 0;
            let mut sticky = false;
            for (k, &c) in s[at..at + int]
                .iter()
                .chain(&s[frac_at..frac_at + frac])
                .enumerate()
            {
                let d = (c as char).to_digit(16).unwrap_or(0) as u64;
                if mant >> 56 == 0 {
                    mant = mant << 4 | d;
                    if k >= int {
                        exp -= 4;
                    }
                } else {
                    sticky |= d != 0;
                    if k < int {
                        exp += 4;
                    }
                }
            }
            mant |= sticky as u64;
            let mut end = frac_at + frac;
            if matches!(s.get(end), Some(b'p' | b'P')) {
                let mut j = end + 1;
                let eneg = match s.get(j) {
                    Some(b'-') => {
                        j += 1;
                        true
                    }
                    Some(b'+') => {
                        j += 1;
                        false
                    }
                    _ => false,
                };
                let n = digits(j, false);
                if n > 0 {
                    let e: i64 = std::str::from_utf8(&s[j..j + n.min(9)])
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    let e = if n > 9 { 999_999_999 } else { e };
                    exp += if eneg { -e } else { e };
                    end = j + n;
                }
            }
            let v = mant as f64 * 2f64.powi(exp.clamp(-2000, 2000) as i32);
            let v = if v.is_infinite() || (v == 0.0 && mant != 0) {
                // Scaling in two steps keeps subnormal results that powi alone would lose.
                (mant as f64 * 2f64.powi((exp / 2).clamp(-1100, 1100) as i32))
                    * 2f64.powi((exp - exp / 2).clamp(-1100, 1100) as i32)
            } else {
                v
            };
            let erange = v.is_infinite() || (v == 0.0 && mant != 0);
            return (sign(v), end, erange);
        }
        // "0x" without hex digits reads as 0, stopping at the x.
        return (sign(0.0), i + 1, false);
    }
    let int = digits(i, false);
    let mut end = i + int;
    let mut frac = 0;
    if s.get(end) == Some(&b'.') {
        frac = digits(end + 1, false);
        if int + frac > 0 {
            end += 1 + frac;
        }
    }
    if int + frac == 0 {
        return (0.0, 0, false);
    }
    if matches!(s.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(s.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let n = digits(j, false);
        if n > 0 {
            end = j + n;
        }
    }
    let text = std::str::from_utf8(&s[start..end]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    let nonzero = s[i..end]
        .iter()
        .take_while(|c| !matches!(c, b'e' | b'E'))
        .any(|c| matches!(c, b'1'..=b'9'));
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    (v, end, erange)
}

/// A double argument as Redis reads one (`getDoubleFromObject`): the whole argument is the
/// number, with no leading whitespace, not NaN, and not out of range (a number too large or
/// too small to be a double; `inf` itself is fine).
pub fn parse_double(a: &[u8]) -> Option<f64> {
    if a.is_empty() || a[0].is_ascii_whitespace() || a[0] == b'\x0b' {
        return None;
    }
    let (v, n, erange) = strtod(a);
    let out_of_range = erange && (v.is_infinite() || v == 0.0);
    (n == a.len() && !out_of_range && !v.is_nan()).then_some(v)
}

/// Case-insensitive comparison of an argument with an option name.
pub fn is(a: &[u8], opt: &str) -> bool {
    a.eq_ignore_ascii_case(opt.as_bytes())
}

/// Turns a relative TTL into an absolute expiry time, or Redis's "invalid expire time" error.
pub fn expire_at_from(now: u64, amount: i64, unit_ms: i64, cmd: &str) -> Result<u64, Frame> {
    let invalid = || Frame::error(format!("ERR invalid expire time in '{cmd}' command"));
    let ms = amount.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = (now as i64).checked_add(ms).ok_or_else(invalid)?;
    Ok(at.max(1) as u64)
}

/// Builds an expiry for the absolute-time options (EXAT/PXAT), rejecting overflow.
pub fn expire_at_abs(at: i64, unit_ms: i64, cmd: &str) -> Result<u64, Frame> {
    let invalid = || Frame::error(format!("ERR invalid expire time in '{cmd}' command"));
    let ms = at.checked_mul(unit_ms).ok_or_else(invalid)?;
    Ok(ms.max(1) as u64)
}

/// Whether an absolute expiry is already in the past at `now`.
pub fn already_expired(at: u64, now: u64) -> bool {
    at != NO_EXPIRY && at <= now
}

/// Redis's reply to a command given the wrong number of arguments.
#[cold]
pub fn wrong_arity(name: &str) -> Frame {
    Frame::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Parses a memory size the way redis.conf does: `100`, `1k` (1000), `1kb` (1024), `5mb`,
/// `2gb`, case-insensitive.
pub fn parse_memory(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("100mb"), Some(100 << 20));
        assert_eq!(parse_memory("2gb"), Some(2 << 30));
        assert_eq!(parse_memory("2xb"), None);
        assert_eq!(parse_memory("mb"), None);
    }
}
