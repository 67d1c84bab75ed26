//! # CHKV client
//!
//! The embedded async (tokio) client library will watch the NameNode's ring, keep pipelined
//! connections to each DataNode and route every key to its owner by slot, retrying on ring
//! changes. It is built by the client-library issue; until then this crate only holds its place
//! in the workspace. Any Redis client can already talk to a DataNode directly.
