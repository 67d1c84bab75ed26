//! LZF, the small and fast LZ77 format of liblzf that Redis uses for RDB strings and for
//! quicklist nodes (`list-compress-depth`).
//!
//! The format is a sequence of items, each starting with a control byte:
//!
//! ```text
//! 000LLLLL <L+1 literal bytes>                       a run of 1 to 32 literals
//! LLLooooo oooooooo                 (L = 1..6)       copy L+2 bytes from offset+1 back
//! 111ooooo LLLLLLLL oooooooo                         copy L+9 bytes (9..264) from offset+1 back
//! ```
//!
//! The offset is 13 bits (up to 8192 bytes back); a copy may overlap the bytes it produces
//! (a run of one repeated byte is a copy from one byte back).
//!
//! The compressor is greedy: a hash of the next three bytes finds the last place they were
//! seen; when that is within reach and the bytes match, the match is extended as far as it
//! goes and emitted as a copy, else the byte joins the pending literal run. Every position
//! of a match is hashed, so repeats inside it are found later. It stops as soon as its output
//! would exceed a budget, so an attempt that cannot pay off costs little.

/// Bits of the hash table (4096 entries of 4 bytes, on the stack).
const HLOG: u32 = 12;
/// Farthest back a copy reaches.
const MAX_OFF: usize = 1 << 13;
/// Longest copy: 7 + 255 + 2.
const MAX_REF: usize = 264;
/// Longest literal run.
const MAX_LIT: usize = 32;

fn hash(a: u8, b: u8, c: u8) -> usize {
    let v = (a as u32) << 16 | (b as u32) << 8 | c as u32;
    (v.wrapping_mul(2_654_435_761) >> (32 - HLOG)) as usize
}

/// Appends literal runs of `lit` to `out`.
fn literals(out: &mut Vec<u8>, lit: &[u8]) {
    for chunk in lit.chunks(MAX_LIT) {
        out.push((chunk.len() - 1) as u8);
        out.extend_from_slice(chunk);
    }
}

/// Compresses `input`, appending the result to `out`. Returns false (with `out` holding
/// part of it, to be discarded) as soon as the compressed form would take more than
/// `budget` bytes.
pub fn compress(input: &[u8], out: &mut Vec<u8>, budget: usize) -> bool {
    let base = out.len();
    let n = input.len();
    // Positions plus one (0: empty), as u32: nodes are far below 4 GiB.
    let mut table = [0u32; 1 << HLOG];
    let mut lit_start = 0;
    let mut i = 0;
    while i + 2 < n {
        let h = hash(input[i], input[i + 1], input[i + 2]);
        let cand = table[h] as usize;
        table[h] = (i + 1) as u32;
        if cand != 0 {
            let r = cand - 1;
            let off = i - r - 1;
            if off < MAX_OFF && input[r..r + 3] == input[i..i + 3] {
                let max = (n - i).min(MAX_REF);
                let mut len = 3;
                while len < max && input[r + len] == input[i + len] {
                    len += 1;
                }
                literals(out, &input[lit_start..i]);
                let l = len - 2;
                if l < 7 {
                    out.push(((l << 5) | (off >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (off >> 8)) as u8);
                    out.push((l - 7) as u8);
                }
                out.push(off as u8);
                if out.len() - base > budget {
                    return false;
                }
                // The positions inside the match, for later repeats.
                let end = i + len;
                for k in i + 1..end.min(n - 2) {
                    table[hash(input[k], input[k + 1], input[k + 2])] = (k + 1) as u32;
                }
                i = end;
                lit_start = i;
                continue;
            }
        }
        i += 1;
        // A long literal stretch: check the budget once per run's worth.
        if (i - lit_start) % MAX_LIT == 0
            && out.len() - base + (i - lit_start) + (i - lit_start) / MAX_LIT > budget
        {
            return false;
        }
    }
    literals(out, &input[lit_start..]);
    out.len() - base <= budget
}

/// Decompresses `input`, which must yield exactly `len` bytes, appending them to `out`.
/// Returns false (with `out` holding part of them) on malformed input: a copy from before
/// the start, a run past the end of the input, or more or fewer than `len` bytes.
pub fn decompress_into(input: &[u8], len: usize, out: &mut Vec<u8>) -> bool {
    let base = out.len();
    let Some(limit) = base.checked_add(len) else {
        return false;
    };
    out.reserve(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let Some(lit) = i.checked_add(run).and_then(|e| input.get(i..e)) else {
                return false;
            };
            if out.len() + run > limit {
                return false;
            }
            out.extend_from_slice(lit);
            i += run;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                let Some(&more) = input.get(i) else {
                    return false;
                };
                n += more as usize;
                i += 1;
            }
            let Some(&low) = input.get(i) else {
                return false;
            };
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low as usize + 1;
            n += 2;
            // Copies reach back into this call's output only.
            if out.len() - base < back || out.len() + n > limit {
                return false;
            }
            let start = out.len() - back;
            if back >= n {
                out.extend_from_within(start..start + n);
            } else {
                // Overlapping: each byte may be one this copy just produced.
                for k in 0..n {
                    let b = out[start + k];
                    out.push(b);
                }
            }
        }
    }
    out.len() == limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(input: &[u8]) -> Option<usize> {
        let mut c = Vec::new();
        let fits = compress(input, &mut c, usize::MAX);
        assert!(fits, "an unlimited budget always fits");
        let mut back = vec![0xAA]; // appends after what is there
        assert!(decompress_into(&c, input.len(), &mut back), "decompresses");
        assert_eq!(&back[1..], input, "round trip");
        Some(c.len())
    }

    #[test]
    fn round_trips_at_the_edges() {
        for n in [
            0, 1, 2, 3, 4, 31, 32, 33, 47, 48, 63, 64, 65, 264, 265, 266, 8191, 8192, 8193,
        ] {
            round_trip(&vec![b'a'; n]);
            let counting: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            round_trip(&counting);
            let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog "
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect();
            round_trip(&text);
        }
    }

    #[test]
    fn repeats_compress_and_noise_does_not() {
        // One byte repeated: copies of 264 bytes, 3 bytes each (plus the first literal).
        let c = round_trip(&[7u8; 10_000]).expect("size");
        assert!(c < 200, "{c}");
        // A matching pattern far apart: only within 8 KiB back.
        let mut far = vec![0u8; 20_000];
        let mut x: u32 = 1;
        for b in far.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let noise = far.clone();
        let c = round_trip(&noise).expect("size");
        // Incompressible: runs of 32 literals cost one byte in 32.
        assert!(c <= noise.len() + noise.len() / 32 + 1, "{c}");
        assert!(c > noise.len(), "{c}");
        far[10_000..12_000].copy_from_slice(&noise[..2000]);
        round_trip(&far);
    }

    #[test]
    fn overlapping_matches() {
        round_trip(b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcab");
        round_trip(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbb");
        // Redis's own encoding of 20 'a's: a literal, then a copy of 19 from one back.
        let mut out = Vec::new();
        assert!(decompress_into(&[0, b'a', 0xE0, 10, 0], 20, &mut out));
        assert_eq!(out, vec![b'a'; 20]);
    }

    #[test]
    fn budget_stops_early() {
        let noise: Vec<u8> = (0..1000u32)
            .map(|i| (i * 7919 % 256) as u8 ^ (i >> 3) as u8)
            .collect();
        let mut out = Vec::new();
        assert!(!compress(&noise, &mut out, 100));
        assert!(
            out.len() <= 100 + MAX_LIT + 4,
            "stopped near the budget: {}",
            out.len()
        );
        let mut out = Vec::new();
        assert!(compress(&[1u8; 1000], &mut out, 100));
        assert!(!compress(&[1u8; 1000], &mut Vec::new(), 2));
    }

    #[test]
    fn malformed_input_is_refused() {
        let mut out = Vec::new();
        // A copy from before the start.
        assert!(!decompress_into(&[1 << 5, 5], 3, &mut out));
        // A literal run past the end of the input.
        assert!(!decompress_into(&[5, b'a'], 6, &mut Vec::new()));
        // More, or fewer, bytes than promised.
        assert!(!decompress_into(&[2, b'a', b'b', b'c'], 2, &mut Vec::new()));
        assert!(!decompress_into(&[2, b'a', b'b', b'c'], 4, &mut Vec::new()));
        // A truncated copy.
        assert!(!decompress_into(&[0, b'a', 0xE0], 20, &mut Vec::new()));
        assert!(!decompress_into(&[0, b'a', 0xE0, 10], 20, &mut Vec::new()));
        // Copies reach back into this call's output only, not what `out` held before.
        let mut out = b"xyz".to_vec();
        assert!(!decompress_into(&[1 << 5, 0], 3, &mut out));
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            round_trip(&data);
        }

        #[test]
        fn repetitive_bytes_round_trip(
            alphabet in proptest::collection::vec(any::<u8>(), 1..4),
            picks in proptest::collection::vec(any::<u16>(), 0..5000),
        ) {
            let data: Vec<u8> = picks.iter().map(|p| alphabet[*p as usize % alphabet.len()]).collect();
            round_trip(&data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), len in 0usize..2000) {
            let mut out = Vec::new();
            let _ = decompress_into(&data, len, &mut out);
            prop_assert!(out.len() <= len);
        }
    }
}
