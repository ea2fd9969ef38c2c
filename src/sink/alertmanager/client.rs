//! The HTTP client: one POST of a JSON body to an Alertmanager, over TLS when its URL says
//! https, with the auth, headers and proxy of the `alertmanager:` block, and the answer
//! sorted into [`Outcome`]s. The HTTP work is reqwest's; TLS is a rustls (ring) config
//! built here, so the CA, the client certificate and the server name are ours to check.
//!
//! Invariants: a POST never takes longer than its timeout (connect, TLS, request and
//! answer together); 2xx is accepted, 5xx, 408, 429, connection errors and timeouts are
//! worth retrying, any other answer (redirects included) is a final "no". Only a bounded
//! excerpt of an answer is kept, for the log. TLS trusts the built-in web PKI roots plus
//! an optional CA file; the CA and the client certificate are read once at start (a bad
//! one fails the start, not every POST); credentials files are read at every POST. No
//! error message carries a secret: URLs never hold credentials, the proxy's is not
//! printed, and reqwest's errors are shown without their URL.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use reqwest::header::{self, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::config::Settings;
use super::http::{HttpConfig, ReadError, TlsVersion};
use super::retry::Outcome;
use super::url::Endpoint;

/// Why the client could not be set up (the sink does not start).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read {key} {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{key} {path}: {source}")]
    BadPem {
        key: &'static str,
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("ca_file {path}: {source}")]
    BadCert { path: String, source: rustls::Error },
    #[error("{key} {path} holds no PEM {what}")]
    Empty {
        key: &'static str,
        path: String,
        what: &'static str,
    },
    #[error("tls_config: client certificate and key: {0}")]
    ClientCert(rustls::Error),
    #[error("tls setup: {0}")]
    Tls(rustls::Error),
    #[error("{0}")]
    Secret(#[from] ReadError),
    #[error("proxy_url: {0}")]
    Proxy(String),
    #[error("http client: {0}")]
    Client(String),
}

/// Why a POST got no HTTP answer (all worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The exchange failed: the error and its causes on one line.
    #[error("{0}")]
    Http(String),
    #[error("no answer within {0}ms")]
    Timeout(u128),
    /// A credentials file could not be read now.
    #[error("{0}")]
    Secret(#[from] ReadError),
}

/// Posts JSON to an Alertmanager with the configured auth, headers, TLS and proxy.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    conf: Arc<HttpConfig>,
}

impl Client {
    /// A client for the sink's settings: TLS and proxy set up, every file named checked.
    pub fn new(s: &Settings) -> Result<Client, SetupError> {
        let conf = &s.http;
        // A credentials file that cannot be read now is a setup error, not a retry loop.
        for (key, p) in conf.files() {
            super::http::Credential::File(p.to_path_buf()).read(key)?;
        }
        let ca = conf.tls.ca_file.as_deref().or(s.ca_file.as_deref());
        let tls = tls_config(conf, ca)?;
        let mut b = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .user_agent(concat!("auditwatch/", env!("CARGO_PKG_VERSION")));
        if !conf.proxy_from_environment {
            b = b.no_proxy();
        }
        if let Some(p) = &conf.proxy_url {
            // reqwest's error could quote the URL and its password: say only what it is.
            let proxy = reqwest::Proxy::all(p.expose())
                .map_err(|e| SetupError::Proxy(chain(&e.without_url())))?
                .no_proxy(
                    conf.no_proxy
                        .as_deref()
                        .and_then(reqwest::NoProxy::from_string),
                );
            b = b.proxy(proxy);
        }
        let http = b
            .build()
            .map_err(|e| SetupError::Client(chain(&e.without_url())))?;
        Ok(Client {
            http,
            conf: Arc::new(conf.clone()),
        })
    }

    /// One POST of `body` to `ep`, within `timeout`.
    pub async fn post(self, ep: Arc<Endpoint>, body: Bytes, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.exchange(&ep, body, timeout)).await {
            Ok(Ok(o)) => o,
            Ok(Err(why)) => Outcome::Retry(why.to_string()),
            Err(_) => Outcome::Retry(PostError::Timeout(timeout.as_millis()).to_string()),
        }
    }

    async fn exchange(
        &self,
        ep: &Endpoint,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Outcome, PostError> {
        let req = self
            .http
            .post(ep.api.as_str())
            .timeout(timeout)
            .header(header::CONTENT_TYPE, "application/json")
            .headers(self.headers()?)
            .body(body);
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                PostError::Timeout(timeout.as_millis())
            } else {
                PostError::Http(chain(&e.without_url()))
            }
        })?;
        let status = resp.status();
        // The answer's text, for the log: bounded, and only what a person needs.
        let mut text = Vec::new();
        while text.len() < 8192 {
            match resp.chunk().await {
                Ok(Some(c)) => text.extend_from_slice(&c[..c.len().min(8192 - text.len())]),
                _ => break,
            }
        }
        Ok(classify(status.as_u16(), &excerpt(&text)))
    }

    /// Auth and custom headers as of now (files read anew); every value marked sensitive
    /// so no debug output shows it.
    fn headers(&self) -> Result<header::HeaderMap, PostError> {
        let mut h = header::HeaderMap::new();
        let value = |s: &str| {
            HeaderValue::from_str(s).map(|mut v| {
                v.set_sensitive(true);
                v
            })
        };
        let bad = |what: &str| PostError::Http(format!("{what} is not a valid header value"));
        if let Some(b) = &self.conf.basic_auth {
            let user = b.username.read("basic_auth.username_file")?;
            let pass = match &b.password {
                Some(p) => p.read("basic_auth.password_file")?,
                None => super::http::Secret::new(String::new()),
            };
            let creds = format!("{}:{}", user.expose(), pass.expose());
            let v = format!("Basic {}", crate::util::base64::encode(creds.as_bytes()));
            h.insert(
                header::AUTHORIZATION,
                value(&v).map_err(|_| bad("basic_auth"))?,
            );
        }
        if let Some(a) = &self.conf.authorization {
            let c = a.credentials.read("authorization.credentials_file")?;
            let v = format!("{} {}", a.scheme, c.expose());
            h.insert(
                header::AUTHORIZATION,
                value(&v).map_err(|_| bad("authorization credentials"))?,
            );
        }
        for hd in &self.conf.headers {
            let name = HeaderName::from_bytes(hd.name.as_bytes()).map_err(|_| bad(&hd.name))?;
            for v in hd.read()? {
                h.append(name.clone(), value(v.expose()).map_err(|_| bad(&hd.name))?);
            }
        }
        Ok(h)
    }
}

/// The rustls config: web PKI roots plus `ca`, the client certificate when set, the
/// server name when set, TLS 1.2 and 1.3 unless `min_version` says 1.3.
fn tls_config(conf: &HttpConfig, ca: Option<&Path>) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(p) = ca {
        for c in certs(p, "ca_file")? {
            roots.add(c).map_err(|source| SetupError::BadCert {
                path: p.display().to_string(),
                source,
            })?;
        }
    }
    // Both ring and other providers may be compiled in by other crates: name one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match conf.tls.min_version {
        Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let roots = Arc::new(roots);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(SetupError::Tls)?;
    let builder = match &conf.tls.server_name {
        Some(name) => {
            let inner =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| SetupError::Tls(rustls::Error::General(e.to_string())))?;
            let name = ServerName::try_from(name.clone())
                .map_err(|e| SetupError::Tls(rustls::Error::General(e.to_string())))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }))
        }
        None => builder.with_root_certificates(roots),
    };
    let mut cfg = match (&conf.tls.cert_file, &conf.tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certs(cert, "tls_config.cert_file")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|source| {
                let path = key.display().to_string();
                match source {
                    rustls::pki_types::pem::Error::NoItemsFound => SetupError::Empty {
                        key: "tls_config.key_file",
                        path,
                        what: "private key",
                    },
                    source => SetupError::Read {
                        key: "tls_config.key_file",
                        path,
                        source,
                    },
                }
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(SetupError::ClientCert)?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Every certificate of a PEM file; none is an error.
fn certs(p: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let path = || p.display().to_string();
    let mut out = Vec::new();
    let iter = CertificateDer::pem_file_iter(p).map_err(|source| SetupError::Read {
        key,
        path: path(),
        source,
    })?;
    for c in iter {
        out.push(c.map_err(|source| SetupError::BadPem {
            key,
            path: path(),
            source,
        })?);
    }
    if out.is_empty() {
        return Err(SetupError::Empty {
            key,
            path: path(),
            what: "certificate",
        });
    }
    Ok(out)
}

/// Verifies the server's certificate for the configured `server_name` instead of the
/// URL's host (an Alertmanager reached by IP or through a name its certificate lacks).
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What an HTTP answer means for the alerts it answers.
fn classify(code: u16, text: &str) -> Outcome {
    let what = if text.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {text}")
    };
    match code {
        200..=299 => Outcome::Accepted,
        500..=599 | 429 | 408 => Outcome::Retry(what),
        _ => Outcome::Rejected(what),
    }
}

/// The first 200 characters of a body on one line, printable only.
fn excerpt(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(b)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    s.trim().to_string()
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_accepted_retry_and_rejected() {
        assert_eq!(classify(200, "ignored"), Outcome::Accepted);
        assert_eq!(classify(202, ""), Outcome::Accepted);
        for code in [500, 503, 429, 408] {
            assert_eq!(classify(code, ""), Outcome::Retry(format!("HTTP {code}")));
        }
        assert_eq!(
            classify(400, "bad labels"),
            Outcome::Rejected("HTTP 400: bad labels".into())
        );
        assert!(matches!(classify(302, ""), Outcome::Rejected(_)));
    }

    #[test]
    fn excerpts_are_one_bounded_printable_line() {
        assert_eq!(excerpt(b"  line one\nline\ttwo \n"), "line one line two");
        assert_eq!(excerpt(&[b'x'; 1000]).len(), 200);
    }

    #[test]
    fn setup_errors_read_as_before() {
        let mut s = Settings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Settings::default()
        };
        let e = Client::new(&s).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot read ca_file /nonexistent/ca.pem: "),
            "{e}"
        );
        s.ca_file = None;
        assert!(Client::new(&s).is_ok());
        s.http.authorization = Some(super::super::http::Authorization {
            scheme: "Bearer".into(),
            credentials: super::super::http::Credential::File("/nonexistent/token".into()),
        });
        let e = Client::new(&s).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot read authorization.credentials_file /nonexistent/token: "),
            "{e}"
        );
        assert_eq!(
            PostError::Timeout(1500).to_string(),
            "no answer within 1500ms"
        );
    }
}
