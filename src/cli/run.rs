//! `auditwatch run`: the daemon next to Vault. Config and rules are loaded and validated
//! first (exit 2 on any problem, before any port is bound); then the daemon runs until
//! SIGINT/SIGTERM (exit 0 after a clean drain, 1 on a runtime failure).
//!
//! The config is `--config`, else `$AUDITWATCH_CONFIG`, else
//! `/etc/auditwatch/auditwatch.yaml` when it exists, else the built-in default; the start
//! line names the file used. A failure is said once, as one error log line.

use std::path::PathBuf;

use auditwatch::daemon::{self, Options};

use super::{discover_config_here, load_checked, EXIT_RUNTIME, EXIT_USAGE};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Config file (default: $AUDITWATCH_CONFIG, else /etc/auditwatch/auditwatch.yaml if it
    /// exists, else the built-in default: a TCP socket source on 127.0.0.1:9200, HTTP on
    /// 127.0.0.1:9201, alerts on stdout)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rules directory or file (default: the embedded rules)
    #[arg(long)]
    rules: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> u8 {
    let found = discover_config_here(args.config);
    let config_path = found.as_ref().map(|(p, _)| p.clone());
    let (cfg, rules) = match load_checked(config_path.as_deref(), args.rules.as_ref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if cfg.sources.is_empty() {
        eprintln!("error: no sources: set `sources` in the config (see auditwatch config default)");
        return EXIT_USAGE;
    }
    let (config, found_by) = match &found {
        Some((p, how)) => (p.display().to_string(), *how),
        None => ("<built-in default>".to_string(), "no config file"),
    };
    tracing::info!(
        version = %env!("CARGO_PKG_VERSION"),
        revision = %env!("AUDITWATCH_GIT_REVISION"),
        config = %config,
        found_by = %found_by,
        rules = %rules.origin,
        observer = %cfg.sinks.observer,
        "auditwatch starting"
    );
    let opts = Options {
        config_path,
        rules_path: args.rules,
        cfg,
        rules,
    };
    match daemon::run(opts) {
        Ok(()) => {
            tracing::info!("auditwatch stopped");
            0
        }
        Err(e) => {
            // Once: the log line is the error (a journal or a JSON log keeps it whole).
            tracing::error!(error = %e, "auditwatch run failed");
            EXIT_RUNTIME
        }
    }
}
