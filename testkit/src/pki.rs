//! A throwaway PKI for TLS tests: a CA, a certificate for 127.0.0.1 and localhost (servers,
//! and nodes on cluster links, which present it as clients too), and a client certificate,
//! as PEM files in a folder that is removed on drop.

use chkv_datanode::tls::{AuthClients, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::path::PathBuf;

/// The folder of the PEM files: `ca.pem`, `server.pem`/`server.key`, `client.pem`/`client.key`.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A new CA and its certificates in a temporary folder named after `tag` and this
    /// process (tags must differ between the PKIs one test process holds at once).
    pub fn new(tag: &str) -> Pki {
        let _ = chkv_common::tls::rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("chkv-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "chkv test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");
        let ca_pem = ca.pem();
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().expect("key");
            let params = CertificateParams::new(names).expect("params");
            let cert = params.signed_by(&key, &ca).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert, client_key) = leaf(vec!["client.chkv.test".into()]);
        std::fs::write(dir.join("ca.pem"), &ca_pem).expect("write");
        std::fs::write(dir.join("server.pem"), &server_cert).expect("write");
        std::fs::write(dir.join("server.key"), &server_key).expect("write");
        std::fs::write(dir.join("client.pem"), &client_cert).expect("write");
        std::fs::write(dir.join("client.key"), &client_key).expect("write");
        Pki { dir }
    }

    /// The file `name` of the folder (`ca.pem`, `server.key`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A DataNode's TLS settings with the server certificate on a free TLS port.
    pub fn settings(&self, auth_clients: AuthClients) -> TlsSettings {
        TlsSettings {
            port: Some(0),
            cert_file: Some(self.path("server.pem")),
            key_file: Some(self.path("server.key")),
            ca_cert_file: Some(self.path("ca.pem")),
            auth_clients,
            cluster: false,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
