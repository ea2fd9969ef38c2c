//! The ingest queue between the sources and the engine thread: a bounded in-memory queue
//! that spills to an on-disk spool when the engine is behind.
//!
//! Invariants: a socket source never waits here ([`Queue::push`] returns at once: memory
//! while under `memory_bytes`, else the spool, else the batch is dropped and counted).
//! Batches wait in three parts, taken in this order: the head (memory), the spool (disk,
//! oldest first) and, while the spool is not empty, the tail (memory again). A push while
//! the spool is not empty goes to the tail when memory has room; when it has not, the
//! tail's oldest batches go to the spool until it has (or, with an empty tail, the push
//! itself does). So each source's lines keep their order, memory stays within
//! `memory_bytes`, and only what memory cannot hold goes through the disk: an engine
//! that falls behind for a while does not send everything after that through the disk.
//! When the spool empties, the tail becomes part of the head. File sources use
//! [`Queue::push_wait`], which waits for room instead of spilling (the file itself is
//! their buffer) and yields to a non-empty spool. Spool segments are
//! append-only files of records `[magic u8][name_len u8][len u32 le][name][lines]`; a
//! segment is deleted once read; segments left by an earlier run are replayed first. A
//! record cut short by a full disk is rolled back (or, if that fails, its segment is closed
//! where the last whole record ends), so a reader never misaligns; the batch is dropped
//! and counted (`spool_error`), and every record written before and after is kept.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::batch::{Batch, SourceId};
use crate::metrics::{BacklogPlace, LineDrop, Metrics, SOURCE_RESTORED};
use crate::util::lograte::LogRate;
use crate::util::sync::wait_timeout;

const MAGIC: u8 = 0xa7;
const HEADER: usize = 6;

/// Settings of the queue.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    pub memory_bytes: u64,
    pub spool_dir: PathBuf,
    pub max_disk_bytes: u64,
    pub segment_bytes: u64,
}

pub struct Queue {
    inner: Mutex<Inner>,
    not_empty: Condvar,
    not_full: Condvar,
    /// Source names by id; the last one, `restored`, labels spooled lines of a source
    /// that is no longer configured.
    names: Vec<String>,
    metrics: Arc<Metrics>,
    memory_cap: u64,
}

struct Inner {
    /// The head: batches older than anything on the spool.
    mem: VecDeque<Batch>,
    /// The tail: batches newer than anything on the spool (empty while the spool is).
    tail: VecDeque<Batch>,
    /// Bytes in the head and the tail.
    mem_bytes: u64,
    mem_by_source: Vec<u64>,
    spool: Spool,
    closed: bool,
    /// Set when the consumer is gone: waiting pushers give up.
    abandoned: bool,
    /// The "dropped lines" error, at most once per 10 s.
    spool_error_log: LogRate,
}

/// What [`Queue::pop`] found.
pub enum Pop {
    Batch(Batch),
    /// Nothing within the timeout.
    Empty,
    /// Closed and fully drained.
    Done,
}

impl Queue {
    /// A queue for `names` (the configured sources, in order). Spool segments left in the
    /// directory by an earlier run are queued first.
    pub fn new(
        settings: &QueueSettings,
        names: &[String],
        metrics: Arc<Metrics>,
    ) -> io::Result<Queue> {
        let mut names: Vec<String> = names.to_vec();
        names.push(SOURCE_RESTORED.into());
        let spool = Spool::open(
            &settings.spool_dir,
            settings.segment_bytes,
            settings.max_disk_bytes,
            &names,
        )?;
        if spool.records > 0 {
            tracing::warn!(
                records = spool.records,
                bytes = spool.disk_bytes,
                dir = %settings.spool_dir.display(),
                "replaying spool segments left by an earlier run"
            );
        }
        let n = names.len();
        let q = Queue {
            inner: Mutex::new(Inner {
                mem: VecDeque::new(),
                tail: VecDeque::new(),
                mem_bytes: 0,
                mem_by_source: vec![0; n],
                spool,
                closed: false,
                abandoned: false,
                spool_error_log: LogRate::new(Duration::from_secs(10)),
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            names,
            metrics,
            memory_cap: settings.memory_bytes,
        };
        {
            let inner = q.lock();
            q.publish(&inner);
        }
        Ok(q)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (no partial updates
        // span an unwind point), so a poisoned lock is still usable.
        crate::util::sync::lock(&self.inner)
    }

    fn name(&self, id: SourceId) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or(SOURCE_RESTORED)
    }

    fn publish(&self, inner: &Inner) {
        for (i, name) in self.names.iter().enumerate() {
            // `restored` is a source only when an earlier run's spool holds its lines: no
            // series for it otherwise (issue 17: a phantom `source="restored"`).
            let restored = i + 1 == self.names.len();
            if restored && inner.mem_by_source[i] + inner.spool.by_source[i] == 0 {
                continue;
            }
            self.metrics
                .backlog_bytes
                .with_label_values(&[name, BacklogPlace::Memory.as_str()])
                .set(inner.mem_by_source[i] as i64);
            self.metrics
                .backlog_bytes
                .with_label_values(&[name, BacklogPlace::Spool.as_str()])
                .set(inner.spool.by_source[i] as i64);
        }
        self.metrics.spool_bytes.set(inner.spool.disk_bytes as i64);
    }

    fn publish_source(&self, inner: &Inner, id: SourceId) {
        let i = id as usize;
        let name = self.name(id);
        self.metrics
            .backlog_bytes
            .with_label_values(&[name, BacklogPlace::Memory.as_str()])
            .set(inner.mem_by_source.get(i).copied().unwrap_or(0) as i64);
        self.metrics
            .backlog_bytes
            .with_label_values(&[name, BacklogPlace::Spool.as_str()])
            .set(inner.spool.by_source.get(i).copied().unwrap_or(0) as i64);
        self.metrics.spool_bytes.set(inner.spool.disk_bytes as i64);
    }

    /// Queue a batch without ever waiting: memory, else the spool, else dropped and
    /// counted. Returns false when it was dropped.
    pub fn push(&self, batch: Batch) -> bool {
        if batch.data.is_empty() {
            return true;
        }
        let mut inner = self.lock();
        inner.settle();
        let len = batch.data.len() as u64;
        let id = batch.source;
        let room = |inner: &Inner| inner.mem_bytes + len <= self.memory_cap;
        let ok = if inner.spool.records == 0 && (room(&inner) || inner.mem.is_empty()) {
            inner.add(id, len);
            inner.mem.push_back(batch);
            true
        } else {
            // Behind the spool: the tail, once the oldest of it has made room on disk.
            let mut spilled = Ok(());
            while !room(&inner) && spilled.is_ok() {
                let Some(old) = inner.tail.pop_front() else {
                    break;
                };
                spilled = self.spill(&mut inner, &old);
                match &spilled {
                    Ok(()) => {
                        inner.remove(old.source, old.data.len() as u64);
                        if old.source != id {
                            self.publish_source(&inner, old.source);
                        }
                    }
                    Err(_) => inner.tail.push_front(old),
                }
            }
            let done = match spilled {
                Ok(()) if inner.spool.records > 0 && room(&inner) => None,
                Ok(()) => Some(self.spill(&mut inner, &batch)),
                Err(e) => Some(Err(e)),
            };
            match done {
                None => {
                    inner.add(id, len);
                    inner.tail.push_back(batch);
                    true
                }
                Some(Ok(())) => true,
                Some(Err(reason)) => {
                    let name = self.name(id).to_string();
                    let lines = memchr::memchr_iter(b'\n', &batch.data).count() as u64;
                    self.metrics
                        .dropped_lines
                        .with_label_values(&[&name, reason.label()])
                        .inc_by(lines);
                    if let Some(more) = inner.spool_error_log.allow(Instant::now()) {
                        tracing::error!(source = %name, lines, reason = %reason, similar_lines_suppressed = more, "engine behind and spool unavailable: dropped lines");
                    }
                    false
                }
            }
        };
        self.publish_source(&inner, id);
        drop(inner);
        self.not_empty.notify_one();
        ok
    }

    /// Write a batch to the spool, counted as spilled for its source.
    fn spill(&self, inner: &mut Inner, batch: &Batch) -> Result<(), SpillError> {
        let name = self.name(batch.source);
        inner.spool.append(batch.source, name, &batch.data)?;
        self.metrics
            .spilled_bytes
            .with_label_values(&[name])
            .inc_by(batch.data.len() as u64);
        Ok(())
    }

    /// Queue a batch, waiting while memory is full or the spool is not empty. Returns
    /// false (batch dropped, not counted: the caller has not committed it) when the
    /// consumer is gone or `give_up` says so.
    pub fn push_wait(&self, batch: Batch, give_up: &dyn Fn() -> bool) -> bool {
        // An empty batch still carries a commit (skipped NULs, a skipped long line).
        if batch.data.is_empty() && batch.commit.is_none() {
            return true;
        }
        let len = batch.data.len() as u64;
        let id = batch.source;
        let mut inner = self.lock();
        while !inner.abandoned
            && (inner.spool.records > 0
                || !inner.tail.is_empty()
                || (inner.mem_bytes + len > self.memory_cap && !inner.mem.is_empty()))
        {
            if give_up() {
                return false;
            }
            inner = wait_timeout(&self.not_full, inner, Duration::from_millis(100));
        }
        if inner.abandoned {
            return false;
        }
        inner.add(id, len);
        inner.mem.push_back(batch);
        self.publish_source(&inner, id);
        drop(inner);
        self.not_empty.notify_one();
        true
    }

    /// The next batch: the head, then the spool, then the tail; waits up to `timeout`.
    pub fn pop(&self, timeout: Duration) -> Pop {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            inner.settle();
            if let Some(b) = inner.mem.pop_front() {
                inner.remove(b.source, b.data.len() as u64);
                self.publish_source(&inner, b.source);
                drop(inner);
                self.not_full.notify_all();
                return Pop::Batch(b);
            }
            if inner.spool.records > 0 {
                let names = self.names.clone();
                match inner.spool.read_next(&names) {
                    Ok(Some(b)) => {
                        inner.settle();
                        self.publish_source(&inner, b.source);
                        if inner.spool.records == 0 {
                            drop(inner);
                            self.not_full.notify_all();
                        }
                        return Pop::Batch(b);
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        let lost = inner.spool.records;
                        tracing::error!(error = %e, records = lost, "spool unreadable: its remaining records are dropped");
                        self.metrics
                            .dropped_lines
                            .with_label_values(&[SOURCE_RESTORED, LineDrop::SpoolCorrupt.as_str()])
                            .inc_by(lost);
                        inner.spool.reset();
                        self.publish(&inner);
                        continue;
                    }
                }
            }
            if inner.closed {
                return Pop::Done;
            }
            let now = Instant::now();
            if now >= deadline {
                return Pop::Empty;
            }
            inner = wait_timeout(&self.not_empty, inner, deadline - now);
        }
    }

    /// No more pushes are expected: [`Queue::pop`] returns `Done` once drained.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
    }

    /// The consumer is gone: waiting pushers return.
    pub fn abandon(&self) {
        self.lock().abandoned = true;
        self.not_full.notify_all();
    }

    /// Bytes waiting in memory and on disk.
    pub fn backlog(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.mem_bytes, inner.spool.disk_bytes)
    }
}

impl Inner {
    /// Once the spool is empty, the tail follows the head.
    fn settle(&mut self) {
        if self.spool.records == 0 && !self.tail.is_empty() {
            let mut tail = std::mem::take(&mut self.tail);
            self.mem.append(&mut tail);
            self.tail = tail;
        }
    }

    /// `len` bytes of `id` come into memory.
    fn add(&mut self, id: SourceId, len: u64) {
        self.mem_bytes += len;
        if let Some(b) = self.mem_by_source.get_mut(id as usize) {
            *b += len;
        }
    }

    /// `len` bytes of `id` leave memory.
    fn remove(&mut self, id: SourceId, len: u64) {
        self.mem_bytes -= len;
        if let Some(x) = self.mem_by_source.get_mut(id as usize) {
            *x = x.saturating_sub(len);
        }
    }
}

/// Why a batch could not be spilled.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("spool full (max_disk_bytes)")]
    Full,
    #[error("spool write failed: {0}")]
    Io(#[from] io::Error),
}

impl SpillError {
    fn label(&self) -> &'static str {
        match self {
            SpillError::Full => LineDrop::SpoolFull.as_str(),
            SpillError::Io(_) => LineDrop::SpoolError.as_str(),
        }
    }
}

/// The on-disk part: append-only segments, read oldest first.
struct Spool {
    dir: PathBuf,
    segment_bytes: u64,
    max_bytes: u64,
    /// Sequence numbers of segments on disk, oldest first.
    segments: VecDeque<u64>,
    writer: Option<(u64, File, u64)>,
    reader: Option<(u64, BufReader<io::Take<File>>)>,
    /// Segments closed early at a length (a failed write could not be rolled back): the
    /// reader stops there, before the torn record.
    sealed: Vec<(u64, u64)>,
    /// Test hook: the next record write stops after this many bytes with ENOSPC.
    #[cfg(test)]
    fail_next_write_after: Option<usize>,
    next_seq: u64,
    records: u64,
    disk_bytes: u64,
    by_source: Vec<u64>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("spool-{seq:016}.seg"))
}

impl Spool {
    fn open(dir: &Path, segment_bytes: u64, max_bytes: u64, names: &[String]) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_prefix("spool-")?
                    .strip_suffix(".seg")?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        seqs.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            segment_bytes,
            max_bytes,
            segments: VecDeque::new(),
            writer: None,
            reader: None,
            sealed: Vec::new(),
            #[cfg(test)]
            fail_next_write_after: None,
            next_seq: seqs.last().map_or(0, |s| s + 1),
            records: 0,
            disk_bytes: 0,
            by_source: vec![0; names.len()],
        };
        // Count what earlier runs left; a torn last record (a crash mid-write) ends the
        // segment.
        for seq in seqs {
            let path = segment_path(dir, seq);
            let mut r = BufReader::new(File::open(&path)?);
            let mut any = false;
            while let Ok(Some((name, data))) = read_record(&mut r) {
                any = true;
                spool.records += 1;
                spool.disk_bytes += (HEADER + name.len() + data.len()) as u64;
                let id = source_id(names, &name);
                spool.by_source[id as usize] += data.len() as u64;
            }
            if any {
                spool.segments.push_back(seq);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(spool)
    }

    fn append(&mut self, id: SourceId, name: &str, data: &[u8]) -> Result<(), SpillError> {
        let rec = (HEADER + name.len() + data.len()) as u64;
        if self.disk_bytes + rec > self.max_bytes {
            return Err(SpillError::Full);
        }
        let rotate = match &self.writer {
            None => true,
            Some((_, _, size)) => *size >= self.segment_bytes,
        };
        if rotate {
            let seq = self.next_seq;
            self.next_seq += 1;
            let f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(&self.dir, seq))?;
            self.segments.push_back(seq);
            self.writer = Some((seq, f, 0));
        }
        #[cfg(test)]
        let fault = self.fail_next_write_after.take();
        #[cfg(not(test))]
        let fault = None;
        let Some((seq, f, size)) = self.writer.as_mut() else {
            unreachable!("a writer was just opened")
        };
        let name = &name.as_bytes()[..name.len().min(255)];
        // The header and name, then the lines as they are: no copy of the batch (this
        // runs on the thread that reads the socket). A crash between the two writes
        // leaves a torn record, which a restart ignores.
        let mut head = Vec::with_capacity(HEADER + name.len());
        head.push(MAGIC);
        head.push(name.len() as u8);
        head.extend_from_slice(&(data.len() as u32).to_le_bytes());
        head.extend_from_slice(name);
        if let Err(e) = write_record(f, &head, data, fault) {
            // A record cut short (the disk is full) is rolled back, so the segment still
            // ends on a record boundary: a later record must never be read from the
            // middle of this one. If even that fails, the segment is closed where its
            // last whole record ends, and the reader stops there.
            if f.set_len(*size).is_err() {
                self.sealed.push((*seq, *size));
                self.writer = None;
            }
            return Err(SpillError::Io(e));
        }
        let rec = (head.len() + data.len()) as u64;
        *size += rec;
        self.records += 1;
        self.disk_bytes += rec;
        if let Some(b) = self.by_source.get_mut(id as usize) {
            *b += data.len() as u64;
        }
        Ok(())
    }

    /// The oldest record; `Ok(None)` when a segment ended (call again).
    fn read_next(&mut self, names: &[String]) -> io::Result<Option<Batch>> {
        if self.reader.is_none() {
            let Some(&seq) = self.segments.front() else {
                // Counted records but no segment: inconsistent; start over.
                self.records = 0;
                return Ok(None);
            };
            let limit = self
                .sealed
                .iter()
                .find(|(s, _)| *s == seq)
                .map_or(u64::MAX, |(_, len)| *len);
            let file = File::open(segment_path(&self.dir, seq))?.take(limit);
            self.reader = Some((seq, BufReader::with_capacity(256 * 1024, file)));
        }
        let Some((seq, r)) = self.reader.as_mut() else {
            unreachable!("a reader was just opened")
        };
        let seq = *seq;
        let rec = match read_record(r) {
            Ok(x) => x,
            Err(e) => {
                // A torn record (a crash mid-write in an earlier run) ends its segment;
                // the records counted at start-up are the complete ones before it.
                tracing::warn!(segment = seq, error = %e, "spool segment ends in a torn record");
                None
            }
        };
        match rec {
            Some((name, data)) => {
                let id = source_id(names, &name);
                self.records -= 1;
                self.disk_bytes = self
                    .disk_bytes
                    .saturating_sub((HEADER + name.len() + data.len()) as u64);
                if let Some(b) = self.by_source.get_mut(id as usize) {
                    *b = b.saturating_sub(data.len() as u64);
                }
                if self.records == 0 {
                    // Everything read: remove every segment and start afresh.
                    self.reset();
                }
                Ok(Some(Batch {
                    source: id,
                    data,
                    commit: None,
                }))
            }
            None => {
                // End of this segment. The writer's segment is never at its end while
                // records remain, so this one is finished.
                self.reader = None;
                self.segments.pop_front();
                self.sealed.retain(|(s, _)| *s != seq);
                if self.writer.as_ref().is_some_and(|w| w.0 == seq) {
                    self.writer = None;
                }
                let _ = fs::remove_file(segment_path(&self.dir, seq));
                Ok(None)
            }
        }
    }

    fn reset(&mut self) {
        self.reader = None;
        self.writer = None;
        self.sealed.clear();
        for seq in self.segments.drain(..) {
            let _ = fs::remove_file(segment_path(&self.dir, seq));
        }
        self.records = 0;
        self.disk_bytes = 0;
        self.by_source.iter_mut().for_each(|b| *b = 0);
    }
}

/// Write one record's header and lines; `fault` (tests) stops after that many bytes with
/// the error a full disk gives.
fn write_record(f: &mut File, head: &[u8], data: &[u8], fault: Option<usize>) -> io::Result<()> {
    if let Some(n) = fault {
        let all: Vec<u8> = [head, data].concat();
        f.write_all(&all[..n.min(all.len())])?;
        return Err(io::Error::from_raw_os_error(28)); // ENOSPC
    }
    f.write_all(head)?;
    f.write_all(data)
}

fn source_id(names: &[String], name: &[u8]) -> SourceId {
    names
        .iter()
        .position(|n| n.as_bytes() == name)
        .unwrap_or(names.len() - 1) as SourceId
}

/// One record, `None` at a clean end of the segment; a torn or foreign record is an
/// error.
fn read_record(r: &mut impl Read) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        let n = r.read(&mut h[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "torn spool record",
            ));
        }
        got += n;
    }
    if h[0] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a spool record",
        ));
    }
    let name_len = h[1] as usize;
    let len = u32::from_le_bytes([h[2], h[3], h[4], h[5]]) as usize;
    let mut name = vec![0u8; name_len];
    r.read_exact(&mut name)?;
    // Read into spare capacity (no zero-fill first: the reader is buffered).
    let mut data = Vec::with_capacity(len);
    r.take(len as u64).read_to_end(&mut data)?;
    if data.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "torn spool record",
        ));
    }
    Ok(Some((name, data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, mem: u64, disk: u64) -> QueueSettings {
        QueueSettings {
            memory_bytes: mem,
            spool_dir: dir.to_path_buf(),
            max_disk_bytes: disk,
            segment_bytes: 256,
        }
    }

    fn batch(source: SourceId, text: &str) -> Batch {
        Batch {
            source,
            data: text.as_bytes().to_vec(),
            commit: None,
        }
    }

    fn drain(q: &Queue) -> Vec<String> {
        let mut out = Vec::new();
        while let Pop::Batch(b) = q.pop(Duration::from_millis(1)) {
            out.push(format!(
                "{}:{}",
                b.source,
                String::from_utf8(b.data).unwrap()
            ));
        }
        out
    }

    #[test]
    fn spills_to_disk_in_order_and_drains_back_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let names = vec!["a".to_string(), "b".to_string()];
        let q = Queue::new(&settings(dir.path(), 100, 1 << 20), &names, m.clone()).unwrap();
        let mut want = Vec::new();
        for i in 0..50 {
            let s = (i % 2) as SourceId;
            let text = format!("{{\"line\":{i:040}}}\n");
            assert!(q.push(batch(s, &text)));
            want.push(format!("{s}:{text}"));
        }
        assert!(m.spilled_bytes.with_label_values(&["a"]).get() > 0);
        assert!(q.backlog().1 > 0, "the spool holds the overflow");
        let segs = fs::read_dir(dir.path()).unwrap().count();
        assert!(segs > 1, "several segments were written: {segs}");
        assert_eq!(drain(&q), want);
        assert_eq!(q.backlog(), (0, 0));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "read segments are removed"
        );
        // Back to memory once drained.
        assert!(q.push(batch(0, "x\n")));
        assert_eq!(q.backlog(), (2, 0));
        q.close();
        assert_eq!(drain(&q), vec!["0:x\n".to_string()]);
        assert!(matches!(q.pop(Duration::from_millis(1)), Pop::Done));
    }

    #[test]
    fn a_full_spool_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let q = Queue::new(&settings(dir.path(), 10, 40), &["s".into()], m.clone()).unwrap();
        assert!(q.push(batch(0, "0123456789\n")));
        assert!(q.push(batch(0, "second\nthird\n")));
        assert!(!q.push(batch(0, "01234567890123456789012345678901234567890\nz\n")));
        assert_eq!(
            m.dropped_lines
                .with_label_values(&["s", "spool_full"])
                .get(),
            2
        );
        assert_eq!(drain(&q).len(), 2);
    }

    #[test]
    fn segments_left_by_an_earlier_run_are_replayed_first() {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = Arc::new(Metrics::new());
            let q = Queue::new(&settings(dir.path(), 1, 1 << 20), &["s".into()], m).unwrap();
            q.push(batch(0, "one\n"));
            q.push(batch(0, "two\n"));
            q.push(batch(0, "three\n"));
            // Dropped without draining: one in memory (lost with the process), two on disk.
        }
        // A torn record at the end of the last segment is ignored.
        let last = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .max()
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&last).unwrap();
        f.write_all(&[MAGIC, 1, 200, 0]).unwrap();
        let m = Arc::new(Metrics::new());
        let names = vec!["other".to_string(), "s".to_string()];
        let q = Queue::new(&settings(dir.path(), 1 << 20, 1 << 20), &names, m).unwrap();
        q.push(batch(0, "new\n"));
        assert_eq!(drain(&q), vec!["1:two\n", "1:three\n", "0:new\n"]);
    }

    #[test]
    fn push_wait_waits_for_room_and_yields_to_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let q = Arc::new(Queue::new(&settings(dir.path(), 8, 1 << 20), &["s".into()], m).unwrap());
        q.push(batch(0, "aaaaaaa\n"));
        q.push(batch(0, "spilled\n"));
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.push_wait(batch(0, "waited\n"), &|| false));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "memory full: push_wait waits");
        let got = drain(&q);
        assert!(t.join().unwrap());
        let mut all = got;
        all.extend(drain(&q));
        assert_eq!(all, vec!["0:aaaaaaa\n", "0:spilled\n", "0:waited\n"]);
        q.push(batch(0, "full....\n"));
        q.abandon();
        assert!(
            !q.push_wait(batch(0, "more\n"), &|| false),
            "no consumer: give up"
        );
    }

    #[test]
    fn behind_the_spool_only_what_memory_cannot_hold_goes_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let names = vec!["a".to_string(), "b".to_string()];
        let q = Queue::new(&settings(dir.path(), 100, 1 << 20), &names, m.clone()).unwrap();
        let spilled = || {
            m.spilled_bytes.with_label_values(&["a"]).get()
                + m.spilled_bytes.with_label_values(&["b"]).get()
        };
        // 25-byte batches: four fill memory, the next two go to disk.
        let line = |i: u32| format!("{i:024}\n");
        let mut want = Vec::new();
        let mut push = |i: u32| {
            let s = (i % 2) as SourceId;
            assert!(q.push(batch(s, &line(i))));
            want.push(format!("{s}:{}", line(i)));
        };
        (0..6).for_each(&mut push);
        assert_eq!(spilled(), 50);
        // The engine takes three: behind the spool, three new ones fit in memory.
        let mut got: Vec<String> = (0..3)
            .map(|_| match q.pop(Duration::from_millis(1)) {
                Pop::Batch(b) => format!("{}:{}", b.source, String::from_utf8(b.data).unwrap()),
                _ => panic!("a batch"),
            })
            .collect();
        (6..9).for_each(&mut push);
        assert_eq!(spilled(), 50, "memory had room");
        assert_eq!(q.backlog(), (100, 2 * (HEADER as u64 + 1 + 25)));
        // Memory full again: the oldest of those three goes to disk to make room.
        push(9);
        assert_eq!(spilled(), 75);
        assert_eq!(q.backlog().0, 100);
        got.extend(drain(&q));
        assert_eq!(got, want, "in order: memory, then disk, then memory");
        assert_eq!(q.backlog(), (0, 0));
        assert_eq!(m.backlog_bytes.with_label_values(&["a", "memory"]).get(), 0);
        assert_eq!(m.backlog_bytes.with_label_values(&["b", "spool"]).get(), 0);
    }

    #[test]
    fn any_mix_of_pushes_and_pops_keeps_the_order_and_the_memory_bound() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let cap = 300;
        let q = Queue::new(&settings(dir.path(), cap, 1 << 30), &names, m.clone()).unwrap();
        let mut model = VecDeque::new();
        let mut seed = 0x2545_f491_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for i in 0..20_000u32 {
            if next(100) < 55 {
                let s = next(3) as SourceId;
                let text = format!("{i}{}\n", "x".repeat(next(120) as usize));
                assert!(q.push(batch(s, &text)));
                model.push_back(format!("{s}:{text}"));
            } else {
                match q.pop(Duration::from_millis(0)) {
                    Pop::Batch(b) => {
                        let got = format!("{}:{}", b.source, String::from_utf8(b.data).unwrap());
                        assert_eq!(Some(got), model.pop_front(), "pop {i}");
                    }
                    _ => assert!(
                        model.is_empty(),
                        "pop {i}: nothing, yet {} queued",
                        model.len()
                    ),
                }
            }
            assert!(q.backlog().0 <= cap, "memory over its bound at {i}");
        }
        let rest: Vec<String> = model.into_iter().collect();
        assert_eq!(drain(&q), rest);
        assert_eq!(q.backlog(), (0, 0));
        let spilled: u64 = names
            .iter()
            .map(|n| m.spilled_bytes.with_label_values(&[n]).get())
            .sum();
        assert!(
            spilled > 10_000,
            "the mix must go through the disk: {spilled}"
        );
    }

    #[test]
    fn a_full_spool_keeps_the_tail_and_drops_only_the_new_batch() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        // Memory for two 10-byte batches; the spool for one record (6 + 1 + 10 bytes).
        let q = Queue::new(&settings(dir.path(), 20, 20), &["s".into()], m.clone()).unwrap();
        let b = |c: char| batch(0, &format!("{}\n", c.to_string().repeat(9)));
        assert!(q.push(b('a')));
        assert!(q.push(b('b')));
        assert!(q.push(b('c')), "to disk");
        assert!(matches!(q.pop(Duration::from_millis(1)), Pop::Batch(_)));
        assert!(q.push(b('d')), "behind the spool, in memory");
        // Memory full, and the tail's oldest cannot go to the full spool: the new batch is
        // dropped and counted, the tail stays.
        assert!(!q.push(b('e')));
        assert_eq!(
            m.dropped_lines
                .with_label_values(&["s", "spool_full"])
                .get(),
            1
        );
        let rest: Vec<String> = drain(&q);
        let want: Vec<String> = ['b', 'c', 'd']
            .iter()
            .map(|c| format!("0:{}\n", c.to_string().repeat(9)))
            .collect();
        assert_eq!(rest, want);
        assert_eq!(q.backlog(), (0, 0));
    }

    /// Regression: a record cut short by a full disk stayed in its segment, and the reader
    /// then misaligned on the next record and lost the rest of the segment (3,552 lines
    /// in one trial), counted nowhere.
    #[test]
    fn a_record_cut_short_by_a_full_disk_is_rolled_back_and_nothing_before_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        let mut spool = Spool::open(dir.path(), 1 << 20, 1 << 30, &names).unwrap();
        spool.append(0, "a", b"{\"n\":1}\n").unwrap();
        spool.append(1, "b", b"{\"n\":2}\n").unwrap();
        // The disk fills in the middle of the third record's lines.
        spool.fail_next_write_after = Some(HEADER + 1 + 4);
        let err = spool.append(0, "a", b"{\"n\":3,\"pad\":\"xxxxxxxx\"}\n");
        assert!(
            matches!(err, Err(SpillError::Io(_))),
            "the failed append says so"
        );
        assert_eq!(spool.records, 2, "the cut record is not counted as written");
        // Space returns: the next records land after the last whole one.
        spool.append(1, "b", b"{\"n\":4}\n").unwrap();
        spool.append(0, "a", b"{\"n\":5}\n").unwrap();
        let mut got = Vec::new();
        while let Some(b) = spool.read_next(&names).unwrap() {
            got.push(format!(
                "{}:{}",
                b.source,
                String::from_utf8(b.data).unwrap().trim()
            ));
        }
        assert_eq!(
            got,
            ["0:{\"n\":1}", "1:{\"n\":2}", "1:{\"n\":4}", "0:{\"n\":5}"],
            "every record written before and after the full disk, none misread"
        );
        // A restart reads the same whole records from what is on disk.
        let mut spool = Spool::open(dir.path(), 1 << 20, 1 << 30, &names).unwrap();
        spool.append(0, "a", b"{\"n\":6}\n").unwrap();
        spool.fail_next_write_after = Some(3);
        assert!(spool.append(0, "a", b"{\"n\":7}\n").is_err());
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20, 1 << 30, &names).unwrap();
        assert_eq!(spool.records, 1, "the rolled-back record is not on disk");
        let b = spool.read_next(&names).unwrap().expect("the whole record");
        assert_eq!(b.data, b"{\"n\":6}\n");
    }

    /// A full disk under the queue: the batch that could not be written is dropped and
    /// counted (`spool_error`), and the queue delivers everything it took before and after.
    #[test]
    fn a_full_disk_under_the_queue_drops_only_what_could_not_be_written_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(Metrics::new());
        let names = vec!["a".to_string()];
        let q = Queue::new(&settings(dir.path(), 64, 1 << 20), &names, m.clone()).unwrap();
        assert!(q.push(batch(0, "{\"first\":1}\n")));
        // Memory is full now: the next batch goes to the spool, and the disk is full.
        q.lock().spool.fail_next_write_after = Some(HEADER + 2);
        let lost = "{\"lost\":1}\n{\"lost\":2}\n".repeat(4);
        assert!(
            !q.push(batch(0, &lost)),
            "the batch that could not be written is dropped"
        );
        assert_eq!(
            m.dropped_lines
                .with_label_values(&["a", LineDrop::SpoolError.as_str()])
                .get(),
            8,
            "its lines are counted"
        );
        assert!(q.push(batch(0, &"{\"after\":1}\n".repeat(8))));
        let got = drain(&q);
        assert_eq!(got[0], "0:{\"first\":1}\n");
        assert_eq!(
            got[1..].concat(),
            format!("0:{}", "{\"after\":1}\n".repeat(8))
        );
    }
}
