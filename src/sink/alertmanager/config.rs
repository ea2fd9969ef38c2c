//! `alertmanager:` in the config: the sink's settings, their defaults and their checks.
//!
//! Invariants: every problem is reported with its position and the reading goes on, so
//! one `config check` lists them all; a URL is stored normalised ([`Endpoint::parse`]),
//! so the same Alertmanager is never listed twice; static labels can neither take a name
//! the sink sets itself nor be empty (Alertmanager would drop them) nor be longer than a
//! label value may be.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::yaml::{self, Ctx, MapReader, Node};

use super::http::{self as http_config, HttpConfig};
use super::url::Endpoint;

/// Labels this sink sets itself; static `labels` may not use these names.
pub const OWN_LABELS: [&str; 7] = [
    "alertname",
    "category",
    "severity",
    "rule",
    "tenant",
    "kind",
    "alert_key",
];

/// Alertmanagers one daemon pushes to (one bit each in the pending list).
pub const MAX_URLS: usize = 16;

/// Longest label value sent, and allowed in `alertmanager.labels` (bytes; longer values
/// built from alerts are cut, deterministically).
pub const LABEL_MAX: usize = 256;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Alertmanager base URLs (`http(s)://host:port[/prefix]`); empty: not used.
    pub urls: Vec<String>,
    /// `endsAt` = max(`startsAt`, time taken) + this.
    pub resolve_after_secs: u64,
    /// One POST: connect, TLS, request and answer.
    pub timeout_secs: u64,
    /// Retry a failing Alertmanager this long after the alert was taken, then drop it.
    pub retry_for_secs: u64,
    /// Alerts held for delivery and retries; beyond, the oldest is dropped.
    pub max_pending: usize,
    /// Alerts per POST.
    pub batch_max: usize,
    /// Static labels added to every alert (e.g. `cluster: prod`).
    pub labels: BTreeMap<String, String>,
    /// A PEM CA bundle trusted for https besides the built-in web PKI roots (the same as
    /// `tls_config.ca_file`, which came later).
    pub ca_file: Option<PathBuf>,
    /// Auth, TLS, headers and proxy, as Prometheus's `http_config` has them.
    pub http: HttpConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            urls: Vec::new(),
            resolve_after_secs: 3600,
            timeout_secs: 10,
            retry_for_secs: 900,
            max_pending: 10_000,
            batch_max: 64,
            labels: BTreeMap::new(),
            ca_file: None,
            http: HttpConfig::default(),
        }
    }
}

impl Settings {
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// `alertmanager:`.
pub fn apply(ctx: &mut Ctx, node: &Node, s: &mut Settings) {
    let Some(mut m) = MapReader::new(ctx, node, "alertmanager") else {
        return;
    };
    let one = m.take("url");
    let many = m.take("urls");
    let mut set_one = false;
    if let Some(n) = one {
        match yaml::string(ctx, n, "alertmanager.url").as_deref() {
            Some("") => s.urls.clear(),
            Some(u) => match Endpoint::parse(u) {
                Ok(e) => {
                    s.urls = vec![e.base];
                    set_one = true;
                }
                Err(why) => ctx.error(n, format!("alertmanager.url {why}")),
            },
            None => {}
        }
    }
    if let Some(n) = many {
        let mut urls: Vec<String> = Vec::new();
        let mut ok = true;
        for item in yaml::list(ctx, n, "alertmanager.urls") {
            let Some(u) = yaml::string(ctx, item, "alertmanager.urls") else {
                ok = false;
                continue;
            };
            match Endpoint::parse(&u) {
                Ok(e) if urls.contains(&e.base) => {
                    ok = false;
                    ctx.error(item, "alertmanager.urls lists this Alertmanager twice");
                }
                Ok(e) => urls.push(e.base),
                Err(why) => {
                    ok = false;
                    ctx.error(item, format!("alertmanager.urls: each {why}"));
                }
            }
        }
        if urls.len() > MAX_URLS {
            ctx.error(
                n,
                format!("alertmanager.urls may list at most {MAX_URLS} Alertmanagers"),
            );
        } else if set_one && !urls.is_empty() {
            ctx.error(n, "set alertmanager.url or alertmanager.urls, not both");
        } else if ok && !set_one {
            s.urls = urls;
        }
    }
    let mut max_pending = s.max_pending as u64;
    let mut batch_max = s.batch_max as u64;
    for (key, max, out) in [
        ("resolve_after_secs", 30 * 86_400, &mut s.resolve_after_secs),
        ("timeout_secs", 300, &mut s.timeout_secs),
        ("retry_for_secs", 7 * 86_400, &mut s.retry_for_secs),
        ("max_pending", 1_000_000, &mut max_pending),
        ("batch_max", 10_000, &mut batch_max),
    ] {
        if let Some(n) = m.take(key) {
            if let Some(v) = yaml::positive_at_most(ctx, n, &format!("alertmanager.{key}"), max) {
                *out = v;
            }
        }
    }
    s.max_pending = max_pending as usize;
    s.batch_max = batch_max as usize;
    if let Some(n) = m.take("labels") {
        if let Some(labels) = static_labels(ctx, n) {
            s.labels = labels;
        }
    }
    http_config::apply(ctx, &mut m, &mut s.http);
    if let Some(n) = m.take("ca_file") {
        if let Some(p) = yaml::string(ctx, n, "alertmanager.ca_file") {
            if s.http.tls.ca_file.is_some() && !p.is_empty() {
                ctx.error(
                    n,
                    "set alertmanager.ca_file or alertmanager.tls_config.ca_file, not both",
                );
            } else {
                s.ca_file = (!p.is_empty()).then(|| PathBuf::from(p));
            }
        }
    }
    m.finish(ctx, "alertmanager");
}

/// `alertmanager.labels`: a mapping of label names to non-empty strings.
fn static_labels(ctx: &mut Ctx, node: &Node) -> Option<BTreeMap<String, String>> {
    let m = MapReader::new(ctx, node, "alertmanager.labels")?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, name, v) in m.keys() {
        if !label_name_ok(name) {
            ok = false;
            ctx.error(
                k,
                format!("alertmanager.labels: `{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"),
            );
            continue;
        }
        if OWN_LABELS.contains(&name) {
            ok = false;
            ctx.error(
                k,
                format!(
                    "alertmanager.labels: `{name}` is set by auditwatch itself; reserved: {}",
                    OWN_LABELS.join(", ")
                ),
            );
            continue;
        }
        match yaml::string(ctx, v, &format!("alertmanager.labels.{name}")) {
            Some(s) if s.is_empty() => {
                ok = false;
                ctx.error(
                    v,
                    format!("alertmanager.labels.{name} must not be empty (Alertmanager drops empty labels)"),
                );
            }
            Some(s) if s.len() > LABEL_MAX => {
                ok = false;
                ctx.error(
                    v,
                    format!("alertmanager.labels.{name} must be at most {LABEL_MAX} bytes"),
                );
            }
            Some(s) => {
                out.insert(name.to_string(), s);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn label_name_ok(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_every_key() {
        let c = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "alertmanager:
  urls: ['http://am-0:9093/', 'https://am-1.example']
  resolve_after_secs: 600
  timeout_secs: 3
  retry_for_secs: 120
  max_pending: 50
  batch_max: 7
  labels: {cluster: prod, env: eu}
  ca_file: /etc/ssl/am-ca.pem
",
        )
        .unwrap();
        let s = &c.alertmanager;
        assert!(s.enabled());
        assert_eq!(s.urls, ["http://am-0:9093", "https://am-1.example"]);
        assert_eq!(
            (
                s.resolve_after_secs,
                s.timeout_secs,
                s.retry_for_secs,
                s.max_pending,
                s.batch_max
            ),
            (600, 3, 120, 50, 7)
        );
        assert_eq!(s.labels.len(), 2);
        assert_eq!(
            s.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ssl/am-ca.pem"))
        );
        // The built-in default: off, with the documented values.
        let d = crate::sink::Settings::from_yaml_str("d", "")
            .unwrap()
            .alertmanager;
        assert_eq!(d, Settings::default());
        assert!(!d.enabled());
        let one = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "alertmanager: {url: 'http://127.0.0.1:9093'}\n",
        )
        .unwrap();
        assert_eq!(one.alertmanager.urls, ["http://127.0.0.1:9093"]);
    }

    #[test]
    fn config_problems_are_reported_with_positions() {
        let text = "alertmanager:
  url: 'http://u:secretpw@am:9093'
  urls: ['ftp://x', 'http://a:1', 'http://a:1/']
  resolve_after_secs: 0
  timeout_secs: 301
  retry_for_secs: -1
  max_pending: many
  batch_max: 0
  labels: {severity: x, 'bad name': y, ok: '', __x: z}
  ca_file: 7
  bogus: 1
";
        let problems = crate::sink::Settings::from_yaml_str("u.yaml", text).unwrap_err();
        let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let want = [
            "u.yaml:2:8: alertmanager.url must not carry credentials (user:password@)",
            "u.yaml:3:10: alertmanager.urls: each must start with http:// or https://",
            "u.yaml:3:35: alertmanager.urls lists this Alertmanager twice",
            "u.yaml:4:23: alertmanager.resolve_after_secs must be greater than zero",
            "u.yaml:5:17: alertmanager.timeout_secs must be at most 300",
            "u.yaml:6:19: alertmanager.retry_for_secs must be a non-negative integer, found -1",
            "u.yaml:7:16: alertmanager.max_pending must be a non-negative integer, found a string",
            "u.yaml:8:14: alertmanager.batch_max must be greater than zero",
            "u.yaml:9:12: alertmanager.labels: `severity` is set by auditwatch itself",
            "u.yaml:9:25: alertmanager.labels: `bad name` is not a label name",
            "u.yaml:9:44: alertmanager.labels.ok must not be empty",
            "u.yaml:9:48: alertmanager.labels: `__x` is not a label name",
            "u.yaml:10:12: alertmanager.ca_file must be a string, found an integer",
            "u.yaml:11:3: unknown field `bogus` in alertmanager",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "got {g}\nwant {w}…\nall: {got:#?}");
        }
        assert!(!got.iter().any(|p| p.contains("secretpw")), "{got:#?}");
    }

    #[test]
    fn http_config_keys_read_like_prometheus() {
        use super::super::http::*;
        let c = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "alertmanager:
  url: 'https://am.example'
  authorization: {credentials_file: /run/secrets/am-token}
  tls_config:
    ca_file: /etc/am/ca.pem
    cert_file: /etc/am/client.pem
    key_file: /etc/am/client.key
    server_name: am.internal
    min_version: TLS13
  http_headers:
    X-Scope-OrgID: {values: [tenant-1]}
    X-Api-Key: {secrets: [s3cret], files: [/run/secrets/key]}
  proxy_url: 'http://user:pw@proxy:3128'
  no_proxy: 'localhost,10.0.0.0/8'
",
        )
        .unwrap();
        let h = &c.alertmanager.http;
        assert_eq!(
            h.authorization,
            Some(Authorization {
                scheme: "Bearer".into(),
                credentials: Credential::File("/run/secrets/am-token".into()),
            })
        );
        assert_eq!(
            h.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/am/ca.pem"))
        );
        assert_eq!(h.tls.server_name.as_deref(), Some("am.internal"));
        assert_eq!(h.tls.min_version, Some(TlsVersion::Tls13));
        assert!(h.tls.cert_file.is_some() && h.tls.key_file.is_some());
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.headers[0].name, "X-Scope-OrgID");
        assert_eq!(h.headers[0].values, ["tenant-1"]);
        assert_eq!(h.headers[1].secrets, [Secret::new("s3cret".into())]);
        assert_eq!(
            h.proxy_url.as_ref().map(Secret::expose),
            Some("http://user:pw@proxy:3128")
        );
        assert_eq!(h.no_proxy.as_deref(), Some("localhost,10.0.0.0/8"));
        assert!(!h.proxy_from_environment);
        let b = crate::sink::Settings::from_yaml_str(
            "u.yaml",
            "alertmanager: {url: 'http://am:9093', basic_auth: {username: am, password_file: /p}, proxy_from_environment: true}\n",
        )
        .unwrap();
        let b = &b.alertmanager.http;
        assert_eq!(
            b.basic_auth,
            Some(BasicAuth {
                username: Credential::Inline(Secret::new("am".into())),
                password: Some(Credential::File("/p".into())),
            })
        );
        assert!(b.proxy_from_environment);
    }

    #[test]
    fn http_config_problems_are_reported_with_positions_and_without_secrets() {
        let text = "alertmanager:
  url: 'http://am:9093'
  basic_auth: {password: hunter2}
  authorization: {type: Basic, credentials: tok3n, credentials_file: /t}
  tls_config: {cert_file: /c, min_version: TLS10, insecure_skip_verify: true, bogus: 1}
  http_headers:
    Authorization: {values: [x]}
    'bad header': {values: [x]}
    X-Empty: {}
    X-Line: {values: [\"a\\nb\"]}
  proxy_url: 'socks5://u:hunter2@proxy'
  ca_file: /x
";
        let problems = crate::sink::Settings::from_yaml_str("u.yaml", text).unwrap_err();
        let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let want = [
            "u.yaml:3:15: alertmanager.basic_auth needs username or username_file",
            "u.yaml:4:25: alertmanager.authorization.type cannot be Basic",
            "u.yaml:4:70: alertmanager.authorization: set credentials or credentials_file, not both",
            "u.yaml:5:15: alertmanager.tls_config: cert_file and key_file go together",
            "u.yaml:5:44: alertmanager.tls_config.min_version must be TLS12 or TLS13",
            "u.yaml:5:73: alertmanager.tls_config.insecure_skip_verify is not supported",
            "u.yaml:5:79: unknown field `bogus` in alertmanager.tls_config",
            "u.yaml:7:5: alertmanager.http_headers: `Authorization` is set by auditwatch",
            "u.yaml:8:5: alertmanager.http_headers: `bad header` is not a header name",
            "u.yaml:9:14: alertmanager.http_headers.X-Empty needs values, secrets or files",
            "u.yaml:10:22: alertmanager.http_headers.X-Line.values: value 1 is not a header value",
            "u.yaml:11:14: alertmanager.proxy_url must start with http:// or https://",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "got {g}\nwant {w}…\nall: {got:#?}");
        }
        assert!(
            !got.iter()
                .any(|p| p.contains("hunter2") || p.contains("tok3n")),
            "{got:#?}"
        );
        // The older ca_file and tls_config.ca_file name the same thing: one of them.
        let both =
            "alertmanager:\n  url: 'https://am'\n  tls_config: {ca_file: /a}\n  ca_file: /b\n";
        let p = crate::sink::Settings::from_yaml_str("u.yaml", both).unwrap_err();
        assert!(p[0].to_string().starts_with("u.yaml:4:12: set alertmanager.ca_file or alertmanager.tls_config.ca_file, not both"), "{p:?}");
    }
}
