//! TLS on the client port and, with `tls-cluster`, on the links between DataNodes and to the
//! NameNode, with rustls (the `ring` provider; see [`chkv_common::tls`]).
//!
//! The settings carry Redis's names (`tls-port`, `tls-cert-file`, `tls-key-file`,
//! `tls-ca-cert-file`, `tls-auth-clients`, `tls-cluster`) on the command line, in CONFIG GET
//! and CONFIG SET (`tls-cluster` is fixed at start). [`server_config`] turns them into a
//! rustls configuration, reading the PEM files; the node keeps the current one in a
//! [`TlsSlot`], which CONFIG SET of a TLS setting and SIGHUP replace. A connection takes the
//! configuration when it is accepted, so a reload changes what new connections see and never
//! disturbs an established one. [`cluster_config`] is the client side of cluster links: the
//! node's own certificate, and peers' certificates checked against the CA.

use parking_lot::RwLock;
use rustls::{ClientConfig, ServerConfig};
use std::path::PathBuf;
use std::sync::Arc;

pub use chkv_common::tls::{AuthClients, TlsError};

/// The TLS part of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// TLS port for clients: `None` = no TLS listener (Redis's `tls-port 0`, the default),
    /// `Some(0)` = any free port (tests).
    pub port: Option<u16>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// CA bundle that client certificates must chain to.
    pub ca_cert_file: Option<PathBuf>,
    pub auth_clients: AuthClients,
    /// `tls-cluster`: links to peers and to the NameNode over TLS, and peers accepted only
    /// on the TLS port.
    pub cluster: bool,
}

impl TlsSettings {
    /// Whether the node serves TLS.
    pub fn enabled(&self) -> bool {
        self.port.is_some()
    }

    /// Whether `other` needs a new rustls configuration (files or client checks changed).
    pub fn same_material(&self, other: &TlsSettings) -> bool {
        self.cert_file == other.cert_file
            && self.key_file == other.key_file
            && self.ca_cert_file == other.ca_cert_file
            && self.auth_clients == other.auth_clients
            && self.cluster == other.cluster
    }
}

/// Builds the rustls server configuration the settings describe, reading their files.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    chkv_common::tls::server_config(
        s.cert_file.as_deref(),
        s.key_file.as_deref(),
        s.ca_cert_file.as_deref(),
        s.auth_clients,
    )
}

/// The client side of cluster links (`tls-cluster`): this node's certificate and key, and
/// the CA peers' and the NameNode's certificates must chain to (their names are not
/// checked: nodes are reached at addresses from the control plane and prove who they are
/// with the cluster secret, as Redis's cluster bus does). `None` without `tls-cluster`.
pub fn cluster_config(s: &TlsSettings) -> Result<Option<Arc<ClientConfig>>, TlsError> {
    if !s.cluster {
        return Ok(None);
    }
    let cert = s.cert_file.as_deref().ok_or(TlsError::NoCert)?;
    let key = s.key_file.as_deref().ok_or(TlsError::NoKey)?;
    let ca = s.ca_cert_file.as_deref().ok_or(TlsError::NoClusterCa)?;
    chkv_common::tls::client_config(ca, Some((cert, key)), chkv_common::tls::ServerNames::Ignore)
        .map(Some)
}

/// The node's current TLS configurations, replaced on reload: the TLS port's, and the
/// client side of cluster links (`tls-cluster`).
#[derive(Default)]
pub struct TlsSlot {
    server: RwLock<Option<Arc<ServerConfig>>>,
    cluster: RwLock<Option<Arc<ClientConfig>>>,
}

impl TlsSlot {
    pub fn current(&self) -> Option<Arc<ServerConfig>> {
        self.server.read().clone()
    }

    /// The client side of cluster links, when `tls-cluster` is on.
    pub fn cluster(&self) -> Option<Arc<ClientConfig>> {
        self.cluster.read().clone()
    }

    /// Builds both configurations from `s` and installs them, or changes nothing and says
    /// why. Returns the cluster one (for the peer pool).
    pub fn load(&self, s: &TlsSettings) -> Result<Option<Arc<ClientConfig>>, TlsError> {
        let server = server_config(s)?;
        let cluster = cluster_config(s)?;
        *self.server.write() = Some(server);
        *self.cluster.write() = cluster.clone();
        Ok(cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_material_is_named() {
        let mut s = TlsSettings {
            port: Some(1),
            ..Default::default()
        };
        assert!(matches!(server_config(&s), Err(TlsError::NoCert)));
        s.cert_file = Some("/nonexistent/cert.pem".into());
        assert!(matches!(server_config(&s), Err(TlsError::NoKey)));
        s.key_file = Some("/nonexistent/key.pem".into());
        let e = server_config(&s).expect_err("no such file");
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    }

    #[test]
    fn cluster_links_need_a_ca() {
        let mut s = TlsSettings {
            port: Some(1),
            cert_file: Some("/nonexistent/cert.pem".into()),
            key_file: Some("/nonexistent/key.pem".into()),
            ..Default::default()
        };
        assert!(matches!(cluster_config(&s), Ok(None)));
        s.cluster = true;
        assert!(matches!(cluster_config(&s), Err(TlsError::NoClusterCa)));
        s.ca_cert_file = Some("/nonexistent/ca.pem".into());
        let e = cluster_config(&s).expect_err("no such file");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
