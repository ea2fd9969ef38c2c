//! Sets `AUDITWATCH_GIT_REVISION` (the short commit hash) for `auditwatch_build_info` and `--version`. A value already in the
//! environment wins (a build from a source archive, a package build); without git it
//! stays unset and the binary says `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=AUDITWATCH_GIT_REVISION");
    if std::env::var_os("AUDITWATCH_GIT_REVISION").is_some() {
        return;
    }
    // Run again when HEAD moves: a checkout (HEAD) or a commit (the branch's ref).
    let mut watch = vec!["HEAD".to_string()];
    watch.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for p in watch {
        if let Some(path) = git(&["rev-parse", "--git-path", &p]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=AUDITWATCH_GIT_REVISION={rev}");
    }
}
