//! The sources' settings (`sources:` in the daemon's config): a socket the audit device
//! writes to, a file device's log tailed with checkpoints, or a CloudWatch Logs group.
//! Decoded like the rest of the config (every problem with its position, unknown fields
//! rejected) and validated before any port is bound.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

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
    /// Open connections at most; at the cap, a new connection closes the one that has
    /// delivered no complete entry for the longest time.
    pub max_connections: usize,
    /// Open connections of one peer (a tcp source address, a unix peer's uid) at most; at
    /// it, a new connection of that peer closes that peer's connection that has delivered
    /// no complete entry for the longest time. At most `max_connections`.
    pub max_connections_per_peer: usize,
    /// Bytes of unterminated lines all connections may hold together; past it, the
    /// connection whose line began the longest ago is closed (its partial line dropped, counted).
    pub max_partial_bytes: u64,
    /// Peers accepted (tcp connections, udp datagram senders), as networks; `None`: the
    /// default, loopback peers only (127.0.0.0/8, ::1), whatever the listener is bound to.
    pub allow: Option<Vec<IpNet>>,
    /// The unix socket file's permissions (protocol unix only).
    pub unix: UnixPerms,
    /// `evict_idle_after_secs` was set: no longer used (a warning says so).
    pub evict_idle_after_secs_set: bool,
}

impl SocketSource {
    /// Whether a tcp connection or udp datagram from `ip` is accepted. An IPv4 peer of a
    /// dual-stack listener (`::ffff:10.0.0.5`) is judged as the IPv4 address it is.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match &self.allow {
            Some(nets) => nets.iter().any(|n| n.contains(&ip)),
            None => ip.is_loopback(),
        }
    }

    /// Warnings for `config check` and start-up, about source `name`: a listener beyond
    /// loopback with no `allow` list (remote peers are refused: safe, but likely not what
    /// was meant), an `allow` list that admits every address, udp senders (whose addresses
    /// are not proven), a unix socket every local user may connect to; and
    /// `evict_idle_after_secs`, which no longer does anything.
    pub fn warnings(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        match &self.listen {
            Listen::Tcp(a) | Listen::Udp(a) => {
                if !a.ip().is_loopback() && self.allow.is_none() {
                    out.push(format!(
                        "source `{name}` listens on {a}, beyond this host, with no `allow` list: only loopback peers are accepted (the default) and every other peer is refused; list the Vault nodes' addresses or networks in `allow` (each one listed can write audit entries)"
                    ));
                }
                for net in self.allow.iter().flatten().filter(|n| n.prefix_len() == 0) {
                    out.push(format!(
                        "source `{name}`: allow {net} accepts every peer that reaches {a}: any of them can write audit entries or hold its connections; list the Vault nodes' addresses or networks instead"
                    ));
                }
                if matches!(self.listen, Listen::Udp(_))
                    && !a.ip().is_loopback()
                    && self.allow.is_some()
                {
                    out.push(format!(
                        "source `{name}` takes udp datagrams on {a}: a datagram's sender address is not proven, so whoever can forge a listed address can write audit entries; prefer tcp with `allow`"
                    ));
                }
            }
            Listen::Unix(p) => {
                if self.unix.mode & 0o002 != 0 {
                    out.push(format!(
                        "source `{name}`: mode {:04o} lets every local user connect to {} and write audit entries; use 0660 with `group` set to Vault's group",
                        self.unix.mode,
                        p.display()
                    ));
                }
            }
        }
        if self.evict_idle_after_secs_set {
            out.push(format!(
                "source `{name}`: evict_idle_after_secs is no longer used and can be removed: at max_connections, a new connection closes the connection that has delivered no entry for the longest time"
            ));
        }
        out
    }
}

/// A unix socket file's mode, owner and group, set after bind and before the first accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnixPerms {
    /// Permission bits (at most 0o777). Connecting needs write permission on the file.
    pub mode: u32,
    /// `None`: the daemon's own user and group.
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

/// Only the daemon's user (and root) may connect unless `mode` and `group` say otherwise.
pub const DEFAULT_UNIX_MODE: u32 = 0o600;

impl Default for UnixPerms {
    fn default() -> Self {
        UnixPerms {
            mode: DEFAULT_UNIX_MODE,
            owner: None,
            group: None,
        }
    }
}

pub use super::StartAt;

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
    Kafka(crate::source::kafka::KafkaSource),
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
                "kafka" => crate::source::kafka::kafka_source(ctx, &mut m).map(SourceKind::Kafka),
                other => {
                    ctx.error(
                        kn,
                        format!(
                            "unknown source kind `{other}`; expected one of: socket, file, cloudwatch, kafka"
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
    // A kafka source runs one engine per partition, its own: the daemon runs it alone.
    if out.iter().any(|s| matches!(s.kind, SourceKind::Kafka(_))) && out.len() > 1 {
        ctx.error(
            node,
            "a kafka source runs alone: its partitions each have their own engine, so it cannot share the daemon with other sources; run another daemon for them",
        );
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

/// The default connection cap of a socket source.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 64;

/// The default per-peer connection cap: Vault opens one connection per socket device, so
/// this leaves room for several devices, for Vault nodes behind one NAT address and for
/// load generators on loopback, while one peer alone cannot fill the default cap of 64.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: u64 = 16;

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
    let is_unix = protocol.as_deref() == Some("unix");
    let max_connections = m
        .take("max_connections")
        .map(|n| yaml::positive(ctx, n, "max_connections"))
        .unwrap_or(Some(DEFAULT_MAX_CONNECTIONS));
    let per_peer = match m.take("max_connections_per_peer") {
        None => max_connections.map(|max| DEFAULT_MAX_CONNECTIONS_PER_PEER.min(max)),
        Some(n) => match (
            yaml::positive(ctx, n, "max_connections_per_peer"),
            max_connections,
        ) {
            (Some(v), Some(max)) if v > max => {
                ctx.error(
                    n,
                    format!("max_connections_per_peer ({v}) is more than max_connections ({max})"),
                );
                None
            }
            (v, _) => v,
        },
    };
    // Replaced by closing the connection that delivered no entry for the longest time;
    // still read, so an old config loads (with a warning) and a bad value is reported.
    let evict_idle_after_secs_set = match m.take("evict_idle_after_secs") {
        None => false,
        Some(n) => {
            yaml::uint(ctx, n, "evict_idle_after_secs");
            true
        }
    };
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
    let allow = match m.take("allow") {
        None => Some(None),
        Some(n) if is_unix => {
            ctx.error(
                n,
                "allow applies to tcp and udp peers; a unix socket is locked down with mode, owner and group",
            );
            None
        }
        Some(n) => allow_list(ctx, n).map(Some),
    };
    let mut unix = UnixPerms::default();
    let mut unix_ok = true;
    for key in ["mode", "owner", "group"] {
        let Some(n) = m.take(key) else { continue };
        if !is_unix {
            if protocol.is_some() {
                ctx.error(
                    n,
                    format!("{key} applies to protocol unix only (it sets the socket file's permissions)"),
                );
            }
            unix_ok = false;
            continue;
        }
        let set = match key {
            "mode" => unix_mode(ctx, n).map(|v| unix.mode = v),
            "owner" => {
                id_of(ctx, n, "owner", Path::new("/etc/passwd")).map(|v| unix.owner = Some(v))
            }
            _ => id_of(ctx, n, "group", Path::new("/etc/group")).map(|v| unix.group = Some(v)),
        };
        unix_ok &= set.is_some();
    }
    Some(SocketSource {
        listen: listen?,
        max_connections: max_connections? as usize,
        max_connections_per_peer: per_peer? as usize,
        max_partial_bytes: max_partial?,
        allow: allow?,
        unix: unix_ok.then_some(unix)?,
        evict_idle_after_secs_set,
    })
}

/// `allow`: IP addresses and CIDR networks (a list, or one as a string), at least one.
fn allow_list(ctx: &mut Ctx, n: &Node) -> Option<Vec<IpNet>> {
    let items: &[Node] = if yaml::scalar_str(n).is_some() {
        std::slice::from_ref(n)
    } else {
        yaml::list(ctx, n, "allow")
    };
    if items.is_empty() {
        if matches!(n.data, saphyr::YamlDataOwned::Sequence(_)) {
            ctx.error(
                n,
                "allow must list at least one address or network; leave it out for the default (loopback peers only)",
            );
        }
        return None;
    }
    let before = ctx.problems.len();
    let nets: Vec<IpNet> = items
        .iter()
        .filter_map(|i| {
            let text = yaml::string(ctx, i, "allow")?;
            match text.parse::<IpNet>() {
                Ok(net) => Some(net.trunc()),
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(ip) => Some(IpNet::from(ip)),
                    Err(_) => {
                        ctx.error(
                            i,
                            format!("allow: `{text}` is not an IP address or CIDR network (e.g. 10.0.0.0/8, 192.0.2.7)"),
                        );
                        None
                    }
                },
            }
        })
        .collect();
    (ctx.problems.len() == before).then_some(nets)
}

/// `mode`: an octal string such as `"0660"` (or `"660"`, `"0o660"`), permission bits only.
fn unix_mode(ctx: &mut Ctx, n: &Node) -> Option<u32> {
    let Some(text) = yaml::scalar_str(n) else {
        ctx.error(
            n,
            format!(
                "mode must be a quoted octal string such as \"0660\", found {} (an unquoted 0660 is the decimal number 660)",
                yaml::kind_of(n)
            ),
        );
        return None;
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(v) if (3..=4).contains(&digits.len()) && v <= 0o777 => Some(v),
        Ok(v) if (3..=4).contains(&digits.len()) => {
            ctx.error(
                n,
                format!("mode {text}: only permission bits (at most 0777) may be set, not setuid, setgid or sticky ({:o})", v & !0o777),
            );
            None
        }
        _ => {
            ctx.error(
                n,
                format!("mode `{text}` is not an octal mode such as \"0660\""),
            );
            None
        }
    }
}

/// `owner` / `group`: a numeric id, or a name looked up in `db` (`/etc/passwd`,
/// `/etc/group`: names from a directory service need their numeric id).
fn id_of(ctx: &mut Ctx, n: &Node, what: &str, db: &Path) -> Option<u32> {
    let text = match &n.data {
        saphyr::YamlDataOwned::Value(saphyr::ScalarOwned::Integer(i)) => i.to_string(),
        _ => yaml::string(ctx, n, what)?,
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(id) if id != u32::MAX => Some(id),
            _ => {
                ctx.error(n, format!("{what} {text} is not a valid id"));
                None
            }
        };
    }
    match std::fs::read_to_string(db) {
        Ok(db_text) => match id_in_db(&db_text, &text) {
            Some(id) => Some(id),
            None => {
                ctx.error(
                    n,
                    format!(
                        "{what}: no `{text}` in {} (give the numeric id of a name from a directory service)",
                        db.display()
                    ),
                );
                None
            }
        },
        Err(e) => {
            ctx.error(
                n,
                format!(
                    "{what}: cannot read {} to look up `{text}`: {e}",
                    db.display()
                ),
            );
            None
        }
    }
}

/// The id (third field) of `name` in a `/etc/passwd` or `/etc/group` text.
fn id_in_db(db: &str, name: &str) -> Option<u32> {
    db.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

fn file_source(ctx: &mut Ctx, m: &mut MapReader) -> Option<FileSource> {
    let path = m
        .require(ctx, "path", "a file source")
        .and_then(|n| non_empty_path(ctx, n, "path"));
    let checkpoint_dir = m
        .require(ctx, "checkpoint_dir", "a file source")
        .and_then(|n| non_empty_path(ctx, n, "checkpoint_dir"));
    let start_at = super::start_at(ctx, m);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The sources of `text`, or every problem as `line:col: message`.
    fn sources(text: &str) -> Result<Vec<Source>, Vec<String>> {
        let mut out = Vec::new();
        yaml::load_parts("sources: []\n", "t.yaml", text, &mut [&mut out]).map_err(|ps| {
            ps.iter()
                .map(|p| format!("{}:{}: {}", p.line, p.col, p.message))
                .collect::<Vec<_>>()
        })?;
        Ok(out)
    }

    fn socket(text: &str) -> SocketSource {
        match sources(text).expect("valid").remove(0).kind {
            SourceKind::Socket(s) => s,
            other => panic!("not a socket source: {other:?}"),
        }
    }

    fn problems(text: &str) -> Vec<String> {
        sources(text).expect_err("invalid")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_socket_source_defaults_to_loopback_peers_and_caps() {
        let s = socket("sources:\n  - {kind: socket, listen: '127.0.0.1:9200'}\n");
        assert_eq!(s.max_connections, 64);
        assert_eq!(s.max_connections_per_peer, 16);
        assert_eq!(s.max_partial_bytes, DEFAULT_MAX_PARTIAL_BYTES);
        assert_eq!(s.allow, None);
        assert_eq!(
            s.unix,
            UnixPerms {
                mode: 0o600,
                owner: None,
                group: None
            }
        );
        assert!(s.allows(ip("127.0.0.1")));
        assert!(s.allows(ip("127.0.0.2")));
        assert!(s.allows(ip("::1")));
        assert!(
            s.allows(ip("::ffff:127.0.0.1")),
            "an IPv4 peer of a dual-stack listener"
        );
        assert!(!s.allows(ip("10.0.0.5")));
        assert!(!s.allows(ip("::ffff:10.0.0.5")));
        assert!(s.warnings("socket").is_empty());
        // The default per-peer cap never exceeds the connection cap.
        let s =
            socket("sources:\n  - {kind: socket, listen: '127.0.0.1:9200', max_connections: 8}\n");
        assert_eq!(s.max_connections_per_peer, 8);
    }

    #[test]
    fn an_allow_list_replaces_the_loopback_default() {
        let s = socket(
            "sources:\n  - kind: socket\n    listen: '0.0.0.0:9200'\n    allow: [10.0.0.0/8, 192.0.2.7, '2001:db8::/32', 172.16.5.9/16]\n    max_connections_per_peer: 2\n",
        );
        assert_eq!(s.max_connections_per_peer, 2);
        assert!(s.allows(ip("10.200.0.1")));
        assert!(s.allows(ip("::ffff:10.200.0.1")));
        assert!(s.allows(ip("192.0.2.7")));
        assert!(!s.allows(ip("192.0.2.8")));
        assert!(s.allows(ip("2001:db8::1")));
        // A network written with host bits is the network.
        assert!(s.allows(ip("172.16.0.1")));
        assert!(!s.allows(ip("127.0.0.1")), "loopback only when listed");
        assert!(s.warnings("socket").is_empty());
        // One address as a string is a list of one.
        let s =
            socket("sources:\n  - {kind: socket, listen: '127.0.0.1:9200', allow: 127.0.0.2}\n");
        assert!(s.allows(ip("127.0.0.2")));
        assert!(!s.allows(ip("127.0.0.1")));
    }

    #[test]
    fn unix_socket_mode_owner_and_group() {
        let s = socket(
            "sources:\n  - {kind: socket, protocol: unix, listen: /run/aw.sock, mode: '0660', owner: root, group: 0}\n",
        );
        assert_eq!(
            s.unix,
            UnixPerms {
                mode: 0o660,
                owner: Some(0),
                group: Some(0)
            }
        );
        let s = socket("sources:\n  - {kind: socket, protocol: unix, listen: /run/aw.sock, mode: '640', owner: '1234'}\n");
        assert_eq!(
            s.unix,
            UnixPerms {
                mode: 0o640,
                owner: Some(1234),
                group: None
            }
        );
        let s = socket(
            "sources:\n  - {kind: socket, protocol: unix, listen: /run/aw.sock, mode: '0o666'}\n",
        );
        assert_eq!(s.unix.mode, 0o666);
        let w = s.warnings("local");
        assert!(
            w.iter()
                .any(|w| w.contains("mode 0666 lets every local user connect")),
            "{w:?}"
        );
    }

    #[test]
    fn bad_socket_settings_are_reported_at_their_position() {
        let p = problems(
            "sources:
  - kind: socket
    listen: '127.0.0.1:9200'
    allow: [10.0.0.0/8, nope, 10.0.0.0/33]
    mode: '0600'
    max_connections_per_peer: 65
  - kind: socket
    name: b
    protocol: unix
    listen: /run/aw.sock
    allow: [127.0.0.1]
    mode: 0660
    owner: no-such-user-auditwatch
    group: no-such-group-auditwatch
  - {kind: socket, name: c, listen: '127.0.0.1:9201', allow: [], max_connections_per_peer: 0}
  - {kind: socket, name: d, protocol: unix, listen: /run/d.sock, mode: '4755'}
  - {kind: socket, name: e, protocol: unix, listen: /run/e.sock, mode: '0999', evict_idle_after_secs: x}
",
        );
        let want = [
            "4:25: allow: `nope` is not an IP address or CIDR network",
            "4:31: allow: `10.0.0.0/33` is not an IP address or CIDR network",
            "5:11: mode applies to protocol unix only",
            "6:31: max_connections_per_peer (65) is more than max_connections (64)",
            "11:12: allow applies to tcp and udp peers",
            "12:11: mode must be a quoted octal string such as \"0660\", found an integer",
            "13:12: owner: no `no-such-user-auditwatch` in /etc/passwd",
            "14:12: group: no `no-such-group-auditwatch` in /etc/group",
            "15:62: allow must list at least one address or network",
            "15:92: max_connections_per_peer must be greater than zero",
            "16:72: mode 4755: only permission bits (at most 0777) may be set",
            "17:72: mode `0999` is not an octal mode",
            "17:103: evict_idle_after_secs must be a non-negative integer",
        ];
        for w in want {
            assert!(
                p.iter().any(|p| p.starts_with(w)),
                "no `{w}` in:\n{}",
                p.join("\n")
            );
        }
        assert_eq!(p.len(), want.len(), "{}", p.join("\n"));
    }

    #[test]
    fn warnings_say_what_a_socket_source_lets_in() {
        let s = socket("sources:\n  - {kind: socket, listen: '0.0.0.0:9200'}\n");
        let w = s.warnings("vault");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("source `vault` listens on 0.0.0.0:9200, beyond this host, with no `allow` list: only loopback peers are accepted"), "{w:?}");
        let s = socket("sources:\n  - {kind: socket, listen: '[::]:9200', allow: ['::/0']}\n");
        let w = s.warnings("vault");
        assert!(
            w.len() == 1 && w[0].contains("allow ::/0 accepts every peer"),
            "{w:?}"
        );
        let s = socket("sources:\n  - {kind: socket, protocol: udp, listen: '0.0.0.0:9200', allow: [10.0.0.0/8]}\n");
        let w = s.warnings("vault");
        assert!(
            w.len() == 1 && w[0].contains("sender address is not proven"),
            "{w:?}"
        );
        // The old idle setting still loads, and says it no longer does anything.
        let s = socket(
            "sources:\n  - {kind: socket, listen: '127.0.0.1:9200', evict_idle_after_secs: 60}\n",
        );
        let w = s.warnings("vault");
        assert!(
            w.len() == 1 && w[0].contains("evict_idle_after_secs is no longer used"),
            "{w:?}"
        );
    }

    #[test]
    fn ids_are_looked_up_by_name() {
        let db =
            "# comment\nroot:x:0:0:root:/root:/bin/sh\nvault:x:998:997::/home/vault:/bin/false\n";
        assert_eq!(id_in_db(db, "vault"), Some(998));
        assert_eq!(id_in_db(db, "root"), Some(0));
        assert_eq!(id_in_db(db, "vaul"), None);
        assert_eq!(
            id_in_db("vault:x:997:\n", "vault"),
            Some(997),
            "an /etc/group line"
        );
    }

    fn kafka(text: &str) -> crate::source::kafka::KafkaSource {
        match sources(text).expect("valid").remove(0).kind {
            SourceKind::Kafka(k) => k,
            other => panic!("not a kafka source: {other:?}"),
        }
    }

    #[test]
    fn a_kafka_source_with_defaults() {
        let k = kafka(
            "sources:\n  - {name: fleet, kind: kafka, brokers: ['127.0.0.1:9092'], topics: [vault-audit], group_id: auditwatch}\n",
        );
        assert_eq!(k.brokers, ["127.0.0.1:9092"]);
        assert_eq!(k.topics, ["vault-audit"]);
        assert_eq!(k.group_id, "auditwatch");
        assert_eq!(k.start_at, StartAt::Beginning);
        assert!(!k.key_as_stream);
        assert_eq!(k.state_topic, "auditwatch.auditwatch-state");
        assert_eq!(k.snapshot_interval_secs, 30);
        assert_eq!(k.tls, None);
        assert_eq!(k.sasl, None);
        let c = k.consumer_config().unwrap();
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
    }

    #[test]
    fn tls_and_sasl_reach_the_client_config_with_the_password_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let k = kafka(&format!(
            "sources:\n  - kind: kafka\n    brokers: ['k1:9093', 'k2:9093']\n    topics: [a, b]\n    group_id: g\n    start_at: end\n    key_as_stream: true\n    state_topic: g-state\n    snapshot_interval_secs: 5\n    tls: {{ca_file: /etc/ca.pem}}\n    sasl: {{mechanism: SCRAM-SHA-512, username: aw, password_file: '{}'}}\n",
            pw.display()
        ));
        assert!(k.key_as_stream);
        assert_eq!(k.state_topic, "g-state");
        let c = k.consumer_config().unwrap();
        assert_eq!(c.get("bootstrap.servers"), Some("k1:9093,k2:9093"));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        assert_eq!(c.get("auto.offset.reset"), Some("latest"));
    }

    #[test]
    fn bad_kafka_settings_are_reported_at_their_position() {
        let p = sources(
            "sources:\n  - kind: kafka\n    brokers: [nohost]\n    topics: ['bad topic']\n    group_id: 'a/b'\n    start_at: middle\n    sasl: {mechanism: GSSAPI, username: u, password: x}\n    tls: {cert_file: /c}\n    snapshot_interval_secs: 0\n    colour: blue\n",
        )
        .expect_err("invalid");
        let want = [
            "3:14: broker `nohost` must be HOST:PORT",
            "4:13: topic `bad topic` must be",
            "5:15: group_id must be non-empty",
            "6:15: start_at must be `beginning` or `end`",
            "7:23: sasl mechanism must be PLAIN",
            "7:54: sasl: put the password in a file",
            "7:11: sasl is missing required field `password_file`",
            "8:10: tls: cert_file and key_file go together",
            "9:29: snapshot_interval_secs must be greater than zero",
            "10:5: unknown field `colour` in a source",
        ];
        for w in want {
            assert!(p.iter().any(|x| x.starts_with(w)), "{w}\nin {p:#?}");
        }
    }

    #[test]
    fn a_kafka_source_runs_alone() {
        let p = sources(
            "sources:\n  - {kind: kafka, brokers: ['h:1'], topics: [t], group_id: g}\n  - {kind: socket, listen: '127.0.0.1:9200'}\n",
        )
        .expect_err("invalid");
        assert!(
            p.iter().any(|x| x.contains("a kafka source runs alone")),
            "{p:#?}"
        );
    }
}
