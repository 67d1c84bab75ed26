//! ACL: users and their permissions, with Redis 7's subcommands and replies. The users and
//! their rules live in [`crate::acl`], which knows the command table only as the plain data
//! this module gives it (`commands`); this file parses arguments, checks requests against
//! a user with what the table says of them (`check`) and shapes replies. `category`: each
//! command's categories, and that plain table.

use super::flags::*;
use super::server::container;
use super::*;
use crate::acl::{split_rules, Denied, GetUserValue, User, CATEGORIES};
use crate::sync::Set;

mod category;

pub(crate) use category::{categories, commands};

const S: &str = "server";

pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    subcommands: SUBCOMMANDS,
    ..spec(
        "acl",
        -2,
        0,
        NO_KEYS,
        S,
        "6.0.0",
        "A container for Access List Control commands.",
        "",
        container,
    )
}];

static SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "setuser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Creates and modifies an ACL user and its rules.",
        "username [rule [rule ...]]",
        setuser,
    ),
    spec(
        "getuser",
        3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Lists the ACL rules of a user.",
        "username",
        getuser,
    ),
    spec(
        "deluser",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Deletes ACL users, and terminates their connections.",
        "username [username ...]",
        deluser,
    ),
    spec(
        "list",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Dumps the effective rules in ACL file format.",
        "",
        list,
    ),
    spec(
        "users",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Lists all ACL users.",
        "",
        users,
    ),
    spec(
        "whoami",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Returns the authenticated username of the current connection.",
        "",
        whoami,
    ),
    spec(
        "cat",
        -2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Lists the ACL categories, or the commands inside a category.",
        "[category]",
        cat,
    ),
    spec(
        "genpass",
        -2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Generates a pseudorandom, secure password that can be used to identify ACL users.",
        "[bits]",
        genpass,
    ),
    spec(
        "log",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Lists recent security events generated due to ACL rules.",
        "[count | RESET]",
        log,
    ),
    spec(
        "dryrun",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "7.0.0",
        "Simulates the execution of a command by a user, without executing the command.",
        "username command [arg [arg ...]]",
        dryrun,
    ),
    spec(
        "save",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Saves the effective ACL rules in the configured ACL file.",
        "",
        save,
    ),
    spec(
        "load",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Reloads the rules from the configured ACL file.",
        "",
        load,
    ),
    spec(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        S,
        "6.0.0",
        "Returns helpful text about the different subcommands.",
        "",
        help,
    ),
];

const ERR_NO_ACLFILE: Frame = Frame::err(
    "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.",
);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn setuser(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let name = req.arg(2);
    if name.iter().any(|&c| c == b' ' || c == 0) {
        return Err(Frame::err(
            "ERR Usernames can't contain spaces or null characters",
        ));
    }
    let syntax = |rule: &[u8], why: crate::acl::RuleError| {
        Frame::error(format!(
            "ERR Error in ACL SETUSER modifier '{}': {why}",
            text(&rule[..rule.len().min(128)])
        ))
    };
    let rules = split_rules(req.iter().skip(3)).map_err(|e| syntax(req.arg(req.len() - 1), e))?;
    ctx.node
        .acl
        .set_user(name, &rules, Some(&ctx.node.node_id), commands())
        .map_err(|(rule, e)| syntax(&rule, e))?;
    super::sync::after_change(ctx, Set::Users, Frame::ok())
}

fn getuser(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let Some(u) = ctx.node.acl.get(req.arg(2)) else {
        return Ok(Frame::Null);
    };
    let strings = |v: Vec<String>| Frame::Array(v.into_iter().map(Frame::bulk).collect());
    let fields = u
        .getuser()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                GetUserValue::Text(t) => Frame::bulk(t),
                GetUserValue::List(l) => strings(l),
                GetUserValue::Selectors(sels) => Frame::Array(
                    sels.into_iter()
                        .map(|s| {
                            Frame::Map(
                                s.into_iter()
                                    .map(|(k, v)| (Frame::bulk_static(k), Frame::bulk(v)))
                                    .collect(),
                            )
                        })
                        .collect(),
                ),
            };
            (Frame::bulk_static(k), v)
        })
        .collect();
    Ok(Frame::Map(fields))
}

fn deluser(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let names: Vec<&[u8]> = req.iter().skip(2).collect();
    if names.contains(&&b"default"[..]) {
        return Err(Frame::err("ERR The 'default' user cannot be removed"));
    }
    let n = ctx.node.acl.delete(&names, Some(&ctx.node.node_id));
    if n == 0 {
        return Ok(Frame::Integer(0));
    }
    super::sync::after_change(ctx, Set::Users, Frame::Integer(n as i64))
}

fn list(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Array(
        ctx.node
            .acl
            .all()
            .iter()
            .map(|u| Frame::bulk(u.describe()))
            .collect(),
    ))
}

fn users(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Array(
        ctx.node.acl.names().into_iter().map(Frame::bulk).collect(),
    ))
}

fn whoami(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Bulk(ctx.session.user.clone()))
}

fn cat(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    match req.len() {
        2 => Ok(Frame::Array(
            CATEGORIES.iter().map(|c| Frame::bulk_static(c)).collect(),
        )),
        3 => {
            let want = String::from_utf8_lossy(req.arg(2)).to_ascii_lowercase();
            let Some(i) = CATEGORIES.iter().position(|c| *c == want) else {
                return Err(Frame::error(format!(
                    "ERR Unknown category '{}'",
                    text(&req.arg(2)[..req.arg(2).len().min(128)])
                )));
            };
            let mut names = Vec::new();
            for top in table() {
                if categories(top, None) & (1 << i) != 0 {
                    names.push(Frame::bulk_static(top.name));
                }
                for sub in top.subcommands.iter().filter(|s| super::docs::listed(s)) {
                    if categories(sub, Some(top)) & (1 << i) != 0 {
                        names.push(Frame::bulk(format!("{}|{}", top.name, sub.name)));
                    }
                }
            }
            Ok(Frame::Array(names))
        }
        _ => Err(ERR_SYNTAX),
    }
}

fn genpass(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let bits = match req.len() {
        2 => 256,
        3 => match parse_i64(req.arg(2)) {
            Some(n @ 1..=4096) => n as usize,
            _ => return Err(Frame::err(
                "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
            )),
        },
        _ => return Err(ERR_SYNTAX),
    };
    let chars = bits.div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::Rng::fill(&mut rand::rng(), &mut bytes[..]);
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    Ok(Frame::bulk(hex))
}

fn log(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let count = match req.len() {
        2 => 10,
        3 if is(req.arg(2), "reset") => {
            ctx.node.acl.log_reset();
            return Ok(Frame::ok());
        }
        3 => match parse_i64(req.arg(2)) {
            Some(n) if n >= 0 => n as usize,
            _ => return Err(ERR_NOT_INT),
        },
        _ => return Err(ERR_SYNTAX),
    };
    let entries = ctx.node.acl.log_entries(count);
    Ok(Frame::Array(
        entries
            .into_iter()
            .map(|e| {
                let kv = |k: &'static str, v: Frame| (Frame::bulk_static(k), v);
                Frame::Map(vec![
                    kv("count", Frame::Integer(e.count as i64)),
                    kv("reason", Frame::bulk_static(e.reason)),
                    kv("context", Frame::bulk_static(e.context)),
                    kv("object", Frame::bulk(e.object)),
                    kv("username", Frame::bulk(e.username)),
                    kv(
                        "age-seconds",
                        Frame::Double(ctx.now.saturating_sub(e.created) as f64 / 1000.0),
                    ),
                    kv("client-info", Frame::bulk(e.client_info)),
                ])
            })
            .collect(),
    ))
}

fn dryrun(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let Some(user) = ctx.node.acl.get(req.arg(2)) else {
        return Err(Frame::error(format!(
            "ERR User '{}' not found",
            text(&req.arg(2)[..req.arg(2).len().min(128)])
        )));
    };
    let sub = Request::from_args(req.iter().skip(3));
    let Some((id, spec)) = resolve(&sub) else {
        return Err(Frame::error(format!(
            "ERR Command '{}' not found",
            text(&sub.arg(0)[..sub.arg(0).len().min(128)])
        )));
    };
    if !spec.arity_ok(sub.len()) {
        return Err(wrong_arity(spec.name));
    }
    let top = table()[(id & 0xffff) as usize];
    let args: Vec<&[u8]> = sub.iter().collect();
    let name = match id >> 16 {
        0 => top.name.to_string(),
        _ => format!("{}|{}", top.name, spec.name),
    };
    Ok(match check(&user, id, spec, top, &args) {
        Ok(()) => Frame::ok(),
        Err(crate::acl::Denied::Command) => Frame::bulk(format!(
            "This user has no permissions to run the '{name}' command"
        )),
        Err(crate::acl::Denied::Key(i)) => Frame::bulk(format!(
            "This user has no permissions to access the '{}' key",
            text(args[i])
        )),
        Err(crate::acl::Denied::Channel(i)) => Frame::bulk(format!(
            "This user has no permissions to access the '{}' channel",
            text(args[i])
        )),
    })
}

fn save(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let Some(path) = ctx.node.config().aclfile.clone() else {
        return Err(ERR_NO_ACLFILE);
    };
    let mut out = String::new();
    for u in ctx.node.acl.all() {
        out.push_str(&u.describe());
        out.push('\n');
    }
    // Write a sibling and rename it over the file, so a crash never leaves half a file.
    let tmp = path.with_extension("tmp-chkv");
    std::fs::write(&tmp, out)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            Frame::error(format!(
                "ERR There was an error trying to save the ACLs. Please check the server logs for more information ({e})"
            ))
        })?;
    Ok(Frame::ok())
}

fn load(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let Some(path) = ctx.node.config().aclfile.clone() else {
        return Err(ERR_NO_ACLFILE);
    };
    let users = load_aclfile(&path).map_err(|e| Frame::error(format!("ERR {e}")))?;
    ctx.node.acl.replace_all(users, Some(&ctx.node.node_id));
    super::sync::after_change(ctx, Set::Users, Frame::ok())
}

/// Reads and parses an aclfile; errors name the file and line.
pub fn load_aclfile(path: &std::path::Path) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::acl::parse_aclfile(&text, commands()).map_err(|e| format!("{}:{e}", path.display()))
}

/// Checks a request of `spec` (a subcommand of `top`, or `top` itself; `id` the command's)
/// against `user`, with the keys and the read or write access the table gives it.
pub(crate) fn check(
    user: &User,
    id: u32,
    spec: &CommandSpec,
    top: &CommandSpec,
    args: &[&[u8]],
) -> Result<(), Denied> {
    user.check(
        id,
        top.name,
        spec.key_positions(args.len()),
        spec.has(READONLY),
        spec.has(WRITE),
        args,
    )
}

fn help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let lines = [
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users.",
        "DRYRUN <username> <command> [<arg> ...]",
        "    Returns whether the user can execute the given command without executing the command.",
        "GETUSER <username>",
        "    Get the user's details.",
        "GENPASS [<bits>]",
        "    Generate a secure 256-bit user password. The optional `bits` argument can",
        "    be used to specify a different size.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file.",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries.",
        "SAVE",
        "    Save the current config to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Print this help.",
    ];
    Ok(Frame::Array(
        lines.iter().map(|l| Frame::simple(l)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn setuser_auth_and_permissions() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get", "+set"]),
            Frame::ok()
        );
        assert_eq!(
            h.run(&["AUTH", "app", "bad"]),
            err("WRONGPASS invalid username-password pair or user is disabled.")
        );
        assert_eq!(h.run(&["AUTH", "app", "pw"]), Frame::ok());
        assert_eq!(
            h.run(&["ACL", "WHOAMI"]),
            err("NOPERM this user has no permissions to run the 'acl|whoami' command")
        );
        assert_eq!(h.run(&["SET", "app:1", "v"]), Frame::ok());
        assert_eq!(h.run(&["GET", "app:1"]), bulk("v"));
        assert_eq!(
            h.run(&["GET", "other"]),
            err("NOPERM this user has no permissions to access one of the keys used as arguments")
        );
        assert_eq!(
            h.run(&["DEL", "app:1"]),
            err("NOPERM this user has no permissions to run the 'del' command")
        );
        // Changing the user applies to the connection at once.
        h.node
            .acl
            .set_user(b"app", &[b"+del".to_vec()], Some("n"), commands())
            .expect("setuser");
        assert_eq!(h.run(&["DEL", "app:1"]), int(1));
        // The log has the denials and the failed AUTHs, newest first; a repeat within 60 s
        // is counted on its entry.
        assert!(matches!(h.run(&["AUTH", "app", "again"]), Frame::Error(_)));
        let log = h.node.acl.log_entries(10);
        let reasons: Vec<&str> = log.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, vec!["command", "key", "command", "auth"]);
        assert_eq!(log[3].count, 2);
        assert_eq!(log[3].username, "app");
        assert_eq!(log[0].object, "del");
        assert_eq!(log[2].object, "acl|whoami");
        assert_eq!(log[1].object, "other");
    }

    #[test]
    fn setuser_errors() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["ACL", "SETUSER", "x", "+nosuch"]),
            err("ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL")
        );
        assert_eq!(
            h.run(&["ACL", "GETUSER", "x"]),
            Frame::Null,
            "nothing created on error"
        );
        assert_eq!(
            h.run(&["ACL", "SETUSER", "a b"]),
            err("ERR Usernames can't contain spaces or null characters")
        );
        assert_eq!(
            h.run(&["ACL", "DELUSER", "default"]),
            err("ERR The 'default' user cannot be removed")
        );
    }

    #[test]
    fn list_users_cat_genpass_dryrun() {
        let mut h = Harness::new();
        h.run(&[
            "ACL",
            "SETUSER",
            "bob",
            "on",
            "nopass",
            "%R~r:*",
            "+@read",
            "(+set ~w:*)",
        ]);
        assert_eq!(
            h.run(&["ACL", "LIST"]),
            Frame::Array(vec![
                bulk("user bob on nopass %R~r:* resetchannels -@all +@read (~w:* resetchannels -@all +set)"),
                bulk("user default on nopass ~* &* +@all"),
            ])
        );
        assert_eq!(
            h.run(&["ACL", "USERS"]),
            Frame::Array(vec![bulk("bob"), bulk("default")])
        );
        assert_eq!(h.run(&["ACL", "DRYRUN", "bob", "get", "r:1"]), Frame::ok());
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "bob", "set", "w:1", "v"]),
            Frame::ok()
        );
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "bob", "set", "r:1", "v"]),
            bulk("This user has no permissions to run the 'set' command")
        );
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "bob", "get", "w:1"]),
            bulk("This user has no permissions to access the 'w:1' key")
        );
        assert_eq!(
            h.run(&["ACL", "DRYRUN", "nobody", "get", "k"]),
            err("ERR User 'nobody' not found")
        );
        let Frame::Array(cats) = h.run(&["ACL", "CAT"]) else {
            panic!("array")
        };
        assert_eq!(cats.len(), CATEGORIES.len());
        let Frame::Array(read) = h.run(&["ACL", "CAT", "read"]) else {
            panic!("array")
        };
        assert!(read.contains(&bulk("get")) && !read.contains(&bulk("set")));
        let Frame::Bulk(p) = h.run(&["ACL", "GENPASS"]) else {
            panic!("bulk")
        };
        assert_eq!(p.len(), 64);
        let Frame::Bulk(p) = h.run(&["ACL", "GENPASS", "5"]) else {
            panic!("bulk")
        };
        assert_eq!(p.len(), 2);
        assert_eq!(h.run(&["ACL", "DELUSER", "bob", "nobody"]), int(1));
    }

    #[test]
    fn requirepass_is_the_default_users_password() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["CONFIG", "SET", "requirepass", "s3"]), Frame::ok());
        assert_eq!(h.run(&["AUTH", "s3"]), Frame::ok());
        assert_eq!(h.run(&["AUTH", "default", "s3"]), Frame::ok());
        assert!(matches!(h.run(&["AUTH", "nope"]), Frame::Error(_)));
    }

    #[test]
    fn save_and_load_need_an_aclfile() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["ACL", "SAVE"]), ERR_NO_ACLFILE);
        let dir = std::env::temp_dir().join(format!("chkv-aclfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("users.acl");
        h.node.update_config(|c| c.aclfile = Some(path.clone()));
        h.run(&["ACL", "SETUSER", "carol", "on", ">pw", "~c:*", "+get"]);
        assert_eq!(h.run(&["ACL", "SAVE"]), Frame::ok());
        h.run(&["ACL", "DELUSER", "carol"]);
        assert_eq!(h.run(&["ACL", "LOAD"]), Frame::ok());
        std::fs::write(&path, "user carol on\nbogus line\n").expect("write");
        let Frame::Error(e) = h.run(&["ACL", "LOAD"]) else {
            panic!("error")
        };
        assert!(e.contains("line 2"), "{e}");
        // The failed LOAD changed nothing: carol is as saved.
        assert_eq!(h.run(&["AUTH", "carol", "pw"]), Frame::ok());
        assert_eq!(h.run(&["GET", "c:1"]), Frame::Null);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
