//! Command implementations. Each returns the process exit code; what they print to
//! stdout goes through [`out`], which also ends any of them quietly (exit 0) when the
//! reader of a stdout pipe goes away.

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

/// Logs go to stderr; level from `AUDITWATCH_LOG` (default `warn`).
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
        .init();
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

pub fn config_check(file: &Path) -> u8 {
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
