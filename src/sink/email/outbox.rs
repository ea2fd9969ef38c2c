//! The durable outbox: every alert the email sink accepts is a file here before anything
//! else happens to it, and stays until the SMTP server accepted every mail it belongs in.
//! A write is temp file + fsync + rename + directory fsync, so a crash leaves either the
//! whole entry or none; a restart loads what is left and sends it. File names sort by
//! acceptance (`<ms>-<seq>-<key>.json`), which is the order mails are built in.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One alert waiting for mail (the on-disk record, version 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub v: u32,
    /// `sink::alert_key`: de-duplication across restarts and HA pairs.
    pub key: String,
    /// Rule + tenant + actor: what the suppression window folds.
    pub group: String,
    /// Wall-clock time the sink accepted it (Unix ms): digest windows run from here.
    pub accepted_ms: i64,
    pub severity: String,
    /// Mailed on its own at once (at or above `email.immediate`), else in digests.
    pub immediate: bool,
    /// Recipients that have not received it yet.
    pub pending: Vec<String>,
    /// The runbook link, when `output.runbook_url` is set.
    #[serde(default)]
    pub runbook: Option<String>,
    /// The alert record exactly as every sink gets it (`detections.md`).
    pub alert: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("the outbox holds {bytes} bytes, its cap is {max}")]
    Full { bytes: u64, max: u64 },
    #[error("cannot write to the outbox: {0}")]
    Io(#[from] io::Error),
}

pub struct Outbox {
    dir: PathBuf,
    max_bytes: u64,
    entries: BTreeMap<String, (Entry, u64)>,
    bytes: u64,
    seq: u64,
}

/// What loading found besides the entries: files that could not be read (renamed
/// `*.bad` and left for a person).
pub struct Loaded {
    pub outbox: Outbox,
    pub bad: Vec<(PathBuf, String)>,
}

impl Outbox {
    /// Create the directory if needed and load the entries a previous run left.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Loaded> {
        fs::create_dir_all(dir)?;
        let mut entries = BTreeMap::new();
        let mut bytes = 0;
        let mut bad = Vec::new();
        for d in fs::read_dir(dir)? {
            let d = d?;
            let name = d.file_name().to_string_lossy().into_owned();
            let path = d.path();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write that never completed: its alert was never acknowledged.
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let loaded = fs::read(&path).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<Entry>(&b)
                    .map(|e| (e, b.len() as u64))
                    .map_err(|e| e.to_string())
            });
            match loaded {
                Ok((e, _)) if e.v != 1 => {
                    bad.push((path.clone(), format!("unknown entry version {}", e.v)));
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
                Ok((e, n)) => {
                    bytes += n;
                    entries.insert(name, (e, n));
                }
                Err(why) => {
                    bad.push((path.clone(), why));
                    let _ = fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        // Probe that the directory is writable now rather than at the first alert.
        let probe = dir.join(".probe.tmp");
        File::create(&probe)?.sync_all()?;
        fs::remove_file(&probe)?;
        Ok(Loaded {
            outbox: Outbox {
                dir: dir.to_path_buf(),
                max_bytes,
                entries,
                bytes,
                seq: 0,
            },
            bad,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Entries by file name, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter().map(|(k, (e, _))| (k, e))
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name).map(|(e, _)| e)
    }

    /// Store a new entry durably; its file name.
    pub fn add(&mut self, e: Entry) -> Result<String, AddError> {
        let body = serde_json::to_vec(&e).expect("entries serialise");
        let n = body.len() as u64;
        if self.bytes + n > self.max_bytes {
            return Err(AddError::Full {
                bytes: self.bytes,
                max: self.max_bytes,
            });
        }
        self.seq += 1;
        let name = format!(
            "{:013}-{:06}-{}.json",
            e.accepted_ms.max(0),
            self.seq % 1_000_000,
            e.key
        );
        crate::fsutil::write_durably(&self.dir.join(&name), &body)?;
        self.bytes += n;
        self.entries.insert(name.clone(), (e, n));
        Ok(name)
    }

    /// `to` received the entry: drop them from its pending list; the entry goes when none
    /// is left. `Ok(true)` when it went.
    pub fn delivered(&mut self, name: &str, to: &[String]) -> io::Result<bool> {
        let Some((e, n)) = self.entries.get(name) else {
            return Ok(false);
        };
        let mut e = e.clone();
        e.pending.retain(|r| !to.contains(r));
        if e.pending.is_empty() {
            match fs::remove_file(self.dir.join(name)) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            self.bytes -= n;
            self.entries.remove(name);
            return Ok(true);
        }
        let body = serde_json::to_vec(&e).expect("entries serialise");
        crate::fsutil::write_durably(&self.dir.join(name), &body)?;
        let m = body.len() as u64;
        self.bytes = self.bytes - n + m;
        self.entries.insert(name.to_string(), (e, m));
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, pending: &[&str]) -> Entry {
        Entry {
            v: 1,
            key: key.into(),
            group: "g".into(),
            accepted_ms: 1_000,
            severity: "high".into(),
            immediate: false,
            pending: pending.iter().map(|s| s.to_string()).collect(),
            runbook: None,
            alert: serde_json::json!({"rule": "r"}),
        }
    }

    #[test]
    fn entries_survive_a_reopen_until_every_recipient_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 1 << 20).unwrap().outbox;
        let a = o.add(entry("a", &["x@e", "y@e"])).unwrap();
        let b = o.add(entry("b", &["x@e"])).unwrap();
        assert!(a < b, "names sort by acceptance");
        assert!(!o.delivered(&a, &["x@e".into()]).unwrap());
        let mut o = Outbox::open(dir.path(), 1 << 20).unwrap().outbox;
        assert_eq!(o.len(), 2);
        assert_eq!(o.get(&a).unwrap().pending, vec!["y@e".to_string()]);
        assert!(o.delivered(&a, &["y@e".into()]).unwrap());
        assert!(o.delivered(&b, &["x@e".into()]).unwrap());
        assert!(o.is_empty());
        assert_eq!(o.bytes(), 0);
        assert!(Outbox::open(dir.path(), 1 << 20).unwrap().outbox.is_empty());
    }

    #[test]
    fn a_full_outbox_refuses_and_a_broken_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0000000000001-000001-x.json"), "{broken").unwrap();
        std::fs::write(dir.path().join(".0000000000002-000001-y.json.tmp"), "{half").unwrap();
        let one = serde_json::to_vec(&entry("a", &["x@e"])).unwrap().len() as u64;
        let l = Outbox::open(dir.path(), one * 3 / 2).unwrap();
        assert_eq!(l.bad.len(), 1);
        assert!(dir.path().join("0000000000001-000001-x.bad").exists());
        assert!(!dir.path().join(".0000000000002-000001-y.json.tmp").exists());
        let mut o = l.outbox;
        o.add(entry("a", &["x@e"])).unwrap();
        assert!(matches!(
            o.add(entry("b", &["x@e"])),
            Err(AddError::Full { .. })
        ));
        assert_eq!(o.len(), 1);
    }
}
