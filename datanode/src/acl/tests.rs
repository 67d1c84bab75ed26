use super::*;
use crate::cmd::lookup;

/// The real command table, as `cmd` gives it.
fn cmds() -> &'static Commands {
    crate::cmd::acl::commands()
}

fn user(rules: &[&str]) -> User {
    let mut u = User::new(b"u");
    for r in split_rules(rules.iter().map(|r| r.as_bytes())).expect("split") {
        u.apply(&r, cmds())
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&r)));
    }
    u
}

fn check(u: &User, args: &[&str]) -> Result<(), Denied> {
    let (idx, top) = lookup(args[0].as_bytes()).expect("command");
    let (spec, id) = match (top.subcommands.is_empty(), args.get(1)) {
        (false, Some(sub)) => {
            let i = top
                .subcommands
                .iter()
                .position(|s| s.name.eq_ignore_ascii_case(sub))
                .expect("sub");
            (&top.subcommands[i], idx | ((i as u32 + 1) << 16))
        }
        _ => (top, idx),
    };
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    crate::cmd::acl::check(u, id, spec, top, &a)
}

#[test]
fn the_issue_example_user() {
    let u = user(&["on", ">pw", "~app:*", "+get", "+set"]);
    assert!(u.password_ok(b"pw"));
    assert!(!u.password_ok(b"other"));
    assert_eq!(check(&u, &["set", "app:1", "v"]), Ok(()));
    assert_eq!(check(&u, &["get", "app:1"]), Ok(()));
    assert_eq!(check(&u, &["get", "other"]), Err(Denied::Key(1)));
    assert_eq!(check(&u, &["del", "app:1"]), Err(Denied::Command));
    assert_eq!(check(&u, &["mget", "app:1"]), Err(Denied::Command));
    assert!(!u.unrestricted());
    assert_eq!(u.describe().split(' ').next(), Some("user"));
    assert!(
        u.describe()
            .ends_with("~app:* resetchannels -@all +get +set"),
        "{}",
        u.describe()
    );
}

#[test]
fn default_user_allows_everything() {
    let u = User::default_user();
    assert!(u.unrestricted());
    assert!(u.password_ok(b"anything"));
    assert_eq!(u.describe(), "user default on nopass ~* &* +@all");
}

#[test]
fn the_default_user_is_what_its_rules_make() {
    let mut u = User::new(b"default");
    for r in ["on", "nopass", "allkeys", "allchannels", "+@all"] {
        u.apply(r.as_bytes(), cmds()).expect(r);
    }
    assert_eq!(u, User::default_user());
}

#[test]
fn rules_name_the_commands_dispatch_finds() {
    // `Commands::has` compares names exactly; the table's names are lower case, as the
    // rules are once lowered, so it finds what a case-insensitive lookup finds.
    for top in crate::cmd::table() {
        assert_eq!(top.name, top.name.to_ascii_lowercase());
        assert!(cmds().has(top.name, None), "{}", top.name);
        assert!(lookup(top.name.as_bytes()).is_some());
        for sub in top.subcommands {
            assert_eq!(sub.name, sub.name.to_ascii_lowercase());
            assert!(
                cmds().has(top.name, Some(sub.name)),
                "{}|{}",
                top.name,
                sub.name
            );
        }
    }
    assert!(!cmds().has("nosuch", None));
    assert!(!cmds().has("get", Some("x")));
    assert!(!cmds().has("config", Some("")));
    assert!(!cmds().has("get", Some("get")));
}

#[test]
fn categories_and_subcommands() {
    let u = user(&["+@all", "-@dangerous", "allkeys"]);
    assert_eq!(check(&u, &["get", "k"]), Ok(()));
    assert_eq!(check(&u, &["keys", "*"]), Err(Denied::Command));
    assert_eq!(check(&u, &["flushall"]), Err(Denied::Command));
    let u = user(&["-@all", "+config|get"]);
    assert_eq!(check(&u, &["config", "get", "x"]), Ok(()));
    assert_eq!(
        check(&u, &["config", "set", "x", "y"]),
        Err(Denied::Command)
    );
    let u = user(&["+@read", "allkeys"]);
    assert_eq!(check(&u, &["get", "k"]), Ok(()));
    assert_eq!(check(&u, &["set", "k", "v"]), Err(Denied::Command));
    let u = user(&["+@string", "-set", "allkeys"]);
    assert_eq!(check(&u, &["append", "k", "v"]), Ok(()));
    assert_eq!(check(&u, &["set", "k", "v"]), Err(Denied::Command));
}

#[test]
fn read_and_write_key_patterns() {
    let u = user(&["+@all", "%R~r:*", "%W~w:*"]);
    assert_eq!(check(&u, &["get", "r:1"]), Ok(()));
    assert_eq!(check(&u, &["set", "r:1", "v"]), Err(Denied::Key(1)));
    assert_eq!(check(&u, &["set", "w:1", "v"]), Ok(()));
    assert_eq!(check(&u, &["get", "w:1"]), Err(Denied::Key(1)));
    assert_eq!(u.root.keys_text(), "%R~r:* %W~w:*");
}

#[test]
fn selectors_widen_what_a_user_may_do() {
    let u = user(&["+get", "~a:*", "(+set ~b:*)"]);
    assert_eq!(check(&u, &["get", "a:1"]), Ok(()));
    assert_eq!(check(&u, &["set", "b:1", "v"]), Ok(()));
    assert_eq!(check(&u, &["set", "a:1", "v"]), Err(Denied::Command));
    assert_eq!(check(&u, &["get", "b:1"]), Err(Denied::Key(1)));
    assert!(
        u.describe().ends_with("(~b:* resetchannels -@all +set)"),
        "{}",
        u.describe()
    );
}

#[test]
fn rule_errors_use_redis_texts() {
    let mut u = User::new(b"u");
    assert_eq!(u.apply(b"+nosuchcommand", cmds()), Err(RuleError::Unknown));
    assert_eq!(u.apply(b"+@nosuchcat", cmds()), Err(RuleError::Unknown));
    assert_eq!(u.apply(b"bogus", cmds()), Err(RuleError::Syntax));
    assert_eq!(
        u.apply(b"<notthere", cmds()),
        Err(RuleError::NoSuchPassword)
    );
    assert_eq!(u.apply(b"#abc", cmds()), Err(RuleError::BadHash));
    u.apply(b"allkeys", cmds()).expect("allkeys");
    assert_eq!(u.apply(b"~x", cmds()), Err(RuleError::AfterAllKeys));
    u.apply(b"allchannels", cmds()).expect("allchannels");
    assert_eq!(u.apply(b"&x", cmds()), Err(RuleError::AfterAllChannels));
    assert!(split_rules([&b"(~x"[..], b"+get"]).is_err());
}

#[test]
fn passwords_by_hash_and_removal() {
    let mut u = user(&["on", ">one", ">two"]);
    assert!(u.password_ok(b"one") && u.password_ok(b"two"));
    u.apply(b"<one", cmds()).expect("remove");
    assert!(!u.password_ok(b"one"));
    let h = hex(&hash_password(b"three"));
    u.apply(format!("#{h}").as_bytes(), cmds()).expect("hash");
    assert!(u.password_ok(b"three"));
    u.apply(b"off", cmds()).expect("off");
    assert!(
        !u.password_ok(b"three"),
        "a disabled user never authenticates"
    );
}

#[test]
fn channels() {
    let u = user(&["+@all", "allkeys", "&news.*"]);
    assert!(u.root.allows_channel(b"news.x", false));
    assert!(!u.root.allows_channel(b"other", false));
    // A pattern subscription needs the pattern itself granted.
    assert!(u.root.allows_channel(b"news.*", true));
    assert!(!u.root.allows_channel(b"news.x*", true));
    assert_eq!(channel_args("publish"), Some((1, false, false)));
    assert_eq!(channel_args("psubscribe"), Some((1, true, true)));
    assert_eq!(channel_args("get"), None);
    assert_eq!(u.root.channels_text(), "&news.*");
}

#[test]
fn aclfile_round_trip() {
    let u = user(&["on", ">pw", "~app:*", "&ch", "+get", "(+set ~b:*)"]);
    let text = format!("# users\n{}\n\n{}\n", User::default_user().describe(), {
        let mut d = u.describe();
        d = d.replacen("user u", "user alice", 1);
        d
    });
    let users = parse_aclfile(&text, cmds()).expect("parse");
    assert_eq!(users.len(), 2);
    assert_eq!(
        users[1].describe(),
        u.describe().replacen("user u", "user alice", 1)
    );
    assert!(users[1].password_ok(b"pw"));
    assert!(parse_aclfile("user a on\nuser a off\n", cmds()).is_err());
    assert!(parse_aclfile("nope\n", cmds())
        .unwrap_err()
        .contains("line 1"));
}

#[test]
fn registry_changes_are_all_or_nothing() {
    let acl = Acl::default();
    let g = acl.generation();
    let err = acl
        .set_user(
            b"x",
            &[b"on".to_vec(), b"+nosuch".to_vec()],
            Some("a"),
            cmds(),
        )
        .expect_err("bad rule");
    assert_eq!(err.0, b"+nosuch");
    assert!(acl.get(b"x").is_none());
    acl.set_user(b"x", &[b"on".to_vec()], Some("a"), cmds())
        .expect("ok");
    assert!(acl.generation() > g);
    assert_eq!(acl.delete(&[b"default", b"x", b"y"], Some("a")), 1);
    acl.set_requirepass(Some(b"s"), Some("a"));
    let d = acl.get(b"default").expect("default");
    assert!(d.password_ok(b"s") && !d.password_ok(b"t"));
}

fn rules(r: &[&str]) -> Vec<Vec<u8>> {
    split_rules(r.iter().map(|r| r.as_bytes())).expect("split")
}

/// Each node learns the other's state, as an exchange does.
fn exchange(a: &Acl, b: &Acl) {
    b.apply_state(&a.state(), cmds());
    a.apply_state(&b.state(), cmds());
}

fn lines(a: &Acl) -> Vec<String> {
    a.all().iter().map(|u| u.describe()).collect()
}

#[test]
fn rules_travel_exactly() {
    let u = user(&[
        "on",
        ">pw",
        "~app:*",
        "%R~ro:*",
        "~with space",
        "&chan:*",
        "+@read",
        "-keys",
        "+config|get",
        "(~x:* +set)",
        "(%W~w:* +@write)",
    ]);
    let payload = encode_rules(&u.rules());
    let back = user_from_rules(b"u", &payload, cmds()).expect("decodes");
    assert_eq!(back.describe(), u.describe());
    assert!(back.password_ok(b"pw"));
    assert_eq!(
        decode_rules(b"3:abc2:de").expect("two"),
        vec![b"abc".to_vec(), b"de".to_vec()]
    );
    for bad in [
        &b"4:abc"[..],
        b"x:abc",
        b"abc",
        b"-1:a",
        b"99999999999999999999999:a",
    ] {
        assert!(
            decode_rules(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn nodes_converge_on_the_newest_user() {
    let (a, b) = (Acl::default(), Acl::default());
    a.set_user(
        b"app",
        &rules(&["on", ">pw", "~app:*", "+get"]),
        Some("a"),
        cmds(),
    )
    .expect("a");
    exchange(&a, &b);
    assert!(b.get(b"app").expect("learned").password_ok(b"pw"));
    assert_eq!(lines(&a), lines(&b));
    assert_eq!(
        crate::sync::digest(&a.state()),
        crate::sync::digest(&b.state())
    );
    // A change on b is newer than a's version: both keep it.
    b.set_user(b"app", &rules(&["+set"]), Some("b"), cmds())
        .expect("b");
    let g = a.generation();
    exchange(&a, &b);
    assert!(a.generation() > g, "connections of app see the change");
    assert_eq!(lines(&a), lines(&b));
    assert!(lines(&a)[0].contains("+set"));
    // A delete wins over the older user, and a stale state does not bring it back.
    let stale = b.state();
    a.delete(&[b"app"], Some("a"));
    exchange(&a, &b);
    assert!(b.get(b"app").is_none());
    assert!(!a.apply_state(&stale, cmds()));
    assert!(a.get(b"app").is_none());
    // Concurrent changes of one user: the same winner on both sides (counter, then node).
    a.set_user(b"c", &rules(&["on", "+get"]), Some("a"), cmds())
        .expect("a");
    b.set_user(b"c", &rules(&["on", "+set"]), Some("b"), cmds())
        .expect("b");
    exchange(&a, &b);
    assert_eq!(lines(&a), lines(&b));
    // requirepass changes travel as the default user; the default user is never deleted.
    a.set_requirepass(Some(b"secret"), Some("a"));
    exchange(&a, &b);
    assert!(b.get(b"default").expect("default").password_ok(b"secret"));
    let tomb = crate::sync::Entry {
        name: b"default".to_vec(),
        version: Version {
            counter: u64::MAX,
            origin: "z".into(),
        },
        payload: None,
    };
    assert!(!b.apply_state(&[tomb], cmds()));
    assert!(b.get(b"default").is_some());
}

#[test]
fn configuration_at_start_yields_to_any_change() {
    // Both start from their own configuration (version 0): each keeps its own default
    // user, and a user only one has reaches the other.
    let (a, b) = (Acl::default(), Acl::default());
    a.set_requirepass(Some(b"x"), None);
    a.replace_all(vec![user(&["on", ">pw", "+get"])], None);
    exchange(&a, &b);
    assert!(b.get(b"u").is_some());
    assert!(b.get(b"default").expect("default").password_ok(b""));
    assert!(a.get(b"default").expect("default").password_ok(b"x"));
    // A change anywhere supersedes them.
    b.set_requirepass(Some(b"y"), Some("b"));
    exchange(&a, &b);
    assert!(a.get(b"default").expect("default").password_ok(b"y"));
    // ACL LOAD (replace_all) deletes everywhere what the file does not have.
    a.replace_all(vec![], Some("a"));
    exchange(&a, &b);
    assert!(b.get(b"u").is_none());
    assert_eq!(lines(&a), lines(&b));
    // A peer's user whose rules do not apply here is skipped.
    let bad = crate::sync::Entry {
        name: b"bad".to_vec(),
        version: Version {
            counter: 99,
            origin: "z".into(),
        },
        payload: Some(encode_rules(&["+nosuchcommand".to_string()])),
    };
    assert!(!a.apply_state(&[bad], cmds()));
    assert!(a.get(b"bad").is_none());
}
