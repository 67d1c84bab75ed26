//! TLS on the client port, with rustls (the `ring` provider).
//!
//! The settings carry Redis's names (`tls-port`, `tls-cert-file`, `tls-key-file`,
//! `tls-ca-cert-file`, `tls-auth-clients`) on the command line, in CONFIG GET and CONFIG SET.
//! [`server_config`] turns them into a rustls configuration, reading the PEM files; the node
//! keeps the current one in a [`TlsSlot`], which CONFIG SET of a TLS setting and SIGHUP
//! replace. A connection takes the configuration when it is accepted, so a reload changes
//! what new connections see and never disturbs an established one.

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whether TLS clients must present a certificate (`tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthClients {
    /// A certificate signed by the CA is required (Redis's default).
    #[default]
    Yes,
    /// No certificate is asked for.
    No,
    /// A certificate is asked for and checked when given, but not required.
    Optional,
}

impl AuthClients {
    pub fn parse(s: &str) -> Option<AuthClients> {
        match s.to_ascii_lowercase().as_str() {
            "yes" => Some(AuthClients::Yes),
            "no" => Some(AuthClients::No),
            "optional" => Some(AuthClients::Optional),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthClients::Yes => "yes",
            AuthClients::No => "no",
            AuthClients::Optional => "optional",
        }
    }
}

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
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls-cert-file is not set")]
    NoCert,
    #[error("tls-key-file is not set")]
    NoKey,
    #[error("tls-auth-clients is {0}: tls-ca-cert-file must be set to check client certificates")]
    NoCa(&'static str),
    #[error("reading {path}: {why}")]
    File { path: String, why: String },
    #[error("{path} holds no {what}")]
    Empty { path: String, what: &'static str },
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.display().to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: path.display().to_string(),
            what: "private key",
        },
        e => file_error(path, e),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls server configuration the settings describe, reading their files.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = s.cert_file.as_deref().ok_or(TlsError::NoCert)?;
    let key = s.key_file.as_deref().ok_or(TlsError::NoKey)?;
    let chain = read_certs(cert)?;
    let key = read_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match s.auth_clients {
        AuthClients::No => builder.with_no_client_auth(),
        mode => {
            let ca = s
                .ca_cert_file
                .as_deref()
                .ok_or(TlsError::NoCa(mode.name()))?;
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| file_error(ca, format!("bad CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if mode == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    // RESP has no ALPN name; Redis announces none either.
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
}

/// The node's current TLS configuration, replaced on reload.
#[derive(Default)]
pub struct TlsSlot(RwLock<Option<Arc<ServerConfig>>>);

impl TlsSlot {
    pub fn current(&self) -> Option<Arc<ServerConfig>> {
        self.0.read().clone()
    }

    pub fn install(&self, config: Arc<ServerConfig>) {
        *self.0.write() = Some(config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_clients_names_round_trip() {
        for m in [AuthClients::Yes, AuthClients::No, AuthClients::Optional] {
            assert_eq!(AuthClients::parse(m.name()), Some(m));
        }
        assert_eq!(AuthClients::parse("YES"), Some(AuthClients::Yes));
        assert_eq!(AuthClients::parse("maybe"), None);
    }

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
    fn empty_pem_is_rejected() {
        let dir = std::env::temp_dir().join(format!("chkv-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not a pem\n").expect("write");
        let s = TlsSettings {
            port: Some(1),
            cert_file: Some(f.clone()),
            key_file: Some(f),
            ..Default::default()
        };
        let e = server_config(&s).expect_err("empty");
        assert!(matches!(e, TlsError::Empty { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
