//! FUNCTION libraries as data: the `#!lua` headers, script flags, the registry of libraries
//! and their functions, and the FUNCTION DUMP/RESTORE payload.
//!
//! Nothing here runs Lua: a library's functions are known only by running its code (see
//! [`super::engine`]), so the registry is built from what that run registered. Everything
//! here is plain data and unit-tested as such.
//!
//! **Versions.** Every library, and every deleted library name (a tombstone), carries a
//! [`Version`]: a counter and the id of the node that made the change. In a cluster the
//! nodes exchange their registries and keep, per library name, the newer version
//! ([`Registry::merge`]), so every node converges on the same libraries whatever order the
//! changes reach it in (see [`crate::sync`]).

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The only engine (FUNCTION LIST's `engine`, the `#!lua` shebang).
pub const ENGINE: &str = "LUA";

/// Flags a script or function declares (Redis's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    pub const NONE: ScriptFlags = ScriptFlags(0);
    /// Runs no write command; may run under FCALL_RO/EVAL_RO, on OOM.
    pub const NO_WRITES: ScriptFlags = ScriptFlags(1);
    /// May write when memory is over `maxmemory`.
    pub const ALLOW_OOM: ScriptFlags = ScriptFlags(1 << 1);
    /// May run on a replica whose link is down (CHKV has no replicas: accepted, no effect).
    pub const ALLOW_STALE: ScriptFlags = ScriptFlags(1 << 2);
    /// Refused when the node is part of a cluster.
    pub const NO_CLUSTER: ScriptFlags = ScriptFlags(1 << 3);
    /// May use keys of several slots (they must still live on one node).
    pub const ALLOW_CROSS_SLOT: ScriptFlags = ScriptFlags(1 << 4);

    const NAMES: [(ScriptFlags, &'static str); 5] = [
        (ScriptFlags::NO_WRITES, "no-writes"),
        (ScriptFlags::ALLOW_OOM, "allow-oom"),
        (ScriptFlags::ALLOW_STALE, "allow-stale"),
        (ScriptFlags::NO_CLUSTER, "no-cluster"),
        (ScriptFlags::ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
    ];

    /// The flag named `name` (exact, lower case as Redis spells them).
    pub fn parse(name: &[u8]) -> Option<ScriptFlags> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.as_bytes() == name)
            .map(|(f, _)| *f)
    }

    pub fn has(self, f: ScriptFlags) -> bool {
        self.0 & f.0 == f.0 && f.0 != 0
    }

    pub fn with(self, f: ScriptFlags) -> ScriptFlags {
        ScriptFlags(self.0 | f.0)
    }

    /// The names of the flags set, in Redis's order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(f, _)| self.has(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// How an EVAL script starts: with a `#!lua` shebang line (its flags, and where the code
/// after the line starts), or without one (Redis's compatibility mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalHeader {
    Legacy,
    Shebang { flags: ScriptFlags, code_at: usize },
}

/// Splits a shebang line like the shell does: words separated by spaces, with double and
/// single quotes grouping (`name="foo"` is `name=foo`). `None` for unbalanced quotes.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut word = Vec::new();
        while i < line.len() && !line[i].is_ascii_whitespace() {
            let c = line[i];
            if c == b'"' || c == b'\'' {
                let close = line[i + 1..].iter().position(|&x| x == c)? + i + 1;
                word.extend_from_slice(&line[i + 1..close]);
                i = close + 1;
            } else {
                word.push(c);
                i += 1;
            }
        }
        out.push(word);
    }
    Some(out)
}

/// The first line of `code` without the leading `#!`, and where the rest starts (at the
/// newline, so line numbers in errors stay those of the whole text).
fn shebang_line(code: &[u8]) -> Option<(&[u8], usize)> {
    let rest = code.strip_prefix(b"#!")?;
    let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
    Some((&rest[..end], end + 2))
}

/// The engine name right after `#!` (up to the first space) and the options after it.
fn engine_and_rest(line: &[u8]) -> (&[u8], &[u8]) {
    let end = line
        .iter()
        .position(|c| c.is_ascii_whitespace())
        .unwrap_or(line.len());
    (&line[..end], &line[end..])
}

/// Reads an EVAL script's shebang (`#!lua flags=no-writes,allow-oom`), Redis's errors.
pub fn eval_header(body: &[u8]) -> Result<EvalHeader, String> {
    let Some((line, code_at)) = shebang_line(body) else {
        return Ok(EvalHeader::Legacy);
    };
    let (engine, rest) = engine_and_rest(line);
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(engine)
        ));
    }
    let words = split_args(rest).ok_or("Invalid script shebang")?;
    let mut flags = ScriptFlags::NONE;
    for w in &words {
        let Some(list) = w.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(w)
            ));
        };
        for f in list.split(|&c| c == b',').filter(|f| !f.is_empty()) {
            flags = flags.with(ScriptFlags::parse(f).ok_or_else(|| {
                format!(
                    "Unexpected flag in script shebang: {}",
                    String::from_utf8_lossy(f)
                )
            })?);
        }
    }
    Ok(EvalHeader::Shebang { flags, code_at })
}

/// Whether `name` may name a library or a function: letters, digits and underscores, at
/// least one.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

pub const ERR_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// Reads a library's header (`#!lua name=mylib`): its name and where its code starts.
pub fn library_header(code: &[u8]) -> Result<(String, usize), String> {
    let Some((line, code_at)) = shebang_line(code) else {
        return Err("Missing library metadata".into());
    };
    let (engine, rest) = engine_and_rest(line);
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(format!(
            "Engine '{}' not found",
            String::from_utf8_lossy(engine)
        ));
    }
    let words = split_args(rest).ok_or("Invalid library metadata")?;
    let mut name: Option<Vec<u8>> = None;
    for w in &words {
        match w.strip_prefix(b"name=") {
            Some(n) => {
                if name.is_some() {
                    return Err(
                        "Invalid metadata value, name argument was given multiple times".into(),
                    );
                }
                name = Some(n.to_vec());
            }
            None => {
                return Err(format!(
                    "Invalid metadata value given: {}",
                    String::from_utf8_lossy(w)
                ))
            }
        }
    }
    let name = name.ok_or("Library name was not given")?;
    if !valid_name(&name) {
        return Err(ERR_NAME.into());
    }
    // Valid names are ASCII.
    Ok((String::from_utf8_lossy(&name).into_owned(), code_at))
}

pub use crate::sync::Version;

/// One function of a library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionDef {
    pub name: String,
    pub description: Option<String>,
    pub flags: ScriptFlags,
}

/// A loaded library: its code (header included, as given) and what running it registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: Vec<FunctionDef>,
    pub version: Version,
}

/// How FUNCTION RESTORE treats libraries that exist already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Fail if any library of the payload exists (the default).
    Append,
    /// Libraries of the payload replace those of the same name.
    Replace,
    /// Every library is deleted first.
    Flush,
}

/// A node's libraries. Immutable once built: a change builds a new registry, which the node
/// publishes whole (engines compare its generation to know they are behind).
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// By library name (case-sensitive, as Redis).
    libs: BTreeMap<String, Arc<Library>>,
    /// Function name, lower case (function names are case-insensitive) -> its library.
    funcs: HashMap<String, Arc<Library>>,
    /// Deleted library names and when they were deleted (kept for cluster merges).
    tombstones: BTreeMap<String, Version>,
    /// The largest version counter seen: the next change takes the one after it.
    clock: u64,
    /// Bumped by every change this registry descends from.
    pub generation: u64,
}

impl Registry {
    pub fn library(&self, name: &str) -> Option<&Arc<Library>> {
        self.libs.get(name)
    }

    pub fn libraries(&self) -> impl Iterator<Item = &Arc<Library>> {
        self.libs.values()
    }

    /// A function by name (case-insensitive) and its library.
    pub fn function(&self, name: &str) -> Option<(&Arc<Library>, &FunctionDef)> {
        let lib = self.funcs.get(&name.to_ascii_lowercase())?;
        let def = lib
            .functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))?;
        Some((lib, def))
    }

    /// Libraries and functions.
    pub fn counts(&self) -> (usize, usize) {
        (self.libs.len(), self.funcs.len())
    }

    /// The version a change made now on `origin` gets.
    pub fn next_version(&self, origin: &str) -> Version {
        Version {
            counter: self.clock + 1,
            origin: origin.to_string(),
        }
    }

    fn rebuilt(&self, libs: BTreeMap<String, Arc<Library>>) -> Registry {
        let mut funcs = HashMap::new();
        for lib in libs.values() {
            for f in &lib.functions {
                funcs.insert(f.name.to_ascii_lowercase(), lib.clone());
            }
        }
        let clock = libs
            .values()
            .map(|l| l.version.counter)
            .chain(self.tombstones.values().map(|v| v.counter))
            .fold(self.clock, u64::max);
        Registry {
            libs,
            funcs,
            tombstones: self.tombstones.clone(),
            clock,
            generation: self.generation + 1,
        }
    }

    /// The first function of `libs` whose name another library (not in `replaced`) has.
    fn collision<'a>(
        &self,
        libs: impl IntoIterator<Item = &'a Library>,
        replaced: &[&str],
    ) -> Option<String> {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for lib in libs {
            for f in &lib.functions {
                let key = f.name.to_ascii_lowercase();
                let taken_here = self
                    .funcs
                    .get(&key)
                    .is_some_and(|l| !replaced.contains(&l.name.as_str()));
                let taken_by_new = seen.get(&key).is_some_and(|l| *l != lib.name);
                if taken_here || taken_by_new {
                    return Some(f.name.clone());
                }
                seen.insert(key, &lib.name);
            }
        }
        None
    }

    /// FUNCTION LOAD: `lib` added, or replacing the library of its name when `replace`.
    pub fn with_library(&self, lib: Library, replace: bool) -> Result<Registry, String> {
        if self.libs.contains_key(&lib.name) && !replace {
            return Err(format!("Library '{}' already exists", lib.name));
        }
        if let Some(f) = self.collision([&lib], &[lib.name.as_str()]) {
            return Err(format!("Function {f} already exists"));
        }
        let mut libs = self.libs.clone();
        let mut next = self.clone();
        next.tombstones.remove(&lib.name);
        libs.insert(lib.name.clone(), Arc::new(lib));
        Ok(next.rebuilt(libs))
    }

    /// FUNCTION DELETE.
    pub fn without_library(&self, name: &str, version: Version) -> Result<Registry, String> {
        if !self.libs.contains_key(name) {
            return Err("Library not found".into());
        }
        let mut libs = self.libs.clone();
        libs.remove(name);
        let mut next = self.clone();
        next.tombstones.insert(name.to_string(), version);
        Ok(next.rebuilt(libs))
    }

    /// FUNCTION FLUSH: every library deleted (remembered as deleted at `version`).
    pub fn flushed(&self, version: Version) -> Registry {
        let mut next = self.clone();
        for name in self.libs.keys() {
            next.tombstones.insert(name.clone(), version.clone());
        }
        next.rebuilt(BTreeMap::new())
    }

    /// FUNCTION RESTORE of `libs` (already loaded, versioned) under `policy`. Redis's
    /// errors; on error nothing changes.
    pub fn restored(&self, libs: Vec<Library>, policy: RestorePolicy) -> Result<Registry, String> {
        let mut names: Vec<&str> = Vec::new();
        for l in &libs {
            if names.contains(&l.name.as_str()) {
                return Err(format!("Library {} already exists", l.name));
            }
            names.push(&l.name);
        }
        let base = match policy {
            RestorePolicy::Flush => {
                let v = libs.iter().map(|l| l.version.clone()).max();
                self.flushed(v.unwrap_or_else(|| self.next_version("")))
            }
            _ => self.clone(),
        };
        if policy == RestorePolicy::Append {
            if let Some(l) = libs.iter().find(|l| base.libs.contains_key(&l.name)) {
                return Err(format!("Library {} already exists", l.name));
            }
        }
        if let Some(f) = base.collision(libs.iter(), &names) {
            return Err(format!("Function {f} already exists"));
        }
        let mut next_libs = base.libs.clone();
        let mut next = base.clone();
        for l in libs {
            next.tombstones.remove(&l.name);
            next_libs.insert(l.name.clone(), Arc::new(l));
        }
        Ok(next.rebuilt(next_libs))
    }

    /// Every library and tombstone with its version: what a node sends to its peers.
    pub fn state(&self) -> Vec<StateEntry> {
        let mut out: Vec<StateEntry> = self
            .libs
            .values()
            .map(|l| StateEntry {
                name: l.name.clone(),
                version: l.version.clone(),
                code: Some(l.code.clone()),
            })
            .collect();
        out.extend(self.tombstones.iter().map(|(n, v)| StateEntry {
            name: n.clone(),
            version: v.clone(),
            code: None,
        }));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// What of `theirs` is newer than ours, per library name: the libraries to load
    /// (name, version, code) and the tombstones to apply. Empty when we are up to date.
    pub fn newer_in(&self, theirs: &[StateEntry]) -> Vec<StateEntry> {
        theirs
            .iter()
            .filter(|e| {
                let ours = self
                    .libs
                    .get(&e.name)
                    .map(|l| &l.version)
                    .or_else(|| self.tombstones.get(&e.name));
                ours.is_none_or(|v| e.version > *v)
            })
            .cloned()
            .collect()
    }

    /// Applies newer entries (their libraries loaded: `loaded` has one per entry with
    /// code). A function name that two libraries claim after the merge stays with the
    /// library of the newer version; the other library is dropped as if deleted at its own
    /// version, the same choice on every node.
    pub fn merge(&self, entries: Vec<StateEntry>, loaded: Vec<Library>) -> Registry {
        let mut next = self.clone();
        let mut libs = self.libs.clone();
        for e in &entries {
            if e.code.is_none() {
                libs.remove(&e.name);
                next.tombstones.insert(e.name.clone(), e.version.clone());
            }
        }
        for l in loaded {
            next.tombstones.remove(&l.name);
            libs.insert(l.name.clone(), Arc::new(l));
        }
        // Name conflicts: keep the newest library for each function name.
        loop {
            let mut owner: HashMap<String, &Arc<Library>> = HashMap::new();
            let mut loser: Option<Arc<Library>> = None;
            for lib in libs.values() {
                for f in &lib.functions {
                    let key = f.name.to_ascii_lowercase();
                    match owner.get(&key) {
                        Some(other) => {
                            loser = Some(if other.version < lib.version {
                                (*other).clone()
                            } else {
                                lib.clone()
                            });
                            break;
                        }
                        None => {
                            owner.insert(key, lib);
                        }
                    }
                }
                if loser.is_some() {
                    break;
                }
            }
            match loser {
                Some(l) => {
                    libs.remove(&l.name);
                    next.tombstones.insert(l.name.clone(), l.version.clone());
                }
                None => break,
            }
        }
        next.rebuilt(libs)
    }

    /// A short digest of [`Registry::state`], to compare two nodes' registries cheaply.
    pub fn digest(&self) -> String {
        let mut h = sha1_smol::Sha1::new();
        for e in self.state() {
            h.update(e.name.as_bytes());
            h.update(&e.version.counter.to_le_bytes());
            h.update(e.version.origin.as_bytes());
            h.update(&[e.code.is_some() as u8]);
        }
        h.digest().to_string()
    }
}

/// One library (with code) or tombstone (without) in a node's registry state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateEntry {
    pub name: String,
    pub version: Version,
    pub code: Option<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(name: &str, funcs: &[&str], counter: u64) -> Library {
        Library {
            name: name.into(),
            code: Bytes::from(format!("#!lua name={name}\n")),
            functions: funcs
                .iter()
                .map(|f| FunctionDef {
                    name: f.to_string(),
                    description: None,
                    flags: ScriptFlags::NONE,
                })
                .collect(),
            version: Version {
                counter,
                origin: "a".into(),
            },
        }
    }

    #[test]
    fn shebangs() {
        assert_eq!(eval_header(b"return 1"), Ok(EvalHeader::Legacy));
        assert_eq!(
            eval_header(b"#!lua\nreturn 1"),
            Ok(EvalHeader::Shebang {
                flags: ScriptFlags::NONE,
                code_at: 5
            })
        );
        let Ok(EvalHeader::Shebang { flags, .. }) =
            eval_header(b"#!lua flags=no-writes,allow-oom\nreturn 1")
        else {
            panic!("flags")
        };
        assert!(flags.has(ScriptFlags::NO_WRITES) && flags.has(ScriptFlags::ALLOW_OOM));
        assert!(!flags.has(ScriptFlags::NO_CLUSTER));
        assert_eq!(flags.names(), vec!["no-writes", "allow-oom"]);
        assert!(matches!(
            eval_header(b"#!lua flags=\nreturn 1"),
            Ok(EvalHeader::Shebang {
                flags: ScriptFlags::NONE,
                ..
            })
        ));
        assert!(eval_header(b"#!not-lua\n")
            .unwrap_err()
            .contains("Unexpected engine in script shebang"));
        assert!(eval_header(b"#!lua badger=data\n")
            .unwrap_err()
            .contains("Unknown lua shebang option"));
        assert!(eval_header(b"#!lua flags=allow-oom,what?\n")
            .unwrap_err()
            .contains("Unexpected flag in script shebang"));
    }

    #[test]
    fn library_headers() {
        assert_eq!(
            library_header(b"#!lua name=mylib\ncode"),
            Ok(("mylib".into(), 16))
        );
        assert_eq!(
            library_header(b"#!LUA name=\"foo\"\n"),
            Ok(("foo".into(), 16))
        );
        assert_eq!(
            library_header(b"return 1").unwrap_err(),
            "Missing library metadata"
        );
        assert_eq!(
            library_header(b"#! name=test\n").unwrap_err(),
            "Engine '' not found"
        );
        assert_eq!(
            library_header(b"#!bad_engine name=test\n").unwrap_err(),
            "Engine 'bad_engine' not found"
        );
        assert_eq!(
            library_header(b"#!lua name=test foo=bar\n").unwrap_err(),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            library_header(b"#!lua\n").unwrap_err(),
            "Library name was not given"
        );
        assert_eq!(
            library_header(b"#!lua name=a name=b\n").unwrap_err(),
            "Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(
            library_header(b"#!lua name=a\x00b\n").unwrap_err(),
            ERR_NAME
        );
        assert!(split_args(b"name=\"unclosed").is_none());
    }

    #[test]
    fn load_replace_delete_flush() {
        let r = Registry::default();
        let r = r
            .with_library(lib("l1", &["f1", "f2"], 1), false)
            .expect("load");
        assert_eq!(r.counts(), (1, 2));
        assert_eq!(r.function("F1").map(|(l, _)| l.name.as_str()), Some("l1"));
        assert_eq!(
            r.with_library(lib("l1", &["f9"], 2), false).unwrap_err(),
            "Library 'l1' already exists"
        );
        assert_eq!(
            r.with_library(lib("l2", &["f2"], 2), false).unwrap_err(),
            "Function f2 already exists"
        );
        // Replacing a library frees its own function names.
        let r2 = r
            .with_library(lib("l1", &["f2", "f3"], 2), true)
            .expect("replace");
        assert!(r2.function("f1").is_none());
        assert!(r2.function("f3").is_some());
        assert!(r2.generation > r.generation);
        let r3 = r2
            .without_library("l1", r2.next_version("a"))
            .expect("delete");
        assert_eq!(r3.counts(), (0, 0));
        assert_eq!(
            r3.without_library("l1", Version::default()).unwrap_err(),
            "Library not found"
        );
        let r4 = r2.flushed(r2.next_version("a"));
        assert_eq!(r4.counts(), (0, 0));
    }

    #[test]
    fn restore_policies() {
        let r = Registry::default()
            .with_library(lib("lib1", &["f6"], 1), false)
            .and_then(|r| r.with_library(lib("lib2", &["f3", "f4"], 2), false))
            .expect("setup");
        let payload = vec![lib("lib1", &["f1", "f2", "f3"], 3)];
        assert_eq!(
            r.restored(payload.clone(), RestorePolicy::Append)
                .unwrap_err(),
            "Library lib1 already exists"
        );
        assert_eq!(
            r.restored(payload.clone(), RestorePolicy::Replace)
                .unwrap_err(),
            "Function f3 already exists"
        );
        let flushed = r
            .restored(payload.clone(), RestorePolicy::Flush)
            .expect("flush");
        assert_eq!(flushed.counts(), (1, 3));
        let other = Registry::default()
            .with_library(lib("x", &["y"], 1), false)
            .expect("x");
        assert_eq!(
            other
                .restored(payload, RestorePolicy::Append)
                .expect("append")
                .counts(),
            (2, 4)
        );
    }

    #[test]
    fn merges_converge_in_any_order() {
        let mut a = Registry::default();
        a = a
            .with_library(
                Library {
                    version: a.next_version("a"),
                    ..lib("la", &["fa"], 0)
                },
                false,
            )
            .expect("a");
        let mut b = Registry::default();
        b = b
            .with_library(
                Library {
                    version: b.next_version("b"),
                    ..lib("lb", &["fb"], 0)
                },
                false,
            )
            .expect("b");
        // Each learns the other's state; libraries are "loaded" by cloning what was sent.
        let load = |from: &Registry, entries: &[StateEntry]| -> Vec<Library> {
            entries
                .iter()
                .filter(|e| e.code.is_some())
                .filter_map(|e| from.library(&e.name).map(|l| (**l).clone()))
                .collect()
        };
        let nb = b.newer_in(&a.state());
        let b2 = b.merge(nb.clone(), load(&a, &nb));
        let na = a.newer_in(&b.state());
        let a2 = a.merge(na.clone(), load(&b, &na));
        assert_eq!(a2.digest(), b2.digest());
        assert_eq!(a2.counts(), (2, 2));
        assert!(a2.newer_in(&b2.state()).is_empty());
        // A delete on one side wins over the older library everywhere.
        let a3 = a2
            .without_library("lb", a2.next_version("a"))
            .expect("delete");
        let n = b2.newer_in(&a3.state());
        let b3 = b2.merge(n, vec![]);
        assert!(b3.library("lb").is_none());
        assert_eq!(a3.digest(), b3.digest());
        // Two libraries claiming one function name: the newer keeps it on both sides.
        let old = Library {
            version: Version {
                counter: 10,
                origin: "a".into(),
            },
            ..lib("old", &["same"], 0)
        };
        let new = Library {
            version: Version {
                counter: 11,
                origin: "b".into(),
            },
            ..lib("new", &["same"], 0)
        };
        let x = Registry::default().merge(vec![], vec![old.clone(), new.clone()]);
        let y = Registry::default().merge(vec![], vec![new, old]);
        assert!(x.library("new").is_some() && x.library("old").is_none());
        assert_eq!(x.digest(), y.digest());
    }
}
