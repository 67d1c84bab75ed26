//! `redis://` and `rediss://` URLs, as other Redis clients take them:
//! `redis[s]://[[username][:password]@]host[:port][/db][?option=value&...]`.
//!
//! The scheme says whether the connection to that address speaks TLS (`rediss`); the user
//! info gives the ACL user and password (percent-encoded, like `p%40ss` for `p@ss`; a
//! password alone, `redis://:secret@host`, is the `default` user's); the path may only name
//! database 0 (a cluster has one database, as in Redis Cluster). The query may name the TLS
//! files with the server's option names: `tls-ca-cert-file`, `tls-cert-file`,
//! `tls-key-file`. Anything else is refused rather than ignored.

use crate::error::{Error, Result};

/// Longest URL accepted (user info and file paths included).
const MAX_URL_BYTES: usize = 8192;

/// A parsed `redis://` or `rediss://` URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    /// `rediss://`.
    pub tls: bool,
    /// The host as written (an IPv6 address without its brackets).
    pub host: String,
    /// The port, if the URL has one.
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `tls-ca-cert-file`, `tls-cert-file`, `tls-key-file` from the query.
    pub ca_cert_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

/// Whether `s` looks like a URL rather than `host:port`.
pub(crate) fn is_url(s: &str) -> bool {
    s.contains("://")
}

fn invalid(url: &str, why: impl std::fmt::Display) -> Error {
    // Never echo the password: show the URL without its user info.
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    };
    Error::Invalid(format!("URL {shown:?}: {why}"))
}

impl RedisUrl {
    pub fn parse(url: &str) -> Result<RedisUrl> {
        if url.len() > MAX_URL_BYTES {
            return Err(Error::Invalid(format!(
                "URL longer than {MAX_URL_BYTES} bytes"
            )));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(url, "no scheme (redis:// or rediss://)"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(invalid(
                    url,
                    format!("scheme {other:?}: only redis:// and rediss://"),
                ))
            }
        };
        let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        if !fragment.is_empty() {
            return Err(invalid(url, "a fragment (#...) is not understood"));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let mut parsed = RedisUrl {
            tls,
            ..RedisUrl::default()
        };
        let hostport = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, pass) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                let user = decode(user).map_err(|e| invalid(url, e))?;
                if !user.is_empty() {
                    parsed.username = Some(user);
                }
                if let Some(p) = pass {
                    parsed.password = Some(decode(p).map_err(|e| invalid(url, e))?);
                }
                if parsed.username.is_some() && parsed.password.is_none() {
                    return Err(invalid(url, "a username needs a password (user:password@)"));
                }
                hostport
            }
            None => authority,
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid(url, "unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| invalid(url, "junk after the IPv6 address"))?,
                ),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid(url, "no host"));
        }
        parsed.host = host.to_string();
        parsed.port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| invalid(url, format!("bad port {p:?}")))?,
            ),
        };
        match path {
            "" | "0" => {}
            db => {
                return Err(invalid(
                    url,
                    format!("database {db:?}: a CHKV cluster has only database 0"),
                ))
            }
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v).map_err(|e| invalid(url, e))?;
            let slot = match k {
                "tls-ca-cert-file" => &mut parsed.ca_cert_file,
                "tls-cert-file" => &mut parsed.cert_file,
                "tls-key-file" => &mut parsed.key_file,
                other => {
                    return Err(invalid(
                        url,
                        format!(
                            "unknown option {other:?} (known: tls-ca-cert-file, tls-cert-file, tls-key-file)"
                        ),
                    ))
                }
            };
            if v.is_empty() {
                return Err(invalid(url, format!("{k} needs a value")));
            }
            *slot = Some(v);
        }
        if !tls && (parsed.ca_cert_file.is_some() || parsed.cert_file.is_some()) {
            return Err(invalid(url, "TLS files given for redis://: use rediss://"));
        }
        if parsed.cert_file.is_some() != parsed.key_file.is_some() {
            return Err(invalid(url, "tls-cert-file and tls-key-file go together"));
        }
        if parsed.cert_file.is_some() && parsed.ca_cert_file.is_none() {
            return Err(invalid(url, "a client certificate needs tls-ca-cert-file"));
        }
        Ok(parsed)
    }

    /// `host:port` with `default_port` when the URL has none, for connecting.
    pub fn addr(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }
}

/// Percent-decoding of one URL component into UTF-8.
fn decode(s: &str) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes that are not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> RedisUrl {
        RedisUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        RedisUrl::parse(s).expect_err(s).to_string()
    }

    #[test]
    fn the_forms_other_clients_accept() {
        let u = ok("redis://127.0.0.1:10102");
        assert!(!u.tls);
        assert_eq!(u.addr(1), "127.0.0.1:10102");
        assert_eq!((u.username, u.password), (None, None));

        let u = ok("rediss://app:s3cr%40t@db.example:6380/0");
        assert!(u.tls);
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, Some(6380));
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s3cr@t"));

        // A password alone is the default user's; the port defaults.
        let u = ok("REDIS://:only-pass@localhost");
        assert_eq!(u.username, None);
        assert_eq!(u.password.as_deref(), Some("only-pass"));
        assert_eq!(u.addr(10102), "localhost:10102");

        let u = ok("rediss://[::1]:7000/?tls-ca-cert-file=/etc/ca%20dir/ca.pem&tls-cert-file=c.pem&tls-key-file=c.key");
        assert_eq!(u.host, "::1");
        assert_eq!(u.addr(1), "[::1]:7000");
        assert_eq!(u.ca_cert_file.as_deref(), Some("/etc/ca dir/ca.pem"));
        assert_eq!(u.cert_file.as_deref(), Some("c.pem"));
        assert_eq!(u.key_file.as_deref(), Some("c.key"));
        assert_eq!(ok("rediss://[::1]").addr(5), "[::1]:5");
        // A password may contain ':' and '@' unescaped before the last '@'.
        let u = ok("redis://u:a:b@c@h:1");
        assert_eq!(u.password.as_deref(), Some("a:b@c"));
        assert_eq!(u.host, "h");
    }

    #[test]
    fn mistakes_are_named_and_passwords_not_echoed() {
        assert!(err("http://h:1").contains("only redis:// and rediss://"));
        assert!(err("h:1").contains("no scheme"));
        assert!(err("redis://h:0").contains("bad port"));
        assert!(err("redis://h:99999").contains("bad port"));
        assert!(err("redis://h:x").contains("bad port"));
        assert!(err("redis://:1").contains("no host"));
        assert!(err("redis://h:1/3").contains("only database 0"));
        assert!(err("redis://h:1?timeout=3").contains("unknown option"));
        assert!(err("redis://h:1?tls-ca-cert-file=ca.pem").contains("use rediss://"));
        assert!(err("rediss://h:1?tls-ca-cert-file=ca.pem&tls-cert-file=c").contains("go together"));
        assert!(
            err("rediss://h:1?tls-cert-file=c&tls-key-file=k").contains("needs tls-ca-cert-file")
        );
        assert!(err("rediss://h:1?tls-ca-cert-file=").contains("needs a value"));
        assert!(err("redis://user@h:1").contains("needs a password"));
        assert!(err("redis://[::1:1").contains("unclosed"));
        assert!(err("redis://h:1#insecure").contains("fragment"));
        let e = err("redis://u:p%zzsecret@h:1");
        assert!(e.contains("percent-escape"), "{e}");
        assert!(!e.contains("secret"), "password echoed: {e}");
        let e = err("redis://u:secret@h:1/9");
        assert!(!e.contains("secret"), "password echoed: {e}");
        assert!(err(&format!("redis://h:1?{}", "x".repeat(MAX_URL_BYTES))).contains("longer"));
        assert!(err("redis://u:%ff@h:1").contains("UTF-8"));
    }
}
