//! A sink's delivery ledger: the ids of the alerts it delivered lately, so that an alert
//! raised again after a restart (from input processed again between the last state
//! checkpoint and a crash) is not delivered twice by that sink.
//!
//! An id is kept as its 64-bit stable hash ([`super::id_token`], the same hash as the
//! `alert_key`), in `<state.dir>/delivered-<sink>.ids`: 8 bytes appended with one write
//! when the sink is done with an alert, so a killed process leaves every record it wrote
//! (the page cache keeps them; only a host crash can lose the last ones). At start the
//! file is read back; a torn last record is ignored. Memory and disk are bounded: the
//! newest [`CAP`] ids are remembered, and the file is rewritten with them once it holds
//! twice as many.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::lograte::LogRate;

/// Ids remembered per sink: far more alerts than a checkpoint interval raises.
pub const CAP: usize = 65_536;

const RECORD: usize = 8;

pub struct Ledger {
    path: PathBuf,
    file: File,
    set: HashSet<u64>,
    order: VecDeque<u64>,
    /// Records in the file.
    records: usize,
    errors: LogRate,
}

impl Ledger {
    /// Open (or create) the ledger of `sink` in `dir`, reading what it holds.
    pub fn open(dir: &Path, sink: &str) -> io::Result<Ledger> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("delivered-{sink}.ids"));
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let whole = bytes.len() / RECORD * RECORD;
        if whole != bytes.len() {
            tracing::warn!(path = %path.display(), bytes = bytes.len() - whole, "delivery ledger: a torn last record (a crash mid-write) is ignored");
        }
        let mut l = Ledger {
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            path,
            set: HashSet::new(),
            order: VecDeque::new(),
            records: whole / RECORD,
            errors: LogRate::new(Duration::from_secs(60)),
        };
        for rec in bytes[..whole].chunks_exact(RECORD) {
            l.remember(u64::from_le_bytes(rec.try_into().expect("8 bytes")));
        }
        if whole != bytes.len() || l.records > 2 * CAP {
            l.compact()?;
        }
        Ok(l)
    }

    /// Whether this sink delivered the alert of this id token lately.
    pub fn contains(&self, token: u64) -> bool {
        self.set.contains(&token)
    }

    /// The sink delivered the alert of this id token.
    pub fn record(&mut self, token: u64) {
        if !self.remember(token) {
            return;
        }
        let r = if self.records >= 2 * CAP {
            self.compact()
        } else {
            self.records += 1;
            self.file.write_all(&token.to_le_bytes())
        };
        if let Err(e) = r {
            if let Some(more) = self.errors.allow(Instant::now()) {
                tracing::error!(path = %self.path.display(), error = %e, similar_lines_suppressed = more,
                    "cannot write the delivery ledger: after a crash this sink may deliver an alert again");
            }
        }
    }

    fn remember(&mut self, token: u64) -> bool {
        if !self.set.insert(token) {
            return false;
        }
        self.order.push_back(token);
        if self.order.len() > CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Rewrite the file with the ids remembered (atomically), and append to the new one.
    fn compact(&mut self) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(self.order.len() * RECORD);
        for t in &self.order {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        crate::fsutil::write_durably(&self.path, &bytes)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.records = self.order.len();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_ids_survive_a_reopen_and_a_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path(), "jsonl").unwrap();
        l.record(1);
        l.record(2);
        l.record(2);
        drop(l);
        let path = dir.path().join("delivered-jsonl.ids");
        assert_eq!(fs::read(&path).unwrap().len(), 16, "one record per id");
        // A crash in the middle of the third record.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[3, 0, 0]).unwrap();
        drop(f);
        let mut l = Ledger::open(dir.path(), "jsonl").unwrap();
        assert!(l.contains(1) && l.contains(2) && !l.contains(3));
        l.record(3);
        drop(l);
        let l = Ledger::open(dir.path(), "jsonl").unwrap();
        assert!(l.contains(3), "appended after the torn bytes were cut");
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn the_ledger_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path(), "email").unwrap();
        for t in 0..(3 * CAP as u64) {
            l.record(t);
        }
        assert_eq!(l.len(), CAP);
        assert!(!l.contains(0) && l.contains(3 * CAP as u64 - 1));
        let size = fs::metadata(dir.path().join("delivered-email.ids"))
            .unwrap()
            .len();
        assert!(size <= (2 * CAP * RECORD) as u64, "{size}");
        let again = Ledger::open(dir.path(), "email").unwrap();
        assert_eq!(again.len(), CAP);
        assert!(again.contains(3 * CAP as u64 - 1));
    }
}
