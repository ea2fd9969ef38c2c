//! `auditwatch simulate`: deterministic platform traffic as audit lines (stdout, a file, or
//! a socket as Vault's socket device writes), with planted findings (`--inject`) and their
//! answer key (`--answer-key`). The same flags always give the same bytes; `--rate` paces
//! them in wall-clock time for live load tests.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// Start of the window, RFC 3339 or `now` (default 2026-03-02T00:00:00Z, a Monday)
    #[arg(long)]
    start: Option<String>,
    /// Length of the window: 24h, 90m, 3600s, 1h30m, 2d
    #[arg(long, default_value = "24h")]
    duration: String,
    /// Findings to plant: a comma-separated list of cross_tenant_read,
    /// cross_tenant_probe, after_hours_admin, eso_too_frequent, eso_stale,
    /// eso_lease_race, eso_storm, ci_origin_read, root_token_use, audit_device_disable,
    /// audit_device_enable, audit_stream_silent, raw_audit_device, policy_drift,
    /// auth_or_mount_change, sys_raw_access, generate_root, enumeration,
    /// login_failure_burst, mass_revocation, or `all`; opt-in only (not in `all`):
    /// eso_outage, eso_tenant_outage
    #[arg(long, value_name = "KIND[,KIND...]")]
    inject: Option<String>,
    /// Period of the SecretStore validation loop (default 5m), or `off`
    #[arg(long, value_name = "DURATION|off", default_value = "5m")]
    store_validation: String,
    /// Period of Prometheus's sys/metrics scrape (default 30s), or `off`
    #[arg(long, value_name = "DURATION|off", default_value = "30s")]
    metrics_scrape: String,
    /// Where the audit lines go: a file, or tcp://HOST:PORT, unix://PATH, udp://HOST:PORT
    /// (one write per entry, as Vault's socket device). Default: stdout
    #[arg(long, short)]
    output: Option<String>,
    /// IANA time zone of the platform: people keep office hours there (default UTC); its
    /// offset at --start holds for the whole window
    #[arg(long, value_name = "ZONE")]
    time_zone: Option<String>,
    /// Pace the output at this many entries per second of wall-clock time (live load)
    #[arg(long, value_name = "ENTRIES_PER_SEC")]
    rate: Option<f64>,
    /// Write the answer key (what a correct detector reports) as JSON to this file
    #[arg(long, value_name = "FILE")]
    answer_key: Option<PathBuf>,
}

pub fn run(args: SimulateArgs) -> u8 {
    let start = match args.start.as_deref() {
        None => DEFAULT_START,
        Some("now") => jiff::Timestamp::now().as_nanosecond() as i64,
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
    let period = |flag: &str, v: &str| match v {
        "off" | "none" | "0" => Ok(None),
        s => match parse_duration(s).filter(|d| *d > 0) {
            Some(d) => Ok(Some(d)),
            None => {
                eprintln!("error: --{flag}: `{s}` is not a duration or `off`");
                Err(EXIT_USAGE)
            }
        },
    };
    let validation = match period("store-validation", &args.store_validation) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let scrape = match period("metrics-scrape", &args.metrics_scrape) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let utc_offset_secs = match args.time_zone.as_deref() {
        None => 0,
        Some(name) => {
            match jiff::tz::TimeZone::get(name) {
                Ok(tz) => match jiff::Timestamp::from_nanosecond(start as i128) {
                    Ok(ts) => tz.to_offset(ts).seconds() as i64,
                    Err(_) => 0,
                },
                Err(_) => {
                    eprintln!("error: --time-zone: `{name}` is not an IANA time zone (e.g. Europe/Berlin)");
                    return EXIT_USAGE;
                }
            }
        }
    };
    let cfg = SimConfig {
        seed: args.seed,
        tenants: args.tenants,
        start,
        duration_secs: duration,
        injections,
        store_validation_secs: validation,
        metrics_scrape_secs: scrape,
        utc_offset_secs,
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

    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            eprintln!("error: --rate must be a positive number of entries per second");
            return EXIT_USAGE;
        }
    }
    let mut out = match Output::open(args.output.as_deref()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "error: cannot open output {}: {e}",
                args.output.as_deref().unwrap_or("-")
            );
            return EXIT_RUNTIME;
        }
    };
    let result = if args.rate.is_none() && !out.is_socket() {
        sim.write_to(&mut out).and_then(|n| out.flush().map(|_| n))
    } else {
        paced(&mut sim, &mut out, args.rate)
    };
    match result {
        Ok(_) => 0,
        // A socket peer that closes (tcp://, unix://) is the reader's choice, not a
        // failure, as a closed stdout pipe is (that one ends in `super::out`).
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("error: writing audit lines: {e}");
            EXIT_RUNTIME
        }
    }
}

/// Where the lines go.
enum Output {
    Stdout(BufWriter<super::out::Stdout>),
    File(BufWriter<File>),
    Tcp(TcpStream),
    Unix(UnixStream),
    Udp(UdpSocket),
}

impl Output {
    fn open(spec: Option<&str>) -> io::Result<Output> {
        Ok(match spec {
            None | Some("-") => Output::Stdout(BufWriter::new(super::out::stdout())),
            Some(s) => {
                if let Some(addr) = s.strip_prefix("tcp://") {
                    let stream = TcpStream::connect(addr)?;
                    stream.set_nodelay(true)?;
                    Output::Tcp(stream)
                } else if let Some(path) = s.strip_prefix("unix://") {
                    Output::Unix(UnixStream::connect(path)?)
                } else if let Some(addr) = s.strip_prefix("udp://") {
                    let sock = UdpSocket::bind(if addr.starts_with('[') {
                        "[::]:0"
                    } else {
                        "0.0.0.0:0"
                    })?;
                    sock.connect(addr)?;
                    Output::Udp(sock)
                } else {
                    Output::File(BufWriter::new(File::create(s)?))
                }
            }
        })
    }

    fn is_socket(&self) -> bool {
        matches!(self, Output::Tcp(_) | Output::Unix(_) | Output::Udp(_))
    }

    /// One entry, in one write call (one datagram for UDP), as Vault writes it.
    fn write_entry(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Output::Udp(s) => s.send(line).map(|_| ()),
            other => other.write_all(line),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(w) => w.write(buf),
            Output::Tcp(s) => s.write(buf),
            Output::Unix(s) => s.write(buf),
            Output::Udp(s) => s.send(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(w) => w.flush(),
            Output::Tcp(s) => s.flush(),
            Output::Unix(s) => s.flush(),
            Output::Udp(_) => Ok(()),
        }
    }
}

/// Write entry by entry, optionally paced at `rate` entries/s, and report on stderr the
/// rate reached and the longest single write (how long the reader held the writer).
fn paced(sim: &mut Simulation, out: &mut Output, rate: Option<f64>) -> io::Result<u64> {
    let start = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut longest = Duration::ZERO;
    let mut line = Vec::with_capacity(4096);
    while let Some((_, text)) = sim.next_line() {
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64(n as f64 / r);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        line.clear();
        line.extend_from_slice(text.as_bytes());
        line.push(b'\n');
        let t0 = Instant::now();
        out.write_entry(&line)?;
        longest = longest.max(t0.elapsed());
        n += 1;
        bytes += line.len() as u64;
    }
    out.flush()?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "simulate: {n} entries ({:.1} MB) in {secs:.2}s: {:.0} entries/s; longest single write {:.3} ms",
        bytes as f64 / 1e6,
        n as f64 / secs,
        longest.as_secs_f64() * 1e3
    );
    Ok(bytes)
}
