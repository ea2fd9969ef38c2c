//! The file source: follows the file a Vault `file` audit device writes, from a persisted
//! checkpoint, across every way the field rotates it.
//!
//! A file is known by its identity (device + inode), never by its name alone:
//! - **rename + create** (logrotate's default, then SIGHUP to Vault): Vault keeps writing
//!   to the renamed file until its reload, so the old file stays open and is read until it
//!   has been quiet for `rotate_wait_secs` while the new file at the path is read too;
//! - **copytruncate**: the file shrinks below the read position, or (a writer without
//!   `O_APPEND`) a NUL hole appears where the last line ended: reading restarts at 0 and
//!   NUL runs at line starts are skipped;
//! - **deletion**: Vault keeps writing to the unlinked inode (hashicorp/vault#31718), so
//!   the open file is followed until a new file appears at the path;
//! - **daemon restarts**: the checkpoint lists every open file with the offset of the end
//!   of the last line the *engine* processed (committed by the engine thread, not by this
//!   reader), written atomically (temp file + rename) and versioned; on start each file is
//!   found again by identity, also under a rotated name in the same directory.
//!
//! A partial last line waits for its newline and is never committed. Reading blocks on
//! the ingest queue instead of spilling: the file is its own buffer.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::framer::Framer;
use crate::ingest::batch::{Batch, Commit, FileKey, SourceId};
use crate::ingest::queue::Queue;
use crate::metrics::{LineDrop, Metrics, RotationKind, WriteOutcome};
use crate::parse::ParseError;
use crate::source::settings::{FileSource, StartAt};
use crate::util::sync::lock;

/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Bytes read from one file per step.
const READ_CHUNK: usize = 1 << 20;

/// Errors of the file source that reach the daemon.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot create checkpoint directory {dir}: {source}")]
    CheckpointDir { dir: PathBuf, source: io::Error },
    #[error("checkpoint {path} is unreadable: {reason}")]
    BadCheckpoint { path: PathBuf, reason: String },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointFile {
    pub dev: u64,
    pub ino: u64,
    /// End of the last line the engine processed.
    pub offset: u64,
    /// The file at the path (not a rotated one still being drained).
    pub current: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub version: u32,
    pub source: String,
    pub path: PathBuf,
    pub files: Vec<CheckpointFile>,
}

/// State shared by the reader thread, the engine thread (commits) and the daemon
/// (checkpoints).
pub struct TailShared {
    name: String,
    path: PathBuf,
    checkpoint_path: PathBuf,
    metrics: Arc<Metrics>,
    /// Files read now: (identity, is current, offset to use until a commit arrives).
    tracked: Mutex<Vec<(FileKey, bool, u64)>>,
    committed: Mutex<HashMap<FileKey, u64>>,
    last_written: Mutex<Option<Checkpoint>>,
}

impl TailShared {
    /// The engine processed a batch ending at `c`.
    pub fn commit(&self, c: Commit) {
        lock(&self.committed).insert(c.file, c.offset);
    }

    fn committed(&self, key: FileKey) -> Option<u64> {
        lock(&self.committed).get(&key).copied()
    }

    fn snapshot(&self) -> Checkpoint {
        let tracked = lock(&self.tracked).clone();
        let committed = lock(&self.committed);
        Checkpoint {
            version: CHECKPOINT_VERSION,
            source: self.name.clone(),
            path: self.path.clone(),
            files: tracked
                .iter()
                .map(|(k, current, start)| CheckpointFile {
                    dev: k.dev,
                    ino: k.ino,
                    offset: committed.get(k).copied().unwrap_or(*start),
                    current: *current,
                })
                .collect(),
        }
    }

    /// The checkpoint of what the engine processed so far, as its file would hold it, and
    /// that file's path: the daemon keeps it in its state checkpoint, consistent with the
    /// engine's state (commits come from the engine thread, which asks).
    pub fn checkpoint_image(&self) -> io::Result<(PathBuf, Vec<u8>)> {
        Ok((self.checkpoint_path.clone(), encode(&self.snapshot())?))
    }

    /// Write the checkpoint if it changed: temp file, fsync, rename.
    pub fn write_checkpoint(&self) -> io::Result<()> {
        let cp = self.snapshot();
        let mut last = lock(&self.last_written);
        if last.as_ref() == Some(&cp) {
            return Ok(());
        }
        let result = write_atomic(&self.checkpoint_path, &cp);
        let outcome = WriteOutcome::of(&result);
        self.metrics
            .checkpoint_writes
            .with_label_values(&[&self.name, outcome.as_str()])
            .inc();
        match &result {
            Ok(()) => *last = Some(cp),
            Err(e) => {
                tracing::error!(source = %self.name, path = %self.checkpoint_path.display(), error = %e, "cannot write checkpoint")
            }
        }
        result
    }
}

fn write_atomic(path: &Path, cp: &Checkpoint) -> io::Result<()> {
    crate::fsutil::write_durably(path, &encode(cp)?)
}

fn encode(cp: &Checkpoint) -> io::Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(cp).map_err(io::Error::other)?;
    text.push(b'\n');
    Ok(text)
}

/// Read a checkpoint; `Ok(None)` when there is none.
pub fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, TailError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(TailError::BadCheckpoint {
                path: path.into(),
                reason: e.to_string(),
            })
        }
    };
    let cp: Checkpoint = serde_json::from_slice(&text).map_err(|e| TailError::BadCheckpoint {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if cp.version != CHECKPOINT_VERSION {
        return Err(TailError::BadCheckpoint {
            path: path.into(),
            reason: format!(
                "version {} (this build reads {CHECKPOINT_VERSION})",
                cp.version
            ),
        });
    }
    Ok(Some(cp))
}

/// The checkpoint file of a source.
pub fn checkpoint_path(cfg: &FileSource, name: &str) -> PathBuf {
    cfg.checkpoint_dir.join(format!("{name}.checkpoint.json"))
}

fn key_of(m: &fs::Metadata) -> FileKey {
    FileKey {
        dev: m.dev(),
        ino: m.ino(),
    }
}

/// One open file being read.
struct Open {
    file: File,
    key: FileKey,
    read_pos: u64,
    /// Where the last whole line read lies and a hash of its bytes: if those bytes
    /// change, the file was truncated and written again (copytruncate), even when it
    /// has since grown past the read position or back to the same size.
    last_line: Option<(u64, u64, u64)>,
    /// Size and mtime at the last check: the fingerprint is re-read only on a change.
    seen: Option<(u64, std::time::SystemTime)>,
    framer: Framer,
    last_growth: Instant,
    current: bool,
    deleted: bool,
    last_commit: u64,
}

/// A file source, set up and ready to run on its own thread.
pub struct Tail {
    cfg: FileSource,
    id: SourceId,
    shared: Arc<TailShared>,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    max_line: usize,
    files: Vec<Open>,
    buf: Vec<u8>,
    checkpoint_every: Duration,
}

impl Tail {
    /// Prepare the source: create the checkpoint directory, read the checkpoint and open
    /// the files it names (found again by identity).
    pub fn new(
        cfg: FileSource,
        name: &str,
        id: SourceId,
        queue: Arc<Queue>,
        metrics: Arc<Metrics>,
        max_line: usize,
        checkpoint_every: Duration,
    ) -> Result<Tail, TailError> {
        fs::create_dir_all(&cfg.checkpoint_dir).map_err(|e| TailError::CheckpointDir {
            dir: cfg.checkpoint_dir.clone(),
            source: e,
        })?;
        let cp_path = checkpoint_path(&cfg, name);
        let cp = read_checkpoint(&cp_path)?;
        let shared = Arc::new(TailShared {
            name: name.to_string(),
            path: cfg.path.clone(),
            checkpoint_path: cp_path,
            metrics: metrics.clone(),
            tracked: Mutex::new(Vec::new()),
            committed: Mutex::new(HashMap::new()),
            last_written: Mutex::new(None),
        });
        let mut tail = Tail {
            cfg,
            id,
            shared,
            queue,
            metrics,
            max_line,
            files: Vec::new(),
            buf: vec![0; READ_CHUNK],
            checkpoint_every,
        };
        tail.resume(cp);
        Ok(tail)
    }

    pub fn shared(&self) -> Arc<TailShared> {
        self.shared.clone()
    }

    fn name(&self) -> &str {
        &self.shared.name
    }

    fn open(&mut self, file: File, key: FileKey, offset: u64, current: bool) {
        tracing::info!(source = %self.name(), ino = key.ino, offset, current, "following file");
        self.files.push(Open {
            file,
            key,
            read_pos: offset,
            last_line: None,
            seen: None,
            framer: Framer::new(self.max_line, true),
            last_growth: Instant::now(),
            current,
            deleted: false,
            last_commit: offset,
        });
        self.sync_tracked();
    }

    fn sync_tracked(&self) {
        let mut t = lock(&self.shared.tracked);
        *t = self
            .files
            .iter()
            .map(|f| (f.key, f.current, f.last_commit))
            .collect();
    }

    /// Reopen what the checkpoint names; with none, start at the path per `start_at`.
    fn resume(&mut self, cp: Option<Checkpoint>) {
        let path = self.cfg.path.clone();
        let at_path = fs::metadata(&path).ok().map(|m| key_of(&m));
        let Some(cp) = cp else {
            if let Ok(f) = File::open(&path) {
                if let Ok(m) = f.metadata() {
                    let offset = match self.cfg.start_at {
                        StartAt::Beginning => 0,
                        StartAt::End => m.len(),
                    };
                    self.open(f, key_of(&m), offset, true);
                }
            }
            return;
        };
        if cp.path != path {
            tracing::warn!(source = %self.name(), old = %cp.path.display(), new = %path.display(), "the checkpoint is for another path: its files are still looked up by identity");
        }
        for entry in &cp.files {
            let key = FileKey {
                dev: entry.dev,
                ino: entry.ino,
            };
            let found = if at_path == Some(key) {
                File::open(&path).ok()
            } else {
                find_by_identity(&path, key)
            };
            let Some(f) = found else {
                tracing::warn!(source = %self.name(), ino = key.ino, offset = entry.offset, "a checkpointed file is gone (rotated away or deleted): lines written to it after the checkpoint are lost");
                self.metrics
                    .dropped_lines
                    .with_label_values(&[self.name(), LineDrop::FileGone.as_str()])
                    .inc();
                continue;
            };
            let offset = valid_offset(&f, entry.offset);
            if offset != entry.offset {
                tracing::warn!(source = %self.name(), ino = key.ino, checkpoint = entry.offset, "file shorter than its checkpoint or not at a line boundary (truncated): reading it from the start");
                self.metrics
                    .rotations
                    .with_label_values(&[self.name(), RotationKind::Truncate.as_str()])
                    .inc();
            }
            let current = at_path == Some(key);
            self.open(f, key, offset, current);
        }
        // A file at the path the checkpoint does not know was created after it: all new.
        if let Some(k) = at_path {
            if !self.files.iter().any(|f| f.key == k) {
                if let Ok(f) = File::open(&path) {
                    self.open(f, k, 0, true);
                }
            }
        }
    }

    /// Run until `stop`; then read what is there once more and return. The caller
    /// writes the final checkpoint once the engine has processed everything.
    pub fn run(mut self, stop: Arc<AtomicBool>, hard_stop: Arc<AtomicBool>) {
        let poll = Duration::from_millis(self.cfg.poll_millis);
        let mut last_checkpoint = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            self.check_path();
            let mut progressed = false;
            for i in 0..self.files.len() {
                progressed |= self.read_available(i, &hard_stop);
                if hard_stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            self.retire_drained();
            if stopping {
                return;
            }
            if last_checkpoint.elapsed() >= self.checkpoint_every {
                let _ = self.shared.write_checkpoint();
                last_checkpoint = Instant::now();
            }
            if !progressed {
                std::thread::sleep(poll);
            }
        }
    }

    /// Notice rotation, truncation, deletion and re-creation at the path.
    fn check_path(&mut self) {
        let name = self.shared.name.clone();
        let cur = self.files.iter().position(|f| f.current);
        match fs::metadata(&self.cfg.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(i) = cur {
                    let f = &mut self.files[i];
                    if !f.deleted {
                        f.deleted = true;
                        self.metrics
                            .rotations
                            .with_label_values(&[&name, RotationKind::Delete.as_str()])
                            .inc();
                        tracing::warn!(source = %name, path = %self.cfg.path.display(), "file deleted: following the open file until a new one appears");
                    }
                }
            }
            Err(e) => {
                tracing::debug!(source = %name, error = %e, "cannot stat the file");
            }
            Ok(m) => {
                let key = key_of(&m);
                match cur {
                    Some(i) if self.files[i].key != key => {
                        let kind = if self.files[i].deleted {
                            "recreated"
                        } else {
                            "renamed"
                        };
                        self.metrics
                            .rotations
                            .with_label_values(&[&name, RotationKind::Rename.as_str()])
                            .inc();
                        tracing::info!(source = %name, previous = kind, "rotation: a new file is at the path; draining the old one");
                        self.files[i].current = false;
                        self.files[i].last_growth = Instant::now();
                        self.open_path_new();
                    }
                    Some(i) => self.check_truncation(i, &m),
                    None => self.open_path_new(),
                }
            }
        }
    }

    fn open_path_new(&mut self) {
        if let Ok(f) = File::open(&self.cfg.path) {
            if let Ok(m) = f.metadata() {
                let key = key_of(&m);
                if let Some(existing) = self.files.iter_mut().find(|x| x.key == key) {
                    existing.current = true;
                    self.sync_tracked();
                } else {
                    self.open(f, key, 0, true);
                }
            }
        }
    }

    fn check_truncation(&mut self, i: usize, m: &fs::Metadata) {
        let name = self.shared.name.clone();
        let size = m.len();
        let mtime = m.modified().ok();
        let f = &mut self.files[i];
        let changed = match (f.seen, mtime) {
            (Some((s, t)), Some(mt)) => s != size || t != mt,
            _ => true,
        };
        if let Some(mt) = mtime {
            f.seen = Some((size, mt));
        }
        let truncated = if size < f.read_pos {
            true
        } else if changed {
            // The last line read must still be there, byte for byte.
            match f.last_line {
                Some((start, end, hash)) if end <= size => {
                    let mut buf = vec![0u8; (end - start) as usize];
                    match f.file.read_exact_at(&mut buf, start) {
                        Ok(()) => fingerprint(&buf) != hash,
                        Err(_) => true,
                    }
                }
                _ => false,
            }
        } else {
            false
        };
        if truncated {
            self.metrics
                .rotations
                .with_label_values(&[&name, RotationKind::Truncate.as_str()])
                .inc();
            tracing::warn!(source = %name, size, position = f.read_pos, "file truncated (copytruncate?): reading it from the start");
            if let Some(n) = f.framer.discard() {
                self.metrics
                    .dropped_lines
                    .with_label_values(&[&name, LineDrop::Fragment.as_str()])
                    .inc();
                tracing::warn!(source = %name, bytes = n, "discarded an unterminated line cut by truncation");
            }
            f.read_pos = 0;
            f.last_line = None;
            f.last_growth = Instant::now();
        }
    }

    /// Read file `i` to its end (in chunks), handing whole lines to the queue.
    fn read_available(&mut self, i: usize, hard_stop: &AtomicBool) -> bool {
        let name: Arc<str> = Arc::from(self.shared.name.as_str());
        let mut progressed = false;
        loop {
            let f = &mut self.files[i];
            let n = match f.file.read_at(&mut self.buf, f.read_pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(source = %name, error = %e, "read failed");
                    return progressed;
                }
            };
            if n == 0 {
                return progressed;
            }
            progressed = true;
            f.read_pos += n as u64;
            f.last_growth = Instant::now();
            self.metrics
                .bytes
                .with_label_values(&[&name])
                .inc_by(n as u64);
            let mut out = Vec::with_capacity(n + f.framer.pending());
            let st = f.framer.push(&self.buf[..n], &mut out);
            if st.too_long > 0 {
                self.metrics
                    .parse_errors
                    .with_label_values(&[&name, ParseError::LineTooLong.as_str()])
                    .inc_by(st.too_long);
                tracing::warn!(source = %name, lines = st.too_long, "skipped lines over parse.max_line_bytes");
            }
            let commit = f.read_pos - f.framer.pending() as u64;
            if st.too_long == 0 {
                // The chunk's last newline ends the last line handed out (NULs the framer
                // skipped after it are not part of it).
                if let (Some(last), Some(p)) =
                    (last_line(&out), memchr::memrchr(b'\n', &self.buf[..n]))
                {
                    let end = f.read_pos - n as u64 + p as u64 + 1;
                    f.last_line = Some((end - last.len() as u64, end, fingerprint(last)));
                }
            }
            if out.is_empty() && commit == f.last_commit {
                continue;
            }
            f.last_commit = commit;
            let batch = Batch {
                source: self.id,
                data: out,
                commit: Some(Commit {
                    file: f.key,
                    offset: commit,
                }),
            };
            if !self
                .queue
                .push_wait(batch, &|| hard_stop.load(Ordering::Relaxed))
            {
                return progressed;
            }
        }
    }

    /// Forget rotated files that went quiet once the engine has processed all of them.
    fn retire_drained(&mut self) {
        let wait = Duration::from_secs(self.cfg.rotate_wait_secs);
        let has_current = self.files.iter().any(|f| f.current);
        let before = self.files.len();
        let name = self.shared.name.clone();
        let shared = self.shared.clone();
        let metrics = self.metrics.clone();
        self.files.retain_mut(|f| {
            let done = !f.current
                && has_current
                && f.last_growth.elapsed() >= wait
                && shared.committed(f.key).unwrap_or(f.last_commit) >= f.last_commit;
            if done {
                if let Some(n) = f.framer.discard() {
                    metrics
                        .dropped_lines
                        .with_label_values(&[&name, LineDrop::Fragment.as_str()])
                        .inc();
                    tracing::warn!(source = %name, bytes = n, "a rotated file ended mid-line: discarded the fragment");
                }
                tracing::info!(source = %name, ino = f.key.ino, "rotated file drained");
                lock(&shared.committed).remove(&f.key);
            }
            !done
        });
        if self.files.len() != before {
            self.sync_tracked();
        }
    }
}

/// The last whole line of framed output (with its `\n`), at most its last 64 KiB.
fn last_line(out: &[u8]) -> Option<&[u8]> {
    let end = out.len().checked_sub(1)?;
    let start = memchr::memrchr(b'\n', &out[..end]).map_or(0, |p| p + 1);
    Some(&out[start.max(out.len().saturating_sub(64 * 1024))..])
}

fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x7a11).build_hasher();
    h.write(bytes);
    h.finish()
}

/// The offset to resume a reopened file at: the checkpoint's when the file is at least
/// that long and a line ends there, else 0.
fn valid_offset(f: &File, offset: u64) -> u64 {
    if offset == 0 {
        return 0;
    }
    let Ok(m) = f.metadata() else { return 0 };
    if m.len() < offset {
        return 0;
    }
    let mut one = [0u8; 1];
    match f.read_at(&mut one, offset - 1) {
        Ok(1) if one[0] == b'\n' => offset,
        _ => 0,
    }
}

/// A rotated file in the same directory with this identity (`audit.log.1`,
/// `audit.log-20260302`, ...).
fn find_by_identity(path: &Path, key: FileKey) -> Option<File> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    for e in fs::read_dir(dir).ok()?.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_file() && key_of(&m) == key {
            return File::open(e.path()).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_reject_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.checkpoint.json");
        assert_eq!(read_checkpoint(&p).unwrap(), None);
        let cp = Checkpoint {
            version: CHECKPOINT_VERSION,
            source: "f".into(),
            path: "/var/log/vault/audit.log".into(),
            files: vec![CheckpointFile {
                dev: 1,
                ino: 2,
                offset: 3,
                current: true,
            }],
        };
        write_atomic(&p, &cp).unwrap();
        assert_eq!(read_checkpoint(&p).unwrap(), Some(cp.clone()));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file is left: {names:?}");
        let mut v2 = cp;
        v2.version = 2;
        write_atomic(&p, &v2).unwrap();
        assert!(matches!(
            read_checkpoint(&p),
            Err(TailError::BadCheckpoint { .. })
        ));
        fs::write(&p, "{not json").unwrap();
        assert!(read_checkpoint(&p).is_err());
    }

    #[test]
    fn offsets_are_checked_against_line_ends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        fs::write(&p, b"one\ntwo\n").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(valid_offset(&f, 4), 4);
        assert_eq!(valid_offset(&f, 8), 8);
        assert_eq!(valid_offset(&f, 5), 0, "not at a line end");
        assert_eq!(valid_offset(&f, 9), 0, "past the end");
        let key = key_of(&fs::metadata(&p).unwrap());
        fs::rename(&p, dir.path().join("a.log.1")).unwrap();
        assert!(find_by_identity(&p, key).is_some());
    }
}
