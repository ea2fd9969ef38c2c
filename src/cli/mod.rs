//! Command implementations. Each returns the process exit code; what they print to
//! stdout goes through [`out`], which also ends any of them quietly (exit 0) when the
//! reader of a stdout pipe goes away.

pub mod log;
pub mod out;
pub mod replay;
pub mod rules;
pub mod run;
pub mod simulate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use auditwatch::daemon::config::DaemonConfig;
use auditwatch::rules::RuleSet;
use auditwatch::yaml::Problem;

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_FAIL_ON: u8 = 3;

/// The config file `run` reads when `--config` is not given and `AUDITWATCH_CONFIG` is not
/// set, if it exists (where the Debian package and the systemd unit put it).
pub const SYSTEM_CONFIG: &str = "/etc/auditwatch/auditwatch.yaml";

/// Which config file `run` uses: `--config`, else `AUDITWATCH_CONFIG`, else `system` when
/// it exists, else none (the built-in default). With where it was found, for the start line.
pub fn discover_config(
    flag: Option<PathBuf>,
    env: Option<std::ffi::OsString>,
    system: &Path,
) -> Option<(PathBuf, &'static str)> {
    if let Some(p) = flag {
        return Some((p, "--config"));
    }
    if let Some(p) = env.filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(p), "AUDITWATCH_CONFIG"));
    }
    system
        .is_file()
        .then(|| (system.to_path_buf(), "the system config"))
}

/// [`discover_config`] from this process's environment.
pub fn discover_config_here(flag: Option<PathBuf>) -> Option<(PathBuf, &'static str)> {
    discover_config(
        flag,
        std::env::var_os("AUDITWATCH_CONFIG"),
        Path::new(SYSTEM_CONFIG),
    )
}

/// `auditwatch man`: the manual page, roff on stdout.
pub fn print_man(cmd: clap::Command) -> u8 {
    let mut out = out::stdout();
    match clap_mangen::Man::new(cmd).render(&mut out) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: cannot write the manual page: {e}");
            EXIT_RUNTIME
        }
    }
}

pub fn print_problems(what: &str, problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem(s) in {what}", problems.len());
}

/// Load the config (default when `None`); problems are printed. The whole file is
/// validated, the daemon's parts too, so one file serves `replay` and `run` alike.
pub fn load_config(path: Option<&Path>) -> Result<Arc<DaemonConfig>, u8> {
    match path {
        None => Ok(Arc::new(DaemonConfig::default())),
        Some(p) => DaemonConfig::load(p).map(Arc::new).map_err(|problems| {
            print_problems("the config", &problems);
            EXIT_USAGE
        }),
    }
}

/// Load rules (embedded when `None`); problems are printed.
pub fn load_rules(dir: Option<&PathBuf>) -> Result<Arc<RuleSet>, u8> {
    match dir {
        None => Ok(Arc::new(RuleSet::embedded())),
        Some(d) => RuleSet::load(d).map(Arc::new).map_err(|problems| {
            print_problems("the rules", &problems);
            EXIT_USAGE
        }),
    }
}

/// Load the config and the rules, and check them against each other. Every problem of
/// both is printed before giving up, so a user fixes them in one round.
pub fn load_checked(
    config: Option<&Path>,
    rules: Option<&PathBuf>,
) -> Result<(Arc<DaemonConfig>, Arc<RuleSet>), u8> {
    let (cfg, rules) = match (load_config(config), load_rules(rules)) {
        (Ok(c), Ok(r)) => (c, r),
        _ => return Err(EXIT_USAGE),
    };
    let problems = rules.problems_with(&cfg.detection);
    if !problems.is_empty() {
        print_problems("the rules", &problems);
        return Err(EXIT_USAGE);
    }
    Ok((cfg, rules))
}

/// `config check [FILE]`: without FILE, the file `run` would read.
pub fn config_check(file: Option<PathBuf>) -> u8 {
    let Some((file, _)) = discover_config_here(file) else {
        eprintln!(
            "error: no config file: give one, set AUDITWATCH_CONFIG, or create {SYSTEM_CONFIG}"
        );
        return EXIT_USAGE;
    };
    let file = file.as_path();
    match DaemonConfig::load(file) {
        Ok(cfg) => {
            let problems = RuleSet::embedded().problems_with(&cfg.detection);
            for w in cfg.exposure_warnings() {
                eprintln!("warning: {}: {w}", file.display());
            }
            if problems.is_empty() {
                out::outln!("{}: ok", file.display());
                0
            } else {
                print_problems("the config", &problems);
                EXIT_USAGE
            }
        }
        Err(problems) => {
            print_problems(&file.display().to_string(), &problems);
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_discovery_takes_the_flag_then_the_environment_then_the_system_file() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("auditwatch.yaml");
        let flag = || Some(PathBuf::from("/x/flag.yaml"));
        let env = || Some(std::ffi::OsString::from("/x/env.yaml"));
        // No system file yet: the built-in default.
        assert_eq!(discover_config(None, None, &system), None);
        std::fs::write(&system, "").unwrap();
        assert_eq!(
            discover_config(flag(), env(), &system),
            Some((PathBuf::from("/x/flag.yaml"), "--config"))
        );
        assert_eq!(
            discover_config(None, env(), &system),
            Some((PathBuf::from("/x/env.yaml"), "AUDITWATCH_CONFIG"))
        );
        // An empty variable counts as unset.
        assert_eq!(
            discover_config(None, Some("".into()), &system),
            Some((system.clone(), "the system config"))
        );
        // A directory of that name is no config file.
        assert_eq!(discover_config(None, None, dir.path()), None);
    }
}
