//! The sources' settings (`sources:` in the daemon's config): a socket the audit device
//! writes to, a file device's log tailed with checkpoints, or a CloudWatch Logs group.
//! Decoded like the rest of the config (every problem with its position, unknown fields
//! rejected) and validated before any port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::yaml::{self, non_empty_path, socket_addr, Ctx, MapReader, Node};

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
    /// Bytes of unterminated lines all connections may hold together; past it, the
    /// connection whose line began the longest ago is closed (its partial line dropped, counted).
    pub max_partial_bytes: u64,
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
    /// Directories besides the file's own where rotated copies are looked for
    /// (logrotate's `olddir`); relative ones are under the file's directory.
    pub rotated_dirs: Vec<PathBuf>,
}

/// The most `rotated_dirs` a file source may name (each is listed at every truncation).
pub const MAX_ROTATED_DIRS: usize = 8;

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

/// The default budget for unterminated lines across a socket source's connections: room
/// for Vault's largest entry (within the default 40 MiB line cap) three times over.
pub const DEFAULT_MAX_PARTIAL_BYTES: u64 = 128 << 20;

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
    let max_partial = m
        .take("max_partial_bytes")
        .map(|n| match yaml::positive(ctx, n, "max_partial_bytes") {
            Some(v) if v < 1 << 20 => {
                ctx.error(n, "max_partial_bytes must be at least 1048576");
                None
            }
            v => v,
        })
        .unwrap_or(Some(DEFAULT_MAX_PARTIAL_BYTES));
    Some(SocketSource {
        listen: listen?,
        max_connections: max_connections? as usize,
        max_partial_bytes: max_partial?,
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
    let rotated_dirs = match m.take("rotated_dirs") {
        None => Some(Vec::new()),
        Some(n) => {
            let items = yaml::list(ctx, n, "rotated_dirs");
            let dirs: Vec<Option<PathBuf>> = items
                .iter()
                .map(|d| non_empty_path(ctx, d, "a rotated_dirs entry"))
                .collect();
            if items.len() > MAX_ROTATED_DIRS {
                ctx.error(
                    n,
                    format!("rotated_dirs may name at most {MAX_ROTATED_DIRS} directories"),
                );
                None
            } else {
                dirs.into_iter().collect()
            }
        }
    };
    Some(FileSource {
        path: path?,
        checkpoint_dir: checkpoint_dir?,
        start_at: start_at?,
        poll_millis: poll?,
        rotate_wait_secs: rotate_wait?,
        rotated_dirs: rotated_dirs?,
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

impl yaml::Section for Vec<Source> {
    fn keys(&self) -> &'static [&'static str] {
        &["sources"]
    }

    fn apply(&mut self, ctx: &mut Ctx, _key: &str, node: &Node) {
        apply_sources(ctx, node, self);
    }
}
