//! ACL users, with Redis 6/7 semantics: passwords, command rules and categories, key and
//! channel patterns, selectors.
//!
//! This module is plain logic over the command table, which `cmd` owns and passes in as
//! plain data ([`Commands`]: each command's id, name and categories): [`User::apply`] takes
//! one rule of `ACL SETUSER` and changes the user or says why not, compiling command rules
//! against that table; [`User::check`] tells whether a request may run; [`User::describe`]
//! prints the rules back as `ACL LIST` does. The [`Acl`] registry holds the users; every
//! change bumps its generation so that connections refresh the user they run as before their
//! next command, as Redis applies a changed user to the clients already authenticated as it.
//! Nothing here imports `cmd` or `node`: `cmd::acl` makes the [`Commands`], derives each
//! command's categories and gives [`User::check`] a request's keys.
//!
//! Keys: a read-only command needs read access to its keys, a write command write access
//! (Redis's finer per-key-spec flags are approximated this way: `%R~`, `%W~` and `~` work as
//! in Redis for commands that only read or only write their keys).
//!
//! Beside the users, selectors and the registry here: `category` (the categories' names and
//! bits), `commands` (the command table as plain data) and `rules_file` (users as rules
//! between nodes and in the ACL file).

use crate::store::glob::glob_match;
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Release};
use std::sync::Arc;

use crate::sync::{Entry, Version};

mod category;
mod commands;
mod rules_file;

pub(crate) use category::bit;
pub use category::CATEGORIES;
pub use commands::{Command, Commands};
pub use rules_file::*;

/// Why `ACL SETUSER` refused a rule (Redis's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Unknown command or category name in ACL")]
    Unknown,
    #[error("Syntax error")]
    Syntax,
    #[error("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns")]
    AfterAllKeys,
    #[error("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels")]
    AfterAllChannels,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
    #[error("Selector flags are only valid inside selectors")]
    SelectorFlag,
}

/// One command rule, as given (kept to print the rules back).
#[derive(Clone, Debug, PartialEq, Eq)]
enum CmdRule {
    All(bool),
    Category(bool, &'static str),
    Command(bool, String),
}

impl CmdRule {
    fn text(&self) -> String {
        let sign = |allow: bool| if allow { '+' } else { '-' };
        match self {
            CmdRule::All(a) => format!("{}@all", sign(*a)),
            CmdRule::Category(a, c) => format!("{}@{c}", sign(*a)),
            CmdRule::Command(a, c) => format!("{}{c}", sign(*a)),
        }
    }
}

/// A key pattern with the access it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyPattern {
    pattern: Vec<u8>,
    read: bool,
    write: bool,
}

/// Commands, keys and channels that go together: the root selector of a user, or one of its
/// `(...)` selectors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    rules: Vec<CmdRule>,
    /// Sorted ids of the allowed commands, derived from `rules` (empty when all are).
    allowed: Vec<u32>,
    all_commands: bool,
    keys: Vec<KeyPattern>,
    all_keys: bool,
    channels: Vec<Vec<u8>>,
    all_channels: bool,
}

impl Selector {
    /// Compiles `rules` against the table: which commands they allow.
    fn recompute(&mut self, commands: &Commands) {
        let mut allowed = Vec::new();
        for cmd in commands.iter() {
            let full = match cmd.parent {
                Some(p) => format!("{p}|{}", cmd.name),
                None => cmd.name.to_string(),
            };
            let mut ok = false;
            for r in &self.rules {
                match r {
                    CmdRule::All(a) => ok = *a,
                    CmdRule::Category(a, c) => {
                        if cmd.categories & bit(c) != 0 {
                            ok = *a
                        }
                    }
                    CmdRule::Command(a, c) => {
                        // `+config` covers its subcommands; `+config|get` only that one.
                        if *c == full || cmd.parent.is_some_and(|p| p == c) {
                            ok = *a
                        }
                    }
                }
            }
            if ok {
                allowed.push(cmd.id);
            }
        }
        allowed.sort_unstable();
        self.all_commands = allowed.len() == commands.len();
        if self.all_commands {
            allowed.clear();
        }
        self.allowed = allowed;
    }

    fn allows_command(&self, id: u32) -> bool {
        self.all_commands || self.allowed.binary_search(&id).is_ok()
    }

    fn allows_key(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.all_keys
            || self
                .keys
                .iter()
                .any(|p| (p.read || !read) && (p.write || !write) && glob_match(&p.pattern, key))
    }

    fn allows_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| {
                if is_pattern {
                    // A pattern subscription must be granted literally (Redis's rule).
                    p == channel
                } else {
                    glob_match(p, channel)
                }
            })
    }

    /// Applies one rule that selectors understand; command rules are checked and compiled
    /// against `commands`.
    fn apply(&mut self, rule: &[u8], commands: &Commands) -> Result<(), RuleError> {
        let s = std::str::from_utf8(rule).map_err(|_| RuleError::Syntax)?;
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" => {
                self.all_keys = true;
                self.keys.clear();
                return Ok(());
            }
            "resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
                return Ok(());
            }
            "allchannels" => {
                self.all_channels = true;
                self.channels.clear();
                return Ok(());
            }
            "resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
                return Ok(());
            }
            "allcommands" => return self.command_rule(CmdRule::All(true), commands),
            "nocommands" => return self.command_rule(CmdRule::All(false), commands),
            _ => {}
        }
        if let Some(pat) = rule.strip_prefix(b"~") {
            return self.key_pattern(pat, true, true);
        }
        if rule.first() == Some(&b'%') {
            let tilde = rule
                .iter()
                .position(|&c| c == b'~')
                .ok_or(RuleError::Syntax)?;
            let mut read = false;
            let mut write = false;
            for &c in &rule[1..tilde] {
                match c.to_ascii_uppercase() {
                    b'R' => read = true,
                    b'W' => write = true,
                    _ => return Err(RuleError::Syntax),
                }
            }
            if !read && !write {
                return Err(RuleError::Syntax);
            }
            return self.key_pattern(&rule[tilde + 1..], read, write);
        }
        if let Some(pat) = rule.strip_prefix(b"&") {
            if self.all_channels {
                return Err(RuleError::AfterAllChannels);
            }
            if pat == b"*" {
                self.all_channels = true;
                self.channels.clear();
            } else if !self.channels.iter().any(|c| c == pat) {
                self.channels.push(pat.to_vec());
            }
            return Ok(());
        }
        let (allow, name) = match lower.as_bytes().first() {
            Some(b'+') => (true, &lower[1..]),
            Some(b'-') => (false, &lower[1..]),
            _ => return Err(RuleError::Syntax),
        };
        if let Some(cat) = name.strip_prefix('@') {
            if cat == "all" {
                return self.command_rule(CmdRule::All(allow), commands);
            }
            let cat = CATEGORIES
                .iter()
                .find(|c| **c == cat)
                .ok_or(RuleError::Unknown)?;
            return self.command_rule(CmdRule::Category(allow, cat), commands);
        }
        // `+cmd` or `+cmd|sub`; the command must exist (and the subcommand, when named).
        let (top, sub) = match name.split_once('|') {
            Some((t, s)) => (t, Some(s)),
            None => (name, None),
        };
        if !commands.has(top, None) {
            return Err(RuleError::Unknown);
        }
        // Redis allows `+select|0`-style first-argument rules only for commands without
        // subcommands; CHKV keeps to real subcommands.
        if sub.is_some_and(|sub| !commands.has(top, Some(sub))) {
            return Err(RuleError::Unknown);
        }
        self.command_rule(CmdRule::Command(allow, name.to_string()), commands)
    }

    fn key_pattern(&mut self, pat: &[u8], read: bool, write: bool) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::AfterAllKeys);
        }
        if pat == b"*" && read && write {
            self.all_keys = true;
            self.keys.clear();
            return Ok(());
        }
        match self.keys.iter_mut().find(|k| k.pattern == pat) {
            Some(k) => {
                k.read |= read;
                k.write |= write;
            }
            None => self.keys.push(KeyPattern {
                pattern: pat.to_vec(),
                read,
                write,
            }),
        }
        Ok(())
    }

    fn command_rule(&mut self, rule: CmdRule, commands: &Commands) -> Result<(), RuleError> {
        if matches!(rule, CmdRule::All(_)) {
            // Everything before `+@all`/`-@all` is overridden by it.
            self.rules.clear();
        }
        self.rules.push(rule);
        self.recompute(commands);
        Ok(())
    }

    /// The command rules as `ACL LIST` prints them: `+@all`/`-@all` first.
    fn commands_parts(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if !matches!(self.rules.first(), Some(CmdRule::All(_))) {
            parts.push("-@all".to_string());
        }
        parts.extend(self.rules.iter().map(CmdRule::text));
        parts
    }

    fn commands_text(&self) -> String {
        self.commands_parts().join(" ")
    }

    fn keys_parts(&self) -> Vec<String> {
        if self.all_keys {
            return vec!["~*".into()];
        }
        self.keys
            .iter()
            .map(|k| {
                // Rules are UTF-8 (checked by `apply`), so patterns are too.
                let p = String::from_utf8_lossy(&k.pattern);
                match (k.read, k.write) {
                    (true, true) => format!("~{p}"),
                    (true, false) => format!("%R~{p}"),
                    _ => format!("%W~{p}"),
                }
            })
            .collect()
    }

    fn keys_text(&self) -> String {
        self.keys_parts().join(" ")
    }

    fn channels_parts(&self) -> Vec<String> {
        if self.all_channels {
            return vec!["&*".into()];
        }
        self.channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect()
    }

    fn channels_text(&self) -> String {
        self.channels_parts().join(" ")
    }

    /// The rules that make this selector from an empty one: `~... &... +@...` in ACL LIST's
    /// order, `resetchannels` standing for no channels.
    fn rules(&self) -> Vec<String> {
        let mut parts = self.keys_parts();
        let channels = self.channels_parts();
        if channels.is_empty() {
            parts.push("resetchannels".into());
        } else {
            parts.extend(channels);
        }
        parts.extend(self.commands_parts());
        parts
    }

    fn describe(&self) -> String {
        self.rules().join(" ")
    }
}

/// What a denied request lacked (ACL LOG's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    pub fn reason(self) -> &'static str {
        match self {
            Denied::Command => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
        }
    }
}

/// Channel arguments of the Pub/Sub commands: (first argument, whether they are patterns).
fn channel_args(name: &str) -> Option<(usize, bool, bool)> {
    // (first channel position, all remaining arguments?, patterns?)
    match name {
        "publish" | "spublish" => Some((1, false, false)),
        "subscribe" | "ssubscribe" => Some((1, true, false)),
        "psubscribe" => Some((1, true, true)),
        _ => None,
    }
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: Vec<u8>,
    pub enabled: bool,
    pub nopass: bool,
    /// SHA-256 of each password.
    passwords: Vec<[u8; 32]>,
    root: Selector,
    selectors: Vec<Selector>,
    sanitize_payload: Option<bool>,
}

pub fn hash_password(pw: &[u8]) -> [u8; 32] {
    Sha256::digest(pw).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_hash(h: &[u8]) -> Result<[u8; 32], RuleError> {
    if h.len() != 64 || !h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RuleError::BadHash);
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let s = std::str::from_utf8(&h[2 * i..2 * i + 2]).map_err(|_| RuleError::BadHash)?;
        *o = u8::from_str_radix(s, 16).map_err(|_| RuleError::BadHash)?;
    }
    Ok(out)
}

impl User {
    /// A new user as `ACL SETUSER name` makes it: off, no passwords, no commands (no rules:
    /// nothing to compile), no keys, no channels (Redis 7's `acl-pubsub-default
    /// resetchannels`).
    pub fn new(name: &[u8]) -> User {
        User {
            name: name.to_vec(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            root: Selector::default(),
            selectors: Vec::new(),
            sanitize_payload: None,
        }
    }

    /// The `default` user: on, no password, every command, key and channel, as the rules
    /// `on nopass allkeys allchannels +@all` make it. A lone `+@all` allows every command
    /// whatever the table holds, so this needs no [`Commands`] (the node makes it at start).
    pub fn default_user() -> User {
        User {
            enabled: true,
            nopass: true,
            root: Selector {
                rules: vec![CmdRule::All(true)],
                all_commands: true,
                all_keys: true,
                all_channels: true,
                ..Selector::default()
            },
            ..User::new(b"default")
        }
    }

    /// Whether this user may run anything on any key and channel (the fast path).
    pub fn unrestricted(&self) -> bool {
        self.root.all_commands && self.root.all_keys && self.root.all_channels
    }

    /// Applies one `ACL SETUSER` rule; command rules are checked and compiled against
    /// `commands`.
    pub fn apply(&mut self, rule: &[u8], commands: &Commands) -> Result<(), RuleError> {
        if rule.first() == Some(&b'(') {
            let inner = rule
                .strip_prefix(b"(")
                .and_then(|r| r.strip_suffix(b")"))
                .ok_or(RuleError::Syntax)?;
            let mut sel = Selector::default();
            for r in inner.split(|&c| c == b' ').filter(|r| !r.is_empty()) {
                sel.apply(r, commands)?;
            }
            self.selectors.push(sel);
            return Ok(());
        }
        match self.apply_own(rule) {
            Some(done) => done,
            None => self.root.apply(rule, commands),
        }
    }

    /// Applies a rule about the user itself (`on`, `off`, passwords, `reset`, ...), which
    /// needs no command table; `None` when `rule` is not one (a rule of the root selector).
    fn apply_own(&mut self, rule: &[u8]) -> Option<Result<(), RuleError>> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"clearselectors" => self.selectors.clear(),
            b"sanitize-payload" => self.sanitize_payload = Some(true),
            b"skip-sanitize-payload" => self.sanitize_payload = Some(false),
            b"reset" => {
                let name = std::mem::take(&mut self.name);
                *self = User::new(&name);
            }
            _ => match rule.first() {
                Some(b'>') => {
                    let h = hash_password(&rule[1..]);
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                Some(b'#') => {
                    let h = match parse_hash(&rule[1..]) {
                        Ok(h) => h,
                        Err(e) => return Some(Err(e)),
                    };
                    if !self.passwords.contains(&h) {
                        self.passwords.push(h);
                    }
                    self.nopass = false;
                }
                Some(b'<') => {
                    let h = hash_password(&rule[1..]);
                    let before = self.passwords.len();
                    self.passwords.retain(|p| *p != h);
                    if self.passwords.len() == before {
                        return Some(Err(RuleError::NoSuchPassword));
                    }
                }
                Some(b'!') => {
                    let h = match parse_hash(&rule[1..]) {
                        Ok(h) => h,
                        Err(e) => return Some(Err(e)),
                    };
                    let before = self.passwords.len();
                    self.passwords.retain(|p| *p != h);
                    if self.passwords.len() == before {
                        return Some(Err(RuleError::NoSuchPassword));
                    }
                }
                _ => return None,
            },
        }
        Some(Ok(()))
    }

    /// Whether `password` opens this user (enabled, and nopass or a matching hash).
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let h = hash_password(password);
        // Compare every stored hash without stopping early.
        self.passwords
            .iter()
            .fold(false, |ok, p| ok | constant_time_eq(p, &h))
    }

    /// Checks a request against the user's selectors: allowed when one selector allows the
    /// command with all its keys and channels. `id` is the command's (see [`Command::id`]),
    /// `top` the name of its top-level command (the Pub/Sub commands' channels are found by
    /// it), `keys` the positions of its keys in `args`, which the command reads (`read`) or
    /// writes (`write`), as the table says; `args` are the request's arguments.
    pub fn check(
        &self,
        id: u32,
        top: &str,
        keys: impl IntoIterator<Item = usize>,
        read: bool,
        write: bool,
        args: &[&[u8]],
    ) -> Result<(), Denied> {
        let keys: Vec<usize> = keys.into_iter().collect();
        let channels: Vec<(usize, bool)> = match channel_args(top) {
            Some((first, rest, pattern)) => {
                let last = if rest { args.len() } else { first + 1 };
                (first..last.min(args.len()))
                    .map(|i| (i, pattern))
                    .collect()
            }
            None => Vec::new(),
        };
        let mut first_denial = None;
        for sel in std::iter::once(&self.root).chain(&self.selectors) {
            let verdict = if !sel.allows_command(id) {
                Err(Denied::Command)
            } else if let Some(&k) = keys
                .iter()
                .find(|&&k| !sel.allows_key(args[k], read, write))
            {
                Err(Denied::Key(k))
            } else if let Some(&(c, _)) = channels
                .iter()
                .find(|&&(c, pat)| !sel.allows_channel(args[c], pat))
            {
                Err(Denied::Channel(c))
            } else {
                Ok(())
            };
            match verdict {
                Ok(()) => return Ok(()),
                Err(d) => {
                    first_denial.get_or_insert(d);
                }
            }
        }
        Err(first_denial.unwrap_or(Denied::Command))
    }

    fn flag_words(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize_payload {
            Some(true) => f.push("sanitize-payload"),
            Some(false) => f.push("skip-sanitize-payload"),
            None => {}
        }
        f
    }

    /// The rules that make this user from `User::new` (its name aside), one per item: flags,
    /// password hashes, root rules, then each selector as one `(...)` rule.
    pub fn rules(&self) -> Vec<String> {
        let mut parts: Vec<String> = self.flag_words().iter().map(|s| s.to_string()).collect();
        parts.extend(self.passwords.iter().map(|p| format!("#{}", hex(p))));
        parts.extend(self.root.rules());
        for s in &self.selectors {
            parts.push(format!("({})", s.describe()));
        }
        parts
    }

    /// The user as one `ACL LIST` line (and an aclfile line).
    pub fn describe(&self) -> String {
        format!(
            "user {} {}",
            String::from_utf8_lossy(&self.name),
            self.rules().join(" ")
        )
    }

    /// `ACL GETUSER`'s fields, as (name, value) with values already in reply shape.
    pub fn getuser(&self) -> Vec<(&'static str, GetUserValue)> {
        let sel = |s: &Selector| {
            vec![
                ("commands", s.commands_text()),
                ("keys", s.keys_text()),
                ("channels", s.channels_text()),
            ]
        };
        vec![
            (
                "flags",
                GetUserValue::List(self.flag_words().iter().map(|s| s.to_string()).collect()),
            ),
            (
                "passwords",
                GetUserValue::List(self.passwords.iter().map(|p| hex(p)).collect()),
            ),
            ("commands", GetUserValue::Text(self.root.commands_text())),
            ("keys", GetUserValue::Text(self.root.keys_text())),
            ("channels", GetUserValue::Text(self.root.channels_text())),
            (
                "selectors",
                GetUserValue::Selectors(self.selectors.iter().map(sel).collect()),
            ),
        ]
    }
}

/// A value of `ACL GETUSER`'s reply.
pub enum GetUserValue {
    Text(String),
    List(Vec<String>),
    Selectors(Vec<Vec<(&'static str, String)>>),
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `ACL SETUSER`'s arguments into rules, joining a selector written over several
/// arguments (`(~x` `+get)`) back into one.
pub fn split_rules<'a>(
    args: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Vec<u8>>, RuleError> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut open: Option<Vec<u8>> = None;
    for a in args {
        match open.as_mut() {
            Some(buf) => {
                buf.push(b' ');
                buf.extend_from_slice(a);
                if a.ends_with(b")") {
                    out.extend(open.take());
                }
            }
            None if a.first() == Some(&b'(') && !a.ends_with(b")") => open = Some(a.to_vec()),
            None => out.push(a.to_vec()),
        }
    }
    if open.is_some() {
        return Err(RuleError::Syntax);
    }
    Ok(out)
}

/// One `ACL LOG` entry.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    /// Milliseconds since the Unix epoch, of the first and of the latest occurrence.
    pub created: u64,
    pub updated: u64,
    pub client_info: String,
}

/// Most entries `ACL LOG` keeps (Redis's `acllog-max-len` default).
pub const LOG_MAX: usize = 128;

/// The users of a node, each with the [`Version`] of its last change, and the names deleted
/// (with theirs), so that nodes can exchange them (see [`crate::sync`]).
#[derive(Default)]
struct Users {
    map: BTreeMap<Vec<u8>, (Arc<User>, Version)>,
    tombstones: BTreeMap<Vec<u8>, Version>,
    /// The largest version counter seen: the next change takes the one after it.
    clock: u64,
}

impl Users {
    /// The version a change made now gets: `origin`'s next one, or 0 for the node's own
    /// configuration at start (`None`).
    fn next_version(&self, origin: Option<&str>) -> Version {
        match origin {
            Some(o) => Version {
                counter: self.clock.saturating_add(1),
                origin: o.to_string(),
            },
            None => Version::default(),
        }
    }

    fn put(&mut self, u: User, v: Version) {
        self.clock = self.clock.max(v.counter);
        self.tombstones.remove(&u.name);
        self.map.insert(u.name.clone(), (Arc::new(u), v));
    }

    fn remove(&mut self, name: &[u8], v: Version) -> bool {
        self.clock = self.clock.max(v.counter);
        let existed = self.map.remove(name).is_some();
        self.tombstones.insert(name.to_vec(), v);
        existed
    }
}

/// The users of a node.
pub struct Acl {
    users: RwLock<Users>,
    generation: AtomicU64,
    log: Mutex<VecDeque<LogEntry>>,
}

impl Default for Acl {
    fn default() -> Self {
        let mut users = Users::default();
        users.put(User::default_user(), Version::default());
        Acl {
            users: RwLock::new(users),
            generation: AtomicU64::new(0),
            log: Mutex::new(VecDeque::new()),
        }
    }
}

impl Acl {
    /// Moves on every change of any user.
    pub fn generation(&self) -> u64 {
        self.generation.load(Acquire)
    }

    pub fn get(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users.read().map.get(name).map(|(u, _)| u.clone())
    }

    pub fn names(&self) -> Vec<Vec<u8>> {
        self.users.read().map.keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<User>> {
        self.users
            .read()
            .map
            .values()
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// `ACL SETUSER`: applies every rule to a copy of the user (a new one when absent), and
    /// installs it only when all were valid. Returns the failing rule and why. `origin` is
    /// the node making the change (`None`: this node's configuration at start); command
    /// rules are compiled against `commands`.
    pub fn set_user(
        &self,
        name: &[u8],
        rules: &[Vec<u8>],
        origin: Option<&str>,
        commands: &Commands,
    ) -> Result<(), (Vec<u8>, RuleError)> {
        self.change_user(name, origin, |u| {
            for r in rules {
                u.apply(r, commands).map_err(|e| (r.clone(), e))?;
            }
            Ok(())
        })
    }

    /// Changes a copy of the user `name` (a new one when absent) with `change`, and installs
    /// it only when `change` succeeds.
    fn change_user<E>(
        &self,
        name: &[u8],
        origin: Option<&str>,
        change: impl FnOnce(&mut User) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut users = self.users.write();
        let mut u = users
            .map
            .get(name)
            .map(|(u, _)| (**u).clone())
            .unwrap_or_else(|| User::new(name));
        change(&mut u)?;
        let v = users.next_version(origin);
        users.put(u, v);
        self.generation.fetch_add(1, Release);
        Ok(())
    }

    /// Removes users (never `default`); returns how many existed.
    pub fn delete(&self, names: &[&[u8]], origin: Option<&str>) -> usize {
        let mut users = self.users.write();
        let v = users.next_version(origin);
        let mut n = 0;
        for name in names {
            if *name != b"default" && users.map.contains_key(*name) {
                users.remove(name, v.clone());
                n += 1;
            }
        }
        self.generation.fetch_add(1, Release);
        n
    }

    /// Replaces every user at once (ACL LOAD, `--aclfile` at start); `default` is kept as it
    /// is when absent.
    pub fn replace_all(&self, new: Vec<User>, origin: Option<&str>) {
        let mut users = self.users.write();
        let v = users.next_version(origin);
        let gone: Vec<Vec<u8>> = users
            .map
            .keys()
            .filter(|n| *n != b"default" && !new.iter().any(|u| u.name == **n))
            .cloned()
            .collect();
        for n in gone {
            users.remove(&n, v.clone());
        }
        for u in new {
            users.put(u, v.clone());
        }
        self.generation.fetch_add(1, Release);
    }

    /// Sets the default user's password from `requirepass` (empty: no password), as Redis
    /// does at start (`origin` `None`) and on CONFIG SET. Password rules are the user's own,
    /// so this needs no [`Commands`].
    pub fn set_requirepass(&self, pass: Option<&[u8]>, origin: Option<&str>) {
        let rules: Vec<Vec<u8>> = match pass {
            Some(p) => vec![b"resetpass".to_vec(), [b">", p].concat()],
            None => vec![b"nopass".to_vec()],
        };
        let _ = self.change_user(b"default", origin, |u| {
            rules
                .iter()
                .try_for_each(|r| u.apply_own(r).expect("a password rule"))
        });
    }

    /// Every user (its rules as the payload) and deleted name, with versions, sorted by name:
    /// what this node sends to its peers.
    pub fn state(&self) -> Vec<Entry> {
        let users = self.users.read();
        let mut out: Vec<Entry> = users
            .map
            .iter()
            .map(|(name, (u, v))| Entry {
                name: name.clone(),
                version: v.clone(),
                payload: Some(encode_rules(&u.rules())),
            })
            .chain(users.tombstones.iter().map(|(name, v)| Entry {
                name: name.clone(),
                version: v.clone(),
                payload: None,
            }))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Keeps, per name, what of a peer's state is newer than ours (a user whose rules do not
    /// apply here, against `commands`, is skipped and logged; `default` is never deleted).
    /// Whether anything changed; clients of a changed or deleted user see it before their
    /// next command.
    pub fn apply_state(&self, theirs: &[Entry], commands: &Commands) -> bool {
        let mut users = self.users.write();
        let mut changed = false;
        for e in theirs {
            let ours = users
                .map
                .get(&e.name)
                .map(|(_, v)| v)
                .or_else(|| users.tombstones.get(&e.name));
            if ours.is_some_and(|v| e.version <= *v) {
                continue;
            }
            match &e.payload {
                Some(p) => match user_from_rules(&e.name, p, commands) {
                    Ok(u) => users.put(u, e.version.clone()),
                    Err(why) => {
                        tracing::warn!(user = %String::from_utf8_lossy(&e.name), %why, "a peer's user does not apply here; skipped");
                        continue;
                    }
                },
                None if e.name == b"default" => continue,
                None => {
                    users.remove(&e.name, e.version.clone());
                }
            }
            changed = true;
        }
        if changed {
            self.generation.fetch_add(1, Release);
        }
        changed
    }

    /// Records a denial or a failed AUTH, merging it with a recent identical entry.
    pub fn log(&self, entry: LogEntry) {
        let mut log = self.log.lock();
        // Redis merges an entry with a same one less than 60 s old.
        if let Some(e) = log.iter_mut().find(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.object == entry.object
                && e.username == entry.username
                && entry.created.saturating_sub(e.updated) < 60_000
        }) {
            e.count += 1;
            e.updated = entry.created;
            e.client_info = entry.client_info;
            return;
        }
        log.push_front(entry);
        log.truncate(LOG_MAX);
    }

    pub fn log_entries(&self, count: usize) -> Vec<LogEntry> {
        self.log.lock().iter().take(count).cloned().collect()
    }

    pub fn log_reset(&self) {
        self.log.lock().clear();
    }
}

#[cfg(test)]
mod tests;
