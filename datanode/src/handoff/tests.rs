//! Tests: the import encoding, the frozen-slot count.

use super::*;

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
