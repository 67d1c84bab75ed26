//! The binaries' settings: every flag of `--help` is documented in the README, `--version`
//! names a commit, and a config file, the environment and flags combine in that order of
//! precedence in the real `chkv-datanode`.

use crate::util::*;
use chkv_testkit::process::Process;
use std::process::Command;

const DATANODE: &str = env!("CARGO_BIN_EXE_chkv-datanode");

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README")
}

fn long_flags(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| format!("--{}", l.split([' ', ',', '=']).next().unwrap_or_default()))
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

#[test]
fn every_flag_is_in_the_readme() {
    let out = Command::new(DATANODE)
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut flags = long_flags(&help);
    assert!(flags.len() > 15, "{help}");
    let nn = <chkv_namenode::Args as clap::CommandFactory>::command()
        .render_long_help()
        .to_string();
    flags.extend(long_flags(&nn));
    let readme = readme();
    for f in flags {
        assert!(
            readme.contains(&format!("`{f}")),
            "{f} is not in the README"
        );
    }
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(DATANODE)
        .arg("--version")
        .output()
        .expect("run");
    let v = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(v.starts_with("chkv-datanode "), "{v}");
    assert!(v.contains("(commit "), "{v}");
}

#[tokio::test]
async fn config_file_environment_and_flags_combine() {
    bounded(async {
        let dir = std::env::temp_dir().join(format!("chkv-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("datanode.toml");
        std::fs::write(
            &file,
            "port = 0\nadmin-port = 0\nmaxmemory = \"1mb\"\nmaxmemory_policy = \"allkeys-lru\"\nhz = 20\n",
        )
        .expect("write config");
        // The environment beats the file (hz), the flag beats both (maxmemory-policy).
        let mut command = Command::new(DATANODE);
        command
            .arg("--config")
            .arg(&file)
            .args(["--maxmemory-policy", "allkeys-lfu"])
            .env("CHKV_HZ", "30")
            .env("CHKV_MAXMEMORY_POLICY", "volatile-ttl");
        let node = Process::launch(command, "resp").await;
        let addr = node.addr;
        let mut c = connect(addr).await;
        let get = |name: &'static str| cmd(&["CONFIG", "GET", name]);
        let v: Vec<String> = step("config", get("maxmemory").query_async(&mut c))
            .await
            .expect("CONFIG GET");
        assert_eq!(v, ["maxmemory", "1048576"]);
        let v: Vec<String> = step("config", get("maxmemory-policy").query_async(&mut c))
            .await
            .expect("CONFIG GET");
        assert_eq!(v, ["maxmemory-policy", "allkeys-lfu"]);
        let v: Vec<String> = step("config", get("hz").query_async(&mut c))
            .await
            .expect("CONFIG GET");
        assert_eq!(v, ["hz", "30"]);
        drop(node);

        // A typo in the file stops the process with the key's name.
        std::fs::write(&file, "prot = 1\n").expect("write config");
        let out = Command::new(DATANODE)
            .arg("--config")
            .arg(&file)
            .output()
            .expect("run");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unknown key 'prot'"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
}
