//! The Redis protocol: requests in, replies out.
//!
//! - [`parse`]: a resumable request parser for RESP multibulk and inline commands, with Redis's
//!   limits and error texts; it never allocates from a declared length.
//! - [`frame`]: the reply type and its RESP2/RESP3 encoder.
//! - [`reply`]: a parser for replies (RESP2 and RESP3), used when relaying another node's answer.

pub mod frame;
pub mod parse;
pub mod reply;

pub use frame::{Frame, Protocol};
pub use parse::{Limits, ParseError, Parser, Request};
