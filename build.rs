//! Build facts for `auditwatch --version` and `auditwatch_build_info`:
//! `AUDITWATCH_GIT_REVISION` (the commit, `git rev-parse --short=12 HEAD`; `unknown` outside
//! a git checkout, as in a source tarball) and `AUDITWATCH_BUILD_DATE` (YYYY-MM-DD). The
//! date is `SOURCE_DATE_EPOCH` when set (reproducible builds, Debian packaging), else the
//! commit's date, never the wall clock: building the same commit twice gives the same
//! binary.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Days since 1970-01-01 as a proleptic Gregorian date (Howard Hinnant's civil_from_days).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn main() {
    // A value already in the environment wins (a package build from a source archive).
    println!("cargo:rerun-if-env-changed=AUDITWATCH_GIT_REVISION");
    let revision = std::env::var("AUDITWATCH_GIT_REVISION")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|secs| civil_date(secs.div_euclid(86_400)))
        .or_else(|| git(&["log", "-1", "--format=%cd", "--date=format:%Y-%m-%d"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AUDITWATCH_GIT_REVISION={revision}");
    println!("cargo:rustc-env=AUDITWATCH_BUILD_DATE={date}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or a switched branch: HEAD and the branch's ref (in the common git dir,
    // which a worktree shares). Outside a checkout only the environment matters.
    if let Some(head) = git(&["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", &r]) {
                if std::path::Path::new(&p).exists() {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
        }
    }
}
