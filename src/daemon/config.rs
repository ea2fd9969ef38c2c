//! The daemon's configuration (`auditwatch run`): the detection config the engine sees
//! plus what only the daemon uses: the HTTP endpoint and run loop (`server`), the
//! `sources`, the sinks (`output`, `alertmanager`, `email`) and the ingest `spool`. One
//! file holds them all; each part reads its own top-level keys, and a key no part owns is
//! reported. Nothing is bound before the whole file validates.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::web::{LoadError, WebConfig};

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
    /// Warnings about a config that validates but exposes an endpoint beyond this host: the
    /// HTTP endpoint without TLS or without authentication (basic auth or required client
    /// certificates) in its web config, and a socket source anyone beyond this host could
    /// reach, since it can write audit entries (forged findings, a wrong clock) or hold
    /// connections (`SocketSource::warnings`). Said by `config check` and at start-up.
    pub fn exposure_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = self.server.listen.filter(|a| !a.ip().is_loopback()) {
            let shape = self
                .server
                .web_config
                .as_ref()
                .map(|w| w.shape())
                .unwrap_or_default();
            let missing = match (shape.tls, shape.authenticates()) {
                (true, true) => None,
                (false, false) => {
                    Some("no TLS and no authentication: anyone who reaches it reads the metrics")
                }
                (false, true) => Some("no TLS: credentials and metrics cross the network in clear"),
                (true, false) => Some("no authentication: anyone who reaches it reads the metrics"),
            };
            if let Some(missing) = missing {
                out.push(format!(
                    "server.listen {a} is reachable beyond this host, and the http endpoint has {missing}; set server.web_config_file (tls_server_config and basic_auth_users) or bind it to 127.0.0.1"
                ));
            }
        }
        for s in &self.sources {
            if let crate::source::settings::SourceKind::Socket(sock) = &s.kind {
                out.extend(sock.warnings(&s.name));
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
    /// How often the idle wall clock tells the engine the time (it names silences of the
    /// stream and times out held requests, never per-key timers); 0 disables it (time
    /// then comes only from entries, as in replay).
    pub tick_secs: u64,
    /// How long SIGINT/SIGTERM may take to drain before the daemon gives up.
    pub drain_timeout_secs: u64,
    /// How often file sources write their checkpoint (and at shutdown).
    pub checkpoint_interval_secs: u64,
    /// `web_config_file`: TLS and basic auth of the HTTP endpoint, read and checked with
    /// the config (`None`: plain HTTP, no authentication).
    pub web_config: Option<Arc<WebConfig>>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: None,
            tick_secs: 1,
            drain_timeout_secs: 10,
            checkpoint_interval_secs: 1,
            web_config: None,
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
    if let Some(n) = m.take("web_config_file") {
        if let Some(text) = yaml::string(ctx, n, "server.web_config_file") {
            s.web_config = None;
            if !text.is_empty() {
                match WebConfig::load(Path::new(&text)) {
                    Ok(w) => s.web_config = Some(Arc::new(w)),
                    Err(LoadError::Read(e)) => ctx.error(
                        n,
                        format!("server.web_config_file: cannot read {text}: {e}"),
                    ),
                    // Positioned in the web config itself.
                    Err(LoadError::Invalid(problems)) => ctx.problems.extend(problems),
                }
            }
        }
    }
    m.finish(ctx, "server");
}
