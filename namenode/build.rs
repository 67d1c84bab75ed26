//! Names the git commit in `--version` (see `common/build_git.rs`).

include!("../common/build_git.rs");

fn main() {
    emit_git_commit();
}
