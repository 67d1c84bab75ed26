//! A checker for the Prometheus text exposition format, independent of the crate that
//! writes it (the NameNode's and the DataNodes' `/metrics` are both checked with it).

use anyhow::{bail, Context, Result};

/// One sample: metric name, labels (unescaped) and value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Checks `text` is in the Prometheus text exposition format (version 0.0.4) and returns its
/// samples as `(name, labels, value)`, labels unescaped, in order.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>> {
    fn name_ok(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: std::collections::HashMap<String, String> = Default::default();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match keyword {
                "HELP" => {}
                "TYPE" => {
                    let kind = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        bail!("bad type at {}", at());
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        bail!("second TYPE at {}", at());
                    }
                }
                _ => bail!("unknown comment at {}", at()),
            }
            if !name_ok(name) {
                bail!("bad metric name at {}", at());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').with_context(at)?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().with_context(at)?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').with_context(at)?;
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    if !name_ok(&key) || chars.next() != Some('"') {
                        bail!("bad label at {}", at());
                    }
                    let mut val = String::new();
                    loop {
                        match chars.next().with_context(at)? {
                            '"' => break,
                            '\\' => match chars.next().with_context(at)? {
                                'n' => val.push('\n'),
                                c @ ('\\' | '"') => val.push(c),
                                _ => bail!("bad escape at {}", at()),
                            },
                            '\n' => bail!("raw newline at {}", at()),
                            c => val.push(c),
                        }
                    }
                    labels.push((key, val));
                    match chars.next() {
                        None => break,
                        Some(',') => {}
                        _ => bail!("bad label separator at {}", at()),
                    }
                }
                (name, labels)
            }
        };
        if !name_ok(name) {
            bail!("bad metric name at {}", at());
        }
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.contains_key(*f)))
            .unwrap_or(name);
        let kind = types
            .get(family)
            .or_else(|| types.get(name))
            .with_context(|| format!("sample before its TYPE at {}", at()))?;
        if kind == "counter" && !name.ends_with("_total") {
            bail!("counter without _total at {}", at());
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(samples)
}
