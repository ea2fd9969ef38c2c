//! Two small HTTP programs on 127.0.0.1 for what a real Alertmanager cannot show:
//! [`Recorder`], a server that answers every request `200` and keeps its head and body
//! (the headers a client sent; also the webhook receiver of Alertmanager's notifications),
//! and [`ForwardProxy`], an HTTP proxy that tunnels `CONNECT` and forwards absolute-form
//! requests, keeping the head of the first request of each connection (was it used, with
//! which `Proxy-Authorization`). Both run on threads and stop with the test process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `POST /api/v2/alerts HTTP/1.1`.
    pub line: String,
    /// Header names lower case, values as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The request target: `/api/v2/alerts`.
    pub fn path(&self) -> &str {
        self.line.split_whitespace().nth(1).unwrap_or("")
    }

    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Every value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Read one request head (request line and headers) from `r`; `None` at end of stream.
fn read_head(r: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Some((line, headers))
}

/// An HTTP/1.1 server answering `200 {}` to everything, keeping what it got.
pub struct Recorder {
    pub addr: String,
    got: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || serve(s, &g));
            }
        });
        Recorder { addr, got }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.got.lock().unwrap().clone()
    }

    /// Wait (at most `timeout`) until `n` requests came in all; `context()` on failure.
    #[track_caller]
    pub fn wait_for(&self, n: usize, timeout: std::time::Duration, context: impl Fn() -> String) {
        super::wait_for(
            &format!("{n} requests"),
            timeout,
            || self.requests().len() >= n,
            || {
                let got: Vec<_> = (self.requests().iter())
                    .map(|r| (r.line.clone(), r.json()))
                    .collect();
                format!("{got:#?}\n{}", context())
            },
        );
    }
}

fn serve(s: TcpStream, got: &Mutex<Vec<Recorded>>) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    while let Some((line, headers)) = read_head(&mut r) {
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        got.lock().unwrap().push(Recorded {
            line,
            headers,
            body,
        });
        let answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if w.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A request line and its headers (names lower case).
pub type Head = (String, Vec<(String, String)>);

/// An HTTP proxy: `CONNECT host:port` is tunnelled; any other request (absolute form) is
/// sent on to its host as it came, and the connection is then relayed both ways.
pub struct ForwardProxy {
    pub addr: String,
    /// The request line and headers of each connection's first request.
    seen: Arc<Mutex<Vec<Head>>>,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let s2 = s2.clone();
                std::thread::spawn(move || relay(c, &s2));
            }
        });
        ForwardProxy { addr, seen }
    }

    /// What the proxy was asked: (request line, headers), one per connection.
    pub fn seen(&self) -> Vec<Head> {
        self.seen.lock().unwrap().clone()
    }
}

fn relay(c: TcpStream, seen: &Mutex<Vec<Head>>) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let Some((line, headers)) = read_head(&mut r) else {
        return;
    };
    seen.lock().unwrap().push((line.clone(), headers.clone()));
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut client = c;
    let host = if method == "CONNECT" {
        target.to_string()
    } else {
        let rest = target.strip_prefix("http://").unwrap_or(target);
        rest.split('/').next().unwrap_or("").to_string()
    };
    let Ok(mut up) = TcpStream::connect(&host) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    if method == "CONNECT" {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            return;
        }
    } else {
        // The request as it came (Go and the recorder take absolute-form targets).
        let mut head = format!("{line}\r\n");
        for (n, v) in headers.iter().filter(|(n, _)| !n.starts_with("proxy-")) {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if up.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
    // Whatever the reader already buffered goes first.
    let buffered = r.buffer().to_vec();
    if !buffered.is_empty() && up.write_all(&buffered).is_err() {
        return;
    }
    let mut up2 = up.try_clone().unwrap();
    let mut client2 = client.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut up2, &mut client2);
        let _ = client2.shutdown(std::net::Shutdown::Both);
    });
    let _ = std::io::copy(&mut r.into_inner(), &mut up);
    let _ = up.shutdown(std::net::Shutdown::Both);
}
