//! The daemon's settings (`auditwatch run`): the HTTP endpoint, the sources, where alerts
//! go and how the ingest queue spills to disk. Decoded like the rest of the config (every
//! problem with its position, unknown fields rejected) and validated before any port is
//! bound; `replay` ignores them.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::yaml::{self, Ctx, MapReader, Node};

/// `server`: the HTTP endpoint (`/metrics`, `/-/healthy`, `/-/ready`) and the run loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// `None`: no HTTP endpoint (`listen: ''`).
    pub listen: Option<SocketAddr>,
    /// How often the idle wall clock advances the engine's watermark; 0 disables it
    /// (time then comes only from entries, as in replay).
    pub tick_secs: u64,
    /// How long SIGINT/SIGTERM may take to drain before the daemon gives up.
    pub drain_timeout_secs: u64,
    /// How often file sources write their checkpoint (and at shutdown).
    pub checkpoint_interval_secs: u64,
}

/// How a socket source listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SocketSource {
    pub listen: Listen,
    /// Connections beyond this are refused (after evicting an idle peer, if one is).
    pub max_connections: usize,
    /// At the connection cap, a peer silent for this long is closed to make room.
    pub evict_idle_after_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileSource {
    pub path: PathBuf,
    pub checkpoint_dir: PathBuf,
    /// Where to start when there is no checkpoint.
    pub start_at: StartAt,
    pub poll_millis: u64,
    /// After a rotation, the old file is read until it has been quiet this long.
    pub rotate_wait_secs: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CloudWatchSource {
    pub log_group: String,
    pub log_stream_prefix: Option<String>,
    pub filter_pattern: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub checkpoint_dir: PathBuf,
    pub poll_secs: u64,
    /// Where to start (Unix ms) when there is no checkpoint; `None`: now.
    pub start_time_ms: Option<i64>,
    /// Events up to this old are fetched again on every poll to catch late ingestion;
    /// duplicates are dropped by event id.
    pub overlap_secs: u64,
    /// Events per `FilterLogEvents` page (`limit`); `None`: the API's default.
    pub page_size: Option<i32>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    Socket(SocketSource),
    File(FileSource),
    CloudWatch(CloudWatchSource),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The metric label and checkpoint name: lowercase letters, digits, `-`, `_`.
    pub name: String,
    pub kind: SourceKind,
}

/// `output`: where alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertOutput {
    Stdout,
    File(PathBuf),
}

/// `spool`: the ingest queue between the sources and the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Spool {
    /// Directory of the on-disk spool; `None`: a private temporary directory removed at
    /// exit (a set directory keeps what was not processed across restarts).
    pub dir: Option<PathBuf>,
    pub memory_bytes: u64,
    pub max_disk_bytes: u64,
    pub segment_bytes: u64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: None,
            tick_secs: 1,
            drain_timeout_secs: 10,
            checkpoint_interval_secs: 1,
        }
    }
}

impl Default for Spool {
    fn default() -> Self {
        Spool {
            dir: None,
            memory_bytes: 64 << 20,
            max_disk_bytes: 1 << 30,
            segment_bytes: 64 << 20,
        }
    }
}

pub fn apply_server(ctx: &mut Ctx, node: &Node, s: &mut Server) {
    let Some(mut m) = MapReader::new(ctx, node, "server") else {
        return;
    };
    if let Some(n) = m.take("listen") {
        if let Some(text) = yaml::string(ctx, n, "server.listen") {
            if text.is_empty() {
                s.listen = None;
            } else if let Some(a) = socket_addr(ctx, n, &text, "server.listen") {
                s.listen = Some(a);
            }
        }
    }
    if let Some(n) = m.take("tick_secs") {
        s.tick_secs = yaml::uint(ctx, n, "tick_secs").unwrap_or(s.tick_secs);
    }
    if let Some(n) = m.take("drain_timeout_secs") {
        s.drain_timeout_secs =
            yaml::positive(ctx, n, "drain_timeout_secs").unwrap_or(s.drain_timeout_secs);
    }
    if let Some(n) = m.take("checkpoint_interval_secs") {
        s.checkpoint_interval_secs = yaml::positive(ctx, n, "checkpoint_interval_secs")
            .unwrap_or(s.checkpoint_interval_secs);
    }
    m.finish(ctx, "server");
}

/// `host:port` with an IP literal (or `localhost`); no name is resolved.
fn socket_addr(ctx: &mut Ctx, node: &Node, text: &str, what: &str) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(p) = port.parse::<u16>() {
            return Some(SocketAddr::from(([127, 0, 0, 1], p)));
        }
    }
    ctx.error(
        node,
        format!("{what}: `{text}` is not an address (IP:PORT, e.g. 127.0.0.1:9200 or [::1]:9200)"),
    );
    None
}

pub fn apply_sources(ctx: &mut Ctx, node: &Node, out: &mut Vec<Source>) {
    out.clear();
    let mut seen: Vec<(String, usize)> = Vec::new();
    for item in yaml::list(ctx, node, "sources") {
        let Some(mut m) = MapReader::new(ctx, item, "a source") else {
            continue;
        };
        let kind = m
            .require(ctx, "kind", "a source")
            .and_then(|n| yaml::string(ctx, n, "kind").map(|s| (n, s)));
        let name_node = m.take("name");
        let name = match name_node {
            Some(n) => yaml::string(ctx, n, "name").and_then(|s| {
                if valid_name(&s) {
                    Some(s)
                } else {
                    ctx.error(
                        n,
                        format!("source name `{s}` must be 1-64 of a-z, 0-9, `-`, `_` (it is a metric label)"),
                    );
                    None
                }
            }),
            None => kind.as_ref().map(|(_, k)| k.clone()),
        };
        let decoded = match kind {
            None => None,
            Some((kn, k)) => match k.as_str() {
                "socket" => socket_source(ctx, &mut m).map(SourceKind::Socket),
                "file" => file_source(ctx, &mut m).map(SourceKind::File),
                "cloudwatch" => cloudwatch_source(ctx, &mut m).map(SourceKind::CloudWatch),
                other => {
                    ctx.error(
                        kn,
                        format!(
                            "unknown source kind `{other}`; expected one of: socket, file, cloudwatch"
                        ),
                    );
                    None
                }
            },
        };
        m.finish(ctx, "a source");
        let (Some(name), Some(kind)) = (name, decoded) else {
            continue;
        };
        if let Some((_, line)) = seen.iter().find(|(n, _)| *n == name) {
            ctx.error(
                name_node.unwrap_or(item),
                format!(
                    "duplicate source name `{name}` (first at line {line}); give each source a `name`"
                ),
            );
            continue;
        }
        seen.push((name.clone(), item.span.start.line()));
        out.push(Source { name, kind });
    }
    // Two sources on one address or one file would fight; say so before binding.
    for i in 0..out.len() {
        for j in 0..i {
            if same_target(&out[i].kind, &out[j].kind) {
                ctx.error(
                    node,
                    format!(
                        "sources `{}` and `{}` use the same address or file",
                        out[j].name, out[i].name
                    ),
                );
            }
        }
    }
}

fn same_target(a: &SourceKind, b: &SourceKind) -> bool {
    match (a, b) {
        (SourceKind::Socket(x), SourceKind::Socket(y)) => match (&x.listen, &y.listen) {
            (Listen::Tcp(p), Listen::Tcp(q)) | (Listen::Udp(p), Listen::Udp(q)) => {
                p == q && p.port() != 0
            }
            (Listen::Unix(p), Listen::Unix(q)) => p == q,
            _ => false,
        },
        (SourceKind::File(x), SourceKind::File(y)) => x.path == y.path,
        _ => false,
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn socket_source(ctx: &mut Ctx, m: &mut MapReader) -> Option<SocketSource> {
    let protocol = match m.take("protocol") {
        None => Some("tcp".to_string()),
        Some(n) => match yaml::string(ctx, n, "protocol") {
            Some(p) if matches!(p.as_str(), "tcp" | "udp" | "unix") => Some(p),
            Some(p) => {
                ctx.error(
                    n,
                    format!("unknown protocol `{p}`; expected one of: tcp, udp, unix"),
                );
                None
            }
            None => None,
        },
    };
    let listen_node = m.require(ctx, "listen", "a socket source");
    let listen = match (protocol.as_deref(), listen_node) {
        (Some(p), Some(n)) => yaml::string(ctx, n, "listen").and_then(|text| match p {
            "unix" => {
                if text.is_empty() {
                    ctx.error(n, "listen must be a socket path for protocol unix");
                    None
                } else {
                    Some(Listen::Unix(PathBuf::from(text)))
                }
            }
            "udp" => socket_addr(ctx, n, &text, "listen").map(Listen::Udp),
            _ => socket_addr(ctx, n, &text, "listen").map(Listen::Tcp),
        }),
        _ => None,
    };
    let max_connections = m
        .take("max_connections")
        .map(|n| yaml::positive(ctx, n, "max_connections"))
        .unwrap_or(Some(64));
    let evict = m
        .take("evict_idle_after_secs")
        .map(|n| yaml::uint(ctx, n, "evict_idle_after_secs"))
        .unwrap_or(Some(60));
    Some(SocketSource {
        listen: listen?,
        max_connections: max_connections? as usize,
        evict_idle_after_secs: evict?,
    })
}

fn file_source(ctx: &mut Ctx, m: &mut MapReader) -> Option<FileSource> {
    let path = m
        .require(ctx, "path", "a file source")
        .and_then(|n| non_empty_path(ctx, n, "path"));
    let checkpoint_dir = m
        .require(ctx, "checkpoint_dir", "a file source")
        .and_then(|n| non_empty_path(ctx, n, "checkpoint_dir"));
    let start_at = match m.take("start_at") {
        None => Some(StartAt::Beginning),
        Some(n) => match yaml::string(ctx, n, "start_at").as_deref() {
            Some("beginning") => Some(StartAt::Beginning),
            Some("end") => Some(StartAt::End),
            Some(o) => {
                ctx.error(
                    n,
                    format!("start_at must be `beginning` or `end`, found `{o}`"),
                );
                None
            }
            None => None,
        },
    };
    let poll = m
        .take("poll_millis")
        .map(|n| yaml::positive(ctx, n, "poll_millis"))
        .unwrap_or(Some(250));
    let rotate_wait = m
        .take("rotate_wait_secs")
        .map(|n| yaml::uint(ctx, n, "rotate_wait_secs"))
        .unwrap_or(Some(5));
    Some(FileSource {
        path: path?,
        checkpoint_dir: checkpoint_dir?,
        start_at: start_at?,
        poll_millis: poll?,
        rotate_wait_secs: rotate_wait?,
    })
}

fn cloudwatch_source(ctx: &mut Ctx, m: &mut MapReader) -> Option<CloudWatchSource> {
    let log_group = m
        .require(ctx, "log_group", "a cloudwatch source")
        .and_then(|n| yaml::string(ctx, n, "log_group"));
    let opt = |m: &mut MapReader, ctx: &mut Ctx, k: &'static str| {
        m.take(k).and_then(|n| yaml::string(ctx, n, k))
    };
    let log_stream_prefix = opt(m, ctx, "log_stream_prefix");
    let filter_pattern = opt(m, ctx, "filter_pattern");
    let region = opt(m, ctx, "region");
    let endpoint = m.take("endpoint").and_then(|n| {
        let e = yaml::string(ctx, n, "endpoint")?;
        if e.starts_with("http://") || e.starts_with("https://") {
            Some(e)
        } else {
            ctx.error(
                n,
                format!("endpoint `{e}` must start with http:// or https://"),
            );
            None
        }
    });
    let checkpoint_dir = m
        .require(ctx, "checkpoint_dir", "a cloudwatch source")
        .and_then(|n| non_empty_path(ctx, n, "checkpoint_dir"));
    let poll = m
        .take("poll_secs")
        .map(|n| yaml::positive(ctx, n, "poll_secs"))
        .unwrap_or(Some(10));
    let overlap = m
        .take("overlap_secs")
        .map(|n| yaml::uint(ctx, n, "overlap_secs"))
        .unwrap_or(Some(120));
    let page_size = match m.take("page_size") {
        None => Some(None),
        Some(n) => yaml::positive_at_most(ctx, n, "page_size", 10_000).map(|v| Some(v as i32)),
    };
    let start_time_ms = match m.take("start_time") {
        None => Some(None),
        Some(n) => yaml::string(ctx, n, "start_time").and_then(|s| {
            match crate::parse::time::parse_time_bound(&s) {
                Some(ns) => Some(Some(ns / 1_000_000)),
                None => {
                    ctx.error(
                        n,
                        format!("start_time: `{s}` is not an RFC 3339 time or YYYY-MM-DD date"),
                    );
                    None
                }
            }
        }),
    };
    Some(CloudWatchSource {
        log_group: log_group?,
        log_stream_prefix,
        filter_pattern,
        region,
        endpoint,
        checkpoint_dir: checkpoint_dir?,
        poll_secs: poll?,
        start_time_ms: start_time_ms?,
        overlap_secs: overlap?,
        page_size: page_size?,
    })
}

fn non_empty_path(ctx: &mut Ctx, n: &Node, what: &str) -> Option<PathBuf> {
    let s = yaml::string(ctx, n, what)?;
    if s.is_empty() {
        ctx.error(n, format!("{what} must not be empty"));
        return None;
    }
    Some(PathBuf::from(s))
}

pub fn apply_spool(ctx: &mut Ctx, node: &Node, s: &mut Spool) {
    let Some(mut m) = MapReader::new(ctx, node, "spool") else {
        return;
    };
    if let Some(n) = m.take("dir") {
        if let Some(d) = yaml::string(ctx, n, "spool.dir") {
            s.dir = (!d.is_empty()).then(|| PathBuf::from(d));
        }
    }
    if let Some(n) = m.take("memory_bytes") {
        match yaml::positive(ctx, n, "memory_bytes") {
            Some(v) if v >= 65536 => s.memory_bytes = v,
            Some(_) => ctx.error(n, "memory_bytes must be at least 65536"),
            None => {}
        }
    }
    if let Some(n) = m.take("max_disk_bytes") {
        s.max_disk_bytes = yaml::uint(ctx, n, "max_disk_bytes").unwrap_or(s.max_disk_bytes);
    }
    if let Some(n) = m.take("segment_bytes") {
        match yaml::positive(ctx, n, "segment_bytes") {
            Some(v) if v >= 65536 => s.segment_bytes = v,
            Some(_) => ctx.error(n, "segment_bytes must be at least 65536"),
            None => {}
        }
    }
    m.finish(ctx, "spool");
}
