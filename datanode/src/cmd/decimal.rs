//! Exact decimal addition for INCRBYFLOAT.
//!
//! Redis adds in `long double` and prints the sum with 17 decimals, trailing zeros trimmed,
//! so `0.1 + 0.2` is `0.3`. Plain `f64` would print `0.30000000000000004`. Both operands
//! arrive as decimal text, so CHKV adds them exactly as decimals and rounds to 17 decimals,
//! which gives Redis's answer wherever its rounding error does not reach the 17th decimal
//! (and the exact sum where it does). Numbers too large for 38 significant digits fall back
//! to `f64`.

/// `mant / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dec {
    mant: i128,
    scale: u32,
}

const MAX_SCALE: u32 = 60;

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Parses decimal text (`-12.5`, `1e-3`, `5.0E3`); `None` when it does not fit.
fn parse(s: &str) -> Option<Dec> {
    let s = s.trim();
    let (neg, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (num, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = match num.find('.') {
        Some(i) => (&num[..i], &num[i + 1..]),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut mant: i128 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        if !c.is_ascii_digit() {
            return None;
        }
        mant = mant.checked_mul(10)?.checked_add((c - b'0') as i128)?;
    }
    let mut scale = frac.len() as i32 - exp;
    if scale < 0 {
        mant = mant.checked_mul(pow10((-scale) as u32)?)?;
        scale = 0;
    }
    if scale as u32 > MAX_SCALE {
        return None;
    }
    Some(Dec {
        mant: if neg { -mant } else { mant },
        scale: scale as u32,
    })
}

fn add(a: Dec, b: Dec) -> Option<Dec> {
    let scale = a.scale.max(b.scale);
    let am = a.mant.checked_mul(pow10(scale - a.scale)?)?;
    let bm = b.mant.checked_mul(pow10(scale - b.scale)?)?;
    Some(Dec {
        mant: am.checked_add(bm)?,
        scale,
    })
}

/// Rounds to at most 17 decimals (half away from zero) and prints without trailing zeros.
fn format(d: Dec) -> String {
    let (mut mant, mut scale) = (d.mant, d.scale);
    if scale > 17 {
        let div = pow10(scale - 17).unwrap_or(i128::MAX);
        let q = mant / div;
        let r = mant % div;
        mant = if r.abs() * 2 >= div {
            q + mant.signum()
        } else {
            q
        };
        scale = 17;
    }
    while scale > 0 && mant % 10 == 0 {
        mant /= 10;
        scale -= 1;
    }
    let neg = mant < 0;
    let digits = mant.unsigned_abs().to_string();
    let text = if scale == 0 {
        digits
    } else if digits.len() as u32 > scale {
        let (i, f) = digits.split_at(digits.len() - scale as usize);
        format!("{i}.{f}")
    } else {
        format!(
            "0.{}{}",
            "0".repeat((scale as usize) - digits.len()),
            digits
        )
    };
    if neg && text != "0" {
        format!("-{text}")
    } else {
        text
    }
}

/// `a + b` as INCRBYFLOAT prints it; `None` when the result is not finite.
pub fn add_text(a: &str, b: &str) -> Option<String> {
    if let Some(sum) = parse(a).zip(parse(b)).and_then(|(x, y)| add(x, y)) {
        return Some(format(sum));
    }
    let x: f64 = a.trim().parse().ok()?;
    let y: f64 = b.trim().parse().ok()?;
    let n = x + y;
    n.is_finite().then(|| format!("{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_like_redis() {
        assert_eq!(add_text("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(add_text("10.50", "0.1").as_deref(), Some("10.6"));
        assert_eq!(add_text("5.0e3", "2.0e2").as_deref(), Some("5200"));
        assert_eq!(add_text("1e-20", "0").as_deref(), Some("0"));
        assert_eq!(
            add_text("1", "1.5e17").as_deref(),
            Some("150000000000000001")
        );
        assert_eq!(add_text("3", "-5").as_deref(), Some("-2"));
        assert_eq!(add_text("-0.5", "0.25").as_deref(), Some("-0.25"));
        assert_eq!(
            add_text("0", "0.000000000000000015").as_deref(),
            Some("0.00000000000000002")
        );
        // Beyond 38 digits the f64 fallback prints the double in full.
        let big = add_text("1e300", "1e300").expect("finite");
        assert!(big.starts_with('2') && big.len() == 301, "{big}");
        assert_eq!(add_text("1e308", "1e308"), None);
    }
}
