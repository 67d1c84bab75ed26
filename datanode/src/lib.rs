//! # CHKV DataNode
//!
//! A DataNode holds data in memory and speaks the Redis protocol (RESP2 and RESP3).
//!
//! # Layout
//! - [`resp`]: request parsing and reply encoding.
//! - [`store`]: the slot-partitioned in-memory store with expiry.

pub mod resp;
pub mod store;
