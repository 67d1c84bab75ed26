//! TLS configurations with rustls (the `ring` provider), shared by the DataNode's client and
//! cluster ports, the NameNode's DataNode port and the client library.
//!
//! - [`server_config`]: a certificate chain and key, and, depending on [`AuthClients`], a CA
//!   that client certificates must chain to.
//! - [`client_config`]: a CA to check the server against and, optionally, a client
//!   certificate. With [`ServerNames::Check`] the server's certificate must also name the
//!   host connected to (what `rediss://` clients expect); with [`ServerNames::Ignore`] only
//!   its chain to the CA is checked, as Redis does on its cluster links: nodes are reached at
//!   addresses from the control plane, and who a node is, is proved by the cluster secret.
//!
//! PEM files are read when a configuration is built; a reload builds a new one.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use std::path::Path;
use std::sync::Arc;

pub use rustls;
pub use tokio_rustls;

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

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls-cert-file is not set")]
    NoCert,
    #[error("tls-key-file is not set")]
    NoKey,
    #[error("tls-auth-clients is {0}: tls-ca-cert-file must be set to check client certificates")]
    NoCa(&'static str),
    #[error("tls-cluster needs tls-ca-cert-file: the peers' certificates are checked against it")]
    NoClusterCa,
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

/// The certificates of a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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

/// The private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: path.display().to_string(),
            what: "private key",
        },
        e => file_error(path, e),
    })
}

/// The CA certificates of a PEM file as trust anchors.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots
            .add(c)
            .map_err(|e| file_error(path, format!("bad CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration: `cert` (chain) and `key`; client certificates as `auth` says,
/// checked against `ca`.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    ca: Option<&Path>,
    auth: AuthClients,
) -> Result<Arc<ServerConfig>, TlsError> {
    let cert = cert.ok_or(TlsError::NoCert)?;
    let key = key.ok_or(TlsError::NoKey)?;
    let chain = read_certs(cert)?;
    let key = read_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match auth {
        AuthClients::No => builder.with_no_client_auth(),
        mode => {
            let ca = ca.ok_or(TlsError::NoCa(mode.name()))?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(read_roots(ca)?), provider());
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

/// What a client checks of the server's certificate besides its chain to the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerNames {
    /// It must name the host connected to.
    Check,
    /// Any name (cluster links: see the module documentation).
    Ignore,
}

/// A client configuration trusting the CA certificates in `ca`, presenting `identity`
/// (certificate chain, key) when given.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    names: ServerNames,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = Arc::new(read_roots(ca)?);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match names {
        ServerNames::Check => builder.with_webpki_verifier(webpki),
        ServerNames::Ignore => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))),
    };
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| TlsError::Rustls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The server name to present for `host` (an IP address or a DNS name).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| TlsError::Rustls(format!("bad server name '{host}': {e}")))
}

/// Checks a server certificate's chain to the CA (validity dates, signatures, key usage)
/// exactly as the standard verifier does, but not the names in it. The standard verifier
/// checks the chain first, so a name mismatch means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
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
        assert!(matches!(
            server_config(None, None, None, AuthClients::No),
            Err(TlsError::NoCert)
        ));
        let cert = Path::new("/nonexistent/cert.pem");
        assert!(matches!(
            server_config(Some(cert), None, None, AuthClients::No),
            Err(TlsError::NoKey)
        ));
        let e = server_config(Some(cert), Some(cert), None, AuthClients::No).expect_err("no file");
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
        let e = client_config(cert, None, ServerNames::Check).expect_err("no file");
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    }

    #[test]
    fn empty_pem_is_rejected() {
        let dir = std::env::temp_dir().join(format!("chkv-tls-common-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not a pem\n").expect("write");
        let e = server_config(Some(&f), Some(&f), None, AuthClients::No).expect_err("empty");
        assert!(matches!(e, TlsError::Empty { .. }), "{e}");
        let e = client_config(&f, None, ServerNames::Ignore).expect_err("empty");
        assert!(matches!(e, TlsError::Empty { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn server_names_of_addresses_and_hosts() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
        assert!(server_name("cache.example.com").is_ok());
        assert!(server_name("not a name").is_err());
    }
}
