//! `auditwatch simulate`: deterministic platform traffic as audit lines (stdout or
//! `--output`), with planted findings (`--inject`) and their answer key (`--answer-key`).
//! The same flags always give the same bytes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use auditwatch::parse::time::parse_rfc3339_nanos;
use auditwatch::simulate::{parse_duration, Injection, SimConfig, Simulation, DEFAULT_START};

use super::{EXIT_RUNTIME, EXIT_USAGE};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// PRNG seed: the same seed and flags give the same output
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of tenants (acme, lumen, ... up to 16; t01.. beyond)
    #[arg(long, default_value_t = 8)]
    tenants: usize,
    /// Start of the window, RFC 3339 (default 2026-03-02T00:00:00Z, a Monday)
    #[arg(long)]
    start: Option<String>,
    /// Length of the window: 24h, 90m, 3600s, 1h30m, 2d
    #[arg(long, default_value = "24h")]
    duration: String,
    /// Findings to plant: a comma-separated list of cross_tenant_read,
    /// cross_tenant_probe, after_hours_admin, eso_too_frequent, eso_stale,
    /// eso_lease_race, eso_storm, ci_origin_read, or `all`
    #[arg(long, value_name = "KIND[,KIND...]")]
    inject: Option<String>,
    /// Period of the SecretStore validation loop (default 5m), or `off`
    #[arg(long, value_name = "DURATION|off", default_value = "5m")]
    store_validation: String,
    /// Write the audit lines to this file instead of stdout
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Write the answer key (what a correct detector reports) as JSON to this file
    #[arg(long, value_name = "FILE")]
    answer_key: Option<PathBuf>,
}

pub fn run(args: SimulateArgs) -> u8 {
    let start = match args.start.as_deref() {
        None => DEFAULT_START,
        Some(s) => match parse_rfc3339_nanos(s) {
            Some(t) => t,
            None => {
                eprintln!("error: --start: `{s}` is not an RFC 3339 time");
                return EXIT_USAGE;
            }
        },
    };
    let Some(duration) = parse_duration(&args.duration).filter(|d| *d > 0) else {
        eprintln!(
            "error: --duration: `{}` is not a positive duration such as 24h, 90m, 3600s",
            args.duration
        );
        return EXIT_USAGE;
    };
    let injections = match args.inject.as_deref().map(Injection::parse_list) {
        None => Vec::new(),
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("error: --inject: {e}");
            return EXIT_USAGE;
        }
    };
    let validation = match args.store_validation.as_str() {
        "off" | "none" | "0" => None,
        s => match parse_duration(s).filter(|d| *d > 0) {
            Some(d) => Some(d),
            None => {
                eprintln!("error: --store-validation: `{s}` is not a duration or `off`");
                return EXIT_USAGE;
            }
        },
    };
    let cfg = SimConfig {
        seed: args.seed,
        tenants: args.tenants,
        start,
        duration_secs: duration,
        injections,
        store_validation_secs: validation,
    };
    let mut sim = match Simulation::new(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };

    if let Some(path) = &args.answer_key {
        let written = serde_json::to_string_pretty(sim.answer_key())
            .map_err(io::Error::other)
            .and_then(|json| std::fs::write(path, json + "\n"));
        if let Err(e) = written {
            eprintln!("error: cannot write answer key {}: {e}", path.display());
            return EXIT_RUNTIME;
        }
    }

    let result = match &args.output {
        Some(path) => match File::create(path) {
            Ok(f) => {
                let mut w = BufWriter::new(f);
                sim.write_to(&mut w).and_then(|n| w.flush().map(|_| n))
            }
            Err(e) => {
                eprintln!("error: cannot create {}: {e}", path.display());
                return EXIT_RUNTIME;
            }
        },
        None => {
            let stdout = io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            sim.write_to(&mut w).and_then(|n| w.flush().map(|_| n))
        }
    };
    match result {
        Ok(_) => 0,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: writing audit lines: {e}");
            EXIT_RUNTIME
        }
    }
}
