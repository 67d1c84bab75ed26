//! Test support for the CHKV crates, used as a dev-dependency by the DataNode's, the
//! NameNode's and the client library's tests, so no helper is written twice:
//!
//! - [`wait`]: time bounds for a test and its steps, polling until a condition holds.
//! - [`process`]: the real `chkv-datanode` and `chkv-namenode` binaries as child processes
//!   on free ports, their addresses read from the `--ports-file` they write, SIGKILLed on
//!   drop.
//! - [`redis_server`]: a real redis-server on a free port, for comparisons and migrations.
//! - [`pki`]: a throwaway CA with server and client certificates, as PEM files.
//! - [`prom`]: a checker for the Prometheus text exposition format, independent of the
//!   crate that writes it.
//!
//! It depends on `chkv-datanode` and `chkv-namenode`, which dev-depend on it: cargo builds
//! the libraries first, then this crate, then their tests, all linking the same libraries.

pub mod pki;
pub mod process;
pub mod prom;
pub mod redis_server;
pub mod wait;
