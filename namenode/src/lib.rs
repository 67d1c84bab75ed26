//! # CHKV NameNode
//!
//! The NameNode will keep the cluster's membership and its consistent-hash ring: DataNodes
//! register and heartbeat on port 10101, clients watch the ring on port 10102 and receive every
//! new slot table, and an HTTP port (10180) reports status. It is built by the NameNode issue;
//! until then this crate only holds its place in the workspace.
