//! COMMAND: the command table as Redis reports it.
//!
//! `COMMAND DOCS` argument trees are derived from each command's syntax line (the
//! `# Format` of the Redis docs), so the table holds one source of truth and redis-cli's
//! hints come out of it.

use super::flags::*;
use super::*;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec {
    subcommands: COMMAND_SUBCOMMANDS,
    ..spec(
        "command",
        -1,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
        "",
        command_all,
    )
}];

static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    spec(
        "count",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        "Returns a count of commands.",
        "",
        command_count,
    ),
    spec(
        "list",
        -2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "7.0.0",
        "Returns a list of command names.",
        "[FILTERBY MODULE module-name | ACLCAT category | PATTERN pattern]",
        command_list,
    ),
    spec(
        "info",
        -2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        "Returns information about one, multiple or all commands.",
        "[command-name [command-name ...]]",
        command_info,
    ),
    spec(
        "docs",
        -2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "7.0.0",
        "Returns documentary information about one, multiple or all commands.",
        "[command-name [command-name ...]]",
        command_docs,
    ),
    spec(
        "getkeys",
        -3,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "2.8.13",
        "Extracts the key names from an arbitrary command.",
        "command [arg [arg ...]]",
        command_getkeys,
    ),
    spec(
        "help",
        2,
        LOADING | STALE,
        NO_KEYS,
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "",
        command_help,
    ),
];

fn full_name(parent: Option<&CommandSpec>, c: &CommandSpec) -> String {
    match parent {
        Some(p) => format!("{}|{}", p.name, c.name),
        None => c.name.to_string(),
    }
}

/// COMMAND INFO's ACL categories of `c` (a subcommand of `parent`): the ones ACL rules use.
fn acl_categories(parent: Option<&CommandSpec>, c: &CommandSpec) -> Vec<Frame> {
    let bits = super::acl::categories(c, parent);
    crate::acl::CATEGORIES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, name)| Frame::simple_owned(&format!("@{name}")))
        .collect()
}

/// One COMMAND INFO entry, in Redis 7's ten-field shape.
fn info_entry(parent: Option<&CommandSpec>, c: &CommandSpec) -> Frame {
    let flags = NAMES
        .iter()
        .filter(|(f, _)| c.has(*f))
        .map(|(_, n)| Frame::simple(n))
        .collect();
    let key_specs = if c.first_key > 0 {
        let rw = if c.has(WRITE) { "RW" } else { "RO" };
        let limit = if c.last_key < 0 {
            (-c.last_key - 1) as i64
        } else {
            0
        };
        let last = if c.last_key < 0 {
            -1
        } else {
            (c.last_key - c.first_key) as i64
        };
        vec![Frame::Map(vec![
            (
                Frame::bulk_static("flags"),
                Frame::Set(vec![Frame::simple(rw)]),
            ),
            (
                Frame::bulk_static("begin_search"),
                Frame::Map(vec![
                    (Frame::bulk_static("type"), Frame::bulk_static("index")),
                    (
                        Frame::bulk_static("spec"),
                        Frame::Map(vec![(
                            Frame::bulk_static("index"),
                            Frame::Integer(c.first_key as i64),
                        )]),
                    ),
                ]),
            ),
            (
                Frame::bulk_static("find_keys"),
                Frame::Map(vec![
                    (Frame::bulk_static("type"), Frame::bulk_static("range")),
                    (
                        Frame::bulk_static("spec"),
                        Frame::Map(vec![
                            (Frame::bulk_static("lastkey"), Frame::Integer(last)),
                            (Frame::bulk_static("keystep"), Frame::Integer(c.step as i64)),
                            (Frame::bulk_static("limit"), Frame::Integer(limit)),
                        ]),
                    ),
                ]),
            ),
        ])]
    } else {
        vec![]
    };
    Frame::Array(vec![
        Frame::bulk(full_name(parent, c)),
        Frame::Integer(c.arity as i64),
        Frame::Set(flags),
        Frame::Integer(c.first_key as i64),
        Frame::Integer(c.last_key as i64),
        Frame::Integer(c.step as i64),
        Frame::Set(acl_categories(parent, c)),
        Frame::Array(vec![]),
        Frame::Array(key_specs),
        Frame::Array(
            c.subcommands
                .iter()
                .filter(|s| listed(s))
                .map(|s| info_entry(Some(c), s))
                .collect(),
        ),
    ])
}

/// Whether COMMAND and ACL CAT show `c` to clients: internal subcommands (CLUSTER IMPORT,
/// HANDOFF) do not exist for them (see `resolve_for`), so introspection does not list them
/// either.
pub(super) fn listed(c: &CommandSpec) -> bool {
    !c.has(super::flags::INTERNAL)
}

fn command_all(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Array(
        table().iter().map(|c| info_entry(None, c)).collect(),
    ))
}

fn command_count(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Integer(table().len() as i64))
}

/// Which commands COMMAND LIST names.
enum ListFilter<'a> {
    All,
    /// Those whose name matches the pattern.
    Pattern(&'a [u8]),
    /// Those of an ACL category (a category that does not exist, 0, names none, as in Redis).
    Category(u32),
}

impl ListFilter<'_> {
    fn keeps(&self, parent: Option<&CommandSpec>, c: &CommandSpec, name: &str) -> bool {
        match self {
            ListFilter::All => true,
            ListFilter::Pattern(p) => crate::store::glob::glob_match_nocase(p, name.as_bytes()),
            ListFilter::Category(bit) => *bit != 0 && super::acl::categories(c, parent) & bit != 0,
        }
    }
}

fn command_list(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let filter = match req.len() {
        2 => ListFilter::All,
        5 if is(req.arg(2), "FILTERBY") && is(req.arg(3), "PATTERN") => {
            ListFilter::Pattern(req.arg(4))
        }
        5 if is(req.arg(2), "FILTERBY") && is(req.arg(3), "ACLCAT") => {
            let name = String::from_utf8_lossy(req.arg(4)).to_ascii_lowercase();
            ListFilter::Category(crate::acl::bit(&name))
        }
        5 if is(req.arg(2), "FILTERBY") && is(req.arg(3), "MODULE") => {
            return Ok(Frame::Array(vec![]))
        }
        _ => return Err(ERR_SYNTAX),
    };
    let mut names = Vec::new();
    for c in table() {
        if filter.keeps(None, c, c.name) {
            names.push(Frame::bulk(c.name));
        }
        for s in c.subcommands.iter().filter(|s| listed(s)) {
            let name = full_name(Some(c), s);
            if filter.keeps(Some(c), s, &name) {
                names.push(Frame::bulk(name));
            }
        }
    }
    Ok(Frame::Array(names))
}

/// Finds `name` or `parent|sub`.
fn find(name: &[u8]) -> Option<(Option<&'static CommandSpec>, &'static CommandSpec)> {
    let s = std::str::from_utf8(name).ok()?;
    match s.split_once('|') {
        Some((p, sub)) => {
            let (_, parent) = lookup(p.as_bytes())?;
            let sub = lookup_sub(parent, sub.as_bytes()).filter(|s| listed(s))?;
            Some((Some(parent), sub))
        }
        None => Some((None, lookup(name)?.1)),
    }
}

fn command_info(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    if req.len() == 2 {
        return command_all(_ctx, req);
    }
    Ok(Frame::Array(
        req.iter()
            .skip(2)
            .map(|n| find(n).map_or(Frame::Null, |(p, c)| info_entry(p, c)))
            .collect(),
    ))
}

fn doc_entry(c: &CommandSpec) -> Frame {
    let mut m = vec![
        (Frame::bulk_static("summary"), Frame::bulk_static(c.summary)),
        (Frame::bulk_static("since"), Frame::bulk_static(c.since)),
        (Frame::bulk_static("group"), Frame::bulk_static(c.group)),
    ];
    let args = parse_syntax(c.syntax);
    if !args.is_empty() {
        m.push((
            Frame::bulk_static("arguments"),
            Frame::Array(args.iter().map(DocArg::frame).collect()),
        ));
    }
    if !c.subcommands.is_empty() {
        m.push((
            Frame::bulk_static("subcommands"),
            Frame::Map(
                c.subcommands
                    .iter()
                    .filter(|s| listed(s))
                    .map(|s| (Frame::bulk(full_name(Some(c), s)), doc_entry(s)))
                    .collect(),
            ),
        ));
    }
    Frame::Map(m)
}

fn command_docs(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut out = Vec::new();
    if req.len() == 2 {
        for c in table() {
            out.push((Frame::bulk(c.name), doc_entry(c)));
        }
    } else {
        for n in req.iter().skip(2) {
            if let Some((p, c)) = find(n) {
                out.push((Frame::bulk(full_name(p, c)), doc_entry(c)));
            }
        }
    }
    Ok(Frame::Map(out))
}

fn command_getkeys(_ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let Some((_, c)) = lookup(req.arg(2)) else {
        return Err(Frame::err("ERR Invalid command specified"));
    };
    let argc = req.len() - 2;
    if !c.arity_ok(argc) {
        return Err(Frame::err(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    let inner = Request::from_args(req.iter().skip(2));
    let positions: Vec<usize> = if crate::lua::is_script_command(c.name) {
        crate::lua::script_keys(&inner, crate::cmd::ERR_NOT_INT)?.collect()
    } else {
        c.keys_in(&inner).collect()
    };
    let keys: Vec<Frame> = positions
        .into_iter()
        .map(|i| Frame::Bulk(req.arg_bytes(i + 2)))
        .collect();
    if keys.is_empty() {
        return Err(Frame::err("ERR The command has no key arguments"));
    }
    Ok(Frame::Array(keys))
}

fn command_help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::Array(
        [
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
            "HELP",
            "    Print this help.",
        ]
        .iter()
        .map(|l| Frame::simple(l))
        .collect(),
    ))
}

// ---- syntax lines -> COMMAND DOCS arguments ----

/// One documented argument.
#[derive(Debug, Clone, PartialEq)]
pub struct DocArg {
    pub name: String,
    /// key, string, integer, double, pattern, unix-time, pure-token, oneof or block.
    pub kind: &'static str,
    pub token: Option<String>,
    pub optional: bool,
    pub multiple: bool,
    pub children: Vec<DocArg>,
}

impl DocArg {
    fn frame(&self) -> Frame {
        let mut m = vec![
            (Frame::bulk_static("name"), Frame::bulk(&self.name)),
            (Frame::bulk_static("type"), Frame::bulk_static(self.kind)),
        ];
        if let Some(t) = &self.token {
            m.push((Frame::bulk_static("token"), Frame::bulk(t)));
        }
        let mut flags = vec![];
        if self.optional {
            flags.push(Frame::simple("optional"));
        }
        if self.multiple {
            flags.push(Frame::simple("multiple"));
        }
        if !flags.is_empty() {
            m.push((Frame::bulk_static("flags"), Frame::Array(flags)));
        }
        if !self.children.is_empty() {
            m.push((
                Frame::bulk_static("arguments"),
                Frame::Array(self.children.iter().map(DocArg::frame).collect()),
            ));
        }
        Frame::Map(m)
    }

    fn leaf(name: &str) -> DocArg {
        let kind = match name {
            "key" | "newkey" | "source" | "destination" => "key",
            "pattern" => "pattern",
            n if n.starts_with("unix-time") => "unix-time",
            "seconds" | "milliseconds" | "count" | "offset" | "start" | "end" | "decrement"
            | "index" | "cursor" | "client-id" | "destination-db" | "protover" => "integer",
            "increment" => "integer",
            _ => "string",
        };
        DocArg {
            name: name.to_string(),
            kind,
            token: None,
            optional: false,
            multiple: false,
            children: vec![],
        }
    }

    fn group(kind: &'static str, children: Vec<DocArg>) -> DocArg {
        let name = children
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join("-");
        DocArg {
            name,
            kind,
            token: None,
            optional: false,
            multiple: false,
            children,
        }
    }
}

/// Parses a syntax line such as `key [NX | XX] [EX seconds]` into argument docs.
pub fn parse_syntax(s: &str) -> Vec<DocArg> {
    let spaced = s
        .replace('[', " [ ")
        .replace(']', " ] ")
        .replace('|', " | ");
    let toks: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    seq(&toks, &mut pos)
}

fn seq(toks: &[&str], pos: &mut usize) -> Vec<DocArg> {
    let mut alts: Vec<Vec<DocArg>> = vec![vec![]];
    while *pos < toks.len() {
        let t = toks[*pos];
        match t {
            "]" => break,
            "|" => {
                *pos += 1;
                alts.push(vec![]);
            }
            "[" => {
                *pos += 1;
                let inner = seq(toks, pos);
                *pos += 1; // the closing bracket
                let cur = alts.last_mut().expect("non-empty");
                // `x [x ...]`: the bracket repeats what precedes it.
                if inner.len() == 1 && inner[0].name == "..." {
                    if let Some(last) = cur.last_mut() {
                        last.multiple = true;
                    }
                    continue;
                }
                let mut arg = if inner.len() == 1 {
                    inner.into_iter().next().expect("one")
                } else {
                    DocArg::group("block", inner)
                };
                arg.optional = true;
                cur.push(arg);
            }
            _ => {
                *pos += 1;
                let cur = alts.last_mut().expect("non-empty");
                if t == "..." {
                    // `[x ...]` inside a bracket: mark the bracket's content.
                    if cur.len() > 1 || cur.first().is_some_and(|a| a.name == "...") {
                        continue;
                    }
                    cur.clear();
                    cur.push(DocArg::leaf("..."));
                    continue;
                }
                let is_token = t.chars().all(|c| c.is_ascii_uppercase() || c == '-');
                let next_is_value = toks.get(*pos).is_some_and(|n| {
                    !matches!(*n, "[" | "]" | "|" | "...")
                        && !n.chars().all(|c| c.is_ascii_uppercase() || c == '-')
                });
                if is_token && next_is_value {
                    let mut a = DocArg::leaf(toks[*pos]);
                    a.token = Some(t.to_string());
                    *pos += 1;
                    cur.push(a);
                } else if is_token {
                    let mut a = DocArg::leaf(&t.to_ascii_lowercase());
                    a.kind = "pure-token";
                    a.token = Some(t.to_string());
                    cur.push(a);
                } else {
                    cur.push(DocArg::leaf(t));
                }
            }
        }
    }
    if alts.len() == 1 {
        return alts.pop().unwrap_or_default();
    }
    let children = alts
        .into_iter()
        .map(|a| {
            if a.len() == 1 {
                a.into_iter().next().expect("one")
            } else {
                DocArg::group("block", a)
            }
        })
        .collect();
    vec![DocArg::group("oneof", children)]
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn syntax_to_docs() {
        let a = parse_syntax("key [key ...]");
        assert_eq!(a.len(), 1);
        assert!(a[0].multiple && a[0].kind == "key");

        let a = parse_syntax("key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]");
        assert_eq!(a.len(), 5);
        assert_eq!(a[2].kind, "oneof");
        assert!(a[2].optional);
        assert_eq!(a[2].children[0].token.as_deref(), Some("NX"));
        assert_eq!(a[3].kind, "pure-token");
        assert_eq!(a[4].children[0].token.as_deref(), Some("EX"));
        assert_eq!(a[4].children[0].name, "seconds");
        assert_eq!(a[4].children[0].kind, "integer");
        assert_eq!(a[4].children[2].kind, "pure-token");

        let a = parse_syntax("cursor [MATCH pattern] [COUNT count] [TYPE type]");
        assert_eq!(a.len(), 4);
        assert!(a[1].optional && a[1].token.as_deref() == Some("MATCH"));
        assert!(parse_syntax("").is_empty());
    }

    #[test]
    fn every_syntax_parses() {
        for c in table() {
            let _ = parse_syntax(c.syntax);
            for s in c.subcommands {
                let _ = parse_syntax(s.syntax);
            }
        }
    }

    /// COMMAND INFO and COMMAND LIST FILTERBY ACLCAT report the categories the ACL rules
    /// use (ACL CAT), as Redis does: one list, not a second guess.
    #[test]
    fn command_categories_are_the_acls() {
        let mut h = Harness::new();
        let cats = |h: &mut Harness, name: &str| -> Vec<Frame> {
            let Frame::Array(info) = h.run(&["COMMAND", "INFO", name]) else {
                panic!()
            };
            let Frame::Array(entry) = &info[0] else {
                panic!()
            };
            let Frame::Set(c) = &entry[6] else { panic!() };
            c.clone()
        };
        let simple = |v: &[&str]| v.iter().map(|s| Frame::simple_owned(s)).collect::<Vec<_>>();
        assert_eq!(cats(&mut h, "get"), simple(&["@read", "@string", "@fast"]));
        assert_eq!(cats(&mut h, "hset"), simple(&["@write", "@hash", "@fast"]));
        assert_eq!(
            cats(&mut h, "blpop"),
            simple(&["@write", "@list", "@slow", "@blocking"])
        );
        assert_eq!(
            cats(&mut h, "flushall"),
            simple(&["@keyspace", "@write", "@slow", "@dangerous"])
        );
        for cat in [
            "hash",
            "set",
            "pubsub",
            "scripting",
            "blocking",
            "dangerous",
        ] {
            let Frame::Array(mut listed) = h.run(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", cat])
            else {
                panic!()
            };
            let Frame::Array(mut acl) = h.run(&["ACL", "CAT", cat]) else {
                panic!()
            };
            assert!(!listed.is_empty(), "{cat}");
            let key = |f: &Frame| format!("{f:?}");
            listed.sort_by_key(key);
            acl.sort_by_key(key);
            assert_eq!(listed, acl, "{cat}");
        }
    }

    #[test]
    fn command_replies() {
        let mut h = Harness::new();
        let Frame::Array(all) = h.run(&["COMMAND"]) else {
            panic!()
        };
        assert_eq!(all.len(), table().len());
        assert_eq!(h.run(&["COMMAND", "COUNT"]), int(table().len() as i64));
        let Frame::Array(info) = h.run(&["COMMAND", "INFO", "get", "nope", "client|id"]) else {
            panic!()
        };
        let Frame::Array(get) = &info[0] else {
            panic!()
        };
        assert_eq!(get[0], bulk("get"));
        assert_eq!(get[1], int(2));
        assert!(matches!(&get[2], Frame::Set(f) if f.contains(&Frame::simple("readonly"))));
        assert_eq!(info[1], Frame::Null);
        let Frame::Array(cid) = &info[2] else {
            panic!()
        };
        assert_eq!(cid[0], bulk("client|id"));
        let Frame::Array(list) = h.run(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "get*"]) else {
            panic!()
        };
        assert!(list.contains(&bulk("getrange")) && !list.contains(&bulk("set")));
        let Frame::Map(docs) = h.run(&["COMMAND", "DOCS", "set"]) else {
            panic!()
        };
        assert_eq!(docs[0].0, bulk("set"));
        let Frame::Map(d) = &docs[0].1 else { panic!() };
        assert!(d.iter().any(|(k, _)| *k == bulk("arguments")));
        assert_eq!(
            h.run(&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]),
            Frame::Array(vec![bulk("a"), bulk("b")])
        );
        assert_eq!(
            h.run(&["COMMAND", "GETKEYS", "PING"]),
            err("ERR The command has no key arguments")
        );
    }

    /// COMMAND COUNT and COMMAND LIST tell the truth: every name listed (subcommands as
    /// `parent|sub`, like Redis 7) is dispatched to a handler (its own arity error or a
    /// reply, never "unknown command" or "unknown subcommand"), and the count is the number
    /// of top-level commands, as Redis counts.
    #[test]
    fn every_listed_command_is_served() {
        let mut h = Harness::new();
        let Frame::Array(list) = h.run(&["COMMAND", "LIST"]) else {
            panic!()
        };
        let names: Vec<String> = list
            .into_iter()
            .map(|f| match f {
                Frame::Bulk(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
                other => panic!("{other:?}"),
            })
            .collect();
        let top = names.iter().filter(|n| !n.contains('|')).count();
        assert_eq!(h.run(&["COMMAND", "COUNT"]), int(top as i64));
        for name in &names {
            let args: Vec<&str> = name.split('|').collect();
            if let Frame::Error(e) = h.run(&args) {
                assert!(
                    !e.starts_with("ERR unknown command")
                        && !e.starts_with("ERR unknown subcommand"),
                    "{name}: {e}"
                );
            }
        }
    }
}
