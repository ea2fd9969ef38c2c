//! The HTTP client: one POST of a JSON body to an Alertmanager, over TLS when its URL says
//! https, and the answer sorted into [`Outcome`]s.
//!
//! Invariants: a POST never takes longer than its timeout (connect, TLS, request and
//! answer together); 2xx is accepted, 5xx, 408, 429, connection errors and timeouts are
//! worth retrying, any other answer is a final "no". Only a bounded excerpt of an answer
//! is kept, for the log. TLS trusts the built-in web PKI roots plus an optional `ca_file`,
//! which is read once at start (a bad one fails the start, not every POST).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::retry::Outcome;
use super::url::Endpoint;

/// Why TLS could not be set up (the sink does not start).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read ca_file {path}: {source}")]
    ReadCa {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("ca_file {path}: {source}")]
    BadPem {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("ca_file {path}: {source}")]
    BadCert { path: String, source: rustls::Error },
    #[error("ca_file {path} holds no PEM certificate")]
    NoCert { path: String },
    #[error("tls setup: {0}")]
    Tls(rustls::Error),
}

/// Why a POST got no HTTP answer (all worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("tls server name: {0}")]
    ServerName(rustls::pki_types::InvalidDnsNameError),
    /// The TLS handshake failed: the error and its causes on one line.
    #[error("tls: {0}")]
    Tls(String),
    #[error("https without a tls setup")]
    NoTls,
    /// The HTTP exchange failed: the error and its causes on one line.
    #[error("http: {0}")]
    Http(String),
    #[error("request: {0}")]
    Request(hyper::http::Error),
    #[error("no answer within {0}ms")]
    Timeout(u128),
}

/// Posts JSON to an Alertmanager; TLS when the URL says https.
#[derive(Clone)]
pub struct Client {
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Client {
    /// A client for `endpoints`: TLS is set up only when one of them needs it.
    pub fn new(ca_file: Option<&Path>, endpoints: &[Endpoint]) -> Result<Client, SetupError> {
        if !endpoints.iter().any(|e| e.tls) {
            return Ok(Client { tls: None });
        }
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(p) = ca_file {
            let path = || p.display().to_string();
            let mut added = 0;
            let certs = CertificateDer::pem_file_iter(p).map_err(|source| SetupError::ReadCa {
                path: path(),
                source,
            })?;
            for c in certs {
                let c = c.map_err(|source| SetupError::BadPem {
                    path: path(),
                    source,
                })?;
                roots.add(c).map_err(|source| SetupError::BadCert {
                    path: path(),
                    source,
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(SetupError::NoCert { path: path() });
            }
        }
        // Both ring and aws-lc-rs are compiled in (other crates want them): name one.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(SetupError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(cfg))),
        })
    }

    /// One POST of `body` to `ep`, within `timeout`.
    pub async fn post(self, ep: Arc<Endpoint>, body: Bytes, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.exchange(&ep, body)).await {
            Ok(Ok(o)) => o,
            Ok(Err(why)) => Outcome::Retry(why.to_string()),
            Err(_) => Outcome::Retry(PostError::Timeout(timeout.as_millis()).to_string()),
        }
    }

    async fn exchange(&self, ep: &Endpoint, body: Bytes) -> Result<Outcome, PostError> {
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(PostError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match (&self.tls, ep.tls) {
            (Some(tls), true) => {
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(PostError::ServerName)?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| PostError::Tls(chain(&e)))?;
                request(TokioIo::new(stream), ep, body).await
            }
            (None, true) => Err(PostError::NoTls),
            _ => request(TokioIo::new(tcp), ep, body).await,
        }
    }
}

async fn request<I>(io: I, ep: &Endpoint, body: Bytes) -> Result<Outcome, PostError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| PostError::Http(chain(&e)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::post(ep.path.as_str())
        .header(header::HOST, ep.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("auditwatch/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(PostError::Request)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| PostError::Http(chain(&e)))?;
    let status = resp.status();
    // The answer's text, for the log: bounded, and only what a person needs.
    let text = match Limited::new(resp.into_body(), 8192).collect().await {
        Ok(b) => excerpt(&b.to_bytes()),
        Err(_) => String::new(),
    };
    Ok(classify(status.as_u16(), &text))
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
        let e = Client::new(
            Some(Path::new("/nonexistent/ca.pem")),
            &[Endpoint::parse("https://am.example").unwrap()],
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot read ca_file /nonexistent/ca.pem: "),
            "{e}"
        );
        assert!(Client::new(None, &[Endpoint::parse("http://am:9093").unwrap()]).is_ok());
        assert_eq!(
            PostError::Timeout(1500).to_string(),
            "no answer within 1500ms"
        );
    }
}
