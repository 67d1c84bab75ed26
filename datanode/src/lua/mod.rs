//! # Lua scripting: EVAL scripts and FUNCTION libraries (Redis 7 semantics, Lua 5.1)
//!
//! - [`engine`]: one Lua state: the sandbox, `redis.*`, reply conversions, running a
//!   script or a function, loading a library.
//! - [`library`]: libraries as data: `#!lua` headers, script flags, the registry, versions
//!   for the cluster.
//! - [`libs`]: the libraries Redis gives scripts (cjson, cmsgpack, bit, struct), in Rust.
//! - [`crate::sync`]: keeping every DataNode's libraries the same.
//! - [`Scripting`] (here): a node's engines, its script cache and libraries, and the scripts
//!   running now (the BUSY state, SCRIPT KILL and FUNCTION KILL, FUNCTION STATS).
//!
//! Running a script is the command side's: `crate::cmd::scripting::run` (a script's
//! command context, `redis.call`'s command, the hook's work; the engines reach it through
//! `engine::Host`), EVAL in [`crate::cmd::scripting`], FCALL in [`crate::cmd::functions`].
//! This module imports neither `cmd` nor `node`.
//!
//! **Engines.** A node has up to [`ENGINES`] Lua states; a script takes the one of its
//! thread (or any free one) for its whole run. Scripts and libraries are kept as source
//! (the script cache, the registry) and compiled in each engine on first use there, so two
//! scripts on different slots run in parallel. A script holds the slots of its declared
//! keys for its whole run, and takes the slot of any other key it uses as it goes and keeps
//! it to the end (see `Db::lock_more`): no other client sees a script half done.
//!
//! **Long scripts.** After `busy-reply-threshold` (`lua-time-limit`, 5 s) a script is
//! *busy*: every other command gets `-BUSY` except the few Redis allows (SCRIPT KILL,
//! FUNCTION KILL and STATS, SHUTDOWN, AUTH, MULTI...), see [`Scripting::busy_error`]. A
//! script that runs for more than a few milliseconds moves off the async runtime's worker
//! thread (`crate::cmd::scripting::run`), and connections that wait for its slots wait off
//! the workers too, so the node always reads SCRIPT KILL, whatever the number of worker
//! threads.

pub mod engine;
pub mod library;
pub mod libs;

use crate::resp::{Frame, Request};
use bytes::Bytes;
use engine::{Engine, Host};
use library::{Library, Registry, RestorePolicy};
use parking_lot::{Mutex, MutexGuard, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Lua states per node at most.
pub const ENGINES: usize = 16;
/// Scripts kept in the cache at most; SCRIPT FLUSH empties it.
const MAX_SCRIPTS: usize = 100_000;

pub const ERR_NOSCRIPT: Frame = Frame::err("NOSCRIPT No matching script. Please use EVAL.");
const BUSY_EVAL: Frame = Frame::err(
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
);
const BUSY_FUNCTION: Frame = Frame::err(
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
);

/// A script's name as the caches key it (its sha1 in lower case), from the name a client
/// gave in any case, written into `buf`; `None` for what cannot be a sha1 (not 40 bytes, or
/// not UTF-8), which no script is named. No allocation: EVALSHA looks its script up by it.
pub fn sha_name<'a>(given: &[u8], buf: &'a mut [u8; 40]) -> Option<&'a str> {
    if given.len() != buf.len() {
        return None;
    }
    for (b, g) in buf.iter_mut().zip(given) {
        *b = g.to_ascii_lowercase();
    }
    std::str::from_utf8(buf).ok()
}

/// The SHA1 of `body`, in lower-case hex (a script's name).
pub fn sha1hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

/// A script that has run long enough to be visible (SCRIPT KILL, FUNCTION STATS, BUSY).
pub struct RunInfo {
    pub started: Instant,
    /// Monotonic milliseconds at the start, plus one (0 never occurs).
    started_ms: u64,
    pub is_eval: bool,
    /// The script's sha or the function's name.
    pub name: String,
    /// The command that runs it (FUNCTION STATS).
    pub command: Vec<Bytes>,
    pub killed: AtomicBool,
    pub wrote: AtomicBool,
}

impl RunInfo {
    pub fn new(
        started: Instant,
        is_eval: bool,
        name: String,
        command: Vec<Bytes>,
        wrote: bool,
    ) -> RunInfo {
        let ago = started.elapsed().as_millis() as u64;
        RunInfo {
            started,
            started_ms: mono_ms().saturating_sub(ago) + 1,
            is_eval,
            name,
            command,
            killed: AtomicBool::new(false),
            wrote: AtomicBool::new(wrote),
        }
    }
}

fn mono_ms() -> u64 {
    crate::clock::mono_us() / 1000
}

/// The key range of an EVAL-family or FCALL-family request (`name numkeys key.. arg..`),
/// or its error: `bad_count` when numkeys is not an integer.
pub fn script_keys(req: &Request, bad_count: Frame) -> Result<std::ops::Range<usize>, Frame> {
    let n = crate::args::parse_i64(req.arg(2)).ok_or(bad_count)?;
    if n < 0 {
        return Err(Frame::err("ERR Number of keys can't be negative"));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > req.len() - 3 {
        return Err(Frame::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(3..3 + n)
}

/// The keys of EVAL (and friends), where numkeys must be an integer.
pub fn eval_keys(req: &Request) -> Result<std::ops::Range<usize>, Frame> {
    script_keys(req, crate::args::ERR_NOT_INT)
}

/// The keys of FCALL/FCALL_RO.
pub fn fcall_keys(req: &Request) -> Result<std::ops::Range<usize>, Frame> {
    script_keys(req, Frame::err("ERR Bad number of keys provided"))
}

/// Whether `name` (a command's lower-case name) runs a script with declared keys.
pub fn is_script_command(name: &str) -> bool {
    matches!(
        name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// A script command's declared keys (none when its key count is bad: it fails anyway).
pub fn declared_keys(req: &Request) -> std::ops::Range<usize> {
    if req.len() < 3 {
        return 0..0;
    }
    eval_keys(req).unwrap_or(0..0)
}

/// A node's Lua engines, script cache, libraries and running scripts.
pub struct Scripting {
    engines: Box<[Mutex<Option<Engine>>]>,
    /// Bumped by SCRIPT FLUSH: older engines start over.
    epoch: AtomicU64,
    /// Every cached script's body by sha (SCRIPT LOAD, EVAL, EXISTS).
    cache: Mutex<HashMap<String, Bytes>>,
    registry: RwLock<Arc<Registry>>,
    /// The generation of `registry`, readable without its lock.
    registry_gen: AtomicU64,
    /// Scripts running longer than a couple of milliseconds, oldest first.
    runs: Mutex<Vec<Arc<RunInfo>>>,
    /// The oldest entry of `runs`' start ([`RunInfo::started_ms`]), 0 when none: the one
    /// load every command pays for the BUSY check.
    oldest: AtomicU64,
    /// `busy-reply-threshold`, in milliseconds.
    threshold_ms: AtomicU64,
}

impl Default for Scripting {
    fn default() -> Self {
        Scripting {
            engines: (0..ENGINES).map(|_| Mutex::new(None)).collect(),
            epoch: AtomicU64::new(0),
            cache: Mutex::new(HashMap::new()),
            registry: RwLock::new(Arc::new(Registry::default())),
            registry_gen: AtomicU64::new(0),
            runs: Mutex::new(Vec::new()),
            oldest: AtomicU64::new(0),
            threshold_ms: AtomicU64::new(crate::config::DEFAULT_BUSY_THRESHOLD_MS),
        }
    }
}

/// An engine taken for one script (or one library load), fresh for the current epoch.
pub(crate) struct EngineGuard<'a>(MutexGuard<'a, Option<Engine>>);

impl EngineGuard<'_> {
    pub(crate) fn get(&mut self) -> &mut Engine {
        self.0.as_mut().expect("EngineGuard holds an engine")
    }
}

impl Scripting {
    /// Sets `busy-reply-threshold` (milliseconds).
    pub fn set_threshold(&self, ms: u64) {
        self.threshold_ms.store(ms, Relaxed);
    }

    /// Takes this thread's engine, or any free one, or waits for this thread's (off the
    /// runtime's worker). Made (for host `H`, the node's one) or remade when missing or
    /// older than the last SCRIPT FLUSH.
    pub(crate) fn engine<H: Host>(&self) -> Result<EngineGuard<'_>, Frame> {
        let start = crate::striped::thread_number() % ENGINES;
        let mut guard = None;
        for i in 0..ENGINES {
            if let Some(g) = self.engines[(start + i) % ENGINES].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let mut g = match guard {
            Some(g) => g,
            None => {
                let m = &self.engines[start];
                if crate::store::blocking_allowed() {
                    tokio::task::block_in_place(|| m.lock())
                } else {
                    m.lock()
                }
            }
        };
        let epoch = self.epoch.load(Relaxed);
        if g.as_ref().is_none_or(|e| e.epoch != epoch) {
            *g =
                Some(Engine::new::<H>(epoch).map_err(|e| {
                    Frame::error(format!("ERR cannot start the Lua interpreter: {e}"))
                })?);
        }
        Ok(EngineGuard(g))
    }

    /// The current libraries.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().clone()
    }

    /// The generation of the current libraries, read without a lock.
    pub(crate) fn registry_generation(&self) -> u64 {
        self.registry_gen.load(Relaxed)
    }

    fn install(&self, next: Registry) -> Arc<Registry> {
        let next = Arc::new(next);
        let mut w = self.registry.write();
        *w = next.clone();
        self.registry_gen.store(next.generation, Relaxed);
        next
    }

    // ---- running ----

    /// Registers a script that has run for a while (from the engine's hook).
    pub(crate) fn register(&self, info: RunInfo) -> Arc<RunInfo> {
        let info = Arc::new(info);
        let mut runs = self.runs.lock();
        runs.push(info.clone());
        runs.sort_by_key(|r| r.started_ms);
        self.oldest.store(runs[0].started_ms, Relaxed);
        info
    }

    pub(crate) fn unregister(&self, info: &Arc<RunInfo>) {
        let mut runs = self.runs.lock();
        runs.retain(|r| !Arc::ptr_eq(r, info));
        self.oldest
            .store(runs.first().map_or(0, |r| r.started_ms), Relaxed);
    }

    /// Whether a script may be busy (one load; the hot path's only cost).
    #[inline]
    pub fn maybe_busy(&self) -> bool {
        self.oldest.load(Relaxed) != 0
    }

    /// `-BUSY` when a script has run past `busy-reply-threshold`, naming the kill command
    /// that applies to it.
    pub fn busy_error(&self) -> Option<Frame> {
        let oldest = self.oldest.load(Relaxed);
        if oldest == 0 {
            return None;
        }
        let threshold = self.threshold_ms.load(Relaxed);
        if mono_ms() + 1 < oldest.saturating_add(threshold) {
            return None;
        }
        let runs = self.runs.lock();
        let first = runs.first()?;
        Some(if first.is_eval {
            BUSY_EVAL
        } else {
            BUSY_FUNCTION
        })
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL: stops the oldest running script if it is of
    /// that kind and has not written.
    pub fn kill(&self, eval: bool) -> Result<Frame, Frame> {
        let runs = self.runs.lock();
        let Some(r) = runs.first() else {
            return Err(Frame::err("NOTBUSY No scripts in execution right now."));
        };
        if r.wrote.load(Relaxed) {
            return Err(Frame::err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."));
        }
        if r.is_eval != eval {
            return Err(if r.is_eval { BUSY_EVAL } else { BUSY_FUNCTION });
        }
        r.killed.store(true, Relaxed);
        Ok(Frame::ok())
    }

    /// The oldest running script: name, command and milliseconds so far.
    pub fn running(&self) -> Option<(String, Vec<Bytes>, u64)> {
        let runs = self.runs.lock();
        runs.first().map(|r| {
            (
                r.name.clone(),
                r.command.clone(),
                r.started.elapsed().as_millis() as u64,
            )
        })
    }

    // ---- EVAL ----

    pub fn cached_scripts(&self) -> usize {
        self.cache.lock().len()
    }

    /// Bytes used by the Lua states that are not running a script now.
    pub fn used_memory(&self) -> usize {
        let epoch = self.epoch.load(Relaxed);
        self.engines
            .iter()
            .filter_map(|m| {
                m.try_lock().and_then(|g| {
                    g.as_ref()
                        .filter(|e| e.epoch == epoch)
                        .map(|e| e.used_memory())
                })
            })
            .sum()
    }

    /// SCRIPT LOAD: compiles `body` here (errors are the reply) and caches it.
    pub(crate) fn load_script<H: Host>(&self, body: &[u8]) -> Result<String, Frame> {
        let sha = sha1hex(body);
        let mut g = self.engine::<H>()?;
        let eng = g.get();
        if eng.script(&sha).is_none() {
            eng.compile(&sha, body)?;
        }
        self.remember(&sha, body)?;
        Ok(sha)
    }

    /// Caches the script `body` under `sha` (its error: the cache is full).
    pub(crate) fn remember(&self, sha: &str, body: &[u8]) -> Result<(), Frame> {
        let mut cache = self.cache.lock();
        if !cache.contains_key(sha) {
            if cache.len() >= MAX_SCRIPTS {
                return Err(Frame::err("ERR too many scripts cached; SCRIPT FLUSH"));
            }
            cache.insert(sha.to_string(), Bytes::copy_from_slice(body));
        }
        Ok(())
    }

    /// The body of a cached script (SCRIPT LOAD, EVAL), by its sha in any case.
    pub fn script_body(&self, sha: &[u8]) -> Option<Bytes> {
        let mut buf = [0; 40];
        let sha = sha_name(sha, &mut buf)?;
        self.cache.lock().get(sha).cloned()
    }

    pub fn script_exists(&self, sha: &[u8]) -> bool {
        let mut buf = [0; 40];
        sha_name(sha, &mut buf).is_some_and(|sha| self.cache.lock().contains_key(sha))
    }

    /// SCRIPT FLUSH: no script survives, and every Lua state starts over.
    pub fn flush_scripts(&self) {
        self.cache.lock().clear();
        self.epoch.fetch_add(1, Relaxed);
        for m in self.engines.iter() {
            if let Some(mut g) = m.try_lock() {
                *g = None;
            }
        }
    }

    // ---- FUNCTION ----

    /// Whether `req` is FCALL or FCALL_RO of a function this node does not have (in a
    /// cluster it is asked for first: `exec`'s `Pending::Pull`).
    pub fn unknown_function(&self, req: &Request) -> bool {
        req.len() >= 2
            && (req.arg(0).eq_ignore_ascii_case(b"fcall")
                || req.arg(0).eq_ignore_ascii_case(b"fcall_ro"))
            && self
                .registry()
                .function(&String::from_utf8_lossy(req.arg(1)))
                .is_none()
    }

    /// Runs a library's code in an engine: what it registered, as a library to install
    /// (versioned `version`) and the closures to keep in that engine.
    fn build_library(
        eng: &mut Engine,
        code: &[u8],
        version: library::Version,
    ) -> Result<Library, Frame> {
        let (name, _) =
            library::library_header(code).map_err(|e| Frame::error(format!("ERR {e}")))?;
        let functions = eng
            .load_library(code, engine::LOAD_TIMEOUT)
            .map_err(|e| Frame::error(one_line_err(&e)))?;
        Ok(Library {
            name,
            code: Bytes::copy_from_slice(code),
            functions,
            version,
        })
    }

    /// `FUNCTION LOAD [REPLACE]`: the library's name.
    pub(crate) fn function_load<H: Host>(
        &self,
        origin: &str,
        code: &[u8],
        replace: bool,
    ) -> Result<Frame, Frame> {
        let (name, _) =
            library::library_header(code).map_err(|e| Frame::error(format!("ERR {e}")))?;
        if !replace && self.registry().library(&name).is_some() {
            return Err(Frame::error(format!("ERR Library '{name}' already exists")));
        }
        let mut g = self.engine::<H>()?;
        let eng = g.get();
        let version = self.registry().next_version(origin);
        let lib = Self::build_library(eng, code, version)?;
        let next = {
            let current = self.registry();
            current
                .with_library(lib, replace)
                .map_err(|e| Frame::error(format!("ERR {e}")))?
        };
        let next = self.install(next);
        if let Some(lib) = next.library(&name) {
            eng.adopt(lib.clone());
        }
        Ok(Frame::bulk(name))
    }

    /// FUNCTION DELETE.
    pub fn function_delete(&self, origin: &str, name: &[u8]) -> Result<Frame, Frame> {
        let name = String::from_utf8_lossy(name);
        let current = self.registry();
        let next = current
            .without_library(&name, current.next_version(origin))
            .map_err(|e| Frame::error(format!("ERR {e}")))?;
        self.install(next);
        Ok(Frame::ok())
    }

    /// FUNCTION FLUSH.
    pub fn function_flush(&self, origin: &str) {
        let current = self.registry();
        self.install(current.flushed(current.next_version(origin)));
    }

    /// FUNCTION DUMP's payload.
    pub fn function_dump(&self) -> Vec<u8> {
        let reg = self.registry();
        crate::rdb::dump_functions(reg.libraries().map(|l| &l.code[..]))
    }

    /// FUNCTION RESTORE.
    pub(crate) fn function_restore<H: Host>(
        &self,
        origin: &str,
        payload: &[u8],
        policy: RestorePolicy,
    ) -> Result<Frame, Frame> {
        let codes =
            crate::rdb::read_functions(payload).map_err(|e| Frame::error(format!("ERR {e}")))?;
        let mut g = self.engine::<H>()?;
        let eng = g.get();
        let version = self.registry().next_version(origin);
        let mut libs = Vec::new();
        for code in &codes {
            libs.push(Self::build_library(eng, code, version.clone())?);
        }
        let next = self
            .registry()
            .restored(libs, policy)
            .map_err(|e| Frame::error(format!("ERR {e}")))?;
        self.install(next);
        // The engine loads the restored libraries again at the next FCALL here.
        Ok(Frame::ok())
    }

    /// Applies libraries and deletions newer than ours (from another node): loads each new
    /// library here first; one that fails to load is skipped (and logged).
    pub(crate) fn apply_state<H: Host>(
        &self,
        theirs: &[library::StateEntry],
    ) -> Result<bool, Frame> {
        let newer = self.registry().newer_in(theirs);
        if newer.is_empty() {
            return Ok(false);
        }
        let mut g = self.engine::<H>()?;
        let eng = g.get();
        let mut loaded = Vec::new();
        let mut entries = Vec::new();
        for e in newer {
            match &e.code {
                Some(code) => match Self::build_library(eng, code, e.version.clone()) {
                    Ok(lib) if lib.name == e.name => {
                        loaded.push(lib);
                        entries.push(e);
                    }
                    Ok(_) => {
                        tracing::warn!(library = %e.name, "a peer's library has another name in its code; skipped")
                    }
                    Err(err) => {
                        tracing::warn!(library = %e.name, error = ?err, "a peer's library failed to load; skipped")
                    }
                },
                None => entries.push(e),
            }
        }
        let next = self.registry().merge(entries, loaded);
        self.install(next);
        Ok(true)
    }
}

/// A load error as a one-line `ERR` reply.
fn one_line_err(e: &str) -> String {
    engine::one_line(&format!("ERR {e}"))
}

/// Whether a command may run while a script is busy (Redis's `allow-busy` commands).
pub fn allowed_while_busy(req: &Request) -> bool {
    let name = req.arg(0);
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("auth")
        || is("hello")
        || is("reset")
        || is("multi")
        || is("discard")
        || is("watch")
        || is("unwatch")
        || is("quit")
        || is("shutdown")
    {
        return true;
    }
    if req.len() < 2 {
        return false;
    }
    let sub = req.arg(1);
    (is("script") && sub.eq_ignore_ascii_case(b"kill"))
        || (is("function")
            && (sub.eq_ignore_ascii_case(b"kill") || sub.eq_ignore_ascii_case(b"stats")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha_is_named_in_lower_case_and_nothing_else_is_a_sha() {
        let mut buf = [0; 40];
        let sha = sha1hex(b"return 1");
        let upper = sha.to_ascii_uppercase();
        assert_eq!(sha_name(upper.as_bytes(), &mut buf), Some(sha.as_str()));
        assert_eq!(sha_name(sha.as_bytes(), &mut buf), Some(sha.as_str()));
        assert_eq!(sha_name(&upper.as_bytes()[1..], &mut buf), None);
        assert_eq!(sha_name(format!("{sha}0").as_bytes(), &mut buf), None);
        assert_eq!(sha_name(b"", &mut buf), None);
        assert_eq!(sha_name(&[0xff; 40], &mut buf), None);
        let s = Scripting::default();
        s.remember(&sha, b"return 1").unwrap();
        assert!(s.script_exists(upper.as_bytes()));
        assert_eq!(
            s.script_body(upper.as_bytes()).as_deref(),
            Some(&b"return 1"[..])
        );
        assert!(!s.script_exists(&upper.as_bytes()[..39]));
    }

    fn run(s: &Scripting, is_eval: bool, wrote: bool) -> Arc<RunInfo> {
        s.register(RunInfo::new(
            Instant::now(),
            is_eval,
            "x".into(),
            vec![Bytes::from_static(b"EVAL")],
            wrote,
        ))
    }

    #[test]
    fn kill_rules() {
        let s = Scripting::default();
        assert_eq!(
            s.kill(true),
            Err(Frame::err("NOTBUSY No scripts in execution right now."))
        );
        let r = run(&s, true, false);
        assert!(s.maybe_busy());
        assert_eq!(s.kill(false), Err(BUSY_EVAL));
        assert_eq!(s.kill(true), Ok(Frame::ok()));
        assert!(r.killed.load(Relaxed));
        s.unregister(&r);
        assert!(!s.maybe_busy());
        let w = run(&s, false, true);
        assert!(matches!(s.kill(false), Err(Frame::Error(e)) if e.starts_with("UNKILLABLE")));
        assert!(!w.killed.load(Relaxed));
        s.unregister(&w);
    }

    #[test]
    fn busy_after_the_threshold_only() {
        let s = Scripting::default();
        s.set_threshold(60_000);
        let r = run(&s, false, false);
        assert_eq!(s.busy_error(), None);
        s.set_threshold(0);
        assert_eq!(s.busy_error(), Some(BUSY_FUNCTION));
        s.unregister(&r);
        assert_eq!(s.busy_error(), None);
        let req = Request::from_args(["script", "KILL"]);
        assert!(allowed_while_busy(&req));
        assert!(allowed_while_busy(&Request::from_args([
            "function", "stats"
        ])));
        assert!(!allowed_while_busy(&Request::from_args([
            "function", "load", "x"
        ])));
        assert!(!allowed_while_busy(&Request::from_args(["ping"])));
    }
}
