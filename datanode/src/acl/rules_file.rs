//! Users as rules outside the registry: the payload between nodes and the ACL file.

use super::*;

/// A user's rules as one payload between nodes: each rule as its length in decimal, `:`,
/// then its bytes (a rule may hold a space, a key pattern for one).
pub fn encode_rules(rules: &[String]) -> bytes::Bytes {
    let mut out = Vec::new();
    for r in rules {
        out.extend_from_slice(r.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(r.as_bytes());
    }
    bytes::Bytes::from(out)
}

/// The rules in a payload made by [`encode_rules`].
pub fn decode_rules(mut p: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !p.is_empty() {
        let colon = p
            .iter()
            .take(20)
            .position(|&c| c == b':')
            .ok_or("no rule length")?;
        let len: usize = std::str::from_utf8(&p[..colon])
            .ok()
            .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or("bad rule length")?;
        let rest = &p[colon + 1..];
        if len > rest.len() {
            return Err("truncated rule".into());
        }
        out.push(rest[..len].to_vec());
        p = &rest[len..];
    }
    Ok(out)
}

/// A user named `name` made of the rules of a payload from [`encode_rules`], compiled against
/// `commands`.
pub fn user_from_rules(name: &[u8], payload: &[u8], commands: &Commands) -> Result<User, String> {
    let mut u = User::new(name);
    for r in decode_rules(payload)? {
        u.apply(&r, commands)
            .map_err(|e| format!("'{}': {e}", String::from_utf8_lossy(&r)))?;
    }
    Ok(u)
}

/// Parses aclfile text: one `user NAME rules...` per line; blank lines and `#` comments
/// skipped; command rules compiled against `commands`. Errors name the line.
pub fn parse_aclfile(text: &str, commands: &Commands) -> Result<Vec<User>, String> {
    let mut users: Vec<User> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        if words.len() < 2 || words[0] != b"user" {
            return Err(format!(
                "line {}: should start with user keyword followed by the username",
                n + 1
            ));
        }
        let name = words[1];
        if users.iter().any(|u| u.name == name) {
            return Err(format!(
                "line {}: Duplicate user '{}' found",
                n + 1,
                String::from_utf8_lossy(name)
            ));
        }
        let mut u = User::new(name);
        let rules =
            split_rules(words[2..].iter().copied()).map_err(|e| format!("line {}: {e}", n + 1))?;
        for r in &rules {
            u.apply(r, commands).map_err(|e| {
                format!(
                    "line {}: Error in applying operation '{}': {e}",
                    n + 1,
                    String::from_utf8_lossy(r)
                )
            })?;
        }
        users.push(u);
    }
    Ok(users)
}
