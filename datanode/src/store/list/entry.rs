//! A node's entries: their encoding, decoding and walking backwards.

use super::*;

// ---- entries ----

/// The integer `e` spells when it is exactly how that integer prints (`12`, `-3`; not
/// `012`, `+1`, `-0`): only such elements are stored as integers, so they read back
/// unchanged.
pub fn int_elem(e: &[u8]) -> Option<i64> {
    let (neg, digits) = match e.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, e),
    };
    let (&first, _) = digits.split_first()?;
    if digits.len() > 19 || !first.is_ascii_digit() || (first == b'0' && (digits.len() > 1 || neg))
    {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        // Accumulate negatively, so that i64::MIN parses too.
        v = v.checked_mul(10)?.checked_sub((d - b'0') as i64)?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Bytes of an entry's backlen for a body of `body` bytes.
fn backlen_size(body: usize) -> usize {
    match body {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        2_097_152..=268_435_455 => 4,
        _ => 5,
    }
}

/// How an element is stored.
#[derive(Clone, Copy, Debug)]
enum Enc {
    Int(i64),
    Str,
}

/// An element ready to be written: its encoding, body size (header and data) and entry size.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    enc: Enc,
    body: usize,
    pub(super) size: usize,
}

pub(super) fn plan(e: &[u8]) -> Plan {
    let (enc, body) = match int_elem(e) {
        Some(n) => {
            let body = match n {
                0..=127 => 1,
                -4096..=4095 => 2,
                -32_768..=32_767 => 3,
                -8_388_608..=8_388_607 => 4,
                -2_147_483_648..=2_147_483_647 => 5,
                _ => 9,
            };
            (Enc::Int(n), body)
        }
        None => {
            let l = e.len();
            let header = if l < 64 {
                1
            } else if l < 4096 {
                2
            } else {
                5
            };
            (Enc::Str, header + l)
        }
    };
    Plan {
        enc,
        body,
        size: body + backlen_size(body),
    }
}

/// Writes the entry of `e` (planned as `p`) into `dst`, exactly `p.size` bytes.
pub(super) fn write_entry(dst: &mut [u8], e: &[u8], p: Plan) {
    match p.enc {
        Enc::Int(n) => match p.body {
            1 => dst[0] = n as u8,
            2 => {
                let u = (n as u16) & 0x1fff;
                dst[0] = 0xC0 | (u >> 8) as u8;
                dst[1] = u as u8;
            }
            3 => {
                dst[0] = 0xF1;
                dst[1..3].copy_from_slice(&(n as i16).to_le_bytes());
            }
            4 => {
                dst[0] = 0xF2;
                dst[1..4].copy_from_slice(&(n as i32).to_le_bytes()[..3]);
            }
            5 => {
                dst[0] = 0xF3;
                dst[1..5].copy_from_slice(&(n as i32).to_le_bytes());
            }
            _ => {
                dst[0] = 0xF4;
                dst[1..9].copy_from_slice(&n.to_le_bytes());
            }
        },
        Enc::Str => {
            let l = e.len();
            let header = p.body - l;
            match header {
                1 => dst[0] = 0x80 | l as u8,
                2 => {
                    dst[0] = 0xE0 | (l >> 8) as u8;
                    dst[1] = l as u8;
                }
                _ => {
                    dst[0] = 0xF0;
                    dst[1..5].copy_from_slice(&(l as u32).to_le_bytes());
                }
            }
            dst[header..p.body].copy_from_slice(e);
        }
    }
    // The body's length, 7 bits a byte, lowest bits last; every byte but the first says
    // that more follow to its left.
    let n = p.size - p.body;
    let mut v = p.body;
    for i in (0..n).rev() {
        let mut b = (v & 0x7f) as u8;
        v >>= 7;
        if i > 0 {
            b |= 0x80;
        }
        dst[p.body + i] = b;
    }
}

/// Appends the entry of `e` to `out`.
pub(super) fn encode_into(out: &mut Vec<u8>, e: &[u8]) {
    let p = plan(e);
    let at = out.len();
    out.resize(at + p.size, 0);
    write_entry(&mut out[at..], e, p);
}

/// The element whose entry starts `d` and the entry's size.
pub(super) fn decode(d: &[u8]) -> (Member<'_>, usize) {
    let h = d[0];
    let (m, body) = if h < 0x80 {
        (Member::Int(h as i64), 1)
    } else if h & 0xC0 == 0x80 {
        let l = (h & 0x3f) as usize;
        (Member::Bytes(&d[1..1 + l]), 1 + l)
    } else if h & 0xE0 == 0xC0 {
        let u = (((h & 0x1f) as u16) << 8) | d[1] as u16;
        // Sign-extend the 13 bits.
        (Member::Int((((u << 3) as i16) >> 3) as i64), 2)
    } else if h & 0xF0 == 0xE0 {
        let l = (((h & 0x0f) as usize) << 8) | d[1] as usize;
        (Member::Bytes(&d[2..2 + l]), 2 + l)
    } else {
        match h {
            0xF0 => {
                let l = u32::from_le_bytes([d[1], d[2], d[3], d[4]]) as usize;
                (Member::Bytes(&d[5..5 + l]), 5 + l)
            }
            0xF1 => (Member::Int(i16::from_le_bytes([d[1], d[2]]) as i64), 3),
            0xF2 => {
                let v = i32::from_le_bytes([0, d[1], d[2], d[3]]) >> 8;
                (Member::Int(v as i64), 4)
            }
            0xF3 => (
                Member::Int(i32::from_le_bytes([d[1], d[2], d[3], d[4]]) as i64),
                5,
            ),
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&d[1..9]);
                (Member::Int(i64::from_le_bytes(a)), 9)
            }
        }
    };
    (m, body + backlen_size(body))
}

/// The start of the entry that ends at `end` in `d`.
pub(super) fn entry_start(d: &[u8], end: usize) -> usize {
    let mut k = end - 1;
    let mut b = d[k];
    let mut v = (b & 0x7f) as usize;
    let mut shift = 7;
    while b & 0x80 != 0 {
        k -= 1;
        b = d[k];
        v |= ((b & 0x7f) as usize) << shift;
        shift += 7;
    }
    k - v
}

/// Whether element `m` equals the bytes `e` (`e_int`: `int_elem(e)`, computed once).
pub(super) fn same(m: Member<'_>, e: &[u8], e_int: Option<i64>) -> bool {
    match m {
        Member::Bytes(b) => b == e,
        Member::Int(n) => e_int == Some(n),
    }
}
