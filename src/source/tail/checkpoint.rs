//! The file source's checkpoint: for every file being read, its identity, the offset of
//! the end of the last line the engine processed, and (since version 2) what the file is
//! recognised by when its identity is no help: the last whole line the reader handed on
//! ([`LineMark`]: where it lies and a stable hash of its bytes) and how far the reader had
//! read. A copy of the file made by copytruncate, or a rotated file compressed while the
//! daemon was down, has a new identity but the same bytes at the same offsets.
//!
//! Losses noticed but not yet raised as findings ride along, so a stop between the two
//! does not drop the finding.
//!
//! Versions: this build writes [`CHECKPOINT_VERSION`] and reads it and version 1 (no
//! marks: a file truncated while the daemon was down cannot be verified or found in a
//! copy, so what it held past the offset is counted as lost). A newer version is refused
//! with a clear error rather than misread.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::LineDrop;

/// The checkpoint format version this build writes.
pub const CHECKPOINT_VERSION: u32 = 2;

/// Every version this build reads.
const READABLE: [u32; 2] = [1, CHECKPOINT_VERSION];

/// Bytes of a line that its mark covers: its last 64 KiB (the whole line, as a rule).
pub const MARK_MAX_BYTES: usize = 64 * 1024;

/// Errors of the file source that reach the daemon.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot create checkpoint directory {dir}: {source}")]
    CheckpointDir { dir: PathBuf, source: io::Error },
    #[error("checkpoint {path} is unreadable: {reason}")]
    BadCheckpoint { path: PathBuf, reason: String },
}

/// A whole line read from a file: `[start, end)` and the stable hash of those bytes. The
/// same bytes at the same offsets in another file make it the same content (a copy).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LineMark {
    pub start: u64,
    pub end: u64,
    pub hash: u64,
}

impl LineMark {
    /// The mark of `line` (with its `\n`), which ends at `end`: of its last
    /// [`MARK_MAX_BYTES`].
    pub fn of(line: &[u8], end: u64) -> LineMark {
        let kept = &line[line.len().saturating_sub(MARK_MAX_BYTES)..];
        LineMark {
            start: end - kept.len() as u64,
            end,
            hash: line_hash(kept),
        }
    }

    /// Whether `f` holds the marked bytes at the marked place.
    pub fn matches(&self, f: &File) -> bool {
        let Some(len) = self.end.checked_sub(self.start) else {
            return false;
        };
        if len == 0 || len > MARK_MAX_BYTES as u64 {
            return false;
        }
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, self.start).is_ok() && line_hash(&buf) == self.hash
    }
}

/// 64-bit FNV-1a: stored in checkpoints and compared by later builds, so it is fixed here
/// (a seeded or library hash could change with an upgrade and make every file look
/// truncated).
pub fn line_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointFile {
    pub dev: u64,
    pub ino: u64,
    /// End of the last line the engine processed.
    pub offset: u64,
    /// The file at the path (not a rotated one still being drained).
    pub current: bool,
    /// Version 2: the last whole line the reader handed on (at or past `offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line: Option<LineMark>,
    /// Version 2: how far the reader had read (bytes the file held, processed or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_to: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub version: u32,
    pub source: String,
    pub path: PathBuf,
    pub files: Vec<CheckpointFile>,
    /// Version 2: losses noticed and not yet handed to the engine as findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub losses: Vec<Loss>,
}

/// Why input was lost (the `reason` of `auditwatch_dropped_lines_total` and of the
/// `input_lost` finding).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LossReason {
    /// Truncated (copytruncate, or by hand) with unread content that no copy holds.
    RotatedAway,
    /// A file named by the checkpoint is gone and no copy of it was found.
    FileGone,
}

impl LossReason {
    pub fn drop_reason(self) -> LineDrop {
        match self {
            LossReason::RotatedAway => LineDrop::RotatedAway,
            LossReason::FileGone => LineDrop::FileGone,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.drop_reason().as_str()
    }
}

/// Input a file source knows it lost, waiting to be raised as an `input_lost` finding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Loss {
    pub reason: LossReason,
    /// The watched path.
    pub file: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Where the missing input begins in that file.
    pub from_offset: u64,
    /// Bytes known lost (a lower bound), `None` when not known.
    pub lost_bytes: Option<u64>,
    /// When it was noticed (Unix ms).
    pub noticed_unix_ms: i64,
}

pub(super) fn write_atomic(path: &Path, cp: &Checkpoint) -> io::Result<()> {
    crate::fsutil::write_durably(path, &encode(cp)?)
}

/// The checkpoint as its file holds it.
pub(super) fn encode(cp: &Checkpoint) -> io::Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(cp).map_err(io::Error::other)?;
    text.push(b'\n');
    Ok(text)
}

/// Read a checkpoint of any version this build reads; `Ok(None)` when there is none.
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
    if !READABLE.contains(&cp.version) {
        return Err(TailError::BadCheckpoint {
            path: path.into(),
            reason: format!(
                "version {} (this build reads versions {READABLE:?})",
                cp.version
            ),
        });
    }
    if cp.version < CHECKPOINT_VERSION {
        tracing::info!(path = %path.display(), version = cp.version, "checkpoint of an older version: its files carry no line marks, so a file truncated meanwhile cannot be found in its copy");
    }
    Ok(Some(cp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            source: "f".into(),
            path: "/var/log/vault/audit.log".into(),
            files: vec![CheckpointFile {
                dev: 1,
                ino: 2,
                offset: 3,
                current: true,
                last_line: Some(LineMark {
                    start: 0,
                    end: 3,
                    hash: 9,
                }),
                read_to: Some(5),
            }],
            losses: vec![Loss {
                reason: LossReason::RotatedAway,
                file: "/var/log/vault/audit.log".into(),
                dev: 1,
                ino: 2,
                from_offset: 3,
                lost_bytes: None,
                noticed_unix_ms: 7,
            }],
        }
    }

    #[test]
    fn checkpoints_round_trip_and_refuse_newer_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.checkpoint.json");
        assert_eq!(read_checkpoint(&p).unwrap(), None);
        let cp = sample();
        write_atomic(&p, &cp).unwrap();
        assert_eq!(read_checkpoint(&p).unwrap(), Some(cp.clone()));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file is left: {names:?}");
        let mut v3 = cp;
        v3.version = 3;
        write_atomic(&p, &v3).unwrap();
        assert!(matches!(
            read_checkpoint(&p),
            Err(TailError::BadCheckpoint { .. })
        ));
        fs::write(&p, "{not json").unwrap();
        assert!(read_checkpoint(&p).is_err());
    }

    /// A checkpoint written by the previous build (version 1) is read: its files carry
    /// no marks, and nothing else changes.
    #[test]
    fn a_version_1_checkpoint_is_read_without_marks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.checkpoint.json");
        fs::write(
            &p,
            r#"{"version": 1, "source": "f", "path": "/var/log/vault/audit.log",
                "files": [{"dev": 1, "ino": 2, "offset": 300, "current": true}]}"#,
        )
        .unwrap();
        let cp = read_checkpoint(&p).unwrap().unwrap();
        assert_eq!(cp.version, 1);
        assert_eq!(cp.files[0].offset, 300);
        assert_eq!(cp.files[0].last_line, None);
        assert_eq!(cp.files[0].read_to, None);
        assert!(cp.losses.is_empty());
    }

    #[test]
    fn the_line_hash_is_fixed_and_marks_check_bytes_in_place() {
        // Pinned: checkpoints of earlier builds carry these hashes.
        assert_eq!(line_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(line_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        fs::write(&p, b"one\ntwo\n").unwrap();
        let f = File::open(&p).unwrap();
        let mark = LineMark::of(b"two\n", 8);
        assert_eq!((mark.start, mark.end), (4, 8));
        assert!(mark.matches(&f));
        assert!(!LineMark::of(b"two\n", 4).matches(&f), "elsewhere");
        assert!(!LineMark::of(b"owt\n", 8).matches(&f), "other bytes");
        assert!(!LineMark::of(b"two\n", 12).matches(&f), "past the end");
        let long = vec![b'x'; MARK_MAX_BYTES + 10];
        let m = LineMark::of(&long, 1 << 20);
        assert_eq!(m.end - m.start, MARK_MAX_BYTES as u64);
    }
}
