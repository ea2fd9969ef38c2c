//! `auditwatch run`: the daemon next to Vault. Config and rules are loaded and validated
//! first (exit 2 on any problem, before any port is bound); then the daemon runs until
//! SIGINT/SIGTERM (exit 0 after a clean drain, 1 on a runtime failure).

use std::path::PathBuf;

use auditwatch::daemon::{self, Options};

use super::{load_checked, EXIT_RUNTIME, EXIT_USAGE};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Config file (default: the built-in default: a TCP socket source on
    /// 127.0.0.1:9200, HTTP on 127.0.0.1:9201, alerts on stdout)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rules directory or file (default: the embedded rules)
    #[arg(long)]
    rules: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> u8 {
    let (cfg, rules) = match load_checked(args.config.as_deref(), args.rules.as_ref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if cfg.sources.is_empty() {
        eprintln!("error: no sources: set `sources` in the config (see auditwatch config default)");
        return EXIT_USAGE;
    }
    let opts = Options {
        config_path: args.config,
        rules_path: args.rules,
        cfg,
        rules,
    };
    match daemon::run(opts) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "auditwatch run failed");
            eprintln!("error: {e}");
            EXIT_RUNTIME
        }
    }
}
