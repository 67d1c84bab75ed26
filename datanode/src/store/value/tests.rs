use super::*;

#[test]
fn listpack_hash_converts_at_the_thresholds() {
    let l = Limits {
        hash_max_listpack_entries: 4,
        hash_max_listpack_value: 8,
        ..Limits::default()
    };
    let mut h = Hash::default();
    for i in 0..4 {
        assert!(h.insert(format!("f{i}").as_bytes(), b"v", &l));
    }
    assert!(!h.insert(b"f1", b"longer", &l));
    assert_eq!(h.get(b"f1"), Some(&b"longer"[..]));
    assert!(matches!(h, Hash::Listpack(_)));
    assert!(h.remove(b"f0"));
    assert!(!h.remove(b"f0"));
    assert_eq!(h.len(), 3);
    assert!(h.insert(b"f9", b"v", &l));
    assert!(matches!(h, Hash::Listpack(_)));
    // A fifth field converts.
    assert!(h.insert(b"f10", b"v", &l));
    assert!(matches!(h, Hash::Table(_)));
    assert_eq!(h.len(), 5);
    assert_eq!(h.get(b"f1"), Some(&b"longer"[..]));
    // A long value converts.
    let mut h = Hash::default();
    h.insert(b"a", b"1", &l);
    assert!(!h.insert(b"a", b"123456789", &l));
    assert!(matches!(h, Hash::Table(_)));
    assert_eq!(h.get(b"a"), Some(&b"123456789"[..]));
    assert!(h.remove(b"a"));
    assert_eq!((h.len(), h.heap_size() > 0), (0, true));
}

#[test]
fn set_encodings_convert() {
    let l = Limits {
        set_max_intset_entries: 3,
        set_max_listpack_entries: 4,
        set_max_listpack_value: 5,
        ..Limits::default()
    };
    let mut s = Set::for_member(b"1", &l);
    for m in ["1", "2", "3"] {
        assert!(s.insert(m.as_bytes(), &l));
    }
    assert!(!s.insert(b"2", &l));
    assert_eq!(s.encoding_name(), "intset");
    assert!(s.contains(b"3") && !s.contains(b"03"));
    // A fourth integer: past set-max-intset-entries.
    assert!(s.insert(b"4", &l));
    assert_eq!(s.encoding_name(), "hashtable");
    let mut s = Set::for_member(b"1", &l);
    s.insert(b"1", &l);
    assert!(s.insert(b"abc", &l));
    assert_eq!(s.encoding_name(), "listpack");
    assert!(s.contains(b"1") && s.contains(b"abc"));
    assert!(s.insert(b"toolong", &l));
    assert_eq!(s.encoding_name(), "hashtable");
    assert_eq!(s.len(), 3);
    assert!(s.remove(b"1") && !s.remove(b"1"));
    let mut members: Vec<Vec<u8>> = s.iter().map(Member::to_vec).collect();
    members.sort();
    assert_eq!(members, vec![b"abc".to_vec(), b"toolong".to_vec()]);
}

#[test]
fn small_values_stay_small() {
    // A collection's struct sits in its key's entry block: this much per key.
    assert_eq!(std::mem::size_of::<Value>(), 32);
    let l = Limits::default();
    let mut h = Hash::default();
    for i in 0..10 {
        h.insert(format!("field{i}").as_bytes(), b"value:00001", &l);
    }
    // 10 pairs of 19 bytes, exactly sized: one 192-byte size class.
    assert_eq!(h.heap_size(), 192);
}

#[test]
fn canonical_integers_only() {
    assert_eq!(int_member(b"-12"), Some(-12));
    for b in ["012", "+1", " 1", "", "1.0", "-0", "99999999999999999999"] {
        assert_eq!(int_member(b.as_bytes()), None, "{b}");
    }
}

impl Set {
    fn encoding_name(&self) -> &'static str {
        Value::Set(self.clone()).encoding()
    }
}
