//! The daemon's configuration (`auditwatch run`): the detection config the engine sees
//! plus what only the daemon uses: the HTTP endpoint and run loop (`server`), the
//! `sources`, the sinks (`output`, `alertmanager`, `email`) and the ingest `spool`. One
//! file holds them all; each part reads its own top-level keys, and a key no part owns is
//! reported. Nothing is bound before the whole file validates.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Config, DEFAULT_YAML};
use crate::ingest::SpoolSettings;
use crate::source::settings::Source;
use crate::yaml::{self, socket_addr, Ctx, MapReader, Node, Problem, Section};

/// Everything `auditwatch run` is configured with.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// What the engine sees (tenancy, identities, hours, thresholds, bounds).
    pub detection: Arc<Config>,
    /// The HTTP endpoint and the run loop.
    pub server: Server,
    /// Where audit entries come from.
    pub sources: Vec<Source>,
    /// Where alerts go (`output`, `alertmanager`, `email`).
    pub sinks: crate::sink::Settings,
    /// The ingest queue and its disk spool.
    pub spool: SpoolSettings,
    /// Where detection state is kept across restarts.
    pub state: super::state::Settings,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig::from_yaml_str("<built-in default>", "")
            .expect("the built-in default is valid")
    }
}

impl DaemonConfig {
    /// The built-in default with the user's `text` (named `file`) applied on top, key by
    /// key; every problem of every part is returned.
    pub fn from_yaml_str(file: &str, text: &str) -> Result<DaemonConfig, Vec<Problem>> {
        let mut detection = Config::empty();
        let mut server = Server::default();
        let mut sources = Vec::new();
        let mut sinks = crate::sink::Settings::default();
        let mut spool = SpoolSettings::default();
        let mut state = super::state::Settings::default();
        yaml::load_parts(
            DEFAULT_YAML,
            file,
            text,
            &mut [
                &mut detection,
                &mut server,
                &mut sources,
                &mut sinks,
                &mut spool,
                &mut state,
            ],
        )?;
        Ok(DaemonConfig {
            detection: Arc::new(detection),
            server,
            sources,
            sinks,
            spool,
            state,
        })
    }

    /// Load a config file from disk on top of the default.
    pub fn load(path: &Path) -> Result<DaemonConfig, Vec<Problem>> {
        let text = yaml::read_file(path)?;
        DaemonConfig::from_yaml_str(&path.display().to_string(), &text)
    }
}

impl DaemonConfig {
    /// Warnings about a config that validates but exposes an endpoint beyond this host:
    /// the HTTP endpoint has no TLS or authentication, and anyone who can reach a socket
    /// source can write audit entries (forged findings, a wrong clock) or hold its
    /// connections. Said by `config check` and at start-up.
    pub fn exposure_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = self.server.listen {
            if !a.ip().is_loopback() {
                out.push(format!(
                    "server.listen {a} is reachable beyond this host, and /metrics has no TLS or authentication: bind it to 127.0.0.1 or put an authenticating proxy in front"
                ));
            }
        }
        for s in &self.sources {
            let addr = match &s.kind {
                crate::source::settings::SourceKind::Socket(sock) => match &sock.listen {
                    crate::source::settings::Listen::Tcp(a)
                    | crate::source::settings::Listen::Udp(a) => Some(*a),
                    crate::source::settings::Listen::Unix(_) => None,
                },
                _ => None,
            };
            if let Some(a) = addr.filter(|a| !a.ip().is_loopback()) {
                out.push(format!(
                    "source `{}` listens on {a}, beyond this host: any peer that reaches it can write audit entries or hold its connections; bind it to loopback or a unix socket",
                    s.name
                ));
            }
        }
        out
    }
}

impl Section for Server {
    fn keys(&self) -> &'static [&'static str] {
        &["server"]
    }

    fn apply(&mut self, ctx: &mut Ctx, _key: &str, node: &Node) {
        apply_server(ctx, node, self);
    }
}

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
