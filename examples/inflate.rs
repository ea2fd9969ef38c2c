//! Decompression alone, the way `replay` reads a `.gz` (flate2 with zlib-rs, a 256 KiB
//! buffered file, reads into a 256 KiB buffer): the floor for `.gz` replay.
//!
//!   cargo run --release --example inflate -- FILE.gz

use std::io::{BufReader, Read};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: inflate FILE.gz");
    let file = std::fs::File::open(&path).expect("open");
    let mut r = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, file));
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let start = Instant::now();
    loop {
        let n = r.read(&mut buf).expect("inflate");
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "inflate (flate2, zlib-rs): {:.1} MB out in {secs:.2}s: {:.0} MB/s",
        total as f64 / 1e6,
        total as f64 / 1e6 / secs
    );
}
