//! Layered settings for the binaries: command-line flags, then environment variables, then a
//! TOML file (`--config FILE`), then the flags' defaults.
//!
//! Every flag of a binary is also a key of its config file and an environment variable, with
//! no list to keep in step: [`layered_args`] reads the flags from the `clap::Command`, and
//! turns each value found in the environment or the file into the flag it stands for, placed
//! before the real command line. clap then parses and checks everything as if typed, so a bad
//! value in the file gets the same message as a bad flag.
//!
//! - File keys are the long flag names, with `-` or `_` (`maxmemory-policy = "allkeys-lru"`,
//!   `admin_port = 20001`); an unknown key is an error naming it, so typos do not pass.
//! - Environment variables are the prefix and the flag in capitals with `_`
//!   (`CHKV_MAXMEMORY_POLICY`). A flag's own `env` attribute (clap) keeps working too.
//! - Switches take `true` or `false` (also `1`/`0`, `yes`/`no` in the environment).

use clap::parser::ValueSource;
use clap::Command;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The flag naming the config file; it is not itself a key of the file.
const CONFIG_FLAG: &str = "config";

/// Why the settings could not be put together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("cannot read the config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("config file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("config file {path}: unknown key '{key}' (the keys are the long flags of --help)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("config file {path}: key '{key}': {reason}")]
    BadValue {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("environment variable {var}: expected true or false, got '{value}'")]
    BadSwitch { var: String, value: String },
}

/// The command line to parse: `argv` with, before its own flags, one flag for every setting
/// that the command line leaves unset and that `env` (variables named `env_prefix` + FLAG) or
/// the `--config` file gives. `read` loads the file (`std::fs::read_to_string` in the
/// binaries). When `argv` does not parse (a typo, `--help`, `--version`), it is returned as
/// is, for clap to report.
pub fn layered_args(
    cmd: &Command,
    argv: Vec<OsString>,
    env_prefix: &str,
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Vec<OsString>, CliError> {
    let Ok(matches) = cmd.clone().try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let on_command_line = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut extra: Vec<OsString> = Vec::new();
    let mut from_env: Vec<String> = Vec::new();
    // Environment variables first: they override the file.
    for arg in cmd.get_arguments() {
        let (id, Some(long)) = (arg.get_id().as_str(), arg.get_long()) else {
            continue;
        };
        if on_command_line(id) || long == "help" || long == "version" {
            continue;
        }
        let var = format!(
            "{env_prefix}{}",
            long.replace('-', "_").to_ascii_uppercase()
        );
        let Some(value) = env(&var) else {
            continue;
        };
        if takes_value(arg) {
            extra.push(format!("--{long}={value}").into());
        } else {
            match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => extra.push(format!("--{long}").into()),
                "0" | "false" | "no" | "off" | "" => {}
                _ => return Err(CliError::BadSwitch { var, value }),
            }
        }
        from_env.push(id.to_string());
    }
    let config_path = matches
        .try_get_one::<PathBuf>(CONFIG_FLAG)
        .ok()
        .flatten()
        .cloned()
        .or_else(|| {
            // `--config` given through the environment was added to `extra`, not parsed yet.
            env(&format!("{env_prefix}CONFIG")).map(PathBuf::from)
        });
    if let Some(path) = config_path {
        let text = read(&path).map_err(|e| CliError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let doc: toml_edit::DocumentMut =
            text.parse()
                .map_err(|e: toml_edit::TomlError| CliError::Parse {
                    path: path.clone(),
                    reason: e.to_string().trim().to_string(),
                })?;
        for (key, item) in doc.iter() {
            let long = key.replace('_', "-");
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()) && long != CONFIG_FLAG);
            let Some(arg) = arg else {
                return Err(CliError::UnknownKey {
                    path,
                    key: key.to_string(),
                });
            };
            let id = arg.get_id().as_str();
            if on_command_line(id) || from_env.iter().any(|e| e == id) {
                continue;
            }
            let bad = |reason: &str| CliError::BadValue {
                path: path.clone(),
                key: key.to_string(),
                reason: reason.to_string(),
            };
            let value = item
                .as_value()
                .ok_or_else(|| bad("expected a value, not a table"))?;
            if takes_value(arg) {
                let values: Vec<String> = match value.as_array() {
                    Some(a) => a.iter().map(scalar).collect::<Option<_>>(),
                    None => scalar(value).map(|s| vec![s]),
                }
                .ok_or_else(|| bad("expected a string, a number or a list of them"))?;
                for v in values {
                    extra.push(format!("--{long}={v}").into());
                }
            } else {
                match value.as_bool() {
                    Some(true) => extra.push(format!("--{long}").into()),
                    Some(false) => {}
                    None => return Err(bad("expected true or false")),
                }
            }
        }
    }
    let mut out = Vec::with_capacity(argv.len() + extra.len());
    let mut argv = argv.into_iter();
    out.extend(argv.next());
    out.extend(extra);
    out.extend(argv);
    Ok(out)
}

/// Writes the addresses a process is listening on to `path`, one `name=address` line each
/// (`resp=127.0.0.1:41234`), for a supervisor or test that started it on port 0
/// (`--ports-file`). The file appears whole or not at all: it is written beside `path` and
/// renamed over it.
pub fn write_ports_file(
    path: &Path,
    ports: &[(&str, std::net::SocketAddr)],
) -> std::io::Result<()> {
    let mut text = String::new();
    for (name, addr) in ports {
        text.push_str(&format!("{name}={addr}\n"));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The `name=address` lines of a [`write_ports_file`] file; lines that are not such a pair
/// are skipped.
pub fn parse_ports_file(text: &str) -> Vec<(String, std::net::SocketAddr)> {
    text.lines()
        .filter_map(|line| {
            let (name, addr) = line.split_once('=')?;
            Some((name.to_string(), addr.trim().parse().ok()?))
        })
        .collect()
}

fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_action().takes_values()
}

/// A TOML string, integer, float or boolean as it would be typed on the command line.
fn scalar(v: &toml_edit::Value) -> Option<String> {
    match v {
        toml_edit::Value::String(s) => Some(s.value().clone()),
        toml_edit::Value::Integer(i) => Some(i.value().to_string()),
        toml_edit::Value::Float(f) => Some(f.value().to_string()),
        toml_edit::Value::Boolean(b) => Some(b.value().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_file_round_trip() {
        let path = std::env::temp_dir().join(format!("chkv-ports-{}", std::process::id()));
        let resp: std::net::SocketAddr = "127.0.0.1:41234".parse().unwrap();
        let admin: std::net::SocketAddr = "[::1]:20000".parse().unwrap();
        write_ports_file(&path, &[("resp", resp), ("admin", admin)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "resp=127.0.0.1:41234\nadmin=[::1]:20000\n");
        assert_eq!(
            parse_ports_file(&text),
            [("resp".to_string(), resp), ("admin".to_string(), admin)]
        );
        assert_eq!(parse_ports_file("junk\nx=nowhere\n"), []);
        std::fs::remove_file(&path).unwrap();
    }

    use super::*;
    use clap::{Arg, ArgAction};

    fn cmd() -> Command {
        Command::new("t")
            .arg(
                Arg::new("config")
                    .long("config")
                    .value_parser(clap::value_parser!(PathBuf)),
            )
            .arg(Arg::new("port").long("port").default_value("10"))
            .arg(Arg::new("maxmemory_policy").long("maxmemory-policy"))
            .arg(Arg::new("pass").long("pass").env("CHKV_CLI_TEST_SECRET"))
            .arg(
                Arg::new("redirects")
                    .long("redirects")
                    .action(ArgAction::SetTrue),
            )
    }

    fn run(argv: &[&str], env: &[(&str, &str)], file: &str) -> Result<Vec<String>, CliError> {
        let argv: Vec<OsString> = std::iter::once("t")
            .chain(argv.iter().copied())
            .map(OsString::from)
            .collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let file = file.to_string();
        layered_args(
            &cmd(),
            argv,
            "T_",
            |k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            |_| Ok(file.clone()),
        )
        .map(|v| {
            v.into_iter()
                .map(|s| s.into_string().expect("utf-8"))
                .collect()
        })
    }

    fn port_of(argv: &[String]) -> String {
        cmd()
            .try_get_matches_from(argv)
            .expect("parses")
            .get_one::<String>("port")
            .expect("port")
            .clone()
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let file = "port = 30\nmaxmemory_policy = \"allkeys-lru\"\nredirects = true\n";
        let a = run(&["--config", "f.toml"], &[], file).expect("ok");
        assert_eq!(port_of(&a), "30");
        let m = cmd().try_get_matches_from(&a).expect("parses");
        assert_eq!(
            m.get_one::<String>("maxmemory_policy").map(String::as_str),
            Some("allkeys-lru")
        );
        assert!(m.get_flag("redirects"));
        let a = run(&["--config", "f.toml"], &[("T_PORT", "20")], file).expect("ok");
        assert_eq!(port_of(&a), "20");
        let a = run(
            &["--config", "f.toml", "--port", "5"],
            &[("T_PORT", "20")],
            file,
        )
        .expect("ok");
        assert_eq!(port_of(&a), "5");
        let a = run(&[], &[], "").expect("ok");
        assert_eq!(port_of(&a), "10");
        // The config file named in the environment.
        let a = run(&[], &[("T_CONFIG", "f.toml")], "port = 31").expect("ok");
        assert_eq!(port_of(&a), "31");
        // A flag's own env attribute (read by clap from the process environment; no other
        // test uses this variable) still wins over the file.
        std::env::set_var("CHKV_CLI_TEST_SECRET", "s");
        let a = run(&["--config", "f"], &[], "pass = \"file\"").expect("ok");
        let m = cmd().try_get_matches_from(&a).expect("parses");
        assert_eq!(m.get_one::<String>("pass").map(String::as_str), Some("s"));
    }

    #[test]
    fn switches_from_the_environment() {
        let a = run(&[], &[("T_REDIRECTS", "yes")], "").expect("ok");
        assert!(cmd()
            .try_get_matches_from(&a)
            .expect("p")
            .get_flag("redirects"));
        let a = run(&[], &[("T_REDIRECTS", "0")], "").expect("ok");
        assert!(!cmd()
            .try_get_matches_from(&a)
            .expect("p")
            .get_flag("redirects"));
        assert!(matches!(
            run(&[], &[("T_REDIRECTS", "maybe")], ""),
            Err(CliError::BadSwitch { .. })
        ));
    }

    #[test]
    fn bad_files_are_reported_with_the_key() {
        let e = run(&["--config", "f"], &[], "prot = 1").expect_err("typo");
        assert_eq!(
            e.to_string(),
            "config file f: unknown key 'prot' (the keys are the long flags of --help)"
        );
        assert!(matches!(
            run(&["--config", "f"], &[], "config = \"x\""),
            Err(CliError::UnknownKey { .. })
        ));
        assert!(matches!(
            run(&["--config", "f"], &[], "port = ["),
            Err(CliError::Parse { .. })
        ));
        assert!(matches!(
            run(&["--config", "f"], &[], "redirects = \"yes\""),
            Err(CliError::BadValue { .. })
        ));
        assert!(matches!(
            run(&["--config", "f"], &[], "[port]\nx = 1"),
            Err(CliError::BadValue { .. })
        ));
        // A bad command line is left for clap to report.
        assert_eq!(run(&["--nope"], &[], "").expect("ok"), vec!["t", "--nope"]);
    }
}
