//! Tests: transfer sizing, the import encoding, the frozen-slot count.

use super::*;

#[test]
fn transfers_are_bounded_by_entries_and_bytes() {
    // Entries and bytes within both bounds: one transfer.
    assert_eq!(transfers(&[10, 10, 10], 500, 100), vec![0..3]);
    assert!(transfers(&[], 500, 100).is_empty());
    // Bytes: cut before the entry that would go over.
    assert_eq!(transfers(&[40, 40, 40, 40], 500, 100), vec![0..2, 2..4]);
    assert_eq!(transfers(&[50, 50, 1], 500, 100), vec![0..2, 2..3]);
    // Entries.
    assert_eq!(transfers(&[1; 5], 2, 100), vec![0..2, 2..4, 4..5]);
    // A value larger than a transfer travels alone, whatever surrounds it.
    assert_eq!(
        transfers(&[10, 400, 10, 10, 300], 500, 100),
        vec![0..1, 1..2, 2..4, 4..5]
    );
    // Three 400 MB values under one hash tag (the slot that could never move): three
    // transfers, none above one value, where there used to be one of 1.2 GB.
    let mb = 1 << 20;
    let big = transfers(&[400 * mb; 3], IMPORT_CHUNK, IMPORT_BYTES);
    assert_eq!(big, vec![0..1, 1..2, 2..3]);
    // Many small entries: every transfer within both bounds, every entry once, in order.
    let sizes: Vec<usize> = (0..10_000).map(|i| 100 + (i * 7919) % 50_000).collect();
    let t = transfers(&sizes, IMPORT_CHUNK, IMPORT_BYTES);
    let mut next = 0;
    for r in &t {
        assert_eq!(r.start, next);
        assert!(r.len() <= IMPORT_CHUNK);
        assert!(sizes[r.clone()].iter().sum::<usize>() <= IMPORT_BYTES);
        next = r.end;
    }
    assert_eq!(next, sizes.len());
    // Degenerate bounds still make progress.
    assert_eq!(transfers(&[5, 5], 0, 0), vec![0..1, 1..2]);
}

#[test]
fn import_roundtrip() {
    let entries = vec![
        Exported {
            key: bytes::Bytes::from_static(b"k1"),
            value: bytes::Bytes::from_static(b"v\r\n1"),
            expire_at: 0,
        },
        Exported {
            key: bytes::Bytes::from_static(b""),
            value: bytes::Bytes::from_static(b""),
            expire_at: 1_700_000_000_123,
        },
    ];
    let mut buf = bytes::BytesMut::from(&encode_import(&entries)[..]);
    // A large value: one buffer, sized before the copy (never grown).
    let long = vec![Exported {
        key: bytes::Bytes::from(vec![b'k'; 1000]),
        value: bytes::Bytes::from(vec![b'v'; 123_456]),
        expire_at: 7,
    }];
    let one = encode_import(&long);
    assert!(one.len() > 124_456);
    let mut p = crate::resp::Parser::new();
    let req = p
        .next(&mut buf, &crate::resp::Limits::default(), true)
        .expect("parses")
        .expect("complete");
    assert_eq!(decode_import(&req).expect("decodes"), entries);
    // A piece goes out as the command it decodes from.
    let piece = Piece {
        key: bytes::Bytes::from_static(b"big"),
        expire_at: 9,
        total: 10_000,
        offset: 4096,
        value: bytes::Bytes::from_static(b"\x01\x00abc"),
    };
    let mut buf = bytes::BytesMut::from(&encode_piece(&piece)[..]);
    let req = p
        .next(&mut buf, &crate::resp::Limits::default(), true)
        .expect("parses")
        .expect("complete");
    assert_eq!(decode_piece(&req).expect("decodes"), piece);
}

/// "Any slot frozen?" follows the bits exactly: freezing a frozen slot or unfreezing a free
/// one changes nothing, and it is false again once the last frozen slot is unfrozen.
#[test]
fn any_frozen_counts_frozen_slots() {
    let h = Handoff::default();
    assert!(!h.any_frozen());
    h.set_frozen(&[1, 64, 16383], true);
    h.set_frozen(&[1, 2], true);
    assert!(h.any_frozen());
    assert!(h.is_frozen(2) && h.is_frozen(16383) && !h.is_frozen(3));
    h.set_frozen(&[1, 64, 3], false);
    assert!(h.any_frozen(), "2 and 16383 are still frozen");
    h.set_frozen(&[2, 16383], false);
    assert!(!h.any_frozen());
    h.set_frozen(&[2], false);
    assert!(!h.any_frozen());
    h.set_frozen(&[5], true);
    assert!(h.any_frozen());
}
