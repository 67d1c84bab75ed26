//! Key slots, exactly as Redis Cluster computes them.
//!
//! `slot(key) = CRC16-XMODEM(tag(key)) mod 16384`, where `tag(key)` is the text between the
//! first `{` and the next `}` when that text is non-empty, else the whole key. Using Redis's
//! function means cluster-aware Redis clients route keys exactly as CHKV does.

use std::fmt;

/// Number of slots in the key space (Redis Cluster's 16384).
pub const SLOT_COUNT: usize = 16384;

/// A slot number, always `< SLOT_COUNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u16);

impl Slot {
    /// The slot `n`, or `None` when `n >= SLOT_COUNT`.
    pub fn new(n: u16) -> Option<Slot> {
        ((n as usize) < SLOT_COUNT).then_some(Slot(n))
    }

    /// The slot of `key`.
    pub fn of(key: &[u8]) -> Slot {
        Slot(key_slot(key))
    }

    /// The slot number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The slot number as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Every slot, in order.
    pub fn all() -> impl Iterator<Item = Slot> {
        (0..SLOT_COUNT as u16).map(Slot)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// CRC16-XMODEM (polynomial 0x1021) lookup tables for four bytes at a time, built at compile
/// time: `CRC16_TABLES[k][x]` is the CRC of byte `x` followed by `k` zero bytes, so
/// `CRC16_TABLES[0]` is the classic byte-at-a-time table.
const CRC16_TABLES: [[u16; 256]; 4] = {
    let mut t = [[0u16; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// CRC16-XMODEM (poly 0x1021, init 0, no reflection), the checksum Redis Cluster uses.
///
/// Every request computes one, so it takes four bytes per step with four independent table
/// lookups (the CRC is linear: the state folds into the first two bytes of the step),
/// instead of a chain of one dependent lookup per byte.
pub fn crc16(data: &[u8]) -> u16 {
    let [t0, t1, t2, t3] = &CRC16_TABLES;
    let mut chunks = data.chunks_exact(4);
    let mut crc = 0u16;
    for c in &mut chunks {
        crc = t3[((crc >> 8) as u8 ^ c[0]) as usize]
            ^ t2[(crc as u8 ^ c[1]) as usize]
            ^ t1[c[2] as usize]
            ^ t0[c[3] as usize];
    }
    chunks.remainder().iter().fold(crc, |crc, &b| {
        (crc << 8) ^ t0[((crc >> 8) as u8 ^ b) as usize]
    })
}

/// The position of the first `{` in `key`. Keys rarely have one, and every keyed command
/// looks for it (once per slot computed), so eight bytes are tested at a time: a byte of
/// `w ^ "{{{{{{{{"` is zero where `w` has a `{`, and `(x - 0x01..01) & !x & 0x80..80` sets
/// the high bit of the lowest zero byte (a borrow only ever marks bytes above the first
/// zero, so the lowest mark is exact). callgrind, 16- and 20-byte keys: 220 -> 126
/// instructions per [`key_slot`].
fn find_open_brace(key: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const BRACES: u64 = u64::from_le_bytes([b'{'; 8]);
    let mut words = key.chunks_exact(8);
    let mut at = 0;
    for w in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(w);
        let x = u64::from_le_bytes(bytes) ^ BRACES;
        let marks = x.wrapping_sub(ONES) & !x & HIGHS;
        if marks != 0 {
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'{')
        .map(|p| at + p)
}

/// The part of `key` that is hashed: the hash tag when there is a non-empty one.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = find_open_brace(key) {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The slot number of `key` (`0..16384`).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOT_COUNT as u16 - 1)
}

/// Sorted, distinct slot numbers as inclusive runs (`[1, 2, 3, 7]` is `[(1, 3), (7, 7)]`),
/// the form the control protocol carries slot sets in.
pub fn runs(sorted: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &s in sorted {
        match out.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(s) => last.1 = s,
            _ => out.push((s, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_sorted_slots() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[1, 2, 3, 7]), vec![(1, 3), (7, 7)]);
        assert_eq!(runs(&[0, 16383]), vec![(0, 0), (16383, 16383)]);
        assert_eq!(
            runs(&[u16::MAX - 1, u16::MAX]),
            vec![(u16::MAX - 1, u16::MAX)]
        );
    }
    use proptest::prelude::*;

    /// The textbook CRC16-XMODEM, one bit at a time.
    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in data {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn crc16_test_vector() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn known_slots() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.a"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
    }

    #[test]
    fn hash_tag_rules() {
        // Empty tag: the whole key is hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        // Only the first '{' and the next '}' count.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        // No closing brace.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b""), b"");
    }

    #[test]
    fn slot_bounds() {
        assert!(Slot::new(16383).is_some());
        assert!(Slot::new(16384).is_none());
        assert_eq!(Slot::all().count(), SLOT_COUNT);
    }

    proptest! {
        #[test]
        fn crc16_matches_the_bitwise_definition(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(crc16(&data), crc16_bitwise(&data));
        }

        /// Braces anywhere (and bytes next to `{` in value, which a borrow could
        /// mistake for it): the first one is found.
        #[test]
        fn the_first_open_brace_is_found(key in proptest::collection::vec(
            prop_oneof![Just(b'{'), Just(b'z'), Just(b'|'), Just(0u8), Just(0xfbu8), any::<u8>()],
            0..40,
        )) {
            prop_assert_eq!(find_open_brace(&key), key.iter().position(|&b| b == b'{'));
        }

        #[test]
        fn slot_always_in_range(key in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!((key_slot(&key) as usize) < SLOT_COUNT);
        }

        #[test]
        fn tagged_keys_share_slot(tag in "[a-z0-9]{1,12}", a in "[a-z]{0,8}", b in "[a-z]{0,8}") {
            let k1 = format!("{a}{{{tag}}}x");
            let k2 = format!("{b}{{{tag}}}y");
            prop_assert_eq!(key_slot(k1.as_bytes()), key_slot(k2.as_bytes()));
        }
    }
}
