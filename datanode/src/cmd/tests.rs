use super::testutil::*;
use super::*;

#[test]
fn table_is_consistent() {
    let mut seen = std::collections::HashSet::new();
    for c in table() {
        assert!(seen.insert(c.name), "duplicate {}", c.name);
        assert_eq!(c.name, c.name.to_ascii_lowercase());
        assert!(c.arity != 0, "{}", c.name);
        assert!(
            !(c.has(flags::WRITE) && c.has(flags::READONLY)),
            "{} both write and readonly",
            c.name
        );
        if c.first_key > 0 {
            assert!(c.step >= 1, "{}", c.name);
        }
    }
    assert!(lookup(b"GeT").is_some());
    assert!(lookup(b"nope").is_none());
    assert!(lookup(&[b'a'; 100]).is_none());
    // Every command's statistics have a row (a node sizes them without the table).
    assert!(
        table().len() <= crate::cmdstats::MAX_COMMANDS,
        "{} commands: raise cmdstats::MAX_COMMANDS",
        table().len()
    );
}

#[test]
fn key_positions() {
    let (_, mset) = lookup(b"mset").expect("mset");
    assert_eq!(mset.key_positions(5).collect::<Vec<_>>(), vec![1, 3]);
    let (_, get) = lookup(b"get").expect("get");
    assert_eq!(get.key_positions(2).collect::<Vec<_>>(), vec![1]);
    let (_, ping) = lookup(b"ping").expect("ping");
    assert_eq!(ping.key_positions(1).count(), 0);
    let (_, del) = lookup(b"del").expect("del");
    assert_eq!(del.key_positions(4).collect::<Vec<_>>(), vec![1, 2, 3]);
    // SINTERCARD numkeys key ... [LIMIT n]: the count says which arguments are keys.
    let (_, card) = lookup(b"sintercard").expect("sintercard");
    let keys = |args: &[&str]| {
        card.keys_in(&Request::from_args(args.iter().map(|a| a.as_bytes())))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&["sintercard", "2", "a", "b", "LIMIT", "1"]),
        vec![2, 3]
    );
    assert_eq!(keys(&["sintercard", "9", "a"]), vec![2]);
    assert_eq!(keys(&["sintercard", "x", "a"]), Vec::<usize>::new());
    assert_eq!(keys(&["sintercard", "-1", "a"]), Vec::<usize>::new());
    assert_eq!(
        del.keys_in(&Request::from_args([&b"del"[..], b"k"]))
            .count(),
        1
    );
    let keys_of = |args: &[&str]| {
        let (_, c) = lookup(args[0].as_bytes()).expect("known");
        c.keys_in(&Request::from_args(args.iter().map(|a| a.as_bytes())))
            .collect::<Vec<_>>()
    };
    // ZUNIONSTORE destination numkeys key ...: the destination, then the counted keys.
    assert_eq!(
        keys_of(&["zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"]),
        vec![1, 3, 4]
    );
    assert_eq!(
        keys_of(&["zunion", "2", "a", "b", "WITHSCORES"]),
        vec![2, 3]
    );
    assert_eq!(keys_of(&["zmpop", "1", "a", "MIN"]), vec![2]);
    // GEORADIUS ... STORE key: the key and the destination.
    assert_eq!(
        keys_of(&["georadius", "k", "1", "2", "3", "km", "STORE", "d"]),
        vec![1, 7]
    );
    assert_eq!(keys_of(&["georadius", "k", "1", "2", "3", "km"]), vec![1]);
}

#[test]
fn unknown_and_arity_errors() {
    let mut h = Harness::new();
    assert_eq!(
        h.run(&["foo", "a", "b"]),
        err("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
    );
    assert_eq!(
        h.run(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        h.run(&["client", "setname"]),
        err("ERR wrong number of arguments for 'client|setname' command")
    );
    assert_eq!(
        h.run(&["client", "bogus"]),
        err("ERR unknown subcommand 'bogus'. Try CLIENT HELP.")
    );
}

#[test]
fn strict_integers() {
    assert_eq!(parse_i64(b"10"), Some(10));
    assert_eq!(parse_i64(b"-10"), Some(-10));
    assert_eq!(parse_i64(b" 10"), None);
    assert_eq!(parse_i64(b"010"), None);
    assert_eq!(parse_i64(b"1e3"), None);
    assert_eq!(parse_i64(b"9223372036854775808"), None);
    assert_eq!(parse_f64(b"1e3"), Some(1000.0));
    assert_eq!(parse_f64(b"nan"), None);
    assert_eq!(parse_f64(b" 1"), None);
    assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
}

#[test]
fn strtod_like_c() {
    for (t, v, n) in [
        ("1.5", 1.5, 3),
        ("  -2e3x", -2000.0, 6),
        (".5", 0.5, 2),
        ("5.", 5.0, 2),
        ("1e", 1.0, 1),
        ("1e+", 1.0, 1),
        ("0x10", 16.0, 4),
        ("0x1.8p1", 3.0, 7),
        ("0x", 0.0, 1),
        ("-InFiNiTy", f64::NEG_INFINITY, 9),
        ("+inf", f64::INFINITY, 4),
        ("infinit", f64::INFINITY, 3),
        ("", 0.0, 0),
        ("x", 0.0, 0),
        ("-", 0.0, 0),
    ] {
        let (got, used, _) = strtod(t.as_bytes());
        assert_eq!((got, used), (v, n), "{t}");
    }
    assert!(strtod(b"nan").0.is_nan());
    assert_eq!(strtod(b"nan(12)").1, 7);
    assert!(strtod(b"1e400").2 && strtod(b"1e-400").2 && strtod(b"-1e-400").2);
    assert!(!strtod(b"0e-400").2 && !strtod(b"1e-320").2);
    assert_eq!(parse_double(b"1e-320"), Some(1e-320));
    for bad in [
        "", " 1", "1 ", "1e400", "1e-400", "nan", "-nan", "abc", "1.5x", "0x",
    ] {
        assert_eq!(parse_double(bad.as_bytes()), None, "{bad}");
    }
    for (t, v) in [
        ("infinity", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("0x10", 16.0),
    ] {
        assert_eq!(parse_double(t.as_bytes()), Some(v));
    }
}
