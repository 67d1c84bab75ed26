//! Who may join the cluster: the cluster secret and the mutual challenge-response every
//! control connection and every DataNode-to-DataNode link starts with.
//!
//! # The exchange
//!
//! The side that connects (the *connector*, a DataNode) and the side that accepts (the
//! *acceptor*, the NameNode or another DataNode) each pick a random 32-byte nonce. Each proves
//! knowledge of the secret with an HMAC-SHA256, keyed by the secret, over a transcript that
//! names the purpose, both node ids and both nonces; the two proofs differ by a role label, so
//! one side's proof is never valid as the other's (no reflection), and fresh nonces make a
//! recorded exchange worthless (no replay). The secret itself never crosses the wire.
//!
//! 1. connector -> acceptor: `hello` with its node id and nonce.
//! 2. acceptor -> connector: `challenge` with its own id, its nonce and its proof. The connector
//!    checks the proof before it says or believes anything else.
//! 3. connector -> acceptor: `proof`. The acceptor checks it; on success the connection is
//!    bound to the connector's node id for its whole life, and every later message that names
//!    a node must name that one.
//!
//! On the NameNode's control port the exchange is three JSON lines ([`Handshake`]) before the
//! `register`; between DataNodes it is two RESP commands (`CLUSTER PEERHELLO`,
//! `CLUSTER PEERAUTH`) that use the same [`Transcript`].
//!
//! # Cluster names
//!
//! Every proof also covers the cluster's name (`--cluster-name`, default [`DEFAULT_CLUSTER`]),
//! so two clusters that share a secret (two local clusters started from one checkout) still
//! cannot join each other: the `hello` names the cluster the connector belongs to, the
//! acceptor refuses a foreign name with a message that says both, and a forged `hello` gains
//! nothing because the proofs would not verify.
//!
//! # Without a secret
//!
//! The key is empty: the exchange still runs, so the code path is the same and internal
//! commands still need it, but it proves nothing beyond speaking the protocol. That is only
//! acceptable on one host, so [`require_loopback`] refuses to bind anything but loopback
//! addresses then (Redis's protected mode, for the cluster).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};

use crate::lines::read_line;

/// Longest node id, in bytes. Ids are printable ASCII without spaces.
pub const MAX_NODE_ID: usize = 64;
/// Shortest secret accepted: 16 bytes (128 bits if random).
pub const MIN_SECRET: usize = 16;
/// Longest secret accepted (a file, not a blob).
pub const MAX_SECRET: usize = 4096;
/// Longest handshake line (about 250 bytes in practice).
pub const MAX_HANDSHAKE_LINE: usize = 1024;
/// The whole exchange must complete in this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The environment variable holding the secret itself.
pub const SECRET_ENV: &str = "CHKV_CLUSTER_SECRET";
/// Node id the NameNode uses in transcripts.
pub const NAMENODE_ID: &str = "namenode";
/// Name of a cluster started without `--cluster-name`.
pub const DEFAULT_CLUSTER: &str = "chkv";
/// Longest cluster name, in bytes. Names are printable ASCII without spaces, like node ids.
pub const MAX_CLUSTER_NAME: usize = 64;

/// What a proof is for, so a proof for one kind of link is never valid on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A DataNode's control connection to the NameNode.
    Control,
    /// A DataNode's link to another DataNode (forwarding and handoff).
    Peer,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Control => b"control",
            Purpose::Peer => b"peer",
        }
    }
}

/// Which end of the exchange a proof comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Connector,
    Acceptor,
}

/// Why authentication failed or could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The peer's proof is wrong: it does not know the secret. Do not retry with this peer.
    #[error("authentication failed: the peer does not know the cluster secret")]
    BadProof,
    /// The peer said something that is not the next step of the exchange.
    #[error("bad handshake message: {0}")]
    Protocol(String),
    /// The peer refused us (its `error` line).
    #[error("refused by the peer: {0}")]
    Refused(String),
    #[error("handshake timed out")]
    Timeout,
    #[error("i/o during the handshake: {0}")]
    Io(#[from] std::io::Error),
    /// A node id that is empty, too long or not printable.
    #[error("invalid node id {0}: 1 to 64 printable ASCII bytes without spaces")]
    NodeId(String),
    /// The secret could not be loaded.
    #[error("cluster secret: {0}")]
    Secret(String),
}

/// Checks a node id received from the network or the command line.
pub fn check_node_id(id: &str) -> Result<(), AuthError> {
    let ok =
        !id.is_empty() && id.len() <= MAX_NODE_ID && id.bytes().all(|b| (b'!'..=b'~').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AuthError::NodeId(escape(id.as_bytes())))
    }
}

/// A cluster name is 1 to [`MAX_CLUSTER_NAME`] printable ASCII bytes without spaces.
pub fn check_cluster_name(name: &str) -> Result<(), AuthError> {
    if name.is_empty()
        || name.len() > MAX_CLUSTER_NAME
        || !name.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(AuthError::Secret(format!(
            "invalid cluster name \"{}\": 1 to {MAX_CLUSTER_NAME} printable ASCII bytes without spaces",
            escape(name.as_bytes())
        )));
    }
    Ok(())
}

/// `bytes` fit for a log line or a status page: printable ASCII as is, everything else as
/// `\xNN`, cut after 80 input bytes with `...`.
pub fn escape(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let mut out = String::with_capacity(bytes.len().min(MAX) + 8);
    for &b in bytes.iter().take(MAX) {
        if (b' '..=b'~').contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > MAX {
        out.push_str("...");
    }
    out
}

/// The cluster secret, or the empty key when none is configured. Cheap to clone; never
/// printed.
#[derive(Clone)]
pub struct ClusterSecret {
    key: Arc<[u8]>,
    /// The cluster's name, covered by every proof.
    cluster: Arc<str>,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_configured() {
            "ClusterSecret(<set>)"
        } else {
            "ClusterSecret(<none>)"
        })
    }
}

impl PartialEq for ClusterSecret {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.cluster == other.cluster
    }
}

impl Eq for ClusterSecret {}

impl Default for ClusterSecret {
    fn default() -> Self {
        ClusterSecret::none()
    }
}

impl ClusterSecret {
    /// No secret: the empty key, loopback only.
    pub fn none() -> ClusterSecret {
        ClusterSecret {
            key: Arc::from(&b""[..]),
            cluster: Arc::from(DEFAULT_CLUSTER),
        }
    }

    /// A secret from its bytes (surrounding whitespace, such as a file's final newline, is
    /// not part of it).
    pub fn new(bytes: &[u8]) -> Result<ClusterSecret, AuthError> {
        let key = bytes.trim_ascii();
        if key.len() < MIN_SECRET {
            return Err(AuthError::Secret(format!(
                "too short ({} bytes; at least {MIN_SECRET}, e.g. `openssl rand -hex 32`)",
                key.len()
            )));
        }
        if key.len() > MAX_SECRET {
            return Err(AuthError::Secret(format!(
                "too long ({} bytes; at most {MAX_SECRET})",
                key.len()
            )));
        }
        Ok(ClusterSecret {
            key: key.into(),
            cluster: Arc::from(DEFAULT_CLUSTER),
        })
    }

    /// The secret from `--cluster-secret-file` or, without one, from the value of
    /// [`SECRET_ENV`]; [`ClusterSecret::none`] when neither is given.
    pub fn load(file: Option<&Path>, env: Option<&str>) -> Result<ClusterSecret, AuthError> {
        if let Some(path) = file {
            let bytes = std::fs::read(path)
                .map_err(|e| AuthError::Secret(format!("reading {}: {e}", path.display())))?;
            return ClusterSecret::new(&bytes);
        }
        match env {
            Some(v) if !v.is_empty() => ClusterSecret::new(v.as_bytes()),
            _ => Ok(ClusterSecret::none()),
        }
    }

    /// The same secret for the cluster called `name` (checked like a node id).
    pub fn named(self, name: &str) -> Result<ClusterSecret, AuthError> {
        check_cluster_name(name)?;
        Ok(ClusterSecret {
            cluster: Arc::from(name),
            ..self
        })
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// Whether a real secret is set.
    pub fn is_configured(&self) -> bool {
        !self.key.is_empty()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }
}

/// Refuses to bind beyond loopback without a secret. `what` names the port in the message.
pub fn require_loopback(
    secret: &ClusterSecret,
    addr: SocketAddr,
    what: &str,
) -> Result<(), AuthError> {
    if secret.is_configured() || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(AuthError::Secret(format!(
        "refusing to listen on {addr} ({what}) without a cluster secret: anyone who can reach \
         it could join the cluster. Set --cluster-secret-file PATH or the environment \
         variable {SECRET_ENV} (the same secret on the NameNode and every DataNode; \
         e.g. `openssl rand -hex 32 > secret; chmod 600 secret`), or bind 127.0.0.1"
    )))
}

/// A random 32-byte nonce.
pub type Nonce = [u8; 32];

/// A fresh nonce from the thread's CSPRNG (seeded by the operating system).
pub fn nonce() -> Nonce {
    let mut n = [0u8; 32];
    rand::rng().fill_bytes(&mut n);
    n
}

/// Everything both proofs of one exchange cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub purpose: Purpose,
    pub connector: String,
    pub acceptor: String,
    pub connector_nonce: Nonce,
    pub acceptor_nonce: Nonce,
}

impl Transcript {
    fn mac(&self, secret: &ClusterSecret, side: Side) -> Hmac<Sha256> {
        let mut mac = secret.mac();
        let field = |mac: &mut Hmac<Sha256>, data: &[u8]| {
            // Length-prefixed, so no two transcripts encode alike.
            mac.update(&(data.len() as u64).to_be_bytes());
            mac.update(data);
        };
        field(&mut mac, b"chkv-auth-v1");
        field(&mut mac, secret.cluster.as_bytes());
        field(&mut mac, self.purpose.label());
        field(
            &mut mac,
            match side {
                Side::Connector => b"connector",
                Side::Acceptor => b"acceptor",
            },
        );
        field(&mut mac, self.connector.as_bytes());
        field(&mut mac, self.acceptor.as_bytes());
        field(&mut mac, &self.connector_nonce);
        field(&mut mac, &self.acceptor_nonce);
        mac
    }

    /// The proof `side` sends.
    pub fn proof(&self, secret: &ClusterSecret, side: Side) -> [u8; 32] {
        self.mac(secret, side).finalize().into_bytes().into()
    }

    /// Whether `proof` is `side`'s proof, compared in constant time.
    pub fn verify(&self, secret: &ClusterSecret, side: Side, proof: &[u8]) -> bool {
        self.mac(secret, side).verify_slice(proof).is_ok()
    }
}

/// Decodes a hex nonce or proof of exactly 32 bytes.
pub fn decode32(hex_text: &str) -> Result<[u8; 32], AuthError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|_| AuthError::Protocol("expected 64 hex digits".into()))?;
    Ok(out)
}

/// The handshake lines on the NameNode's control port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handshake {
    /// connector -> acceptor.
    Hello {
        version: u32,
        node_id: String,
        nonce: String,
        /// The cluster the connector belongs to (absent from connectors that predate names:
        /// the default name).
        #[serde(default = "default_cluster")]
        cluster: String,
    },
    /// acceptor -> connector.
    Challenge {
        node_id: String,
        nonce: String,
        proof: String,
    },
    /// connector -> acceptor.
    Proof { proof: String },
    /// Either side gives up (same shape as the control protocol's `error`).
    Error { message: String },
}

fn default_cluster() -> String {
    DEFAULT_CLUSTER.to_string()
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, msg: &Handshake) -> Result<(), AuthError> {
    let line = crate::encode_line(msg).map_err(|e| AuthError::Protocol(e.to_string()))?;
    w.write_all(&line).await?;
    // A TLS stream may keep the line in its buffer until flushed (a no-op for TCP).
    w.flush().await?;
    Ok(())
}

/// The next handshake line; blank lines (typed into telnet) are skipped.
async fn recv<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Handshake, AuthError> {
    let mut buf = Vec::new();
    loop {
        if !read_line(r, &mut buf, MAX_HANDSHAKE_LINE).await? {
            return Err(AuthError::Protocol(
                "it closed the connection during the handshake".into(),
            ));
        }
        if !buf.trim_ascii().is_empty() {
            break;
        }
    }
    match crate::decode_line::<Handshake>(&buf) {
        Ok(Handshake::Error { message }) => Err(AuthError::Refused(escape(message.as_bytes()))),
        Ok(m) => Ok(m),
        // A TLS record (an alert: our plaintext hello was not a TLS handshake).
        Err(_) if buf.len() >= 3 && (buf[0] == 0x15 || buf[0] == 0x16) && buf[1] == 3 => {
            Err(AuthError::Protocol(
                "it answered in TLS: that port needs --tls-cluster yes on this side too".into(),
            ))
        }
        // Say what arrived: another protocol on that port (Redis, HTTP) is recognisable.
        Err(_) => Err(AuthError::Protocol(format!(
            "it answered \"{}\"",
            escape(&buf[..buf.len().min(60)])
                .trim_end_matches("\\x0a")
                .trim_end_matches("\\x0d")
        ))),
    }
}

/// The connector's side over lines: proves `my_id` to the acceptor and checks that it knows
/// the secret too (and, given `expect`, that it is that node). Returns the acceptor's id.
pub async fn connect_lines<R, W>(
    rd: &mut R,
    wr: &mut W,
    secret: &ClusterSecret,
    purpose: Purpose,
    my_id: &str,
    expect: Option<&str>,
) -> Result<String, AuthError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let exchange = async {
        let connector_nonce = nonce();
        send(
            wr,
            &Handshake::Hello {
                version: crate::PROTOCOL_VERSION,
                node_id: my_id.to_string(),
                nonce: hex::encode(connector_nonce),
                cluster: secret.cluster_name().to_string(),
            },
        )
        .await?;
        let Handshake::Challenge {
            node_id,
            nonce: their_nonce,
            proof,
        } = recv(rd).await?
        else {
            return Err(AuthError::Protocol("expected a challenge".into()));
        };
        check_node_id(&node_id)?;
        let t = Transcript {
            purpose,
            connector: my_id.to_string(),
            acceptor: node_id.clone(),
            connector_nonce,
            acceptor_nonce: decode32(&their_nonce)?,
        };
        if !t.verify(secret, Side::Acceptor, &decode32(&proof)?) {
            return Err(AuthError::BadProof);
        }
        if expect.is_some_and(|e| e != node_id) {
            return Err(AuthError::Protocol(format!(
                "expected node {}, reached {}",
                escape(expect.unwrap_or_default().as_bytes()),
                escape(node_id.as_bytes())
            )));
        }
        let proof = t.proof(secret, Side::Connector);
        send(
            wr,
            &Handshake::Proof {
                proof: hex::encode(proof),
            },
        )
        .await?;
        Ok(node_id)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| AuthError::Timeout)?
}

/// The acceptor's side over lines. Returns the connector's id once it has proved the secret;
/// on failure tells it why (as an `error` line) before the caller closes the connection.
pub async fn accept_lines<R, W>(
    rd: &mut R,
    wr: &mut W,
    secret: &ClusterSecret,
    purpose: Purpose,
    my_id: &str,
) -> Result<String, AuthError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let exchange = async {
        let Handshake::Hello {
            version,
            node_id,
            nonce: their_nonce,
            cluster,
        } = recv(rd).await?
        else {
            return Err(AuthError::Protocol("expected hello".into()));
        };
        crate::proto::check_version(version).map_err(|e| AuthError::Protocol(e.to_string()))?;
        check_node_id(&node_id)?;
        if cluster != secret.cluster_name() {
            return Err(AuthError::Protocol(format!(
                "this is cluster \"{}\", not \"{}\" (--cluster-name)",
                escape(secret.cluster_name().as_bytes()),
                escape(cluster.as_bytes())
            )));
        }
        let acceptor_nonce = nonce();
        let t = Transcript {
            purpose,
            connector: node_id.clone(),
            acceptor: my_id.to_string(),
            connector_nonce: decode32(&their_nonce)?,
            acceptor_nonce,
        };
        send(
            wr,
            &Handshake::Challenge {
                node_id: my_id.to_string(),
                nonce: hex::encode(acceptor_nonce),
                proof: hex::encode(t.proof(secret, Side::Acceptor)),
            },
        )
        .await?;
        let Handshake::Proof { proof } = recv(rd).await? else {
            return Err(AuthError::Protocol("expected proof".into()));
        };
        if !t.verify(secret, Side::Connector, &decode32(&proof)?) {
            return Err(AuthError::BadProof);
        }
        Ok(node_id)
    };
    let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .unwrap_or(Err(AuthError::Timeout));
    if let Err(e) = &result {
        let message = e.to_string();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            send(wr, &Handshake::Error { message }),
        )
        .await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, split, BufReader};

    fn secret(s: &str) -> ClusterSecret {
        ClusterSecret::new(s.as_bytes()).expect("valid secret")
    }

    fn transcript() -> Transcript {
        Transcript {
            purpose: Purpose::Control,
            connector: "dn-a".into(),
            acceptor: NAMENODE_ID.into(),
            connector_nonce: [1; 32],
            acceptor_nonce: [2; 32],
        }
    }

    #[test]
    fn proofs_bind_everything_in_the_transcript() {
        let s = secret("0123456789abcdef0123");
        let t = transcript();
        let p = t.proof(&s, Side::Connector);
        assert!(t.verify(&s, Side::Connector, &p));
        // Not valid for the other side (reflection), another secret, id, nonce or purpose.
        assert!(!t.verify(&s, Side::Acceptor, &p));
        assert!(!t.verify(&secret("another-secret-entirely"), Side::Connector, &p));
        let mut other = t.clone();
        other.connector = "dn-b".into();
        assert!(!other.verify(&s, Side::Connector, &p));
        let mut other = t.clone();
        other.acceptor_nonce[31] ^= 1;
        assert!(!other.verify(&s, Side::Connector, &p));
        let mut other = t.clone();
        other.purpose = Purpose::Peer;
        assert!(!other.verify(&s, Side::Connector, &p));
        // Length prefixes: moving a byte from one id to the other changes the proof.
        let mut a = t.clone();
        a.connector = "dn-an".into();
        a.acceptor = "amenode".into();
        assert!(!a.verify(&s, Side::Connector, &p));
        assert!(!t.verify(&s, Side::Connector, &p[..31]));
    }

    #[test]
    fn node_ids_are_bounded_and_printable() {
        assert!(check_node_id("dn-a").is_ok());
        assert!(check_node_id(&"x".repeat(64)).is_ok());
        assert!(check_node_id(&"x".repeat(65)).is_err());
        assert!(check_node_id("").is_err());
        assert!(check_node_id("a b").is_err());
        assert!(check_node_id("a\nb").is_err());
        assert!(check_node_id("é").is_err());
        let err = check_node_id(&"\u{1b}[2J".repeat(100)).expect_err("bad id");
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn escape_never_passes_control_bytes() {
        assert_eq!(escape(b"ok-1"), "ok-1");
        assert_eq!(escape(b"a\r\n\x1b\\"), "a\\x0d\\x0a\\x1b\\x5c");
        let long = escape(&[b'x'; 1000]);
        assert_eq!(long.len(), 83);
    }

    #[test]
    fn secrets_load_and_stay_private() {
        assert!(!ClusterSecret::none().is_configured());
        assert!(ClusterSecret::new(b"short").is_err());
        let s = ClusterSecret::new(b"  0123456789abcdef\n").expect("trimmed");
        assert!(s.is_configured());
        assert_eq!(format!("{s:?}"), "ClusterSecret(<set>)");
        assert!(ClusterSecret::load(None, None)
            .expect("none")
            .is_configured()
            .eq(&false));
        assert!(ClusterSecret::load(None, Some("0123456789abcdef"))
            .expect("env")
            .is_configured());
        let dir = std::env::temp_dir().join(format!("chkv-secret-{}", std::process::id()));
        std::fs::write(&dir, b"fedcba9876543210fedcba\n").expect("write");
        let from_file = ClusterSecret::load(Some(&dir), Some("ignored-because-file-wins"));
        let _ = std::fs::remove_file(&dir);
        assert!(from_file.expect("file").is_configured());
        assert!(ClusterSecret::load(Some(Path::new("/nonexistent/chkv")), None).is_err());
    }

    #[test]
    fn loopback_only_without_a_secret() {
        let lo: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:1".parse().expect("addr");
        assert!(require_loopback(&ClusterSecret::none(), lo, "x").is_ok());
        let err = require_loopback(&ClusterSecret::none(), any, "x").expect_err("refused");
        assert!(err.to_string().contains("--cluster-secret-file"), "{err}");
        assert!(require_loopback(&secret("0123456789abcdef"), any, "x").is_ok());
    }

    async fn exchange(
        connector_secret: ClusterSecret,
        acceptor_secret: ClusterSecret,
        expect: Option<&'static str>,
    ) -> (Result<String, AuthError>, Result<String, AuthError>) {
        let (a, b) = duplex(4096);
        let (ar, mut aw) = split(a);
        let (br, mut bw) = split(b);
        let connector = tokio::spawn(async move {
            let mut ar = BufReader::new(ar);
            connect_lines(
                &mut ar,
                &mut aw,
                &connector_secret,
                Purpose::Control,
                "dn-a",
                expect,
            )
            .await
        });
        let mut br = BufReader::new(br);
        let accepted = accept_lines(
            &mut br,
            &mut bw,
            &acceptor_secret,
            Purpose::Control,
            NAMENODE_ID,
        )
        .await;
        drop(bw);
        drop(br);
        (connector.await.expect("no panic"), accepted)
    }

    #[tokio::test]
    async fn line_handshake_both_ways() {
        let s = secret("0123456789abcdef");
        let (c, a) = exchange(s.clone(), s.clone(), Some(NAMENODE_ID)).await;
        assert_eq!(c.expect("connector ok"), NAMENODE_ID);
        assert_eq!(a.expect("acceptor ok"), "dn-a");

        // The acceptor proves first, so a connector with the wrong secret stops at once and
        // never sends a proof; the acceptor then sees the connection close.
        let (c, a) = exchange(secret("wrong-secret-wrong!"), s.clone(), None).await;
        assert!(matches!(c, Err(AuthError::BadProof)), "{c:?}");
        assert!(a.is_err());

        let (c, _) = exchange(s.clone(), s.clone(), Some("someone-else")).await;
        assert!(matches!(c, Err(AuthError::Protocol(_))), "{c:?}");
    }

    #[tokio::test]
    async fn another_clusters_nodes_are_refused_with_both_names() {
        let s = secret("0123456789abcdef");
        let a = s.clone().named("cluster-a").expect("name");
        let b = s.clone().named("cluster-b").expect("name");
        let (c, acc) = exchange(a.clone(), a.clone(), None).await;
        assert_eq!(c.expect("same cluster"), NAMENODE_ID);
        assert_eq!(acc.expect("same cluster"), "dn-a");

        // Same secret, another cluster: refused before any proof, and both sides say why.
        let (c, acc) = exchange(b.clone(), a.clone(), None).await;
        let acc = acc.expect_err("foreign cluster");
        assert!(acc.to_string().contains("\"cluster-a\""), "{acc}");
        assert!(acc.to_string().contains("\"cluster-b\""), "{acc}");
        let c = c.expect_err("refused");
        assert!(c.to_string().contains("cluster-a"), "{c}");

        // The name is in every proof: a transcript proved for one cluster is not valid for
        // another with the same secret (a forged hello naming the right cluster gains nothing).
        let t = transcript();
        assert!(!t.verify(&b, Side::Connector, &t.proof(&a, Side::Connector)));
        assert!(!t.verify(&s, Side::Connector, &t.proof(&a, Side::Connector)));
        assert_eq!(s.cluster_name(), DEFAULT_CLUSTER);

        for bad in ["", "a b", "x\n", &"n".repeat(65)] {
            assert!(s.clone().named(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn acceptor_refuses_garbage_and_long_lines() {
        for input in [
            &b"not json\n"[..],
            b"{\"type\":\"proof\",\"proof\":\"00\"}\n",
            b"{\"type\":\"hello\",\"version\":1,\"node_id\":\"a b\",\"nonce\":\"00\"}\n",
            &[b'x'; 5000][..],
        ] {
            let mut rd: &[u8] = input;
            let mut out = Vec::new();
            let r = accept_lines(
                &mut rd,
                &mut out,
                &ClusterSecret::none(),
                Purpose::Control,
                NAMENODE_ID,
            )
            .await;
            assert!(r.is_err());
            assert!(out.starts_with(b"{\"type\":\"error\""), "{out:?}");
            assert!(out.len() < 600);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        /// Whatever a stranger sends, the acceptor answers with at most one short error line
        /// and never panics; no input authenticates without the secret.
        #[test]
        fn acceptor_survives_any_input(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
            let secret = secret("0123456789abcdef");
            let (r, out) = rt.block_on(async {
                let mut rd: &[u8] = &input;
                let mut out = Vec::new();
                let r = accept_lines(&mut rd, &mut out, &secret, Purpose::Control, NAMENODE_ID).await;
                (r, out)
            });
            proptest::prop_assert!(r.is_err());
            proptest::prop_assert!(out.len() < 2 * MAX_HANDSHAKE_LINE, "{}", out.len());
        }

        /// Every control-message decoder rejects or accepts arbitrary bytes without a panic.
        #[test]
        fn decoders_survive_any_bytes(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = crate::decode_line::<Handshake>(&input);
            let _ = crate::decode_line::<crate::DataNodeToNameNode>(&input);
            let _ = crate::decode_line::<crate::NameNodeToDataNode>(&input);
            let _ = crate::decode_line::<crate::ClientToNameNode>(&input);
            let _ = crate::decode_line::<crate::NameNodeToClient>(&input);
        }

        /// Valid-looking messages with hostile field values: decoding never panics, and a
        /// decoded id is checked separately.
        #[test]
        fn hostile_field_values(id in ".{0,100}", epoch in proptest::prelude::any::<u64>(), a in proptest::prelude::any::<u16>(), b in proptest::prelude::any::<u16>()) {
            let line = serde_json::json!({
                "type": "register", "version": 1, "node_id": id, "client_addr": "127.0.0.1:1",
                "admin_addr": "127.0.0.1:2", "epoch_seen": epoch, "owned_slots": [[a, b]]
            }).to_string();
            if let Ok(crate::DataNodeToNameNode::Register { node_id, epoch_seen, owned_slots, .. }) =
                crate::decode_line::<crate::DataNodeToNameNode>(line.as_bytes())
            {
                let _ = check_node_id(node_id.as_str());
                let _ = crate::proto::check_epoch(epoch_seen);
                let _ = crate::proto::slot_ranges(owned_slots.as_deref().unwrap_or_default());
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peers_time_out() {
        let (a, _b) = duplex(64);
        let (ar, mut aw) = split(a);
        let mut ar = BufReader::new(ar);
        let r = accept_lines(
            &mut ar,
            &mut aw,
            &ClusterSecret::none(),
            Purpose::Control,
            NAMENODE_ID,
        )
        .await;
        assert!(matches!(r, Err(AuthError::Timeout)), "{r:?}");
    }
}
