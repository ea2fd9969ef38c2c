//! Certificates made at test time by the `openssl` CLI (no key is ever committed), and a
//! small HTTPS client over rustls that can present a client certificate and basic-auth
//! credentials. Callers check `require_tool("openssl", ...)` first.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A private CA in a directory, signing server and client certificates on demand.
pub struct TestCa {
    pub dir: PathBuf,
    name: String,
    /// The CA certificate (PEM).
    pub cert: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

impl TestCa {
    /// A new CA named `name` (its files are `<name>-ca.pem` and `<name>-ca.key` in `dir`).
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
        let subject = format!("/CN=auditwatch test CA {name}");
        openssl(
            dir,
            &[
                &["req", "-x509"][..],
                &EC,
                &[
                    "-keyout", &key, "-out", &cert, "-days", "2", "-subj", &subject,
                ],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        TestCa {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            cert: dir.join(cert),
        }
    }

    /// A certificate signed by this CA, written as `<file>.pem` and `<file>.key`:
    /// (certificate, key).
    fn issue(&self, file: &str, subject: &str, extensions: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr, ext) = (
            format!("{file}.pem"),
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.ext"),
        );
        std::fs::write(self.dir.join(&ext), extensions).unwrap();
        openssl(
            &self.dir,
            &[
                &["req"][..],
                &EC,
                &["-keyout", &key, "-out", &csr, "-subj", subject],
            ]
            .concat(),
        );
        let (ca_cert, ca_key) = (
            format!("{}-ca.pem", self.name),
            format!("{}-ca.key", self.name),
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_cert,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        (self.dir.join(cert), self.dir.join(key))
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, file: &str) -> (PathBuf, PathBuf) {
        self.issue(
            file,
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate.
    pub fn client(&self, file: &str) -> (PathBuf, PathBuf) {
        self.issue(
            file,
            "/CN=prometheus",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
    }
}

/// How the HTTPS client connects: whom it trusts, what it presents, which versions.
#[derive(Clone)]
pub struct Https {
    pub ca: PathBuf,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `None`: TLS 1.2 and 1.3.
    pub only: Option<&'static rustls::SupportedProtocolVersion>,
}

/// An HTTP response: status, head, body.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub head: String,
    pub body: String,
}

impl Https {
    pub fn trusting(ca: &Path) -> Https {
        Https {
            ca: ca.to_path_buf(),
            client_cert: None,
            only: None,
        }
    }

    fn config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = match self.only {
            Some(v) => vec![v],
            None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .unwrap()
            .with_root_certificates(roots);
        let cfg = match &self.client_cert {
            Some((cert, key)) => b
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .unwrap()
                        .map(|c| c.unwrap())
                        .collect(),
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        Arc::new(cfg)
    }

    /// One `GET path` to `addr` (a 127.0.0.1 address), with basic-auth credentials when
    /// given; `Err` when the connection or the TLS handshake fails.
    pub fn get(
        &self,
        addr: &str,
        path: &str,
        basic: Option<(&str, &str)>,
    ) -> Result<Response, String> {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(self.config(), name).map_err(|e| e.to_string())?;
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        sock.set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        let auth = basic
            .map(|(u, p)| format!("Authorization: Basic {}\r\n", base64(&format!("{u}:{p}"))))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        if let Err(e) = s.read_to_end(&mut buf) {
            // A handshake refused by the server surfaces here, before any byte.
            if buf.is_empty() {
                return Err(e.to_string());
            }
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or(format!("no head: {text}"))?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or(format!("no status: {head}"))?;
        Ok(Response {
            code,
            head: head.to_string(),
            body: body.to_string(),
        })
    }
}

/// Standard base64 with padding.
pub fn base64(s: &str) -> String {
    auditwatch::util::base64::encode(s.as_bytes())
}

/// A TLS front for a plain TCP server (a broker whose own TLS cannot be switched on): it
/// accepts TLS 1.2/1.3 on 127.0.0.1 with a certificate of `ca`, requires a client
/// certificate of `ca` (mutual TLS) and forwards the decrypted bytes to `backend`. Runs
/// until dropped. Connections that fail the handshake are counted.
pub struct TlsFront {
    pub port: u16,
    pub refused: Arc<std::sync::atomic::AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

impl TlsFront {
    pub fn start(ca: &TestCa, backend: std::net::SocketAddr) -> TlsFront {
        use std::sync::atomic::{AtomicU64, Ordering};
        let (cert, key) = ca.server("tls-front");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&ca.cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                CertificateDer::pem_file_iter(&cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(&key).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let refused = Arc::new(AtomicU64::new(0));
        let counted = refused.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        counted.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            port,
            refused,
            _rt: rt,
        }
    }
}
