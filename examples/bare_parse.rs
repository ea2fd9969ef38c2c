//! The baseline of `shared/docs/performance.md`: a bare single-thread simd-json serde parse
//! of each line into a typed struct of borrowed fields, with reused buffers. No detection.
//! `cargo run --release --example bare_parse -- FILE` prints MB/s and lines/s.

use std::io::{BufRead, BufReader};
use std::time::Instant;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Entry<'a> {
    #[serde(borrow)]
    time: Option<&'a str>,
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    request: Option<Request<'a>>,
    #[serde(borrow)]
    error: Option<&'a str>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Request<'a> {
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(borrow)]
    operation: Option<&'a str>,
    #[serde(borrow)]
    path: Option<&'a str>,
    #[serde(borrow)]
    remote_address: Option<&'a str>,
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: bare_parse FILE");
    let mut r = BufReader::with_capacity(128 * 1024, std::fs::File::open(&path).expect("open"));
    let mut buffers = simd_json::Buffers::new(16 * 1024);
    let mut line = Vec::new();
    let (mut bytes, mut lines, mut ok) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        bytes += line.len() as u64;
        lines += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if simd_json::serde::from_slice_with_buffers::<Entry>(&mut line, &mut buffers).is_ok() {
            ok += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bare simd-json typed parse: {lines} lines ({ok} parsed), {:.1} MB in {secs:.2}s: {:.0} MB/s, {:.0} lines/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs,
        lines as f64 / secs
    );
}
