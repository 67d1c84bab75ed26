//! x86-64 `long double` arithmetic for INCRBYFLOAT and HINCRBYFLOAT.
//!
//! Redis reads both operands with `strtold`, adds them in `long double` (on x86-64 the x87
//! 80-bit extended format: a 64-bit mantissa, exponents from 2^-16445 (subnormal) to just
//! below 2^16384) and prints the sum with `%.17Lf`, trailing zeros and a bare `.` removed
//! and `-0` printed as `0`. Rust has no such type, so this module models it exactly:
//! correctly rounded parsing (round half to even, as glibc's `strtold`), one correctly
//! rounded addition, and printing of the exact binary value rounded half to even at the
//! 17th decimal (as glibc's `printf`). So `3000 + 1.1` is `3001.10000000000000009`, as in
//! Redis, and `0.1 + 0.2` is `0.3`.

use std::cmp::Ordering;

/// Exponent of the unit of the smallest subnormal: every value is `m * 2^e` with `e >=`
/// this.
const MIN_EXP: i64 = -16445;
/// Largest exponent with a 64-bit mantissa: `(2^64 - 1) * 2^16320` is `LDBL_MAX`.
const MAX_EXP: i64 = 16320;
/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer text is not a number.
const MAX_CHARS: usize = 5 * 1024;

/// A long double: `(-1)^neg * m * 2^e`, or an infinity. `m` has its top bit set unless the
/// value is zero or subnormal (`e == MIN_EXP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongDouble {
    neg: bool,
    inf: bool,
    m: u64,
    e: i64,
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble {
        neg: false,
        inf: false,
        m: 0,
        e: 0,
    };

    fn infinity(neg: bool) -> Self {
        LongDouble {
            neg,
            inf: true,
            m: 0,
            e: 0,
        }
    }

    pub fn is_finite(&self) -> bool {
        !self.inf
    }

    /// Redis's `string2ld`: the whole text is a number `strtold` reads (decimal,
    /// hexadecimal, `inf`/`infinity`), with no leading whitespace, not NaN, and not out of
    /// range (too large, or a nonzero number too small, for a long double).
    pub fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= MAX_CHARS {
            return None;
        }
        let (neg, rest) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble::infinity(neg));
        }
        if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
            return parse_hex(neg, &rest[2..]);
        }
        parse_decimal(neg, rest)
    }

    /// The correctly rounded sum (an infinity when it overflows).
    pub fn plus(self, other: LongDouble) -> LongDouble {
        if self.inf || other.inf {
            // inf - inf is NaN in C; the callers refuse either, with the same error.
            return if self.inf { self } else { other };
        }
        if self.m == 0 && other.m == 0 {
            return LongDouble {
                neg: self.neg && other.neg,
                ..LongDouble::ZERO
            };
        }
        if self.m == 0 {
            return other;
        }
        if other.m == 0 {
            return self;
        }
        let (x, y) = if self.e >= other.e {
            (self, other)
        } else {
            (other, self)
        };
        // Both on x's exponent less 63: 63 guard bits below x, room for a carry above.
        let d = (x.e - y.e) as u64;
        let big = (x.m as u128) << 63;
        let small = if d <= 63 {
            (y.m as u128) << (63 - d)
        } else {
            let s = d - 63;
            if s >= 64 {
                // Far below x's last bit: it only decides which way a tie would go.
                1
            } else {
                let lost = (y.m as u128) & ((1u128 << s) - 1);
                ((y.m as u128) >> s) | u128::from(lost != 0)
            }
        };
        let (sum, neg) = if x.neg == y.neg {
            (big + small, x.neg)
        } else {
            match big.cmp(&small) {
                Ordering::Less => (small - big, y.neg),
                _ => (big - small, x.neg),
            }
        };
        if sum == 0 {
            return LongDouble::ZERO;
        }
        round_pack(neg, sum, x.e - 63, false)
    }

    /// `%.17Lf` with trailing zeros and a bare `.` removed, and `-0` as `0`: how Redis
    /// prints an INCRBYFLOAT result (`ld2string` with `LD_STR_HUMAN`). An infinity prints as
    /// `inf`/`-inf`, though Redis never stores one.
    pub fn to_human(&self) -> String {
        let sign = if self.neg { "-" } else { "" };
        if self.inf {
            return format!("{sign}inf");
        }
        let text = if self.e >= 0 {
            let mut n = Big::from_u64(self.m);
            n.shl(self.e as u64);
            n.to_decimal()
        } else {
            // The value times 10^17, rounded half to even: fits, as m * 10^17 < 2^121.
            let scaled = self.m as u128 * 100_000_000_000_000_000u128;
            let s = (-self.e) as u32;
            let n = if s >= 128 {
                0
            } else {
                let q = scaled >> s;
                let rem = scaled & ((1u128 << s) - 1);
                let half = 1u128 << (s - 1);
                if rem > half || (rem == half && q & 1 == 1) {
                    q + 1
                } else {
                    q
                }
            };
            let digits = format!("{n:018}");
            let (int, frac) = digits.split_at(digits.len() - 17);
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        };
        if text == "0" {
            text
        } else {
            format!("{sign}{text}")
        }
    }
}

/// `a + b` as Redis's INCRBYFLOAT prints it; `None` when the sum is not finite.
pub fn add_human(a: LongDouble, b: LongDouble) -> Option<String> {
    let sum = a.plus(b);
    sum.is_finite().then(|| sum.to_human())
}

fn parse_decimal(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let int = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut at = int;
    let mut frac = 0;
    if s.get(at) == Some(&b'.') {
        frac = s[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        at += 1 + frac;
    }
    if int + frac == 0 {
        return None;
    }
    let exp = if at < s.len() {
        if s[at] | 0x20 != b'e' {
            return None;
        }
        parse_exponent(&s[at + 1..])?
    } else {
        0
    };
    let frac_at = if frac > 0 { int + 1 } else { int };
    let mut sig: Vec<u8> = s[..int]
        .iter()
        .chain(&s[frac_at..frac_at + frac])
        .copied()
        .skip_while(|&c| c == b'0')
        .collect();
    // The value is sig * 10^k.
    let mut k = exp - frac as i64;
    while sig.last() == Some(&b'0') {
        sig.pop();
        k += 1;
    }
    if sig.is_empty() {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let magnitude = sig.len() as i64 + k; // value < 10^magnitude, >= 10^(magnitude - 1)
    if !(-4952..=4933).contains(&magnitude) {
        // At least 1e4933 (above LDBL_MAX), or below half the smallest subnormal.
        return None;
    }
    let mut num = Big::from_u64(0);
    for chunk in sig.chunks(9) {
        let mut v = 0u32;
        for &c in chunk {
            v = v * 10 + u32::from(c - b'0');
        }
        num.mul_add(10u32.pow(chunk.len() as u32), v);
    }
    let mut den = Big::from_u64(1);
    if k >= 0 {
        num.mul_pow10(k as u64);
    } else {
        den.mul_pow10((-k) as u64);
    }
    from_ratio(neg, &num, &den)
}

fn parse_hex(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let int = s.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    let mut at = int;
    let mut frac = 0;
    if s.get(at) == Some(&b'.') {
        frac = s[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        at += 1 + frac;
    }
    if int + frac == 0 {
        return None;
    }
    let exp = if at < s.len() {
        if s[at] | 0x20 != b'p' {
            return None;
        }
        parse_exponent(&s[at + 1..])?
    } else {
        0
    };
    let frac_at = if frac > 0 { int + 1 } else { int };
    let mut num = Big::from_u64(0);
    for &c in s[..int].iter().chain(&s[frac_at..frac_at + frac]) {
        num.mul_add(16, (c as char).to_digit(16).unwrap_or(0));
    }
    if num.is_zero() {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let b = exp - 4 * frac as i64; // value = num * 2^b
    let top = num.bits() as i64 + b; // value < 2^top
    if !(MIN_EXP - 2..=16384 + 1).contains(&top) {
        return None;
    }
    let mut den = Big::from_u64(1);
    if b >= 0 {
        num.shl(b as u64);
    } else {
        den.shl((-b) as u64);
    }
    from_ratio(neg, &num, &den)
}

/// An exponent's `[+-]digits`, saturated far beyond any long double's range.
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        v = (v * 10 + i64::from(c - b'0')).min(1_000_000_000);
    }
    Some(if neg { -v } else { v })
}

/// The long double nearest `num / den` (both nonzero); `None` when that is an infinity or
/// zero (C's `ERANGE`, which `string2ld` refuses).
fn from_ratio(neg: bool, num: &Big, den: &Big) -> Option<LongDouble> {
    // num / den is in (2^(bn - bd - 1), 2^(bn - bd + 1)), so with t = 65 - (bn - bd) the
    // quotient q = floor(num * 2^t / den) is in [2^64, 2^66).
    let t = 65 - (num.bits() as i64 - den.bits() as i64);
    let (mut x, mut d) = (num.clone(), den.clone());
    if t >= 0 {
        x.shl(t as u64);
    } else {
        d.shl((-t) as u64);
    }
    // Binary long division: 66 quotient bits.
    d.shl(65);
    let mut q: u128 = 0;
    for i in (0..=65).rev() {
        if x.cmp(&d) != Ordering::Less {
            x.sub_assign(&d);
            q |= 1u128 << i;
        }
        d.shr1();
    }
    let v = round_pack(neg, q, -t, !x.is_zero());
    (v.is_finite() && v.m != 0).then_some(v)
}

/// Rounds `(q + sticky fraction) * 2^exp` half to even to a 64-bit mantissa (fewer bits for
/// subnormals); an infinity past `LDBL_MAX`, zero below half the smallest subnormal.
fn round_pack(neg: bool, q: u128, exp: i64, sticky: bool) -> LongDouble {
    let bits = 128 - i64::from(q.leading_zeros());
    let mut shift = bits - 64;
    if exp + shift < MIN_EXP {
        shift = MIN_EXP - exp;
    }
    let (mut m, mut e) = if shift <= 0 {
        // Exact: q has at most 64 bits.
        ((q << (-shift) as u32) as u64, exp + shift)
    } else if shift >= 128 {
        // q < 2^127 <= half a unit: rounds to zero.
        (0, exp + shift)
    } else {
        let s = shift as u32;
        let kept = q >> s;
        let rem = q & ((1u128 << s) - 1);
        let half = 1u128 << (s - 1);
        let up = rem > half || (rem == half && (sticky || kept & 1 == 1));
        let kept = kept + u128::from(up);
        if kept >> 64 != 0 {
            (1u64 << 63, exp + shift + 1)
        } else {
            (kept as u64, exp + shift)
        }
    };
    if m == 0 {
        e = 0;
    } else if e > MAX_EXP {
        return LongDouble::infinity(neg);
    }
    if m != 0 && m >> 63 == 0 && e > MIN_EXP {
        // A subnormal that rounded up into the normal range keeps its value; normalize.
        let z = i64::from(m.leading_zeros()).min(e - MIN_EXP);
        m <<= z;
        e -= z;
    }
    LongDouble {
        neg,
        inf: false,
        m,
        e,
    }
}

/// A small unsigned big integer (little-endian 32-bit limbs, no high zero limbs): enough
/// for exact parsing and printing of long doubles.
#[derive(Clone, Debug)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> u64 {
        match self.0.last() {
            Some(&top) => self.0.len() as u64 * 32 - u64::from(top.leading_zeros()),
            None => 0,
        }
    }

    /// `self = self * mul + add`.
    fn mul_add(&mut self, mul: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(mul) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn mul_pow10(&mut self, mut n: u64) {
        while n >= 9 {
            self.mul_add(1_000_000_000, 0);
            n -= 9;
        }
        if n > 0 {
            self.mul_add(10u32.pow(n as u32), 0);
        }
    }

    fn shl(&mut self, n: u64) {
        if self.is_zero() {
            return;
        }
        let (limbs, bits) = ((n / 32) as usize, (n % 32) as u32);
        if bits > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let v = (*limb << bits) | carry;
                carry = *limb >> (32 - bits);
                *limb = v;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        if limbs > 0 {
            self.0.splice(0..0, std::iter::repeat_n(0, limbs));
        }
    }

    fn shr1(&mut self) {
        let mut carry = 0u32;
        for limb in self.0.iter_mut().rev() {
            let v = (*limb >> 1) | carry;
            carry = *limb << 31;
            *limb = v;
        }
        self.trim();
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// `self -= other`, where `other <= self`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = i64::from(*limb) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            *limb = v.rem_euclid(1 << 32) as u32;
        }
        self.trim();
    }

    /// Divides by `d`, returning the remainder.
    fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*limb);
            *limb = (v / u64::from(d)) as u32;
            rem = v % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    fn to_decimal(&self) -> String {
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut out = chunks.pop().map(|c| c.to_string()).unwrap_or("0".into());
        for c in chunks.iter().rev() {
            out.push_str(&format!("{c:09}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> Option<String> {
        let x = LongDouble::parse(a.as_bytes()).expect("a");
        let y = LongDouble::parse(b.as_bytes()).expect("b");
        add_human(x, y)
    }

    /// Every expected text here is what redis-server 7.0.15 (x86-64) answered to
    /// `SET x a` then `INCRBYFLOAT x b`.
    #[test]
    fn sums_like_redis() {
        for (a, b, want) in [
            ("0.1", "0.2", "0.3"),
            ("10.5", "0.1", "10.6"),
            ("3.0e3", "1.1", "3001.10000000000000009"),
            ("0.1", "0.7", "0.8"),
            ("1", "0.3333333333333333333333", "1.33333333333333333"),
            ("1", "1.5e17", "150000000000000001"),
            ("0", "1e-20", "0"),
            ("0", "0.000000000000000015", "0.00000000000000002"),
            ("0", "0.000000000000000005", "0"),
            ("0", "0.000000000000000025", "0.00000000000000002"),
            ("5", "-5", "0"),
            ("-0.0", "0", "0"),
            ("17179869184", "1.5", "17179869185.5"),
            ("17179869184", "17179869184", "34359738368"),
            ("1", "-1.1", "-0.1"),
            ("0x10", "0", "16"),
            ("0x1.8p1", "0", "3"),
            ("+1.5", "0", "1.5"),
            (".5", "1", "1.5"),
            ("5.", "1", "6"),
            ("1e+2", "0", "100"),
            ("-0", "0", "0"),
            ("1e-4940", "0", "0"),
            ("4e-4951", "0", "0"),
            ("1", "1e-4940", "1"),
            ("0x1p-18", "0", "0.00000381469726562"),
            ("0x3p-18", "0", "0.00001144409179688"),
            ("0x1p-17", "0", "0.00000762939453125"),
            ("-0x1p-60", "0", "0"),
            ("0x1p-16445", "0", "0"),
        ] {
            assert_eq!(sum(a, b).as_deref(), Some(want), "{a} + {b}");
        }
        assert_eq!(
            sum("1e300", "1e300").as_deref(),
            Some("2000000000000000000017994648159118387741047888546581495876520164642531293192361871511698304167500994380700745017228549671807185112369345967826192521041497292574654271283687306588168510215212033579453305864740061102765895241989080589545563779241212358535223254194821301134374772211380178849830208012288")
        );
        assert_eq!(
            sum("1.7976931348623157e308", "1.7976931348623157e308").as_deref(),
            Some("359538626972463139991842093548208868096772893888658356970628841530353257046248792709403737216774171128857586838851041378617416726902272110715794556052955234146997955372576789671236326588091188869859074894581254961338834769297758245552436667197907705664206565009503223382416235440319971852753604933726679072768")
        );
        let max = LongDouble::parse(b"0x1.fffffffffffffffep16383").expect("LDBL_MAX");
        assert!(max.to_human().starts_with(
            "118973149535723176502126385303097020516906332229462420044032373389173700552297"
        ));
        assert_eq!(max.to_human().len(), 4933);
        assert_eq!(add_human(max, max), None);
        let x = LongDouble::parse(b"1e4000").expect("1e4000");
        let one = LongDouble::parse(b"1").expect("1");
        let big = add_human(x, one).expect("finite");
        assert!(
            big.starts_with("99999999999999999999654638730996237849"),
            "{big}"
        );
        assert_eq!(big.len(), 4000);
    }

    /// `string2ld`: what Redis takes as a long double, and what it refuses.
    #[test]
    fn parses_like_string2ld() {
        for bad in [
            "", " 1", "1 ", "1e-5000", "1e5000", "nan", "-nan", "1e", "0x", "1_0", "abc", "1.5x",
            "0x1p", "1\x002", ".", "-", "e5", "0x.p1", "1ee2",
        ] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        for inf in ["inf", "-inf", "infinity", "+INF", "-Infinity"] {
            let v = LongDouble::parse(inf.as_bytes()).expect(inf);
            assert!(!v.is_finite(), "{inf}");
        }
        assert_eq!(LongDouble::parse(&vec![b'1'; MAX_CHARS]), None);
        // 1.1e4939 is past LDBL_MAX (1.19e4932); 1.1e3999 is not.
        assert!(LongDouble::parse(&vec![b'1'; 4940]).is_none());
        assert!(LongDouble::parse(&vec![b'1'; 4000]).is_some());
        let ok = LongDouble::parse(b"1e-4950").expect("subnormal");
        assert!(ok.is_finite() && ok.m != 0);
    }

    #[test]
    fn rounds_half_to_even() {
        // 2^64 + 1 is a tie between 2^64 and 2^64 + 2: even mantissa wins.
        let v = LongDouble::parse(b"18446744073709551617").expect("v");
        assert_eq!(v.to_human(), "18446744073709551616");
        let v = LongDouble::parse(b"18446744073709551619").expect("v");
        assert_eq!(v.to_human(), "18446744073709551620");
        let a = LongDouble::parse(b"18446744073709551616").expect("a");
        assert_eq!(add_human(a, one()).as_deref(), Some("18446744073709551616"));
        // Just below a power of two: subtracting a tiny amount stays put.
        let p = LongDouble::parse(b"0x1p10").expect("p");
        let tiny = LongDouble::parse(b"-0x1p-100").expect("tiny");
        assert_eq!(p.plus(tiny), p);
    }

    fn one() -> LongDouble {
        LongDouble::parse(b"1").expect("1")
    }
}
