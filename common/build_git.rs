// Shared by the binaries' build scripts (`include!`d): sets `CHKV_GIT_COMMIT` for
// `--version` and INFO to the commit being built (12 hex digits), or to the build
// environment's `CHKV_GIT_COMMIT` (a Docker build without `.git`), or to `unknown`.

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn emit_git_commit() {
    println!("cargo:rerun-if-env-changed=CHKV_GIT_COMMIT");
    let commit = std::env::var("CHKV_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CHKV_GIT_COMMIT={commit}");
    // A commit or a checkout moves HEAD's reflog; rebuild the version string then.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
}
