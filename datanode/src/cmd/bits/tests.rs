use super::super::testutil::*;
use super::*;

fn naive_popcount_bits(s: &[u8], start: u64, end: u64) -> u64 {
    (start..=end)
        .filter(|&i| s[(i / 8) as usize] & (1 << (7 - i % 8)) != 0)
        .count() as u64
}

fn naive_first(s: &[u8], bit: bool, start: u64, end: u64) -> Option<u64> {
    (start..=end).find(|&i| (s[(i / 8) as usize] & (1 << (7 - i % 8)) != 0) == bit)
}

#[test]
fn popcount_and_first_bit_match_a_naive_count() {
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for len in [1usize, 2, 7, 8, 9, 31, 32, 33, 100] {
        for round in 0..20 {
            let s: Vec<u8> = (0..len)
                .map(|_| match round % 3 {
                    0 => next() as u8,
                    1 => 0,
                    _ => 0xff,
                })
                .collect();
            assert_eq!(popcount(&s), naive_popcount_bits(&s, 0, len as u64 * 8 - 1));
            let bits = len as u64 * 8;
            for _ in 0..20 {
                let a = next() % bits;
                let b = next() % bits;
                let (a, b) = (a.min(b), a.max(b));
                assert_eq!(popcount_bits(&s, a, b), naive_popcount_bits(&s, a, b));
                for bit in [false, true] {
                    assert_eq!(
                        first_bit(&s, bit, a, b),
                        naive_first(&s, bit, a, b),
                        "{s:?} {bit} {a} {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn fields_read_and_write_msb_first() {
    let mut s = vec![0u8; 3];
    set_field(&mut s, 4, 8, 0xab);
    assert_eq!(s, [0x0a, 0xb0, 0]);
    assert_eq!(get_field(&s, 4, 8), 0xab);
    assert_eq!(get_field(&s, 20, 8), 0, "past the end reads zeros");
    let i8t = FieldType::parse(b"i8").expect("i8");
    assert_eq!(i8t.decode(0xff), -1);
    assert_eq!(FieldType::parse(b"u63").map(|t| t.bits), Some(63));
    for bad in [&b"u64"[..], b"i65", b"i0", b"I8", b"x8", b"i", b"i08", b""] {
        assert_eq!(FieldType::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn overflow_behaviours() {
    let u8t = FieldType::parse(b"u8").expect("u8");
    let i8t = FieldType::parse(b"i8").expect("i8");
    let i64t = FieldType::parse(b"i64").expect("i64");
    assert_eq!(field_add(u8t, 250, 10, Overflow::Wrap), Some(4));
    assert_eq!(field_add(u8t, 250, 10, Overflow::Sat), Some(255));
    assert_eq!(field_add(u8t, 250, 10, Overflow::Fail), None);
    assert_eq!(field_add(u8t, 5, -10, Overflow::Sat), Some(0));
    assert_eq!(field_add(u8t, 5, -10, Overflow::Wrap), Some(251));
    // SET of a negative number to an unsigned field: two's complement, saturating up.
    assert_eq!(field_add(u8t, -1, 0, Overflow::Sat), Some(255));
    assert_eq!(field_add(u8t, -1, 0, Overflow::Wrap), Some(255));
    assert_eq!(field_add(i8t, 120, 10, Overflow::Wrap), Some(-126));
    assert_eq!(field_add(i8t, 120, 10, Overflow::Sat), Some(127));
    assert_eq!(field_add(i8t, -120, -10, Overflow::Sat), Some(-128));
    assert_eq!(field_add(i8t, -120, -10, Overflow::Wrap), Some(126));
    assert_eq!(field_add(i64t, i64::MAX, 1, Overflow::Wrap), Some(i64::MIN));
    assert_eq!(field_add(i64t, i64::MAX, 1, Overflow::Sat), Some(i64::MAX));
    assert_eq!(field_add(i64t, i64::MIN, -1, Overflow::Fail), None);
    // Redis's quirk: a SET far below a small signed type's minimum saturates upwards.
    let i16t = FieldType::parse(b"i16").expect("i16");
    assert_eq!(field_add(i16t, i64::MIN, 0, Overflow::Sat), Some(32767));
    assert_eq!(field_add(i16t, -40000, 0, Overflow::Sat), Some(-32768));
    assert_eq!(field_add(i16t, i64::MIN, 0, Overflow::Wrap), Some(0));
}

#[test]
fn lcs_walk_reports_redis_ranges() {
    let (a, b) = (b"ohmytext".as_slice(), b"mynewtext".as_slice());
    let t = lcs_table(a, b);
    let (s, ranges) = lcs_walk(a, b, &t);
    assert_eq!(s, b"mytext");
    assert_eq!(lcs_len(a, b), 6);
    assert_eq!(
        ranges,
        vec![
            LcsMatch {
                a: (4, 7),
                b: (5, 8),
                len: 4
            },
            LcsMatch {
                a: (2, 3),
                b: (0, 1),
                len: 2
            },
        ]
    );
}

#[test]
fn setbit_getbit() {
    let mut h = Harness::new();
    assert_eq!(h.run(&["SETBIT", "k", "7", "1"]), int(0));
    assert_eq!(h.run(&["GET", "k"]), Frame::bulk(b"\x01"));
    assert_eq!(h.run(&["SETBIT", "k", "7", "0"]), int(1));
    assert_eq!(h.run(&["SETBIT", "k", "16", "0"]), int(0));
    assert_eq!(h.run(&["STRLEN", "k"]), int(3));
    assert_eq!(h.run(&["SETBIT", "k", "0", "1"]), int(0));
    assert_eq!(h.run(&["GETBIT", "k", "0"]), int(1));
    assert_eq!(h.run(&["GETBIT", "k", "1"]), int(0));
    assert_eq!(h.run(&["GETBIT", "k", "1000"]), int(0));
    assert_eq!(h.run(&["GETBIT", "nope", "0"]), int(0));
    let off = err("ERR bit offset is not an integer or out of range");
    assert_eq!(h.run(&["SETBIT", "k", "-1", "1"]), off);
    assert_eq!(h.run(&["SETBIT", "k", "4294967296", "1"]), off);
    assert_eq!(h.run(&["GETBIT", "k", "x"]), off);
    let bit = err("ERR bit is not an integer or out of range");
    assert_eq!(h.run(&["SETBIT", "k", "1", "2"]), bit);
    assert_eq!(h.run(&["SETBIT", "k", "1", "-1"]), bit);
    // A missing key is created even when clearing a bit.
    assert_eq!(h.run(&["SETBIT", "z", "9", "0"]), int(0));
    assert_eq!(h.run(&["GET", "z"]), Frame::bulk(b"\0\0"));
    // TTLs survive.
    h.run(&["SET", "t", "a", "EX", "100"]);
    h.run(&["SETBIT", "t", "100", "1"]);
    assert_eq!(h.run(&["TTL", "t"]), int(100));
}

#[test]
fn growth_is_charged_exactly() {
    // A string grown by SETBIT or BITFIELD costs what the same string SET directly costs.
    let mut grown = Harness::new();
    grown.run(&["SET", "k", "a"]);
    grown.run(&["SETBIT", "k", "80007", "1"]);
    grown.run(&["BITFIELD", "n", "SET", "u8", "#9999", "1"]);
    let mut direct = Harness::new();
    direct.run(&["SET", "k", &"\0".repeat(10001)]);
    direct.run(&["SET", "n", &"\0".repeat(10000)]);
    assert_eq!(grown.node.db.used_memory(), direct.node.db.used_memory());
    grown.run(&["DEL", "k", "n"]);
    assert_eq!(
        grown.node.db.used_memory(),
        Harness::new().node.db.used_memory()
    );
}

#[test]
fn bitcount_ranges() {
    let mut h = Harness::new();
    h.run(&["SET", "s", "foobar"]);
    assert_eq!(h.run(&["BITCOUNT", "s"]), int(26));
    assert_eq!(h.run(&["BITCOUNT", "s", "0", "0"]), int(4));
    assert_eq!(h.run(&["BITCOUNT", "s", "1", "1"]), int(6));
    assert_eq!(h.run(&["BITCOUNT", "s", "1", "1", "BYTE"]), int(6));
    assert_eq!(h.run(&["BITCOUNT", "s", "5", "30", "BIT"]), int(17));
    assert_eq!(h.run(&["BITCOUNT", "s", "-2", "-1"]), int(7));
    assert_eq!(h.run(&["BITCOUNT", "s", "-1", "-2"]), int(0));
    assert_eq!(h.run(&["BITCOUNT", "s", "-1", "-2", "x"]), int(0));
    assert_eq!(h.run(&["BITCOUNT", "s", "100", "200"]), int(0));
    assert_eq!(h.run(&["BITCOUNT", "s", "0"]), err("ERR syntax error"));
    assert_eq!(
        h.run(&["BITCOUNT", "s", "0", "1", "bits"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["BITCOUNT", "s", "a", "1"]),
        err("ERR value is not an integer or out of range")
    );
    // Redis 7.0 answers 0 for a missing key whatever the arguments.
    assert_eq!(h.run(&["BITCOUNT", "nope", "a", "b"]), int(0));
}

#[test]
fn bitpos_semantics() {
    let mut h = Harness::new();
    h.run(&["SET", "s", "x"]);
    h.run(&["SET", "ff", ""]);
    assert_eq!(h.run(&["BITPOS", "nope", "0"]), int(0));
    assert_eq!(h.run(&["BITPOS", "nope", "1"]), int(-1));
    assert_eq!(h.run(&["BITPOS", "ff", "0"]), int(-1));
    assert_eq!(
        h.run(&["BITPOS", "s", "2"]),
        err("ERR The bit argument must be 1 or 0.")
    );
    h.run(&["SETBIT", "b", "23", "1"]);
    assert_eq!(h.run(&["BITPOS", "b", "1"]), int(23));
    assert_eq!(h.run(&["BITPOS", "b", "1", "1"]), int(23));
    assert_eq!(h.run(&["BITPOS", "b", "1", "0", "1"]), int(-1));
    assert_eq!(h.run(&["BITPOS", "b", "1", "20", "23", "BIT"]), int(23));
    assert_eq!(h.run(&["BITPOS", "b", "0", "23", "-1", "BIT"]), int(-1));
    assert_eq!(h.run(&["BITPOS", "b", "1", "2"]), int(23));
    h.run(&["BITFIELD", "ones", "SET", "u16", "0", "65535"]);
    assert_eq!(h.run(&["BITPOS", "ones", "0"]), int(16));
    assert_eq!(h.run(&["BITPOS", "ones", "0", "1"]), int(16));
    assert_eq!(h.run(&["BITPOS", "ones", "0", "3", "-1", "BIT"]), int(-1));
    assert_eq!(
        h.run(&["BITPOS", "b", "0", "1", "2", "x"]),
        err("ERR syntax error")
    );
}

#[test]
fn bitop_variants() {
    let mut h = Harness::new();
    h.run(&["SET", "a", "\u{1}\u{2}"]);
    h.run(&["SET", "b", "\u{3}"]);
    assert_eq!(h.run(&["BITOP", "AND", "d", "a", "b"]), int(2));
    assert_eq!(h.run(&["GET", "d"]), Frame::bulk(b"\x01\x00"));
    assert_eq!(h.run(&["BITOP", "or", "d", "a", "b", "missing"]), int(2));
    assert_eq!(h.run(&["GET", "d"]), Frame::bulk(b"\x03\x02"));
    assert_eq!(h.run(&["BITOP", "XOR", "d", "a", "b"]), int(2));
    assert_eq!(h.run(&["GET", "d"]), Frame::bulk(b"\x02\x02"));
    assert_eq!(h.run(&["BITOP", "NOT", "d", "b"]), int(1));
    assert_eq!(h.run(&["GET", "d"]), Frame::bulk(b"\xfc"));
    assert_eq!(
        h.run(&["BITOP", "NOT", "d", "a", "b"]),
        err("ERR BITOP NOT must be called with a single source key.")
    );
    assert_eq!(h.run(&["BITOP", "NAND", "d", "a"]), err("ERR syntax error"));
    // All sources missing: the destination is deleted.
    h.run(&["SET", "d", "x", "EX", "100"]);
    assert_eq!(h.run(&["BITOP", "AND", "d", "m1", "m2"]), int(0));
    assert_eq!(h.run(&["EXISTS", "d"]), int(0));
    // The result replaces the destination and its TTL.
    h.run(&["SET", "d", "x", "EX", "100"]);
    h.run(&["BITOP", "OR", "d", "a"]);
    assert_eq!(h.run(&["TTL", "d"]), int(-1));
}

#[test]
fn bitfield_ops() {
    let mut h = Harness::new();
    let arr = |v: Vec<Frame>| Frame::Array(v);
    assert_eq!(
        h.run(&["BITFIELD", "k", "SET", "i8", "0", "-100", "GET", "i8", "0"]),
        arr(vec![int(0), int(-100)])
    );
    assert_eq!(
        h.run(&[
            "BITFIELD", "k", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "INCRBY", "u2", "102",
            "5"
        ]),
        arr(vec![int(1), int(3)])
    );
    assert_eq!(
        h.run(&["BITFIELD", "k", "OVERFLOW", "FAIL", "INCRBY", "u2", "102", "1"]),
        arr(vec![Frame::Null])
    );
    assert_eq!(
        h.run(&["BITFIELD", "k", "SET", "u8", "#1", "255", "GET", "u8", "8"]),
        arr(vec![int(0), int(255)])
    );
    assert_eq!(h.run(&["BITFIELD", "k"]), arr(vec![]));
    assert_eq!(
        h.run(&["BITFIELD", "nope", "GET", "u8", "0"]),
        arr(vec![int(0)])
    );
    assert_eq!(h.run(&["EXISTS", "nope"]), int(0));
    assert_eq!(
        h.run(&["BITFIELD_RO", "k", "GET", "i8", "0"]),
        arr(vec![int(-100)])
    );
    assert_eq!(
        h.run(&["BITFIELD_RO", "k", "SET", "i8", "0", "1"]),
        err("ERR BITFIELD_RO only supports the GET subcommand")
    );
    assert_eq!(
        h.run(&["BITFIELD", "k", "GET", "u64", "0"]),
        err("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.")
    );
    assert_eq!(
        h.run(&["BITFIELD", "k", "OVERFLOW", "x"]),
        err("ERR Invalid OVERFLOW type specified")
    );
    assert_eq!(
        h.run(&["BITFIELD", "k", "GET", "u8"]),
        err("ERR syntax error")
    );
    assert_eq!(
        h.run(&["BITFIELD", "k", "GET", "u8", "-1"]),
        err("ERR bit offset is not an integer or out of range")
    );
}

#[test]
fn lcs_command() {
    let mut h = Harness::new();
    h.run(&["MSET", "{k}1", "ohmytext", "{k}2", "mynewtext"]);
    assert_eq!(h.run(&["LCS", "{k}1", "{k}2"]), bulk("mytext"));
    assert_eq!(h.run(&["LCS", "{k}1", "{k}2", "LEN"]), int(6));
    assert_eq!(h.run(&["LCS", "{k}1", "nope"]), bulk(""));
    let pair = |a, b| Frame::Array(vec![int(a), int(b)]);
    assert_eq!(
        h.run(&[
            "LCS",
            "{k}1",
            "{k}2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN"
        ]),
        Frame::Map(vec![
            (
                bulk("matches"),
                Frame::Array(vec![Frame::Array(vec![pair(4, 7), pair(5, 8), int(4)])])
            ),
            (bulk("len"), int(6)),
        ])
    );
    assert_eq!(
        h.run(&["LCS", "{k}1", "{k}2", "IDX", "LEN"]),
        err("ERR If you want both the length and indexes, please just use IDX.")
    );
    assert_eq!(
        h.run(&["LCS", "{k}1", "{k}2", "FOO"]),
        err("ERR syntax error")
    );
}
