//! FUNCTION (LOAD, DELETE, FLUSH, LIST, DUMP, RESTORE, STATS, KILL) and FCALL/FCALL_RO:
//! Redis 7's function libraries. The engine and the registry are [`crate::lua`].
//!
//! A library (`#!lua name=mylib` and code that calls `redis.register_function`) loads on
//! one node and is callable on every node of the cluster: a change is sent to the other
//! DataNodes before the reply, and nodes exchange their libraries when the table changes
//! (see [`crate::sync`]). FCALL routes by its declared keys, like EVAL.

use super::scripting::run::{check_flags, declared_slots, run_flagged, CmdHost, Run};
use super::{flags::*, spec, CommandSpec, Ctx, Reply, NO_KEYS};
use crate::lua::fcall_keys;
use crate::lua::library::RestorePolicy;
use crate::resp::{Frame, Request};

const G: &str = "scripting";

#[rustfmt::skip]
pub static COMMANDS: [CommandSpec; 3] = [
    spec("fcall", -3, NOSCRIPT | STALE, NO_KEYS, G, "7.0.0",
        "Invokes a function.", "function numkeys [key [key ...]] [arg [arg ...]]", fcall),
    spec("fcall_ro", -3, NOSCRIPT | STALE | READONLY, NO_KEYS, G, "7.0.0",
        "Invokes a read-only function.", "function numkeys [key [key ...]] [arg [arg ...]]",
        fcall_ro),
    CommandSpec {
        subcommands: &FUNCTION_SUBCOMMANDS,
        ..spec("function", -2, 0, NO_KEYS, G, "7.0.0",
            "A container for function commands.", "subcommand", function_help)
    },
];

#[rustfmt::skip]
static FUNCTION_SUBCOMMANDS: [CommandSpec; 9] = [
    spec("load", -3, WRITE | DENYOOM | NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Creates a library.", "[REPLACE] function-code", function_load),
    spec("delete", 3, WRITE | NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Deletes a library and its functions.", "library-name", function_delete),
    spec("flush", -2, WRITE | NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Deletes all libraries and functions.", "[ASYNC | SYNC]", function_flush),
    spec("list", -2, NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Returns information about all libraries.",
        "[LIBRARYNAME library-name-pattern] [WITHCODE]", function_list),
    spec("dump", 2, NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Dumps all libraries into a serialized binary payload.", "", function_dump),
    spec("restore", -3, WRITE | DENYOOM | NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Restores all libraries from a payload.", "serialized-value [FLUSH | APPEND | REPLACE]",
        function_restore),
    spec("stats", 2, NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Returns information about a function during execution.", "", function_stats),
    spec("kill", 2, NOSCRIPT, NO_KEYS, G, "7.0.0",
        "Terminates a function during execution.", "", function_kill),
    spec("help", 2, LOADING | STALE, NO_KEYS, G, "7.0.0",
        "Returns helpful text about the different subcommands.", "", function_help),
];

fn fcall(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    run_fcall(ctx, req, false)
}

fn fcall_ro(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    run_fcall(ctx, req, true)
}

/// FCALL and FCALL_RO (`ro`).
fn run_fcall(ctx: &mut Ctx<'_>, req: &Request, ro: bool) -> Reply {
    let scripting = &ctx.node.scripting;
    let keys = fcall_keys(req)?;
    let name = String::from_utf8_lossy(req.arg(1)).into_owned();
    let slots = declared_slots(req, &keys);
    let _lock = ctx.node.db.lock_tx(Some(slots.clone()));
    let mut g = scripting.engine::<CmdHost>()?;
    let eng = g.get();
    let found = if eng.functions_current(scripting.registry_generation()) {
        eng.cached_function(&name)
    } else {
        let reg = scripting.registry();
        eng.function(&reg, &name)
    };
    let Some((f, flags, display)) = found else {
        return Err(Frame::err("ERR Function not found"));
    };
    check_flags(ctx, flags, ro)?;
    let run = Run::new(ctx, req, keys, display, false, slots);
    run_flagged(run, flags, ro, eng, &f)
}

/// Redis's reply to a subcommand given the wrong arguments inside its handler.
fn syntax(sub: &str) -> Frame {
    Frame::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try FUNCTION HELP."
    ))
}

/// After a change to the libraries: in a cluster, the other DataNodes get it before the
/// client gets `reply`.
fn propagated(ctx: &mut Ctx<'_>, reply: Frame) -> Reply {
    super::sync::after_change(ctx, crate::sync::Set::Functions, reply)
}

fn function_load(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let (replace, code) = match req.len() {
        3 => (false, req.arg(2)),
        4 if super::is(req.arg(2), "REPLACE") => (true, req.arg(3)),
        _ => {
            return Err(Frame::error(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(req.arg(2))
            )))
        }
    };
    let reply = ctx
        .node
        .scripting
        .function_load::<CmdHost>(&ctx.node.node_id, code, replace)?;
    propagated(ctx, reply)
}

fn function_delete(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let reply = ctx
        .node
        .scripting
        .function_delete(&ctx.node.node_id, req.arg(2))?;
    propagated(ctx, reply)
}

fn function_flush(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    match req.len() {
        2 => {}
        3 if super::is(req.arg(2), "ASYNC") || super::is(req.arg(2), "SYNC") => {}
        3 => {
            return Err(Frame::err(
                "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
            ))
        }
        _ => return Err(syntax("flush")),
    }
    ctx.node.scripting.function_flush(&ctx.node.node_id);
    propagated(ctx, Frame::ok())
}

fn function_restore(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let policy =
        match req.len() {
            3 => RestorePolicy::Append,
            4 if super::is(req.arg(3), "APPEND") => RestorePolicy::Append,
            4 if super::is(req.arg(3), "REPLACE") => RestorePolicy::Replace,
            4 if super::is(req.arg(3), "FLUSH") => RestorePolicy::Flush,
            4 => return Err(Frame::err(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            )),
            _ => return Err(syntax("restore")),
        };
    let reply =
        ctx.node
            .scripting
            .function_restore::<CmdHost>(&ctx.node.node_id, req.arg(2), policy)?;
    propagated(ctx, reply)
}

fn function_dump(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    Ok(Frame::bulk(ctx.node.scripting.function_dump()))
}

fn function_list(ctx: &mut Ctx<'_>, req: &Request) -> Reply {
    let mut pattern: Option<&[u8]> = None;
    let mut with_code = false;
    let mut i = 2;
    while i < req.len() {
        let a = req.arg(i);
        if super::is(a, "WITHCODE") && !with_code {
            with_code = true;
        } else if super::is(a, "LIBRARYNAME") && pattern.is_none() {
            if i + 1 >= req.len() {
                return Err(Frame::err("ERR library name argument was not given"));
            }
            pattern = Some(req.arg(i + 1));
            i += 1;
        } else {
            return Err(Frame::error(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(a)
            )));
        }
        i += 1;
    }
    let reg = ctx.node.scripting.registry();
    let mut out = Vec::new();
    for lib in reg.libraries() {
        if let Some(p) = pattern {
            if !crate::store::glob::glob_match(p, lib.name.as_bytes()) {
                continue;
            }
        }
        let functions = lib
            .functions
            .iter()
            .map(|f| {
                Frame::Map(vec![
                    (Frame::bulk_static("name"), Frame::bulk(&f.name)),
                    (
                        Frame::bulk_static("description"),
                        f.description.as_ref().map_or(Frame::Null, Frame::bulk),
                    ),
                    (
                        Frame::bulk_static("flags"),
                        Frame::Set(
                            f.flags
                                .names()
                                .into_iter()
                                .map(Frame::bulk_static)
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        let mut entry = vec![
            (Frame::bulk_static("library_name"), Frame::bulk(&lib.name)),
            (
                Frame::bulk_static("engine"),
                Frame::bulk_static(crate::lua::library::ENGINE),
            ),
            (Frame::bulk_static("functions"), Frame::Array(functions)),
        ];
        if with_code {
            entry.push((
                Frame::bulk_static("library_code"),
                Frame::Bulk(lib.code.clone()),
            ));
        }
        out.push(Frame::Map(entry));
    }
    Ok(Frame::Array(out))
}

fn function_stats(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let s = &ctx.node.scripting;
    let running = match s.running() {
        None => Frame::Null,
        Some((name, command, ms)) => Frame::Map(vec![
            (Frame::bulk_static("name"), Frame::bulk(name)),
            (
                Frame::bulk_static("command"),
                Frame::Array(command.into_iter().map(Frame::Bulk).collect()),
            ),
            (Frame::bulk_static("duration_ms"), Frame::Integer(ms as i64)),
        ]),
    };
    let (libs, funcs) = s.registry().counts();
    Ok(Frame::Map(vec![
        (Frame::bulk_static("running_script"), running),
        (
            Frame::bulk_static("engines"),
            Frame::Map(vec![(
                Frame::bulk_static(crate::lua::library::ENGINE),
                Frame::Map(vec![
                    (
                        Frame::bulk_static("libraries_count"),
                        Frame::Integer(libs as i64),
                    ),
                    (
                        Frame::bulk_static("functions_count"),
                        Frame::Integer(funcs as i64),
                    ),
                ]),
            )]),
        ),
    ]))
}

fn function_kill(ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    ctx.node.scripting.kill(false)
}

fn function_help(_ctx: &mut Ctx<'_>, _req: &Request) -> Reply {
    let lines = [
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
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

    fn code(lib: &str, f: &str, body: &str) -> String {
        format!(
            "#!lua name={lib}\nredis.register_function('{f}', function(KEYS, ARGV)\n {body} \nend)"
        )
    }

    #[test]
    fn load_call_replace_delete() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(&["function", "load", &code("test", "test", "return 'hello'")]),
            bulk("test")
        );
        assert_eq!(h.run(&["fcall", "test", "0"]), bulk("hello"));
        assert_eq!(h.run(&["fcall", "TEST", "0"]), bulk("hello"));
        let e = h.run(&["function", "load", &code("test", "test", "return 1")]);
        assert_eq!(e, err("ERR Library 'test' already exists"));
        assert_eq!(
            h.run(&["function", "load", "foo", "bar", &code("x", "x", "")]),
            err("ERR Unknown option given: foo")
        );
        let e = h.run(&[
            "function",
            "load",
            "replace",
            &code("test", "test", "bad script"),
        ]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("Error compiling function")),
            "{e:?}"
        );
        assert_eq!(
            h.run(&[
                "function",
                "load",
                "REPLACE",
                &code("test", "test", "return 'hello1'")
            ]),
            bulk("test")
        );
        assert_eq!(h.run(&["fcall", "test", "0"]), bulk("hello1"));
        assert_eq!(
            h.run(&["fcall", "test", "bad_arg"]),
            err("ERR Bad number of keys provided")
        );
        assert_eq!(
            h.run(&["fcall", "test", "10", "key1"]),
            err("ERR Number of keys can't be greater than number of args")
        );
        assert_eq!(h.run(&["function", "delete", "test"]), Frame::ok());
        assert_eq!(
            h.run(&["fcall", "test", "0"]),
            err("ERR Function not found")
        );
        assert_eq!(
            h.run(&["function", "delete", "test"]),
            err("ERR Library not found")
        );
        assert_eq!(
            h.run(&["function", "kill"]),
            err("NOTBUSY No scripts in execution right now.")
        );
    }

    #[test]
    fn keys_args_and_read_only() {
        let mut h = Harness::new();
        h.run(&[
            "function",
            "load",
            &code("t", "setx", "return redis.call('set', KEYS[1], ARGV[1])"),
        ]);
        assert_eq!(h.run(&["fcall", "setx", "1", "x", "foo"]), Frame::ok());
        assert_eq!(h.run(&["get", "x"]), bulk("foo"));
        let e = h.run(&["fcall_ro", "setx", "1", "x", "foo"]);
        assert_eq!(
            e,
            err("ERR Can not execute a script with write flag using *_ro command.")
        );
        h.run(&[
            "function",
            "load",
            "replace",
            "#!lua name=t\nredis.register_function{function_name='setx', callback=function(k, a) return redis.call('set', k[1], a[1]) end, flags={'no-writes'}}",
        ]);
        let e = h.run(&["fcall_ro", "setx", "1", "x", "foo"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.starts_with("ERR Write commands are not allowed from read-only scripts")),
            "{e:?}"
        );
    }

    #[test]
    fn registration_errors() {
        let mut h = Harness::new();
        let load = |h: &mut Harness, body: &str| {
            h.run(&[
                "function",
                "load",
                "replace",
                &format!("#!lua name=lib\n{body}"),
            ])
        };
        let cases = [
            ("redis.register_function()", "wrong number of arguments to redis.register_function"),
            ("redis.register_function('f1')", "calling redis.register_function with a single argument is only applicable to Lua table"),
            ("redis.register_function(nil, function() end)", "first argument to redis.register_function must be a string"),
            ("redis.register_function('f1', 'x')", "second argument to redis.register_function must be a function"),
            ("redis.register_function('', function() end)", "Library names can only contain letters"),
            ("redis.register_function{function_name='f1', callback=function() end, flags={'unknown'}}", "unknown flag given"),
            ("redis.register_function{function_name='f1', callback=function() end, x=1}", "unknown argument given to redis.register_function"),
            ("redis.register_function{callback=function() end}", "redis.register_function must get a function name argument"),
            ("redis.register_function{function_name='f1'}", "redis.register_function must get a callback argument"),
            ("redis.register_function('a', function() end) redis.register_function('a', function() end)", "Function already exists in the library"),
            ("return 1", "No functions registered"),
            ("return math.random()", "attempted to access nonexistent global variable 'math'"),
            ("return redis.call('ping')", "attempted to access nonexistent global variable 'call'"),
            ("a = 1", "Attempt to modify a readonly table"),
            ("mt = getmetatable(_G)", "nonexistent global variable 'getmetatable'"),
            ("local a = 1 while 1 do a = a + 1 end", "FUNCTION LOAD timeout"),
        ];
        for (body, want) in cases {
            let e = load(&mut h, body);
            assert!(
                matches!(&e, Frame::Error(t) if t.contains(want)),
                "{body}: {e:?}"
            );
        }
        assert_eq!(h.run(&["function", "list"]), Frame::Array(vec![]));
    }

    #[test]
    fn list_dump_restore_stats() {
        let mut h = Harness::new();
        h.run(&["function", "load", &code("lib1", "f1", "return 1")]);
        let list = h.run(&["function", "list", "withcode"]);
        let Frame::Array(libs) = &list else {
            panic!("{list:?}")
        };
        assert_eq!(libs.len(), 1);
        assert_eq!(
            h.run(&["function", "list", "libraryname", "nomatch*"]),
            Frame::Array(vec![])
        );
        assert_eq!(
            h.run(&["function", "list", "bad_argument"]),
            err("ERR Unknown argument bad_argument")
        );
        assert_eq!(
            h.run(&["function", "list", "libraryname"]),
            err("ERR library name argument was not given")
        );
        let Frame::Bulk(payload) = h.run(&["function", "dump"]) else {
            panic!("dump")
        };
        // The payload is binary: sent as bytes.
        let restore = |h: &mut Harness, policy: Option<&[u8]>| {
            let mut args: Vec<&[u8]> = vec![b"function", b"restore", &payload];
            args.extend(policy);
            let req = Request::from_args(args);
            let mut ctx = Ctx {
                node: &h.node,
                session: &mut h.session,
                now: h.now,
            };
            super::super::dispatch(&mut ctx, &req)
        };
        assert_eq!(h.run(&["function", "flush"]), Frame::ok());
        assert_eq!(restore(&mut h, None), Frame::ok());
        assert_eq!(h.run(&["fcall", "f1", "0"]), int(1));
        assert_eq!(
            restore(&mut h, None),
            err("ERR Library lib1 already exists")
        );
        assert_eq!(restore(&mut h, Some(b"replace")), Frame::ok());
        assert_eq!(
            h.run(&["function", "restore", "bad_payload"]),
            err("ERR payload version or checksum are wrong")
        );
        assert_eq!(
            h.run(&["function", "restore", "a", "b", "c"]),
            err("ERR unknown subcommand or wrong number of arguments for 'restore'. Try FUNCTION HELP.")
        );
        assert_eq!(
            h.run(&["function", "flush", "bad_arg"]),
            err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
        );
        let stats = h.run(&["function", "stats"]);
        assert_eq!(
            stats,
            Frame::Map(vec![
                (bulk("running_script"), Frame::Null),
                (
                    bulk("engines"),
                    Frame::Map(vec![(
                        bulk("LUA"),
                        Frame::Map(vec![
                            (bulk("libraries_count"), int(1)),
                            (bulk("functions_count"), int(1)),
                        ])
                    )])
                ),
            ])
        );
    }

    #[test]
    fn library_sandbox() {
        let mut h = Harness::new();
        h.run(&[
            "function",
            "load",
            "#!lua name=lib1\nlocal lib = redis\nlib.register_function('f1', function() lib.redis = redis end)\nlib.register_function('f2', function() lib.register_function('f1', function() end) end)\nredis.register_function('f3', function() return bit.band(7, 3) end)",
        ]);
        let e = h.run(&["fcall", "f1", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("Attempt to modify a readonly table")),
            "{e:?}"
        );
        let e = h.run(&["fcall", "f2", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("can only be called on FUNCTION LOAD command")),
            "{e:?}"
        );
        h.run(&[
            "function",
            "load",
            "#!lua name=lib2\nredis.register_function('g', function() redis.register_function('x', function() end) end)",
        ]);
        let e = h.run(&["fcall", "g", "0"]);
        assert!(
            matches!(&e, Frame::Error(t) if t.contains("attempt to call field 'register_function' (a nil value)")),
            "{e:?}"
        );
    }
}
