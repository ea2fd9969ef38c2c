//! The HTTP endpoint's web config file (`server.web_config_file`), in the format of
//! Prometheus' exporter-toolkit, so what users know from node_exporter works here:
//! `tls_server_config` (`cert_file`/`key_file` or inline `cert`/`key`, `client_auth_type`,
//! `client_ca_file` or `client_ca`, `min_version`, `max_version`) and `basic_auth_users`
//! (user: bcrypt hash). Relative paths are relative to the web config's own directory, as
//! in exporter-toolkit.
//!
//! Invariants: a web config is checked whole before anything is bound (every problem with
//! its file, line and column, read by `config check`); what auditwatch does not implement
//! (`cipher_suites`, `http_server_config`, `RequestClientCert`, TLS 1.0, ...) is an error,
//! never silently ignored. While the daemon runs, the files are looked at again at a new
//! connection, at most once per [`CHECK_EVERY`]: when the web config or a certificate, key
//! or CA file changed, the whole set is read again and used from the next connection on
//! (certificates renewed by certbot or cert-manager are picked up without a signal), or
//! rejected and logged, keeping the running one. What is secured (TLS on, basic auth on,
//! client certificates required) is fixed at start: a reload that would change it is
//! rejected.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::util::sync::lock;
use crate::yaml::{self, Ctx, MapReader, Node, Problem};

/// How often, at most, a new connection looks at the files for changes.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A web config file, read and checked: the TLS acceptor and the users.
pub struct WebConfig {
    path: PathBuf,
    tls: Option<Tls>,
    /// User → bcrypt hash.
    users: BTreeMap<String, String>,
    /// Each file this config was read from, as it was just before it was read.
    stamps: Vec<(PathBuf, Option<Stamp>)>,
}

struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    client_auth: ClientAuth,
}

/// `client_auth_type`, the values auditwatch implements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`.
    #[default]
    None,
    /// `VerifyClientCertIfGiven`: a certificate is optional, and verified when sent.
    IfGiven,
    /// `RequireAndVerifyClientCert`.
    Require,
}

/// What a web config secures; fixed for the life of the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub tls: bool,
    pub basic_auth: bool,
    pub client_certs: ClientAuth,
}

impl Shape {
    /// Whether a client must prove who it is (a password or a verified certificate).
    pub fn authenticates(&self) -> bool {
        self.basic_auth || self.client_certs == ClientAuth::Require
    }

    fn describe(&self) -> String {
        format!(
            "tls {}, basic auth {}, client certificates {}",
            on(self.tls),
            on(self.basic_auth),
            match self.client_certs {
                ClientAuth::None => "not asked",
                ClientAuth::IfGiven => "verified if given",
                ClientAuth::Require => "required",
            }
        )
    }
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// A file's identity and version: device, inode, length, modification time (ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp(u64, u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp(m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Why a web config could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// The file itself could not be read.
    Read(std::io::Error),
    /// Its problems, positioned in it.
    Invalid(Vec<Problem>),
}

impl WebConfig {
    /// Read and check the web config at `path`.
    pub fn load(path: &Path) -> Result<WebConfig, LoadError> {
        let before = stamp(path);
        let text = std::fs::read_to_string(path).map_err(LoadError::Read)?;
        let mut cfg = WebConfig::from_yaml_str(path, &text).map_err(LoadError::Invalid)?;
        cfg.stamps.insert(0, (path.to_path_buf(), before));
        Ok(cfg)
    }

    /// Check `text` as the web config at `path` (whose directory relative paths start from).
    pub fn from_yaml_str(path: &Path, text: &str) -> Result<WebConfig, Vec<Problem>> {
        let mut ctx = Ctx::new(&path.display().to_string());
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut cfg = WebConfig {
            path: path.to_path_buf(),
            tls: None,
            users: BTreeMap::new(),
            stamps: Vec::new(),
        };
        if let Some(root) = ctx.load(text) {
            if let Some(settings) = parse(&mut ctx, &root, dir) {
                cfg.users = settings.users;
                if let Some(t) = settings.tls {
                    cfg.tls = build_tls(&mut ctx, t, &mut cfg.stamps);
                }
            }
        }
        if ctx.problems.is_empty() {
            Ok(cfg)
        } else {
            ctx.problems.sort();
            Err(ctx.problems)
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn shape(&self) -> Shape {
        Shape {
            tls: self.tls.is_some(),
            basic_auth: !self.users.is_empty(),
            client_certs: self
                .tls
                .as_ref()
                .map_or(ClientAuth::None, |t| t.client_auth),
        }
    }

    /// The TLS acceptor; `None` when the endpoint speaks plain HTTP.
    pub fn acceptor(&self) -> Option<&tokio_rustls::TlsAcceptor> {
        self.tls.as_ref().map(|t| &t.acceptor)
    }

    /// User → bcrypt hash; empty when basic auth is off.
    pub fn users(&self) -> &BTreeMap<String, String> {
        &self.users
    }

    fn changed(&self) -> bool {
        self.stamps.iter().any(|(p, s)| stamp(p) != *s)
    }
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the hashes.
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("shape", &self.shape())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Equal when read from the same file: its content is read again while the daemon runs,
/// so only which file it is takes a restart to change.
impl PartialEq for WebConfig {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

// ---- parsing ----

/// Where a node starts (line, 1-based column), for problems found after parsing.
#[derive(Clone, Copy)]
struct At(usize, usize);

fn at(n: &Node) -> At {
    At(n.span.start.line(), n.span.start.col() + 1)
}

enum Pem {
    File(PathBuf),
    Inline(String),
}

struct PemSetting {
    pem: Pem,
    /// `cert_file`, `key`, ...: the key it was given as.
    key: &'static str,
    at: At,
}

struct TlsSettings {
    cert: PemSetting,
    key: PemSetting,
    client_ca: Option<PemSetting>,
    client_auth: ClientAuth,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    at: At,
}

struct Settings {
    tls: Option<TlsSettings>,
    users: BTreeMap<String, String>,
}

/// Keys of exporter-toolkit's format that auditwatch does not implement, and why.
const UNSUPPORTED_TOP: &[(&str, &str)] = &[
    (
        "http_server_config",
        "the endpoint speaks HTTP/1.1 only and sets no extra headers",
    ),
    (
        "rate_limit",
        "the endpoint caps its connections instead (see the README)",
    ),
];
const UNSUPPORTED_TLS: &[(&str, &str)] = &[
    (
        "cipher_suites",
        "rustls offers only its own safe suites; remove it",
    ),
    (
        "prefer_server_cipher_suites",
        "rustls always prefers its own order; remove it",
    ),
    (
        "curve_preferences",
        "rustls picks its own key exchange groups; remove it",
    ),
    (
        "client_allowed_sans",
        "any client certificate signed by the client CA is accepted",
    ),
];

fn parse(ctx: &mut Ctx, root: &Node, dir: &Path) -> Option<Settings> {
    let mut m = MapReader::new(ctx, root, "the web config")?;
    let mut out = Settings {
        tls: None,
        users: BTreeMap::new(),
    };
    unsupported(ctx, &mut m, UNSUPPORTED_TOP);
    if let Some(n) = m.take("tls_server_config") {
        if !yaml::is_null(n) {
            out.tls = parse_tls(ctx, n, dir);
        }
    }
    if let Some(n) = m.take("basic_auth_users") {
        if !yaml::is_null(n) {
            out.users = parse_users(ctx, n);
        }
    }
    m.finish(ctx, "the web config");
    Some(out)
}

fn unsupported(ctx: &mut Ctx, m: &mut MapReader, keys: &[(&'static str, &str)]) {
    for (key, why) in keys {
        if let Some(n) = m.take(key) {
            ctx.error(n, format!("`{key}` is not supported by auditwatch: {why}"));
        }
    }
}

fn parse_tls(ctx: &mut Ctx, node: &Node, dir: &Path) -> Option<TlsSettings> {
    let mut m = MapReader::new(ctx, node, "tls_server_config")?;
    unsupported(ctx, &mut m, UNSUPPORTED_TLS);
    let cert = pem_setting(ctx, &mut m, dir, "cert_file", "cert");
    let key = pem_setting(ctx, &mut m, dir, "key_file", "key");
    let client_ca = pem_setting(ctx, &mut m, dir, "client_ca_file", "client_ca");
    let mut client_auth = ClientAuth::None;
    let mut client_auth_at = at(node);
    if let Some(n) = m.take("client_auth_type") {
        client_auth_at = at(n);
        if let Some(v) = yaml::string(ctx, n, "client_auth_type") {
            match v.as_str() {
                "" | "NoClientCert" => {}
                "VerifyClientCertIfGiven" => client_auth = ClientAuth::IfGiven,
                "RequireAndVerifyClientCert" => client_auth = ClientAuth::Require,
                "RequestClientCert" | "RequireAnyClientCert" => ctx.error(
                    n,
                    format!("client_auth_type {v} is not supported by auditwatch: it accepts a client certificate without verifying it; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"),
                ),
                _ => ctx.error(
                    n,
                    format!("client_auth_type `{v}` is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"),
                ),
            }
        }
    }
    let mut min = None;
    let mut max = None;
    for (k, slot) in [("min_version", &mut min), ("max_version", &mut max)] {
        if let Some(n) = m.take(k) {
            if let Some(v) = yaml::string(ctx, n, k) {
                match v.as_str() {
                    "TLS12" => *slot = Some((12, at(n))),
                    "TLS13" => *slot = Some((13, at(n))),
                    "TLS10" | "TLS11" => ctx.error(
                        n,
                        format!("{k} {v} is not supported: auditwatch speaks TLS 1.2 and 1.3 only (TLS12, TLS13)"),
                    ),
                    _ => ctx.error(n, format!("{k} `{v}` is not one of TLS12, TLS13")),
                }
            }
        }
    }
    m.finish(ctx, "tls_server_config");
    let (lo, hi) = (min.map_or(12, |v| v.0), max.map_or(13, |v| v.0));
    if lo > hi {
        let At(line, col) = min.or(max).map_or(at(node), |v| v.1);
        ctx.error_at(
            line,
            col,
            format!("min_version TLS{lo} is above max_version TLS{hi}"),
        );
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (lo..=hi).contains(v))
            .map(|(_, p)| p)
            .collect();
    let at_node = at(node);
    // (An empty range was reported above; building would only say it again.)
    let versions_ok = !versions.is_empty();
    let missing = |ctx: &mut Ctx, file: &str, inline: &str| {
        ctx.error(
            node,
            format!("tls_server_config is missing `{file}` (or `{inline}`)"),
        );
    };
    if cert.is_none() {
        missing(ctx, "cert_file", "cert");
    }
    if key.is_none() {
        missing(ctx, "key_file", "key");
    }
    match (client_auth, &client_ca) {
        (ClientAuth::None, Some(ca)) => ctx.error_at(
            ca.at.0,
            ca.at.1,
            format!("{} is set but client_auth_type is NoClientCert: set client_auth_type: RequireAndVerifyClientCert to check client certificates", ca.key),
        ),
        (ClientAuth::IfGiven | ClientAuth::Require, None) => ctx.error_at(
            client_auth_at.0,
            client_auth_at.1,
            "client certificates are verified against a CA: set client_ca_file (or client_ca)",
        ),
        _ => {}
    }
    if !versions_ok {
        return None;
    }
    Some(TlsSettings {
        cert: cert?,
        key: key?,
        client_ca,
        client_auth,
        versions,
        at: at_node,
    })
}

/// `file_key` (a path, relative to `dir`) or `inline_key` (PEM text), not both; an empty
/// string is unset.
fn pem_setting(
    ctx: &mut Ctx,
    m: &mut MapReader,
    dir: &Path,
    file_key: &'static str,
    inline_key: &'static str,
) -> Option<PemSetting> {
    let mut found = Vec::new();
    for (k, is_file) in [(file_key, true), (inline_key, false)] {
        if let Some(n) = m.take(k) {
            if let Some(v) = yaml::string(ctx, n, k).filter(|v| !v.is_empty()) {
                let pem = if is_file {
                    Pem::File(dir.join(v))
                } else {
                    Pem::Inline(v)
                };
                found.push((
                    n,
                    PemSetting {
                        pem,
                        key: k,
                        at: at(n),
                    },
                ));
            }
        }
    }
    if found.len() > 1 {
        ctx.error(
            found[1].0,
            format!("set `{file_key}` or `{inline_key}`, not both"),
        );
    }
    found.into_iter().next().map(|(_, s)| s)
}

fn parse_users(ctx: &mut Ctx, node: &Node) -> BTreeMap<String, String> {
    let mut users = BTreeMap::new();
    let Some(m) = MapReader::new(ctx, node, "basic_auth_users") else {
        return users;
    };
    for (k, name, v) in m.keys() {
        if name.is_empty() || name.contains(':') {
            ctx.error(
                k,
                "a basic_auth_users name must be non-empty and hold no `:`",
            );
            continue;
        }
        let what = format!("basic_auth_users.{name}");
        let Some(hash) = yaml::string(ctx, v, &what) else {
            continue;
        };
        // The hash is not quoted back: a password pasted here by mistake stays out of logs.
        match hash.parse::<bcrypt::HashParts>() {
            Ok(parts) if (4..=31).contains(&parts.get_cost()) => {
                users.insert(name.to_string(), hash);
            }
            Ok(parts) => ctx.error(
                v,
                format!(
                    "{what}: bcrypt cost {} is outside 4..31",
                    parts.get_cost()
                ),
            ),
            Err(e) => ctx.error(
                v,
                format!("{what} is not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"),
            ),
        }
    }
    users
}

// ---- building ----

fn build_tls(
    ctx: &mut Ctx,
    t: TlsSettings,
    stamps: &mut Vec<(PathBuf, Option<Stamp>)>,
) -> Option<Tls> {
    let certs = read_pem(ctx, &t.cert, stamps, |b| {
        CertificateDer::pem_slice_iter(b).collect::<Result<Vec<_>, _>>()
    });
    let key = read_pem(ctx, &t.key, stamps, PrivateKeyDer::from_pem_slice);
    let roots = t.client_ca.as_ref().and_then(|ca| {
        let certs = read_pem(ctx, ca, stamps, |b| {
            CertificateDer::pem_slice_iter(b).collect::<Result<Vec<_>, _>>()
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certs {
            if let Err(e) = roots.add(c) {
                ctx.error_at(ca.at.0, ca.at.1, format!("{}: {e}", ca.key));
                return None;
            }
        }
        if roots.is_empty() {
            ctx.error_at(
                ca.at.0,
                ca.at.1,
                format!("{} holds no PEM certificate", ca.key),
            );
            return None;
        }
        Some(Arc::new(roots))
    });
    let certs = certs?;
    if certs.is_empty() {
        ctx.error_at(
            t.cert.at.0,
            t.cert.at.1,
            format!("{} holds no PEM certificate", t.cert.key),
        );
        return None;
    }
    let key = key?;
    if t.client_auth != ClientAuth::None && roots.is_none() {
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&t.versions)
    {
        Ok(b) => b,
        Err(e) => {
            ctx.error_at(t.at.0, t.at.1, format!("tls_server_config: {e}"));
            return None;
        }
    };
    let builder = match roots {
        Some(roots) => {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            let v = match t.client_auth {
                ClientAuth::IfGiven => v.allow_unauthenticated(),
                _ => v,
            };
            match v.build() {
                Ok(v) => builder.with_client_cert_verifier(v),
                Err(e) => {
                    let ca = t.client_ca.as_ref().map_or(t.at, |c| c.at);
                    ctx.error_at(ca.0, ca.1, format!("client CA: {e}"));
                    return None;
                }
            }
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = match builder.with_single_cert(certs, key) {
        Ok(c) => c,
        Err(e) => {
            ctx.error_at(
                t.key.at.0,
                t.key.at.1,
                format!("{} does not go with {}: {e}", t.key.key, t.cert.key),
            );
            return None;
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        client_auth: t.client_auth,
    })
}

/// The PEM bytes of a setting, decoded by `decode`; problems at the setting.
fn read_pem<T, E: fmt::Display>(
    ctx: &mut Ctx,
    s: &PemSetting,
    stamps: &mut Vec<(PathBuf, Option<Stamp>)>,
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Option<T> {
    let bytes = match &s.pem {
        Pem::Inline(text) => text.as_bytes().to_vec(),
        Pem::File(p) => {
            stamps.push((p.clone(), stamp(p)));
            match std::fs::read(p) {
                Ok(b) => b,
                Err(e) => {
                    ctx.error_at(
                        s.at.0,
                        s.at.1,
                        format!("cannot read {} {}: {e}", s.key, p.display()),
                    );
                    return None;
                }
            }
        }
    };
    match decode(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            let what = match &s.pem {
                Pem::File(p) => format!("{} {}", s.key, p.display()),
                Pem::Inline(_) => s.key.to_string(),
            };
            ctx.error_at(s.at.0, s.at.1, format!("{what}: not PEM ({e})"));
            None
        }
    }
}

// ---- reloading ----

/// What [`Live::refresh`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Not due, or nothing changed.
    Unchanged,
    /// A changed set was read and is in use.
    Reloaded,
    /// A changed set was refused (the running one is kept): why.
    Rejected(Vec<String>),
}

/// The web config in use, read again when its files change.
pub struct Live {
    shape: Shape,
    state: Mutex<LiveState>,
}

struct LiveState {
    current: Arc<WebConfig>,
    /// The files of the last attempt, when it was refused: not tried again until they change.
    refused: Option<Vec<(PathBuf, Option<Stamp>)>>,
    checked: Option<Instant>,
}

impl Live {
    pub fn new(cfg: Arc<WebConfig>) -> Live {
        Live {
            shape: cfg.shape(),
            state: Mutex::new(LiveState {
                current: cfg,
                refused: None,
                checked: None,
            }),
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The config for a new connection.
    pub fn current(&self) -> Arc<WebConfig> {
        lock(&self.state).current.clone()
    }

    /// Whether [`Live::refresh`] would look at the files at `now`.
    pub fn due(&self, now: Instant) -> bool {
        lock(&self.state)
            .checked
            .is_none_or(|t| now.saturating_duration_since(t) >= CHECK_EVERY)
    }

    /// When due, look at the files, and read the set again if one changed. Blocking (file
    /// system): call it off the reactor.
    pub fn refresh(&self, now: Instant) -> Refresh {
        let mut st = lock(&self.state);
        if st
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < CHECK_EVERY)
        {
            return Refresh::Unchanged;
        }
        st.checked = Some(now);
        let changed = match &st.refused {
            Some(stamps) => stamps.iter().any(|(p, s)| stamp(p) != *s),
            None => st.current.changed(),
        };
        if !changed {
            return Refresh::Unchanged;
        }
        let path = st.current.path.clone();
        // Taken before reading, so a change while reading is seen at the next look.
        let mut before = vec![(path.clone(), stamp(&path))];
        before.extend(
            st.current
                .stamps
                .iter()
                .filter(|(p, _)| *p != path)
                .map(|(p, _)| (p.clone(), stamp(p))),
        );
        let (why, stamps) = match WebConfig::load(&path) {
            Ok(new) if new.shape() == self.shape => {
                st.current = Arc::new(new);
                st.refused = None;
                return Refresh::Reloaded;
            }
            Ok(new) => {
                let why = format!(
                    "{}: it would change what the endpoint secures ({}; running with {}): restart auditwatch for that",
                    path.display(),
                    new.shape().describe(),
                    self.shape.describe()
                );
                (vec![why], new.stamps)
            }
            Err(LoadError::Read(e)) => {
                (vec![format!("cannot read {}: {e}", path.display())], before)
            }
            Err(LoadError::Invalid(problems)) => {
                (problems.iter().map(|p| p.to_string()).collect(), before)
            }
        };
        // Not tried again until one of these files changes.
        st.refused = Some(stamps);
        Refresh::Rejected(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<WebConfig, Vec<String>> {
        WebConfig::from_yaml_str(Path::new("/etc/auditwatch/web.yml"), text)
            .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
    }

    fn problems(text: &str) -> Vec<String> {
        match check(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(p) => p,
        }
    }

    fn hash() -> String {
        bcrypt::hash("s3cret", 4).unwrap()
    }

    #[test]
    fn basic_auth_users_with_bcrypt_hashes_are_read() {
        let h2y = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";
        let cfg = check(&format!(
            "basic_auth_users:\n  prometheus: '{}'\n  grafana: '{h2y}'\n",
            hash()
        ))
        .unwrap();
        assert_eq!(
            cfg.users().keys().collect::<Vec<_>>(),
            ["grafana", "prometheus"]
        );
        assert_eq!(
            cfg.shape(),
            Shape {
                tls: false,
                basic_auth: true,
                client_certs: ClientAuth::None
            }
        );
        assert!(cfg.acceptor().is_none());
        // The hashes are never printed.
        assert!(!format!("{cfg:?}").contains("$2"), "{cfg:?}");
        // Nothing set: neither TLS nor users.
        let cfg = check("tls_server_config:\nbasic_auth_users: {}\n").unwrap();
        assert_eq!(cfg.shape(), Shape::default());
    }

    #[test]
    fn unknown_and_unsupported_keys_are_errors_at_their_place() {
        let p = problems(
            "basic_auth_users: {}\nbasic_auth_user: {}\nrate_limit: {interval: 1s}\ntls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  certfile: x\n",
        );
        let want = [
            "/etc/auditwatch/web.yml:2:1: unknown field `basic_auth_user` in the web config; expected one of: basic_auth_users, http_server_config, rate_limit, tls_server_config",
            "/etc/auditwatch/web.yml:3:13: `rate_limit` is not supported by auditwatch",
            "/etc/auditwatch/web.yml:7:18: `cipher_suites` is not supported by auditwatch",
            "/etc/auditwatch/web.yml:8:3: unknown field `certfile` in tls_server_config",
        ];
        for w in want {
            assert!(p.iter().any(|x| x.starts_with(w)), "{w}\nin {p:#?}");
        }
        // The files of a config with problems are still checked: every problem at once.
        assert!(
            p.iter().any(|x| x.starts_with(
                "/etc/auditwatch/web.yml:5:14: cannot read cert_file /etc/auditwatch/c.pem: "
            )),
            "{p:#?}"
        );
    }

    #[test]
    fn a_bad_hash_is_an_error_and_is_not_quoted_back() {
        let p = problems("basic_auth_users:\n  prometheus: hunter2\n  'a:b': x\n");
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].starts_with(
                "/etc/auditwatch/web.yml:2:15: basic_auth_users.prometheus is not a bcrypt hash ("
            ),
            "{p:#?}"
        );
        assert!(!p[0].contains("hunter2"), "{p:#?}");
        assert!(p[1].contains("must be non-empty and hold no `:`"), "{p:#?}");
        let p = problems("basic_auth_users:\n  prometheus: 7\n");
        assert!(p[0].contains("must be a string"), "{p:#?}");
        let cost_99 = hash().replacen("$04$", "$99$", 1);
        let p = problems(&format!("basic_auth_users:\n  u: '{cost_99}'\n"));
        assert!(p[0].contains("bcrypt cost 99 is outside 4..31"), "{p:#?}");
    }

    #[test]
    fn a_missing_or_unreadable_cert_is_an_error() {
        let p = problems("tls_server_config:\n  key_file: k.pem\n");
        assert!(
            p.iter().any(|x| x
                == "/etc/auditwatch/web.yml:2:3: tls_server_config is missing `cert_file` (or `cert`)"),
            "{p:#?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("web.yml");
        std::fs::write(dir.path().join("k.pem"), "not a key\n").unwrap();
        std::fs::write(dir.path().join("c.pem"), "").unwrap();
        let p = WebConfig::from_yaml_str(
            &web,
            "tls_server_config:\n  cert_file: gone.pem\n  key_file: k.pem\n",
        )
        .unwrap_err();
        let p: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        let d = dir.path().display();
        assert!(
            p[0].starts_with(&format!(
                "{d}/web.yml:2:14: cannot read cert_file {d}/gone.pem: No such file"
            )),
            "{p:#?}"
        );
        assert!(
            p[1].starts_with(&format!("{d}/web.yml:3:13: key_file {d}/k.pem: not PEM")),
            "{p:#?}"
        );
        let p = WebConfig::from_yaml_str(
            &web,
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n",
        )
        .unwrap_err();
        assert!(
            p.iter().any(|x| x
                .to_string()
                .ends_with("cert_file holds no PEM certificate")),
            "{p:#?}"
        );
    }

    #[test]
    fn tls_options_are_checked() {
        let base = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n";
        let cases = [
            ("  min_version: TLS11\n", "min_version TLS11 is not supported: auditwatch speaks TLS 1.2 and 1.3 only"),
            ("  min_version: SSL3\n", "min_version `SSL3` is not one of TLS12, TLS13"),
            ("  min_version: TLS13\n  max_version: TLS12\n", "/etc/auditwatch/web.yml:4:16: min_version TLS13 is above max_version TLS12"),
            ("  client_auth_type: RequireAnyClientCert\n", "client_auth_type RequireAnyClientCert is not supported by auditwatch: it accepts a client certificate without verifying it"),
            ("  client_auth_type: Sometimes\n", "client_auth_type `Sometimes` is not one of"),
            ("  client_auth_type: RequireAndVerifyClientCert\n", "client certificates are verified against a CA: set client_ca_file (or client_ca)"),
            ("  client_ca_file: ca.pem\n", "client_ca_file is set but client_auth_type is NoClientCert"),
            ("  cert: |\n    -----BEGIN CERTIFICATE-----\n", "set `cert_file` or `cert`, not both"),
        ];
        for (extra, want) in cases {
            let p = problems(&format!("{base}{extra}"));
            assert!(
                p.iter().any(|x| x.contains(want)),
                "{extra}: {want}\nin {p:#?}"
            );
        }
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_bad_one_is_refused_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        let write = |text: &str| {
            // A new inode each time, as editors and cert-manager do.
            let tmp = dir.path().join("web.yml.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        write(&format!("basic_auth_users: {{a: '{}'}}\n", hash()));
        let live = Live::new(Arc::new(WebConfig::load(&path).unwrap()));
        let t0 = Instant::now();
        assert_eq!(live.refresh(t0), Refresh::Unchanged);
        write(&format!("basic_auth_users: {{b: '{}'}}\n", hash()));
        // Looked at no more than once per CHECK_EVERY.
        assert!(!live.due(t0));
        assert_eq!(live.refresh(t0), Refresh::Unchanged);
        let t1 = t0 + CHECK_EVERY;
        assert!(live.due(t1));
        assert_eq!(live.refresh(t1), Refresh::Reloaded);
        assert_eq!(live.current().users().keys().collect::<Vec<_>>(), ["b"]);
        // A broken file is refused, once, and the running set stays.
        write("basic_auth_users: {b: nope}\n");
        let t2 = t1 + CHECK_EVERY;
        match live.refresh(t2) {
            Refresh::Rejected(why) => assert!(why[0].contains("is not a bcrypt hash"), "{why:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(live.refresh(t2 + CHECK_EVERY), Refresh::Unchanged);
        assert_eq!(live.current().users().keys().collect::<Vec<_>>(), ["b"]);
        // Turning basic auth off takes a restart.
        write("{}\n");
        match live.refresh(t2 + 2 * CHECK_EVERY) {
            Refresh::Rejected(why) => assert!(
                why[0].contains("would change what the endpoint secures (tls off, basic auth off"),
                "{why:?}"
            ),
            other => panic!("{other:?}"),
        }
        write(&format!("basic_auth_users: {{c: '{}'}}\n", hash()));
        assert_eq!(live.refresh(t2 + 3 * CHECK_EVERY), Refresh::Reloaded);
        assert_eq!(live.current().users().keys().collect::<Vec<_>>(), ["c"]);
    }
}
