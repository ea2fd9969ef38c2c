//! The file source: follows the file a Vault `file` audit device writes, from a persisted
//! checkpoint, across every way the field rotates it, and loses nothing it could read.
//!
//! A file is known by its identity (device + inode), never by its name alone:
//! - **rename + create** (logrotate's default, then SIGHUP to Vault): Vault keeps writing
//!   to the renamed file until its reload, so the old file stays open and is read until it
//!   has been quiet for `rotate_wait_secs` while the new file at the path is read too;
//! - **copytruncate**: the file shrinks below the read position, or (a writer without
//!   `O_APPEND`) a NUL hole appears where the last line ended. What had not been read yet
//!   is in the copy logrotate made: it is found by its content ([`copy`]: the last lines
//!   read, [`LineMark`], at their offsets), read from where reading stopped to its end, and
//!   the truncated file is read again from 0 (NUL runs at line starts are skipped);
//! - **deletion**: Vault keeps writing to the unlinked inode (hashicorp/vault#31718), so
//!   the open file is followed until a new file appears at the path;
//! - **daemon restarts**: the checkpoint lists every open file with the offset of the end
//!   of the last line the *engine* processed (committed by the engine thread, not by this
//!   reader) and the mark of the last line read, written atomically (temp file + rename)
//!   and versioned ([`checkpoint`]); on start each file is found again by identity, also
//!   under a rotated name in the same directory, or by its content when it was truncated,
//!   compressed or copied meanwhile.
//!
//! What cannot be found (truncated with no copy holding the unread part, a checkpointed
//! file gone) is counted (`dropped_lines_total{reason}`, `lost_bytes_total`), logged, and
//! handed out of band to the engine thread ([`TailShared::take_losses`]), which raises an
//! `input_lost` finding: never as a line in the audit stream, where anyone could write one.
//!
//! A partial last line waits for its newline and is never committed. Reading blocks on
//! the ingest queue instead of spilling: the file is its own buffer.

pub mod checkpoint;
pub mod copy;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::framer::Framer;
use crate::ingest::batch::{Batch, Commit, FileKey, SourceId};
use crate::ingest::queue::Queue;
use crate::metrics::{LineDrop, Metrics, RotationKind, WriteOutcome};
use crate::parse::ParseError;
use crate::source::settings::{FileSource, StartAt};
use crate::util::lograte::LogRate;
use crate::util::sync::lock;
pub use checkpoint::{
    read_checkpoint, Checkpoint, CheckpointFile, LineMark, Loss, LossReason, TailError,
    CHECKPOINT_VERSION,
};
use copy::key_of;

/// Bytes read from one file per step.
const READ_CHUNK: usize = 1 << 20;

/// Marks of the last lines read kept per file: a copy made while the reader was reading
/// lines appended during the copy holds an earlier one of them.
const MARKS: usize = 8;

/// Losses waiting for the engine thread; past this, a loss is still counted and logged
/// but raises no finding of its own.
const MAX_PENDING_LOSSES: usize = 256;

/// A file as the checkpoint sees it.
#[derive(Clone, Debug)]
struct Tracked {
    key: FileKey,
    current: bool,
    /// End of the last line the engine processed (the start offset until it commits).
    offset: u64,
    last_line: Option<LineMark>,
    read_to: u64,
}

/// State shared by the reader thread, the engine thread (commits, losses) and the daemon
/// (checkpoints).
pub struct TailShared {
    name: String,
    path: PathBuf,
    checkpoint_path: PathBuf,
    metrics: Arc<Metrics>,
    /// The files read now, in reading order.
    files: Mutex<Vec<Tracked>>,
    losses: Mutex<VecDeque<Loss>>,
    loss_log: Mutex<LogRate>,
    last_written: Mutex<Option<Checkpoint>>,
}

impl TailShared {
    /// The engine processed a batch ending at `c`.
    pub fn commit(&self, c: Commit) {
        if let Some(t) = lock(&self.files).iter_mut().find(|t| t.key == c.file) {
            t.offset = c.offset;
        }
    }

    fn committed(&self, key: FileKey) -> Option<u64> {
        lock(&self.files)
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.offset)
    }

    /// Input lost and not yet raised, oldest first; the engine thread raises each as an
    /// `input_lost` finding.
    pub fn take_losses(&self) -> Vec<Loss> {
        lock(&self.losses).drain(..).collect()
    }

    /// The source's name (the `source` label and the finding's evidence).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Count a loss, log it and queue it for the engine thread.
    fn lose(&self, loss: Loss) {
        let m = &self.metrics;
        let reason = loss.reason.as_str();
        m.dropped_lines
            .with_label_values(&[&self.name, reason])
            .inc();
        if let Some(n) = loss.lost_bytes {
            m.lost_bytes
                .with_label_values(&[&self.name, reason])
                .inc_by(n);
        }
        if let Some(held) = lock(&self.loss_log).allow(Instant::now()) {
            tracing::warn!(source = %self.name, reason, path = %loss.file.display(), ino = loss.ino, from_offset = loss.from_offset, lost_bytes = ?loss.lost_bytes, held_back = held, "input lost: what the file held past this offset was never read (raised as input_lost)");
        }
        let mut q = lock(&self.losses);
        if q.len() >= MAX_PENDING_LOSSES {
            // Counted above; only its own finding is not raised.
            tracing::warn!(source = %self.name, "too many losses waiting for the engine: this one raises no finding of its own");
            return;
        }
        q.push_back(loss);
    }

    /// The checkpoint of what the engine processed: every file read now, with the mark of
    /// its last line read, and the losses not yet raised.
    pub fn snapshot(&self) -> Checkpoint {
        let files = lock(&self.files)
            .iter()
            .map(|t| CheckpointFile {
                dev: t.key.dev,
                ino: t.key.ino,
                offset: t.offset,
                current: t.current,
                last_line: t.last_line,
                read_to: Some(t.read_to.max(t.offset)),
            })
            .collect();
        Checkpoint {
            version: CHECKPOINT_VERSION,
            source: self.name.clone(),
            path: self.path.clone(),
            files,
            losses: lock(&self.losses).iter().cloned().collect(),
        }
    }

    /// The checkpoint of what the engine processed so far, as its file would hold it, and
    /// that file's path: the daemon keeps it in its state checkpoint, consistent with the
    /// engine's state (commits come from the engine thread, which asks).
    pub fn checkpoint_image(&self) -> io::Result<(PathBuf, Vec<u8>)> {
        Ok((
            self.checkpoint_path.clone(),
            checkpoint::encode(&self.snapshot())?,
        ))
    }

    /// Write the checkpoint if it changed: temp file, fsync, rename.
    pub fn write_checkpoint(&self) -> io::Result<()> {
        let cp = self.snapshot();
        let mut last = lock(&self.last_written);
        if last.as_ref() == Some(&cp) {
            return Ok(());
        }
        let result = checkpoint::write_atomic(&self.checkpoint_path, &cp);
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

/// The checkpoint file of a source.
pub fn checkpoint_path(cfg: &FileSource, name: &str) -> PathBuf {
    cfg.checkpoint_dir.join(format!("{name}.checkpoint.json"))
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One open file being read.
struct Open {
    file: File,
    key: FileKey,
    read_pos: u64,
    /// The last whole lines read (newest last, at most [`MARKS`]): if the newest one's
    /// bytes change, the file was truncated and written again (copytruncate), even when it
    /// has since grown past the read position or back to the same size; any of them finds
    /// the copy.
    marks: VecDeque<LineMark>,
    /// Size and mtime at the last check: the mark is re-read only on a change.
    seen: Option<(u64, SystemTime)>,
    /// The largest size the file was seen at since it was last (re)started: content that
    /// existed, read or not.
    max_size: u64,
    framer: Framer,
    last_growth: Instant,
    current: bool,
    deleted: bool,
    last_commit: u64,
}

/// A file source, set up and ready to run on its own thread.
pub struct Tail {
    cfg: FileSource,
    /// Where its rotated files are: the file's directory, then `rotated_dirs`.
    dirs: Vec<PathBuf>,
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
    /// the files it names (found again by identity, or by content).
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
            files: Mutex::new(Vec::new()),
            losses: Mutex::new(VecDeque::new()),
            loss_log: Mutex::new(LogRate::new(Duration::from_secs(10))),
            last_written: Mutex::new(None),
        });
        let mut tail = Tail {
            dirs: copy::rotated_dirs(&cfg.path, &cfg.rotated_dirs),
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

    fn place(&self) -> copy::Place<'_> {
        copy::Place {
            path: &self.cfg.path,
            dirs: &self.dirs,
            scratch: &self.cfg.checkpoint_dir,
        }
    }

    /// Start reading `file` at `offset`, at position `at` in the reading order (the end
    /// when `None`).
    fn open(
        &mut self,
        file: File,
        key: FileKey,
        offset: u64,
        current: bool,
        mark: Option<LineMark>,
        at: Option<usize>,
    ) {
        tracing::info!(source = %self.name(), ino = key.ino, offset, current, "following file");
        let open = Open {
            file,
            key,
            read_pos: offset,
            marks: mark.into_iter().collect(),
            seen: None,
            max_size: offset,
            framer: Framer::new(self.max_line, true),
            last_growth: Instant::now(),
            current,
            deleted: false,
            last_commit: offset,
        };
        let at = at.unwrap_or(self.files.len()).min(self.files.len());
        self.files.insert(at, open);
        self.sync_tracked(None);
    }

    /// Make the checkpoint's list of files the reader's, keeping the engine's offsets of
    /// files it knows; `reset` starts over (a truncated file read again from 0). One lock,
    /// so a checkpoint never sees half of a change.
    fn sync_tracked(&self, reset: Option<FileKey>) {
        let mut t = lock(&self.shared.files);
        *t = self
            .files
            .iter()
            .map(|f| {
                let known = t.iter().find(|x| x.key == f.key && Some(f.key) != reset);
                Tracked {
                    key: f.key,
                    current: f.current,
                    offset: known.map_or(f.last_commit, |x| x.offset),
                    last_line: f.marks.back().copied(),
                    read_to: f.read_pos,
                }
            })
            .collect();
    }

    fn lose(&self, reason: LossReason, key: FileKey, from: u64, lost_bytes: Option<u64>) {
        self.shared.lose(Loss {
            reason,
            file: self.cfg.path.clone(),
            dev: key.dev,
            ino: key.ino,
            from_offset: from,
            lost_bytes: lost_bytes.filter(|&n| n > 0),
            noticed_unix_ms: now_unix_ms(),
        });
    }

    fn count_truncation(&self) {
        self.metrics
            .rotations
            .with_label_values(&[self.name(), RotationKind::Truncate.as_str()])
            .inc();
    }

    /// Identities of the files being read: a copy is never one of them.
    fn open_keys(&self) -> Vec<FileKey> {
        self.files.iter().map(|f| f.key).collect()
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
                    self.open(f, key_of(&m), offset, true, None, None);
                }
            }
            return;
        };
        if cp.path != path {
            tracing::warn!(source = %self.name(), old = %cp.path.display(), new = %path.display(), "the checkpoint is for another path: its files are still looked up by identity");
        }
        // Raised by no engine before the stop: raised now (counted when noticed).
        lock(&self.shared.losses).extend(cp.losses.iter().cloned());
        let named: Vec<FileKey> = cp
            .files
            .iter()
            .map(|e| FileKey {
                dev: e.dev,
                ino: e.ino,
            })
            .collect();
        for entry in &cp.files {
            let key = FileKey {
                dev: entry.dev,
                ino: entry.ino,
            };
            if self.files.iter().any(|f| f.key == key) {
                continue;
            }
            let current = at_path == Some(key);
            let found = if current {
                File::open(&path).ok()
            } else {
                find_by_identity(&self.dirs, key)
            };
            let mut exclude = self.open_keys();
            exclude.extend(&named);
            let Some(f) = found else {
                self.resume_gone(entry, key, &exclude);
                continue;
            };
            let f = if current {
                f
            } else {
                // A rotated file: plain, or (ours, a copy we were reading) compressed.
                let keep = entry
                    .last_line
                    .map_or(entry.offset, |m| m.start)
                    .min(entry.offset.saturating_sub(1));
                match copy::readable(f, keep, &self.cfg.checkpoint_dir) {
                    Ok((f, _)) => f,
                    Err(e) => {
                        tracing::warn!(source = %self.name(), ino = key.ino, error = %e, "cannot read a rotated file");
                        self.resume_gone(entry, key, &exclude);
                        continue;
                    }
                }
            };
            let at_offset = valid_offset(&f, entry.offset) == entry.offset;
            let intact = match entry.last_line {
                Some(m) => at_offset && m.matches(&f),
                // Version 1: the offset is all there is to check.
                None => at_offset,
            };
            if intact {
                self.open(f, key, entry.offset, current, entry.last_line, None);
                continue;
            }
            if !current {
                // A rotated file is not written again: another file has its inode now (ours
                // was deleted), and reading it would repeat old entries.
                self.resume_gone(entry, key, &exclude);
                continue;
            }
            tracing::warn!(source = %self.name(), ino = key.ino, checkpoint = entry.offset, "file shorter than its checkpoint, or its last line read is not there (truncated): reading it from the start");
            self.count_truncation();
            self.recover(entry, key, &exclude);
            self.open(f, key, 0, current, None, None);
        }
        // A file at the path the checkpoint does not know was created after it: all new.
        if let Some(k) = at_path {
            if !self.files.iter().any(|f| f.key == k) {
                if let Ok(f) = File::open(&path) {
                    self.open(f, k, 0, true, None, None);
                }
            }
        }
    }

    /// A checkpointed file that is not there any more: read on from a copy of it found by
    /// its content (rotated and compressed while the daemon was down), or count it lost.
    fn resume_gone(&mut self, entry: &CheckpointFile, key: FileKey, exclude: &[FileKey]) {
        if self.recover_from_copy(entry, exclude) {
            return;
        }
        tracing::warn!(source = %self.name(), ino = key.ino, offset = entry.offset, "a checkpointed file is gone (rotated away or deleted) and no copy of it was found: lines written to it after the checkpoint are lost");
        let known = entry.read_to.map(|r| r.saturating_sub(entry.offset));
        self.lose(LossReason::FileGone, key, entry.offset, known);
    }

    /// A checkpointed file truncated meanwhile: read the rest from its copy, or count it
    /// lost.
    fn recover(&mut self, entry: &CheckpointFile, key: FileKey, exclude: &[FileKey]) {
        if !self.recover_from_copy(entry, exclude) {
            let known = entry.read_to.map(|r| r.saturating_sub(entry.offset));
            self.lose(LossReason::RotatedAway, key, entry.offset, known);
        }
    }

    /// Find the copy of a checkpointed file by its mark and read it from the checkpoint's
    /// offset; `false` when there is none.
    fn recover_from_copy(&mut self, entry: &CheckpointFile, exclude: &[FileKey]) -> bool {
        let Some(mark) = entry.last_line else {
            return false;
        };
        let Some(c) = copy::find(&self.place(), &[mark], exclude, entry.offset) else {
            return false;
        };
        tracing::info!(source = %self.name(), copy = %c.path.display(), gzip = c.gzip, from = entry.offset, bytes = c.len.saturating_sub(entry.offset), "found the rest of a checkpointed file in a rotated copy by its content: reading it from the checkpoint");
        if entry.offset < c.len {
            self.open(c.file, c.key, entry.offset, false, Some(c.mark), None);
        }
        true
    }

    /// Run until `stop`; then read what is there once more and return. The caller
    /// writes the final checkpoint once the engine has processed everything.
    pub fn run(mut self, stop: Arc<AtomicBool>, hard_stop: Arc<AtomicBool>) {
        let poll = Duration::from_millis(self.cfg.poll_millis);
        let mut last_checkpoint = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            self.check_path(&hard_stop);
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
    fn check_path(&mut self, hard_stop: &AtomicBool) {
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
                    Some(i) => {
                        if self.truncated(i, &m) {
                            self.after_truncation(i, hard_stop);
                        }
                    }
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
                    self.sync_tracked(None);
                } else {
                    self.open(f, key, 0, true, None, None);
                }
            }
        }
    }

    /// Whether the file at the path (open as `i`, metadata `m`) was truncated since it was
    /// last looked at: shorter than the read position, or its last line read changed.
    fn truncated(&mut self, i: usize, m: &fs::Metadata) -> bool {
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
            match f.marks.back() {
                Some(mark) if mark.end <= size => !mark.matches(&f.file),
                _ => false,
            }
        } else {
            false
        };
        if !truncated {
            f.max_size = f.max_size.max(size);
        }
        truncated
    }

    /// File `i` was truncated: read what had not been read from the rotated copy, found by
    /// its content, before the file's new content, which is read from 0; count and report
    /// what no copy holds.
    fn after_truncation(&mut self, i: usize, hard_stop: &AtomicBool) {
        let name = self.shared.name.clone();
        self.count_truncation();
        let exclude = self.open_keys();
        let f = &mut self.files[i];
        // The end of the last whole line handed on: the partial line after it (if any) is
        // whole in the copy, or lost with the rest.
        let resume = f.last_commit;
        let seen = f.max_size.max(f.read_pos);
        let key = f.key;
        let _ = f.framer.discard();
        let marks: Vec<LineMark> = f.marks.iter().rev().copied().collect();
        tracing::warn!(source = %name, position = f.read_pos, "file truncated (copytruncate?): looking for the unread part in its rotated copy, then reading the file from the start");
        let found = copy::find(&self.place(), &marks, &exclude, resume);
        // The old content's batches still queued commit offsets of the old content: the
        // file starts over only once the engine processed them all. At a hard stop it does
        // not: the checkpoint keeps the old content's offset and mark, and the next start
        // finds the copy again.
        if !self.wait_committed(i, hard_stop) {
            return;
        }
        let f = &mut self.files[i];
        f.read_pos = 0;
        f.last_commit = 0;
        f.max_size = 0;
        f.marks.clear();
        f.last_growth = Instant::now();
        match found {
            Some(c) => {
                let unread = c.len.saturating_sub(resume);
                tracing::info!(source = %name, copy = %c.path.display(), gzip = c.gzip, from = resume, bytes = unread, "copytruncate: reading the unread part from the rotated copy");
                // Seen in the file but not in the copy: written between the copy and the
                // truncation, and gone.
                let gap_from = c.len.max(resume);
                let gap = seen.saturating_sub(gap_from);
                if gap > 0 {
                    self.lose(LossReason::RotatedAway, key, gap_from, Some(gap));
                }
                if unread > 0 {
                    // Read before the file's new content.
                    self.files.insert(
                        i,
                        Open {
                            file: c.file,
                            key: c.key,
                            read_pos: resume,
                            marks: VecDeque::from([c.mark]),
                            seen: None,
                            max_size: c.len,
                            framer: Framer::new(self.max_line, true),
                            last_growth: Instant::now(),
                            current: false,
                            deleted: false,
                            last_commit: resume,
                        },
                    );
                }
            }
            None if resume == 0 && seen == 0 => {}
            None => {
                self.lose(
                    LossReason::RotatedAway,
                    key,
                    resume,
                    Some(seen.saturating_sub(resume)),
                );
            }
        }
        self.sync_tracked(Some(key));
    }

    /// Wait until the engine has processed every batch of file `i` handed on; `false` at a
    /// hard stop.
    fn wait_committed(&self, i: usize, hard_stop: &AtomicBool) -> bool {
        let f = &self.files[i];
        while self.shared.committed(f.key).unwrap_or(f.last_commit) < f.last_commit {
            if hard_stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
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
            f.max_size = f.max_size.max(f.read_pos);
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
                    if f.marks.len() == MARKS {
                        f.marks.pop_front();
                    }
                    f.marks.push_back(LineMark::of(last, end));
                }
            }
            if out.is_empty() && commit == f.last_commit {
                continue;
            }
            f.last_commit = commit;
            let (key, mark, read_to) = (f.key, f.marks.back().copied(), f.read_pos);
            if let Some(t) = lock(&self.shared.files).iter_mut().find(|t| t.key == key) {
                t.last_line = mark;
                t.read_to = read_to;
            }
            let batch = Batch {
                source: self.id,
                data: out,
                commit: Some(Commit {
                    file: key,
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
            }
            !done
        });
        if self.files.len() != before {
            self.sync_tracked(None);
        }
    }
}

/// The last whole line of framed output (with its `\n`).
fn last_line(out: &[u8]) -> Option<&[u8]> {
    let end = out.len().checked_sub(1)?;
    let start = memchr::memrchr(b'\n', &out[..end]).map_or(0, |p| p + 1);
    Some(&out[start..])
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

/// A rotated file in `dirs` (the file's directory first) with this identity
/// (`audit.log.1`, `audit.log-20260302`, ...).
fn find_by_identity(dirs: &[PathBuf], key: FileKey) -> Option<File> {
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_file() && key_of(&m) == key {
                return File::open(e.path()).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(find_by_identity(&copy::rotated_dirs(&p, &[]), key).is_some());
    }
}
