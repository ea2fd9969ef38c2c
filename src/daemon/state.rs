//! Detection state that survives a restart (`state.dir`): one consistent checkpoint of the
//! engine's state and of the source positions it corresponds to, as stream processors
//! take them.
//!
//! - **What**: the pipeline's engines ([`crate::engine::snapshot`]: learned intervals,
//!   windows, episodes, suppressions, held requests, the clock, the ids of the alerts
//!   raised lately) and, for each file and CloudWatch source, the checkpoint it would
//!   write itself at that moment (the positions of what the engine processed).
//! - **When**: every `state.interval_secs`, taken by the engine thread between two batches
//!   (so state and positions agree), and only when every sink is done with every alert
//!   handed to it ([`crate::sink::Sinks::settled`]): an alert raised before a checkpoint
//!   is never lost by a crash after it. Once more at the end of a drain.
//! - **How**: one file, `engine.state`: a header (magic, format version, body length,
//!   CRC-32 of the body) and the body in postcard (serde's compact binary form); written
//!   to a temporary file, fsynced, renamed over the old one, the directory fsynced.
//! - **At start**: a valid file restores the engines, and each source's saved checkpoint
//!   replaces the source's own checkpoint file before the source opens it, so reading
//!   resumes exactly where the saved state stops. Input after that point is processed
//!   again: alerts it raises again are recognised by `id` by each sink's delivery ledger
//!   ([`crate::sink::ledger`]) and not delivered twice.
//! - **Versions**: a file of another format version, or damaged (bad magic, length or
//!   checksum, a body that does not decode), is set aside as `engine.state.discarded`
//!   with the reason logged and counted (`auditwatch_state_restores_total{outcome=
//!   "discarded"}`); the daemon starts with fresh detection state and the sources' own
//!   checkpoints. Never a crash. Format 2 adds each cadence detector's group heartbeat and
//!   outage episode (a format 1 file is set aside: there is no migration).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pipeline::{Pipeline, PipelineStateIn, PipelineStateOut};
use crate::yaml::{self, Ctx, MapReader, Node};

/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 3;

const MAGIC: &[u8; 16] = b"auditwatch-state";
/// Magic, version (u32), body length (u64), CRC-32 of the body (u32); little-endian.
const HEADER: usize = 16 + 4 + 8 + 4;

/// The state file in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("engine.state")
}

/// `state`: where detection state is kept across restarts.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `None`: none kept (detection starts afresh at every start).
    pub dir: Option<PathBuf>,
    /// How often the state checkpoint is written.
    pub interval_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dir: None,
            interval_secs: 5,
        }
    }
}

impl yaml::Section for Settings {
    fn keys(&self) -> &'static [&'static str] {
        &["state"]
    }

    fn apply(&mut self, ctx: &mut Ctx, _key: &str, node: &Node) {
        let Some(mut m) = MapReader::new(ctx, node, "state") else {
            return;
        };
        if let Some(n) = m.take("dir") {
            if let Some(d) = yaml::string(ctx, n, "state.dir") {
                self.dir = (!d.is_empty()).then(|| PathBuf::from(d));
            }
        }
        if let Some(n) = m.take("interval_secs") {
            if let Some(v) = yaml::positive_at_most(ctx, n, "state.interval_secs", 3600) {
                self.interval_secs = v;
            }
        }
        m.finish(ctx, "state");
    }
}

/// A source's own checkpoint as the state holds it: the bytes of its checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceImage {
    /// The source's name.
    pub name: String,
    /// Its checkpoint file.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    written_unix_ms: i64,
    build: &'a str,
    sources: &'a [SourceImage],
    pipeline: PipelineStateOut<'a>,
}

#[derive(Deserialize)]
struct FileIn {
    written_unix_ms: i64,
    build: String,
    sources: Vec<SourceImage>,
    pipeline: PipelineStateIn,
}

/// A state read back, ready to be restored.
pub struct Saved {
    pub written_unix_ms: i64,
    /// The version of auditwatch that wrote it.
    pub build: String,
    pub sources: Vec<SourceImage>,
    pub pipeline: PipelineStateIn,
}

/// Why a state file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Discard {
    #[error("cannot read it: {0}")]
    Io(io::Error),
    #[error("not an auditwatch state file")]
    Magic,
    #[error("format version {0}; this build reads version {FORMAT_VERSION} only")]
    Version(u32),
    #[error("cut short: {got} bytes of a body of {want}")]
    Short { got: u64, want: u64 },
    #[error("checksum mismatch (damaged)")]
    Checksum,
    #[error("cannot decode it: {0}")]
    Decode(postcard::Error),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Write the state of `pipeline` with the source checkpoints `sources` to `path`,
/// atomically. Returns the bytes written.
pub fn write(path: &Path, pipeline: &Pipeline, sources: &[SourceImage]) -> io::Result<u64> {
    let body = postcard::to_stdvec(&FileOut {
        written_unix_ms: now_ms(),
        build: env!("CARGO_PKG_VERSION"),
        sources,
        pipeline: pipeline.save_state(),
    })
    .map_err(io::Error::other)?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&(body.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    crate::fsutil::write_durably_parts(path, &[&header, &body])?;
    Ok((header.len() + body.len()) as u64)
}

/// Read the state file at `path`: `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<Saved>, Discard> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Discard::Io(e)),
    };
    let mut header = [0u8; HEADER];
    if let Err(e) = f.read_exact(&mut header) {
        return Err(match e.kind() {
            io::ErrorKind::UnexpectedEof => Discard::Magic,
            _ => Discard::Io(e),
        });
    }
    if &header[..16] != MAGIC {
        return Err(Discard::Magic);
    }
    let version = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(Discard::Version(version));
    }
    let want = u64::from_le_bytes(header[20..28].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(header[28..32].try_into().expect("4 bytes"));
    let mut body = Vec::new();
    // Never trust the length to size a buffer: read what is there.
    f.take(want.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(Discard::Io)?;
    if body.len() as u64 != want {
        return Err(Discard::Short {
            got: body.len() as u64,
            want,
        });
    }
    if crc32fast::hash(&body) != crc {
        return Err(Discard::Checksum);
    }
    let file: FileIn = postcard::from_bytes(&body).map_err(Discard::Decode)?;
    Ok(Some(Saved {
        written_unix_ms: file.written_unix_ms,
        build: file.build,
        sources: file.sources,
        pipeline: file.pipeline,
    }))
}

/// Set a state file that was not taken aside (`<path>.discarded`, replacing an older one),
/// so the next checkpoint does not overwrite the evidence.
pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let mut to = path.as_os_str().to_owned();
    to.push(".discarded");
    let to = PathBuf::from(to);
    fs::rename(path, &to)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::rules::RuleSet;

    fn pipeline() -> Pipeline {
        Pipeline::new(Arc::new(Config::default()), Arc::new(RuleSet::embedded()))
    }

    fn sources() -> Vec<SourceImage> {
        vec![SourceImage {
            name: "vault-file".into(),
            path: "/var/lib/auditwatch/vault-file.checkpoint.json".into(),
            bytes: b"{\"version\":1}".to_vec(),
        }]
    }

    #[test]
    fn a_state_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_in(dir.path());
        assert!(read(&p).unwrap().is_none(), "none yet");
        let mut pl = pipeline();
        let mut out = Vec::new();
        pl.feed_line(
            br#"{"time":"2026-03-02T10:00:00Z","type":"response","auth":{"token_type":"default"},"request":{"id":"r1","operation":"read","path":"sys/raw/core"},"response":{}}"#,
            &mut out,
        )
        .unwrap();
        let n = write(&p, &pl, &sources()).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), n);
        let saved = read(&p).unwrap().expect("a state");
        assert_eq!(saved.sources, sources());
        assert_eq!(saved.build, env!("CARGO_PKG_VERSION"));
        let mut again = pipeline();
        let r = again.restore_state(saved.pipeline);
        assert!(r.rules_dropped.is_empty());
        // The alert raised before the checkpoint is not raised again from the same line.
        let mut out2 = Vec::new();
        again
            .feed_line(
                br#"{"time":"2026-03-02T10:00:00Z","type":"response","auth":{"token_type":"default"},"request":{"id":"r1","operation":"read","path":"sys/raw/core"},"response":{}}"#,
                &mut out2,
            )
            .unwrap();
        assert!(!out.is_empty() && out2.is_empty(), "{out2:?}");
    }

    /// Another version, a damaged or cut file: discarded with the reason, never a panic.
    #[test]
    fn a_file_that_cannot_be_taken_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_in(dir.path());
        write(&p, &pipeline(), &sources()).unwrap();
        let good = fs::read(&p).unwrap();

        let mut older = good.clone();
        older[16..20].copy_from_slice(&0u32.to_le_bytes());
        fs::write(&p, &older).unwrap();
        assert!(matches!(read(&p), Err(Discard::Version(0))));

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        fs::write(&p, &flipped).unwrap();
        assert!(matches!(read(&p), Err(Discard::Checksum)));

        fs::write(&p, &good[..good.len() - 3]).unwrap();
        assert!(matches!(read(&p), Err(Discard::Short { .. })));

        fs::write(&p, b"{\"not\": \"state\"}").unwrap();
        assert!(matches!(read(&p), Err(Discard::Magic)));

        // A body that passes the checksum but is not this format's (a format change
        // without a version bump): a decode error, not a panic.
        let mut bad = good[..HEADER].to_vec();
        let body = vec![0xffu8; 40];
        bad[20..28].copy_from_slice(&(body.len() as u64).to_le_bytes());
        bad[28..32].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bad.extend_from_slice(&body);
        fs::write(&p, &bad).unwrap();
        assert!(matches!(read(&p), Err(Discard::Decode(_))));

        let aside = set_aside(&p).unwrap();
        assert!(aside.exists() && !p.exists());
    }

    #[test]
    fn the_state_settings_are_read_and_bad_ones_reported() {
        let read = |text: &str| {
            let mut s = Settings::default();
            yaml::load_parts(crate::config::DEFAULT_YAML, "c.yaml", text, &mut [&mut s]).map(|()| s)
        };
        assert_eq!(
            read("state: {dir: /var/lib/auditwatch/state, interval_secs: 30}\n").unwrap(),
            Settings {
                dir: Some("/var/lib/auditwatch/state".into()),
                interval_secs: 30
            }
        );
        assert_eq!(read("").unwrap().dir, None);
        let all: Vec<String> = read("state: {interval_secs: 0, colour: red}\n")
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert!(
            all.iter().any(|p| p.contains("state.interval_secs")),
            "{all:?}"
        );
        assert!(all.iter().any(|p| p.contains("colour")), "{all:?}");
    }
}
