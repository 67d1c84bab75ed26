//! # CHKV client
//!
//! The embedded async client library (work in progress): so far its RESP2/RESP3 reply
//! decoder, reply values and error type.

// The pieces are wired into a client in the next commit.
#![allow(dead_code)]

mod error;
mod resp;
mod value;

pub use error::{Error, Result};
pub use value::{FromValue, ServerError, ServerErrorKind, Value};
