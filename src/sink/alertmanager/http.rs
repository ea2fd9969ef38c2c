//! How the sink reaches an Alertmanager that sits behind auth or a proxy: the keys of
//! Prometheus's `alertmanager_config` / `http_config` (`basic_auth`, `authorization`,
//! `tls_config`, `http_headers`, `proxy_url`, `no_proxy`, `proxy_from_environment`), read
//! from the `alertmanager:` block, and the secrets they name.
//!
//! Invariants: a secret (password, token, header secret, a proxy URL's credentials) never
//! reaches a log line, an error message or `Debug` output ([`Secret`]); what may be given
//! inline or as a file may not be given both ways; files are read at every POST (bounded),
//! so a rotated token is used as soon as it is on disk, as Prometheus does.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml::{self, Ctx, MapReader, Node};

/// Longest credentials or header file read (bytes).
pub const SECRET_FILE_MAX: u64 = 64 * 1024;

/// Header names the sink sets itself or that belong to the connection (as Prometheus
/// reserves them); lower case.
const RESERVED_HEADERS: [&str; 11] = [
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
];

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// A secret given inline or as a file (read at every use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Inline(Secret),
    File(PathBuf),
}

/// Why a credentials file could not be used (never its content).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {key} {path}: {source}")]
    Io {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{key} {path} is larger than {SECRET_FILE_MAX} bytes")]
    TooLarge { key: &'static str, path: String },
    #[error("{key} {path} is not UTF-8")]
    NotUtf8 { key: &'static str, path: String },
}

impl Credential {
    /// The secret's value now; a file is read anew and trimmed of surrounding whitespace
    /// (a trailing newline is not part of a token). `key` names the setting for errors.
    pub fn read(&self, key: &'static str) -> Result<Secret, ReadError> {
        match self {
            Credential::Inline(s) => Ok(s.clone()),
            Credential::File(p) => read_file(p, key).map(Secret),
        }
    }
}

fn read_file(p: &Path, key: &'static str) -> Result<String, ReadError> {
    use std::io::Read;
    let path = || p.display().to_string();
    let io = |source| ReadError::Io {
        key,
        path: path(),
        source,
    };
    let f = std::fs::File::open(p).map_err(io)?;
    let mut buf = Vec::new();
    f.take(SECRET_FILE_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > SECRET_FILE_MAX {
        return Err(ReadError::TooLarge { key, path: path() });
    }
    let s = String::from_utf8(buf).map_err(|_| ReadError::NotUtf8 { key, path: path() })?;
    Ok(s.trim().to_string())
}

/// `basic_auth`: a username and an optional password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: Credential,
    pub password: Option<Credential>,
}

/// `authorization`: `<type> <credentials>` in the `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// `Bearer` unless set.
    pub scheme: String,
    pub credentials: Credential,
}

/// The lowest TLS version offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// `tls_config`: whom to trust and what to present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// A PEM CA bundle trusted besides the built-in web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// The client certificate (PEM chain) and its key, for mTLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, when not the URL's host.
    pub server_name: Option<String>,
    pub min_version: Option<TlsVersion>,
}

/// One `http_headers` entry: every value is sent, in order values, secrets, files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub values: Vec<String>,
    pub secrets: Vec<Secret>,
    pub files: Vec<PathBuf>,
}

impl Header {
    /// Every value now (files read anew).
    pub fn read(&self) -> Result<Vec<Secret>, ReadError> {
        let mut out: Vec<Secret> = self.values.iter().cloned().map(Secret).collect();
        out.extend(self.secrets.iter().cloned());
        for f in &self.files {
            out.push(Secret(read_file(f, "http_headers file")?));
        }
        Ok(out)
    }
}

/// What the HTTP client needs besides the URLs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub tls: TlsConfig,
    pub headers: Vec<Header>,
    /// May carry `user:password@`.
    pub proxy_url: Option<Secret>,
    /// Comma-separated hosts, domains and CIDRs reached without the proxy.
    pub no_proxy: Option<String>,
    /// Use `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` from the environment.
    pub proxy_from_environment: bool,
}

impl HttpConfig {
    /// Every file this config names, with its key, for a check at start.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = Vec::new();
        if let Some(b) = &self.basic_auth {
            if let Credential::File(p) = &b.username {
                out.push(("basic_auth.username_file", p.as_path()));
            }
            if let Some(Credential::File(p)) = &b.password {
                out.push(("basic_auth.password_file", p.as_path()));
            }
        }
        if let Some(Credential::File(p)) = self.authorization.as_ref().map(|a| &a.credentials) {
            out.push(("authorization.credentials_file", p.as_path()));
        }
        for h in &self.headers {
            out.extend(h.files.iter().map(|p| ("http_headers file", p.as_path())));
        }
        out
    }
}

/// Read this module's keys from the `alertmanager:` map.
pub fn apply(ctx: &mut Ctx, m: &mut MapReader<'_>, h: &mut HttpConfig) {
    if let Some(n) = m.take("basic_auth") {
        if let Some(b) = basic_auth(ctx, n) {
            h.basic_auth = Some(b);
        }
    }
    if let Some(n) = m.take("authorization") {
        if let Some(a) = authorization(ctx, n) {
            if h.basic_auth.is_some() {
                ctx.error(n, "alertmanager: set basic_auth or authorization, not both");
            } else {
                h.authorization = Some(a);
            }
        }
    }
    if let Some(n) = m.take("tls_config") {
        if let Some(t) = tls_config(ctx, n) {
            h.tls = t;
        }
    }
    if let Some(n) = m.take("http_headers") {
        if let Some(hs) = headers(ctx, n) {
            h.headers = hs;
        }
    }
    let proxy = m.take("proxy_url");
    if let Some(n) = proxy {
        if let Some(u) = yaml::string(ctx, n, "alertmanager.proxy_url") {
            match check_proxy_url(&u) {
                Ok(()) => h.proxy_url = (!u.is_empty()).then_some(Secret(u)),
                // The URL may carry a password: the message does not repeat it.
                Err(why) => ctx.error(n, format!("alertmanager.proxy_url {why}")),
            }
        }
    }
    if let Some(n) = m.take("no_proxy") {
        if let Some(s) = yaml::string(ctx, n, "alertmanager.no_proxy") {
            if proxy.is_none() && !s.is_empty() {
                ctx.error(
                    n,
                    "alertmanager.no_proxy needs alertmanager.proxy_url (the environment's NO_PROXY goes with proxy_from_environment)",
                );
            } else {
                h.no_proxy = (!s.is_empty()).then_some(s);
            }
        }
    }
    if let Some(n) = m.take("proxy_from_environment") {
        if let Some(b) = yaml::boolean(ctx, n, "alertmanager.proxy_from_environment") {
            if b && proxy.is_some() {
                ctx.error(
                    n,
                    "alertmanager: set proxy_url or proxy_from_environment, not both",
                );
            } else {
                h.proxy_from_environment = b;
            }
        }
    }
}

/// A proxy URL: http(s)://[user:password@]host[:port], nothing else. The error never
/// repeats the URL.
fn check_proxy_url(u: &str) -> Result<(), &'static str> {
    if u.is_empty() {
        return Ok(());
    }
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.rsplit_once('@').map_or(rest, |x| x.1);
    let host = host.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        return Err("must be http(s)://[user:password@]host[:port]");
    }
    Ok(())
}

/// An inline value and a file for the same secret: one of them, at most.
fn credential(
    ctx: &mut Ctx,
    m: &mut MapReader<'_>,
    inline: &'static str,
    file: &'static str,
    what: &str,
) -> Option<Option<Credential>> {
    let i = m.take(inline);
    let f = m.take(file);
    let iv = i.and_then(|n| yaml::string(ctx, n, &format!("{what}.{inline}")));
    let fv = f.and_then(|n| yaml::non_empty_path(ctx, n, &format!("{what}.{file}")));
    match (i, f) {
        (Some(_), Some(n)) => {
            ctx.error(n, format!("{what}: set {inline} or {file}, not both"));
            None
        }
        (Some(_), None) => iv.map(|s| Some(Credential::Inline(Secret(s)))),
        (None, Some(_)) => fv.map(|p| Some(Credential::File(p))),
        (None, None) => Some(None),
    }
}

fn basic_auth(ctx: &mut Ctx, node: &Node) -> Option<BasicAuth> {
    let what = "alertmanager.basic_auth";
    let mut m = MapReader::new(ctx, node, what)?;
    let user = credential(ctx, &mut m, "username", "username_file", what);
    let pass = credential(ctx, &mut m, "password", "password_file", what);
    m.finish(ctx, what);
    let (user, password) = (user?, pass?);
    let Some(username) = user else {
        ctx.error(node, format!("{what} needs username or username_file"));
        return None;
    };
    Some(BasicAuth { username, password })
}

fn authorization(ctx: &mut Ctx, node: &Node) -> Option<Authorization> {
    let what = "alertmanager.authorization";
    let mut m = MapReader::new(ctx, node, what)?;
    let mut scheme = Some("Bearer".to_string());
    if let Some(n) = m.take("type") {
        scheme = yaml::string(ctx, n, &format!("{what}.type"));
        match scheme.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("basic") => {
                ctx.error(n, format!("{what}.type cannot be Basic: use basic_auth"));
                scheme = None;
            }
            Some(t)
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                ctx.error(n, format!("{what}.type must be a word such as Bearer"));
                scheme = None;
            }
            _ => {}
        }
    }
    let cred = credential(ctx, &mut m, "credentials", "credentials_file", what);
    m.finish(ctx, what);
    let Some(credentials) = cred? else {
        ctx.error(
            node,
            format!("{what} needs credentials or credentials_file"),
        );
        return None;
    };
    Some(Authorization {
        scheme: scheme?,
        credentials,
    })
}

fn tls_config(ctx: &mut Ctx, node: &Node) -> Option<TlsConfig> {
    let what = "alertmanager.tls_config";
    let mut m = MapReader::new(ctx, node, what)?;
    let mut t = TlsConfig::default();
    let mut ok = true;
    for (key, out) in [
        ("ca_file", &mut t.ca_file),
        ("cert_file", &mut t.cert_file),
        ("key_file", &mut t.key_file),
    ] {
        if let Some(n) = m.take(key) {
            match yaml::non_empty_path(ctx, n, &format!("{what}.{key}")) {
                Some(p) => *out = Some(p),
                None => ok = false,
            }
        }
    }
    if t.cert_file.is_some() != t.key_file.is_some() {
        ok = false;
        ctx.error(node, format!("{what}: cert_file and key_file go together"));
    }
    if let Some(n) = m.take("server_name") {
        match yaml::string(ctx, n, &format!("{what}.server_name")) {
            Some(s) if rustls::pki_types::ServerName::try_from(s.as_str()).is_ok() => {
                t.server_name = Some(s)
            }
            Some(_) => {
                ok = false;
                ctx.error(
                    n,
                    format!("{what}.server_name must be a DNS name or an IP address"),
                );
            }
            None => ok = false,
        }
    }
    if let Some(n) = m.take("min_version") {
        match yaml::string(ctx, n, &format!("{what}.min_version")).as_deref() {
            Some("TLS12") => t.min_version = Some(TlsVersion::Tls12),
            Some("TLS13") => t.min_version = Some(TlsVersion::Tls13),
            Some(_) => {
                ok = false;
                ctx.error(n, format!("{what}.min_version must be TLS12 or TLS13"));
            }
            None => ok = false,
        }
    }
    if let Some(n) = m.take("insecure_skip_verify") {
        if yaml::boolean(ctx, n, &format!("{what}.insecure_skip_verify")) == Some(true) {
            ok = false;
            ctx.error(
                n,
                format!("{what}.insecure_skip_verify is not supported: trust the Alertmanager's CA with ca_file (and server_name when its certificate names another host)"),
            );
        }
    }
    m.finish(ctx, what);
    ok.then_some(t)
}

fn headers(ctx: &mut Ctx, node: &Node) -> Option<Vec<Header>> {
    let what = "alertmanager.http_headers";
    let m = MapReader::new(ctx, node, what)?;
    let mut out = Vec::new();
    let mut ok = true;
    for (k, name, v) in m.keys() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            ok = false;
            ctx.error(k, format!("{what}: `{name}` is not a header name"));
            continue;
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            ok = false;
            ctx.error(
                k,
                format!("{what}: `{name}` is set by auditwatch or the connection (use basic_auth or authorization for credentials)"),
            );
            continue;
        }
        let w = format!("{what}.{name}");
        let Some(mut hm) = MapReader::new(ctx, v, &w) else {
            ok = false;
            continue;
        };
        let mut h = Header {
            name: name.to_string(),
            values: Vec::new(),
            secrets: Vec::new(),
            files: Vec::new(),
        };
        if let Some(n) = hm.take("values") {
            h.values = yaml::string_list(ctx, n, &format!("{w}.values"));
            if let Some(bad) = h.values.iter().position(|s| !header_value_ok(s)) {
                ok = false;
                ctx.error(n, format!("{w}.values: value {} is not a header value (printable ASCII, no line breaks)", bad + 1));
            }
        }
        if let Some(n) = hm.take("secrets") {
            let s = yaml::string_list(ctx, n, &format!("{w}.secrets"));
            if s.iter().any(|s| !header_value_ok(s)) {
                ok = false;
                ctx.error(n, format!("{w}.secrets: a secret is not a header value (printable ASCII, no line breaks)"));
            }
            h.secrets = s.into_iter().map(Secret).collect();
        }
        if let Some(n) = hm.take("files") {
            let files = yaml::string_list(ctx, n, &format!("{w}.files"));
            if files.iter().any(String::is_empty) {
                ok = false;
                ctx.error(n, format!("{w}.files must not hold an empty path"));
            }
            h.files = files.into_iter().map(PathBuf::from).collect();
        }
        hm.finish(ctx, &w);
        if h.values.is_empty() && h.secrets.is_empty() && h.files.is_empty() {
            ok = false;
            ctx.error(v, format!("{w} needs values, secrets or files"));
            continue;
        }
        out.push(h);
    }
    ok.then_some(out)
}

fn header_value_ok(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_files_are_read_trimmed_and_bounded() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "<secret>");
        let c = HttpConfig {
            proxy_url: Some(Secret("http://u:hunter2@proxy:3128".into())),
            basic_auth: Some(BasicAuth {
                username: Credential::Inline(Secret("am".into())),
                password: Some(Credential::Inline(s)),
            }),
            ..HttpConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "  abc.def\n").unwrap();
        let f = Credential::File(p.clone());
        assert_eq!(f.read("k").unwrap().expose(), "abc.def");
        std::fs::write(&p, "rotated\n").unwrap();
        assert_eq!(f.read("k").unwrap().expose(), "rotated");
        std::fs::write(&p, vec![b'x'; SECRET_FILE_MAX as usize + 1]).unwrap();
        let e = f.read("authorization.credentials_file").unwrap_err();
        assert!(
            e.to_string().starts_with("authorization.credentials_file "),
            "{e}"
        );
        std::fs::remove_file(&p).unwrap();
        assert!(f.read("k").is_err());
        assert!(check_proxy_url("http://u:p@proxy:3128").is_ok());
        assert!(check_proxy_url("socks5://proxy:1080").is_err());
        assert!(check_proxy_url("http://proxy:3128/path").is_err());
    }
}
