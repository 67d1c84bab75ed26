//! The one error type of the library.

use std::net::SocketAddr;
use std::time::Duration;

use crate::value::{ServerError, ServerErrorKind};

/// Everything a call can fail with. Each variant says whether the library already retried.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A DataNode could not be reached, or its connection dropped before the reply arrived.
    /// Routed commands retry this within the retry budget (the ring may have changed), so a
    /// caller sees it only from per-node calls or inside [`Error::RetriesExhausted`].
    #[error("connection to {addr}: {message}")]
    Connection { addr: SocketAddr, message: String },
    /// The server sent bytes that are not RESP; the connection was closed. Not retried.
    #[error("protocol error from {addr}: {message}")]
    Protocol { addr: SocketAddr, message: String },
    /// An error reply, with Redis's code and text (`WRONGTYPE Operation against ...`). Only
    /// cluster errors (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`) are retried; those reach
    /// the caller only when the budget runs out.
    #[error("{0}")]
    Server(ServerError),
    /// No reply within the response timeout. Not retried: the command may have run.
    #[error("no reply from {addr} within {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    /// No slot table: the NameNode answers but has no table yet (no DataNode registered), or
    /// no DataNode owns the key's slot even after waiting for a new table.
    #[error("no cluster: {0}")]
    NoCluster(String),
    /// Connecting: nothing could be reached at any of the NameNode addresses given (nothing
    /// listens, the host does not resolve, or the connect timed out). Reported as soon as
    /// every address has failed once.
    #[error("cannot reach a NameNode at {addrs}: {message}")]
    NameNodeUnreachable { addrs: String, message: String },
    /// Connecting: something answers at the address, but not as a NameNode's client (watch)
    /// port does: a DataNode, Redis, the NameNode's DataNode or HTTP port. Reported as soon
    /// as every address has failed once.
    #[error("{addr} is not a NameNode's client port (--client-port, 10102 by default): {message}")]
    NotNameNode { addr: String, message: String },
    /// The retry budget (attempts or time) ran out; `last` is the last failure.
    #[error("gave up after {attempts} attempts in {elapsed:?}: {last}")]
    RetriesExhausted {
        attempts: u32,
        elapsed: Duration,
        last: Box<Error>,
    },
    /// A reply of another type than the command returns (a bug on one side).
    #[error("unexpected reply: {0}")]
    Type(String),
    /// A call the client cannot send, e.g. a command without arguments, or options that
    /// Redis would refuse.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Error {
    /// The server's error reply, if this is one (also inside `RetriesExhausted`).
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            Error::RetriesExhausted { last, .. } => last.server_error(),
            _ => None,
        }
    }

    /// The error code of a server error reply (`ERR`, `WRONGTYPE`, ...).
    pub fn code(&self) -> Option<&str> {
        self.server_error().map(ServerError::code)
    }
}

/// What the retry loop does after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Give the error to the caller.
    No,
    /// Go to this node now (MOVED updates the map too).
    Moved { slot: u16, addr: SocketAddr },
    /// Go to this node once, with ASKING.
    Ask { addr: SocketAddr },
    /// Wait (for a new table, or a backoff) and route again.
    Later,
}

impl Error {
    pub(crate) fn retry(&self) -> Retry {
        match self {
            Error::Server(e) => match e.kind() {
                ServerErrorKind::Moved { slot, addr } => Retry::Moved { slot, addr },
                ServerErrorKind::Ask { addr, .. } => Retry::Ask { addr },
                ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::Loading => Retry::Later,
                ServerErrorKind::CrossSlot | ServerErrorKind::NoScript | ServerErrorKind::Other => {
                    Retry::No
                }
            },
            Error::Connection { .. } => Retry::Later,
            // No owner for the slot: a new table may bring one.
            Error::NoCluster(_) => Retry::Later,
            _ => Retry::No,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
