//! A `host:port` address whose host may be a name, resolved when it is used (each connect
//! or registration), so a NameNode or DataNode that moves to another IP under the same name
//! is found again.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// `host:port`, `[v6]:port` or `a.b.c.d:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// A name or an IP literal (without brackets).
    pub host: String,
    pub port: u16,
}

/// Why a `host:port` did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not HOST:PORT (a host name or IP address, a colon, a port number)")]
pub struct HostPortError(pub String);

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(s: &str) -> Result<HostPort, HostPortError> {
        let bad = || HostPortError(s.to_string());
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a.into());
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // A name: letters, digits, '-', '.', '_' (no spaces, no second colon unless an IPv6
        // literal, which parsed above).
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_ok && host.parse::<IpAddr>().is_err() {
            return Err(bad());
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl From<SocketAddr> for HostPort {
    fn from(a: SocketAddr) -> HostPort {
        HostPort {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl HostPort {
    /// The address when the host is an IP literal (no lookup needed).
    pub fn literal(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Resolves the host now (blocking: the system resolver), preferring IPv4.
    pub fn resolve_blocking(&self) -> std::io::Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        if let Some(a) = self.literal() {
            return Ok(a);
        }
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} has no address", self.host),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_literals() {
        let h: HostPort = "namenode.internal:10101".parse().expect("name");
        assert_eq!((h.host.as_str(), h.port), ("namenode.internal", 10101));
        assert_eq!(h.to_string(), "namenode.internal:10101");
        assert_eq!(h.literal(), None);
        let h: HostPort = "127.0.0.1:5".parse().expect("v4");
        assert_eq!(h.literal(), Some("127.0.0.1:5".parse().expect("addr")));
        let h: HostPort = "[::1]:7".parse().expect("v6");
        assert_eq!(h.host, "::1");
        assert_eq!(h.to_string(), "[::1]:7");
        for bad in ["nohost", "host:", ":1", "host:99999", "a b:1", "x:y:1"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_localhost() {
        let h: HostPort = "localhost:80".parse().expect("name");
        let a = h.resolve_blocking().expect("localhost resolves");
        assert!(a.ip().is_loopback());
        assert_eq!(a.port(), 80);
    }
}
