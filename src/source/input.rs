//! Inputs of a replay: audit files at rest. Inputs are files (plain or gzip, told by their magic
//! bytes), directories (their files in rotation order: oldest first, ordered by each file's
//! first timestamp, then by name with numeric rotation suffixes), or `-` for stdin.
//! Every input is streamed; nothing is read whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::MultiGzDecoder;

/// One input to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// What happened to one input.
#[derive(Clone, Debug, Default)]
pub struct InputReport {
    pub name: String,
    pub bytes: u64,
    pub lines: u64,
    pub entries: u64,
    pub parse_errors: u64,
    /// Why the input was skipped or cut short, if it was.
    pub problem: Option<String>,
    pub skipped: bool,
}

/// Expand command-line paths into inputs. Errors name paths that do not exist.
pub fn expand(paths: &[String]) -> Result<(Vec<Input>, Vec<InputReport>), String> {
    let mut inputs = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        if p == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path).map_err(|e| format!("{p}: {e}"))?;
        if meta.is_dir() {
            let (mut files, mut skips) = directory_files(path).map_err(|e| format!("{p}: {e}"))?;
            inputs.append(&mut files);
            skipped.append(&mut skips);
        } else {
            inputs.push(Input::File(path.to_path_buf()));
        }
    }
    Ok((inputs, skipped))
}

/// The files of a directory in replay order, and those skipped as not audit logs.
fn directory_files(dir: &Path) -> io::Result<(Vec<Input>, Vec<InputReport>)> {
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if !p.is_file() {
            skipped.push(InputReport {
                name: p.display().to_string(),
                problem: Some(
                    "skipped: not a regular file (subdirectories are not descended into)".into(),
                ),
                skipped: true,
                ..InputReport::default()
            });
            continue;
        }
        match sniff(&p) {
            Ok(Sniff::Audit(first_time)) => candidates.push((first_time, rotation_key(&name), p)),
            Ok(Sniff::NotAudit) => skipped.push(InputReport {
                name: p.display().to_string(),
                problem: Some(
                    "skipped: not an audit log (no audit entry among its first lines)".into(),
                ),
                skipped: true,
                ..InputReport::default()
            }),
            // Unreadable is not "not an audit log": it fails the run (exit 1).
            Err(e) => skipped.push(InputReport {
                name: p.display().to_string(),
                problem: Some(format!("cannot read: {e}")),
                skipped: false,
                ..InputReport::default()
            }),
        }
    }
    candidates.sort_by(|a, b| {
        let ta = a.0.unwrap_or(i64::MAX);
        let tb = b.0.unwrap_or(i64::MAX);
        ta.cmp(&tb).then_with(|| a.1.cmp(&b.1))
    });
    Ok((
        candidates
            .into_iter()
            .map(|(_, _, p)| Input::File(p))
            .collect(),
        skipped,
    ))
}

/// Name order for rotated sets when timestamps do not decide: `audit.log.3.gz` before
/// `audit.log.2` before `audit.log.1` before `audit.log` (higher suffix = older).
fn rotation_key(name: &str) -> (String, i64, String) {
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    if let Some((base, n)) = stem.rsplit_once('.') {
        if let Ok(n) = n.parse::<i64>() {
            return (base.to_string(), -n, name.to_string());
        }
    }
    (stem.to_string(), 0, name.to_string())
}

enum Sniff {
    /// An audit log, with its first timestamp when one was seen.
    Audit(Option<i64>),
    NotAudit,
}

fn sniff(path: &Path) -> io::Result<Sniff> {
    // An audit log is a file where one of the first lines parses as an audit entry; the
    // real parser decides, so prefixes, NUL runs and old shapes are recognised alike. A
    // NUL hole left by copytruncate may be any size, and a first entry may be large, so
    // skip the hole whole and read lines up to the line cap.
    let mut r = io::BufReader::with_capacity(256 * 1024, open_reader(path)?);
    loop {
        let buf = io::BufRead::fill_buf(&mut r)?;
        if buf.is_empty() {
            return Ok(Sniff::NotAudit);
        }
        match buf.iter().position(|&b| b != 0) {
            Some(n) => {
                io::BufRead::consume(&mut r, n);
                break;
            }
            None => {
                let n = buf.len();
                io::BufRead::consume(&mut r, n);
            }
        }
    }
    let mut parser = crate::parse::Parser::default();
    let mut line = Vec::new();
    for _ in 0..64 {
        line.clear();
        let n = io::Read::take(&mut r, SNIFF_LINE_CAP).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let mut seen = None;
        parser.parse(&line, |_, res| {
            if let Ok(e) = res {
                seen = Some(e.time);
            }
        });
        if let Some(time) = seen {
            return Ok(Sniff::Audit(time));
        }
    }
    Ok(Sniff::NotAudit)
}

/// The longest first line sniffing reads (the default line cap).
const SNIFF_LINE_CAP: u64 = 8 * 1024 * 1024;

/// Counts bytes read from the underlying file (compressed bytes for gzip).
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn open_reader(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    gzip_or_plain(File::open(path)?)
}

/// gzip (told by its magic bytes, multi-member included) or plain bytes.
fn gzip_or_plain<R: Read + Send + 'static>(inner: R) -> io::Result<Box<dyn Read + Send>> {
    let mut r = BufReader::with_capacity(256 * 1024, inner);
    let head = r.fill_buf()?;
    if head.len() >= 2 && head[..2] == [0x1f, 0x8b] {
        return Ok(Box::new(MultiGzDecoder::new(r)));
    }
    // Plain bytes: what the sniff buffered, then reads straight into the caller's buffer.
    // Through the BufReader, every byte would be copied twice (it only steps aside for
    // reads at least as large as itself, and the line readers ask for what is left).
    let head = io::Cursor::new(r.buffer().to_vec());
    Ok(Box::new(head.chain(r.into_inner())))
}

/// Open an input for reading, counting the bytes taken from the file or stdin
/// (compressed bytes for gzip) into `count`.
pub fn open_input(
    input: &Input,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> io::Result<Box<dyn Read + Send>> {
    let reader: Box<dyn Read + Send> = match input {
        Input::Stdin => Box::new(Counting {
            inner: io::stdin(),
            count,
        }),
        Input::File(p) => Box::new(Counting {
            inner: File::open(p)?,
            count,
        }),
    };
    gzip_or_plain(reader)
}

/// Bytes to read in all, when every input is a file (progress and ETA).
pub fn total_size(inputs: &[Input]) -> Option<u64> {
    inputs
        .iter()
        .map(|i| match i {
            Input::Stdin => None,
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        })
        .sum()
}

/// Progress reporting hook, called about twice a second.
pub trait Progress {
    fn update(
        &mut self,
        bytes_done: u64,
        bytes_total: Option<u64>,
        entries: u64,
        elapsed: Duration,
    );
    fn done(&mut self) {}
}

/// Replay options.
pub struct ReplayOptions {
    pub max_line_bytes: usize,
    /// Parser threads; 1 runs everything on the calling thread. Alerts are the same.
    pub threads: usize,
    /// Log at most this many parse errors per input (the rest are counted).
    pub log_errors_per_input: u64,
}

#[cfg(test)]
mod tests {
    use super::rotation_key;

    #[test]
    fn rotation_suffixes_order_oldest_first() {
        let mut names = vec![
            "audit.log",
            "audit.log.1",
            "audit.log.3.gz",
            "audit.log.2.gz",
        ];
        names.sort_by_key(|n| rotation_key(n));
        assert_eq!(
            names,
            vec![
                "audit.log.3.gz",
                "audit.log.2.gz",
                "audit.log.1",
                "audit.log"
            ]
        );
    }
}
