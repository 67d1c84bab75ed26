#[test]
fn lists_dump_and_restore() {
    use crate::store::{Limits, List};
    // Compressed interior nodes (depth 1) dump and restore the same.
    for depth in [0, 1] {
        let limits = Limits {
            list_compress_depth: depth,
            ..Limits::default()
        };
        let items: Vec<Vec<u8>> = (0..500)
            .map(|i: i64| match i % 4 {
                0 => (i * 1_000_003 - 7).to_string().into_bytes(),
                1 => format!("e{i}").into_bytes(),
                2 => vec![b'z'; i as usize],
                _ => b"0012".to_vec(),
            })
            .collect();
        let v = Value::List(Box::new(List::from_items(
            items.iter().map(|e| &e[..]),
            &limits,
        )));
        let back = into_value(decode(&dump(&v)).expect("decodes"), &limits).expect("value");
        let Value::List(l) = back else {
            panic!("a list")
        };
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut c = l.cursor();
        while let Some(m) = c.next() {
            got.push(m.to_vec());
        }
        assert_eq!(got, items);
        let Value::List(orig) = &v else {
            panic!("a list")
        };
        assert_eq!(l.as_ref(), orig.as_ref());
    }
}

#[test]
fn redis_list_payloads_restore() {
    // A ziplist (Redis < 7): the immediate 12, a string and an i16.
    let mut zl = vec![0u8; 10];
    for e in [&[0xF1 + 12u8][..], &[0x02, b'h', b'i'], &[0xC0, 0x39, 0x30]] {
        zl.push(0);
        zl.extend_from_slice(e);
    }
    zl.push(0xFF);
    let len = zl.len() as u32;
    zl[..4].copy_from_slice(&len.to_le_bytes());
    zl[8..10].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(
        ziplist(&zl),
        Ok(vec![b"12".to_vec(), b"hi".to_vec(), b"12345".to_vec()])
    );
    // A quicklist-2 (Redis 7) of one packed node ["a", 5] and one plain node "big".
    let mut lp = vec![0u8; 6];
    lp.extend_from_slice(&[0x81, b'a', 2, 0x05, 1, 0xFF]);
    let total = lp.len() as u32;
    lp[..4].copy_from_slice(&total.to_le_bytes());
    lp[4..6].copy_from_slice(&2u16.to_le_bytes());
    let mut obj = vec![TYPE_LIST_QUICKLIST_2, 2, 2];
    write_string(&mut obj, &lp);
    obj.push(1);
    write_string(&mut obj, b"big");
    obj.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &obj);
    obj.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        decode(&obj),
        Ok(Decoded::List(vec![
            b"a".to_vec(),
            b"5".to_vec(),
            b"big".to_vec()
        ]))
    );
}

#[test]
fn hashes_and_sets_dump_and_restore() {
    use crate::store::{Kind, Limits};
    let limits = Limits::default();
    for n in [3usize, 300] {
        let mut h = Value::empty(Kind::Hash);
        let mut set = Value::empty(Kind::Set);
        if let (Value::Hash(hh), Value::Set(ss)) = (&mut h, &mut set) {
            for i in 0..n {
                hh.insert(
                    format!("f{i}").as_bytes(),
                    format!("v{i}").as_bytes(),
                    &limits,
                );
                ss.insert(format!("{}", i * 7).as_bytes(), &limits);
            }
        }
        for v in [h, set] {
            let back = into_value(decode(&dump(&v)).expect("decodes"), &limits).expect("value");
            let (a, b) = match (&v, &back) {
                (Value::Hash(a), Value::Hash(b)) => {
                    let mut a: Vec<_> = a.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                    let mut b: Vec<_> = b.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                    a.sort();
                    b.sort();
                    (format!("{a:?}"), format!("{b:?}"))
                }
                (Value::Set(a), Value::Set(b)) => {
                    let mut a: Vec<_> = a.iter().map(|m| m.to_vec()).collect();
                    let mut b: Vec<_> = b.iter().map(|m| m.to_vec()).collect();
                    a.sort();
                    b.sort();
                    (format!("{a:?}"), format!("{b:?}"))
                }
                _ => panic!("type changed"),
            };
            assert_eq!(a, b, "{n} elements");
        }
    }
}
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn function_payloads_roundtrip_and_are_checked() {
    let codes: [&[u8]; 2] = [
        b"#!lua name=a\nredis.register_function('a', function() return 1 end)",
        b"#!lua name=b\n",
    ];
    let p = dump_functions(codes);
    assert_eq!(p[0], OPCODE_FUNCTION2);
    let back = read_functions(&p).expect("reads");
    assert_eq!(back, vec![codes[0].to_vec(), codes[1].to_vec()]);
    assert_eq!(read_functions(&dump_functions([])), Ok(vec![]));
    let mut bad = p.clone();
    bad[3] ^= 1;
    assert_eq!(read_functions(&bad), Err(FunctionsPayloadError::Checksum));
    assert_eq!(
        read_functions(b"bad_payload"),
        Err(FunctionsPayloadError::Checksum)
    );
    // A key's DUMP payload is not a function.
    let key = dump(&Value::Str(b"x".to_vec().into_boxed_slice()));
    assert_eq!(
        read_functions(&key),
        Err(FunctionsPayloadError::NotAFunction)
    );
}

#[test]
fn crc64_matches_redis_test_vector() {
    assert_eq!(crc64(0, b"123456789"), 0xe9c6d914c4b8d9ca);
    assert_eq!(crc64(0, b""), 0);
}

#[test]
fn strings_round_trip_with_redis_encodings() {
    for s in [
        &b""[..],
        b"hello",
        b"0",
        b"-1",
        b"127",
        b"-128",
        b"300",
        b"-32768",
        b"70000",
        b"2147483647",
        b"-2147483648",
        b"2147483648",
        b"01",
        b"+1",
        b"-0",
        b"12345678901234567890",
    ] {
        let p = dump(&Value::str(s));
        assert_eq!(decode(&p), Ok(Decoded::Str(s.to_vec())), "{s:?}");
    }
    let long = vec![b'x'; 70_000];
    assert_eq!(
        decode(&dump(&Value::str(&long))),
        Ok(Decoded::Str(long.clone()))
    );
}

/// Bytes redis-server 7.0.15 replied to DUMP.
#[test]
fn reads_redis_payloads() {
    // SET k hello; DUMP k
    let hello = hex("00 05 68 65 6c 6c 6f 0a 00 63 72 df 76 65 34 20 0a");
    assert_eq!(decode(&hello), Ok(Decoded::Str(b"hello".to_vec())));
    assert_eq!(dump(&Value::str(b"hello")), hello);
    // SET k 12345 (an int-encoded object)
    let int = hex("00 c1 39 30 0a 00 9d 94 ea 27 93 fc 08 b9");
    assert_eq!(decode(&int), Ok(Decoded::Str(b"12345".to_vec())));
    assert_eq!(dump(&Value::str(b"12345")), int);
    // SET k <100 times 'a'>: LZF-compressed.
    let lzf = hex("00 c3 09 40 64 01 61 61 e0 57 00 01 61 61 0a 00 e8 a3 b5 07 b0 6d f2 71");
    assert_eq!(decode(&lzf), Ok(Decoded::Str(vec![b'a'; 100])));
    // HSET h f v n 5: a listpack.
    let h = hex(
        "10 12 12 00 00 00 04 00 81 66 02 81 76 02 81 6e 02 05 01 ff 0a 00
             84 90 93 9f 57 b4 f3 c2",
    );
    assert_eq!(
        decode(&h),
        Ok(Decoded::Hash(vec![
            (b"f".to_vec(), b"v".to_vec()),
            (b"n".to_vec(), b"5".to_vec())
        ]))
    );
    // SADD s 1 2 300: an intset.
    let s = hex("0b 0e 02 00 00 00 03 00 00 00 01 00 02 00 2c 01 0a 00 e5 10 b2 8e 7b 95 29 aa");
    assert_eq!(
        decode(&s),
        Ok(Decoded::Set(vec![
            b"1".to_vec(),
            b"2".to_vec(),
            b"300".to_vec()
        ]))
    );
    // SADD s2 a b: a hash table.
    let s2 = hex("02 02 01 61 01 62 0a 00 fe 64 21 25 eb 03 3d 0d");
    assert_eq!(
        decode(&s2),
        Ok(Decoded::Set(vec![b"a".to_vec(), b"b".to_vec()]))
    );
    // ZADD lp 1 a 2.5 b -3 c 100000 d: a listpack (scores as integers and text).
    let lp = hex(
        "11 22 22 00 00 00 08 00 81 63 02 df fd 02 81 61 02 01 01 81 62 02 83 32 2e 35
             04 81 64 02 f2 a0 86 01 04 ff 0a 00 25 f2 fe b3 07 f7 39 c2",
    );
    let want = |v: &[(&str, f64)]| {
        Ok(Decoded::Zset(
            v.iter().map(|(m, s)| (m.as_bytes().to_vec(), *s)).collect(),
        ))
    };
    assert_eq!(
        decode(&lp),
        want(&[("c", -3.0), ("a", 1.0), ("b", 2.5), ("d", 100000.0)])
    );
    // The same three members as a skip list (zset-max-listpack-entries 1): binary
    // doubles, highest first. CHKV dumps every sorted set this way, byte for byte.
    let sk = hex(
        "05 03 01 63 00 00 00 00 00 00 f0 7f 01 62 00 00 00 00 00 00 04 40 01 61 00 00
             00 00 00 00 f0 3f 0a 00 d0 5d 23 af 3e 18 0f a6",
    );
    assert_eq!(
        decode(&sk),
        want(&[("c", f64::INFINITY), ("b", 2.5), ("a", 1.0)])
    );
    let Ok(d) = decode(&sk) else {
        panic!("decodes")
    };
    let v = into_value(d, &crate::store::Limits::default()).expect("a zset");
    assert_eq!(dump(&v), sk);
}

#[test]
fn checksum_and_version_are_checked() {
    let mut p = dump(&Value::str(b"hello"));
    let n = p.len();
    p[1] ^= 1;
    assert_eq!(decode(&p), Err(RdbError::Checksum));
    p[1] ^= 1;
    p[n - 1] ^= 1;
    assert_eq!(decode(&p), Err(RdbError::Checksum));
    assert_eq!(decode(b"short"), Err(RdbError::Checksum));
    // A version from the future, with a correct CRC.
    let mut body = vec![TYPE_STRING, 1, b'a'];
    body.extend_from_slice(&13u16.to_le_bytes());
    let crc = crc64(0, &body);
    body.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(decode(&body), Err(RdbError::Checksum));
    assert_eq!(
        RdbError::Checksum.to_string(),
        "ERR DUMP payload version or checksum are wrong"
    );
}

fn framed(obj: &[u8]) -> Vec<u8> {
    let mut v = obj.to_vec();
    v.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

#[test]
fn malformed_objects_are_bad_format() {
    for obj in [
        &[][..],
        &[TYPE_STRING],
        &[TYPE_STRING, 5, b'a'],
        &[TYPE_STRING, 1, b'a', b'b'],
        &[
            TYPE_STRING,
            0x81,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ],
        &[TYPE_STRING, 0xC0 | ENC_LZF, 2, 0x3f, 0, b'a'],
        &[TYPE_STRING, 0xC7],
        &[TYPE_SET, 0x80, 0xff, 0xff, 0xff, 0xff],
        &[99, 0],
    ] {
        assert_eq!(decode(&framed(obj)), Err(RdbError::BadFormat), "{obj:?}");
    }
}

#[test]
fn lzf_literals_and_overlapping_references() {
    // "abc" literal, then a reference of 6 bytes at distance 3: "abcabcabc".
    let input = [2, b'a', b'b', b'c', (4 << 5), 2];
    assert_eq!(lzf_decompress(&input, 9), Some(b"abcabcabc".to_vec()));
    // A long reference (length byte follows): one 'a', then 7 + 10 + 2 = 19 more.
    let input = [0, b'a', 0xE0, 10, 0];
    assert_eq!(lzf_decompress(&input, 20), Some(vec![b'a'; 20]));
    // Wrong declared length, reference before the start, truncated literal.
    assert_eq!(lzf_decompress(&[2, b'a', b'b', b'c'], 4), None);
    assert_eq!(lzf_decompress(&[(1 << 5), 5], 3), None);
    assert_eq!(lzf_decompress(&[5, b'a'], 6), None);
    assert_eq!(lzf_decompress(&[0, b'a'], usize::MAX), None);
}

#[test]
fn sets_and_hashes_decode() {
    // intset of 16-bit values 1, 2, 300.
    let mut blob = vec![2, 0, 0, 0, 3, 0, 0, 0];
    for v in [1i16, 2, 300] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    let mut obj = vec![TYPE_SET_INTSET, blob.len() as u8];
    obj.extend_from_slice(&blob);
    assert_eq!(
        decode(&framed(&obj)),
        Ok(Decoded::Set(vec![
            b"1".to_vec(),
            b"2".to_vec(),
            b"300".to_vec()
        ]))
    );
    // A listpack with "f" -> "v" and "n" -> 5 (a 7-bit uint).
    let mut lp = vec![0, 0, 0, 0, 4, 0];
    lp.extend_from_slice(&[0x81, b'f', 2, 0x81, b'v', 2, 0x81, b'n', 2, 5, 1, 0xff]);
    let total = lp.len() as u32;
    lp[..4].copy_from_slice(&total.to_le_bytes());
    let mut obj = vec![TYPE_HASH_LISTPACK, lp.len() as u8];
    obj.extend_from_slice(&lp);
    let d = decode(&framed(&obj)).expect("hash");
    assert_eq!(
        d,
        Decoded::Hash(vec![
            (b"f".to_vec(), b"v".to_vec()),
            (b"n".to_vec(), b"5".to_vec())
        ])
    );
    let Ok(Value::Hash(h)) = into_value(d, &crate::store::Limits::default()) else {
        panic!("a hash")
    };
    assert_eq!(h.get(b"n"), Some(&b"5"[..]));
    let obj = [TYPE_HASH, 1, 1, b'a', 1, b'b'];
    assert_eq!(
        decode(&framed(&obj)),
        Ok(Decoded::Hash(vec![(b"a".to_vec(), b"b".to_vec())]))
    );
}
