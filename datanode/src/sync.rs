//! Node-wide state kept the same on every DataNode of a cluster: FUNCTION libraries and ACL
//! users (one mechanism for both, each a [`Set`]).
//!
//! Each node keeps its own copy of a set, where every entry (a library, a user) and every
//! deleted name (a tombstone) carries a [`Version`]: a counter, then the node that made the
//! change. Two nodes *exchange* a set with the internal `CLUSTER FUNCTIONS STATE` or
//! `CLUSTER USERS STATE` (sent over the authenticated peer connection): the caller sends its
//! entries, the callee keeps those newer than its own and answers with all of its entries,
//! which the caller merges the same way. Merging is per name and keeps the newer version, so
//! any set of nodes that exchanges in any order ends up with the same entries.
//!
//! When they exchange:
//! - **after a change**: FUNCTION LOAD/DELETE/FLUSH/RESTORE, ACL SETUSER/DELUSER/LOAD and
//!   `CONFIG SET requirepass` on any node exchange with every other DataNode of the table
//!   before the client gets its reply, so a function loaded (a user created) through one
//!   node is callable (can log in) through any node as soon as the command returns (a node
//!   that cannot be reached catches up as below);
//! - **continuously**: each node asks every other node for a digest of each set every
//!   [`PERIOD`] and exchanges the sets that differ. A node that joins later, restarts or was
//!   unreachable gets every library and user within a period of appearing in the table;
//! - **on a miss**: FCALL of a function this node does not know, in a cluster, first
//!   exchanges with the other nodes (a pending reply of its connection, see
//!   [`crate::exec::Pending::Pull`]), so a node that has just joined never answers
//!   "Function not found" for a function the cluster has.
//!
//! This module is the data both sides of an exchange share (versions, entries, the state's
//! encoding and digest); the node's side, which reads and merges a node's sets and talks to
//! the other nodes, is [`crate::cmd::sync`].
//!
//! What a node had from its own configuration at start (`requirepass`, `--aclfile`) has
//! version 0: any change made in the cluster since supersedes it, and between two nodes
//! that both have version 0 for one name each keeps its own (configure them alike).

use crate::args::{parse_i64, ERR_SYNTAX};
use crate::resp::Frame;
use bytes::Bytes;
use std::time::Duration;

/// How often a node compares its sets with every other node's.
pub const PERIOD: Duration = Duration::from_millis(500);
/// How long FCALL of an unknown function waits for the other nodes' libraries.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(1);

/// When a change was made, and where: ordered by counter, then by node id, so every node
/// picks the same winner between two changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub counter: u64,
    pub origin: String,
}

/// One entry of a set as it travels between nodes: a name, its version, and its payload
/// (a library's code, a user's rules), none for a deleted name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub version: Version,
    pub payload: Option<Bytes>,
}

/// The sets kept the same on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    /// FUNCTION libraries (see [`crate::lua`]).
    Functions,
    /// ACL users (see [`crate::acl`]).
    Users,
}

impl Set {
    pub const ALL: [Set; 2] = [Set::Functions, Set::Users];

    /// The CLUSTER subcommand that exchanges this set.
    pub fn word(self) -> &'static str {
        match self {
            Set::Functions => "FUNCTIONS",
            Set::Users => "USERS",
        }
    }

    pub fn by_word(word: &[u8]) -> Option<Set> {
        Set::ALL
            .into_iter()
            .find(|s| s.word().as_bytes().eq_ignore_ascii_case(word))
    }
}

/// The digest of a state: its names, versions and which are deleted (a version names one
/// content, so the payloads need not be hashed).
pub fn digest(entries: &[Entry]) -> String {
    let mut h = sha1_smol::Sha1::new();
    for e in entries {
        h.update(&e.name);
        h.update(&e.version.counter.to_le_bytes());
        h.update(e.version.origin.as_bytes());
        h.update(&[e.payload.is_some() as u8]);
    }
    h.digest().to_string()
}

/// Entries as the arguments of `CLUSTER FUNCTIONS|USERS STATE`: name, counter, origin,
/// payload (empty for a deleted name) per entry.
pub fn encode_state(entries: &[Entry]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(entries.len() * 4);
    for e in entries {
        out.push(Bytes::from(e.name.clone()));
        out.push(Bytes::from(e.version.counter.to_string().into_bytes()));
        out.push(Bytes::from(e.version.origin.clone().into_bytes()));
        out.push(e.payload.clone().unwrap_or_default());
    }
    out
}

/// The entries in arguments made by [`encode_state`].
pub fn decode_state(args: &[&[u8]]) -> Result<Vec<Entry>, Frame> {
    if !args.len().is_multiple_of(4) {
        return Err(ERR_SYNTAX);
    }
    args.chunks(4)
        .map(|c| {
            let counter = parse_i64(c[1])
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(ERR_SYNTAX)?;
            Ok(Entry {
                name: c[0].to_vec(),
                version: Version {
                    counter,
                    origin: String::from_utf8_lossy(c[2]).into_owned(),
                },
                payload: (!c[3].is_empty()).then(|| Bytes::copy_from_slice(c[3])),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip() {
        let entries = vec![
            Entry {
                name: b"lib".to_vec(),
                version: Version {
                    counter: 3,
                    origin: "node-a".into(),
                },
                payload: Some(Bytes::from_static(b"#!lua name=lib\n")),
            },
            Entry {
                name: b"gone".to_vec(),
                version: Version {
                    counter: 4,
                    origin: "node-b".into(),
                },
                payload: None,
            },
        ];
        let args = encode_state(&entries);
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        assert_eq!(decode_state(&refs), Ok(entries));
        assert!(decode_state(&refs[..3]).is_err());
        assert!(decode_state(&[b"a", b"-1", b"x", b""]).is_err());
    }

    #[test]
    fn sets_by_word() {
        assert_eq!(Set::by_word(b"functions"), Some(Set::Functions));
        assert_eq!(Set::by_word(b"USERS"), Some(Set::Users));
        assert_eq!(Set::by_word(b"other"), None);
    }
}
