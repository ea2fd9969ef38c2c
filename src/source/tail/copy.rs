//! Finding a rotated copy of a file by its content. copytruncate copies the file (a new
//! identity) and truncates it in place; a rotated file compressed while the daemon was
//! down gets a new identity too. Both hold the same bytes at the same offsets, so the copy
//! is the file in the watched file's directory (or a `rotated_dirs` one: logrotate's
//! `olddir`), named after it (`audit.log.1`, `audit.log-20261202`, `audit.log.1.gz`), that
//! has the marked line ([`LineMark`]) at its place.
//!
//! Bounds: at most [`MAX_CANDIDATES`] names are looked at, newest first; a plain one costs
//! one read of the marked line (at most 64 KiB). A gzip copy is read only as far as the
//! mark when it is not the one (at most [`MAX_GZIP`] of them), and when it is, its content
//! from the resume point on is inflated into an unlinked sparse file in the checkpoint
//! directory, so it is read at its offsets like a plain file and its space is freed when
//! it is let go.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use super::checkpoint::LineMark;
use crate::ingest::batch::FileKey;

/// Names looked at per search (newest first).
pub const MAX_CANDIDATES: usize = 32;
/// gzip copies inflated per search.
pub const MAX_GZIP: usize = 4;

/// A copy found by its content.
pub struct Copy {
    /// Its name on disk.
    pub path: PathBuf,
    /// Its identity on disk (of the `.gz` for a compressed copy).
    pub key: FileKey,
    /// Readable at the original offsets.
    pub file: File,
    /// Its length in the original's offsets (inflated length for gzip).
    pub len: u64,
    /// The mark it was recognised by.
    pub mark: LineMark,
    pub gzip: bool,
}

/// The identity of a file's metadata.
pub fn key_of(m: &fs::Metadata) -> FileKey {
    FileKey {
        dev: m.dev(),
        ino: m.ino(),
    }
}

/// The directory of `path` (`.` for a bare name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The directories rotated files of `path` are in: its own, then `extra` (relative ones
/// under its own).
pub fn rotated_dirs(path: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let own = dir_of(path);
    std::iter::once(own.to_path_buf())
        .chain(extra.iter().map(|d| own.join(d)))
        .collect()
}

/// Where to look for a copy: the file's path, the directories its rotated files are in
/// (its own first), and the checkpoint directory (where a gzip copy is inflated).
pub struct Place<'a> {
    pub path: &'a Path,
    pub dirs: &'a [PathBuf],
    pub scratch: &'a Path,
}

/// Find, among the files named after the watched file in `place.dirs` (not the file
/// itself, not the identities in `exclude`), one holding a mark of `marks` (tried in the
/// order given: newest first) and content up to at least `from`.
pub fn find(place: &Place<'_>, marks: &[LineMark], exclude: &[FileKey], from: u64) -> Option<Copy> {
    if marks.is_empty() {
        return None;
    }
    let name = place.path.file_name()?.to_str()?;
    let own = fs::metadata(place.path).ok().map(|m| key_of(&m));
    let mut candidates: Vec<(std::time::SystemTime, PathBuf, fs::Metadata)> = Vec::new();
    for dir in place.dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let n = e.file_name();
            let Some(n) = n.to_str() else { continue };
            if !n.starts_with(name) {
                continue;
            }
            let Ok(m) = e.metadata() else { continue };
            let key = key_of(&m);
            if !m.is_file() || exclude.contains(&key) || own == Some(key) {
                continue;
            }
            let t = m.modified().unwrap_or(std::time::UNIX_EPOCH);
            candidates.push((t, e.path(), m));
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    candidates.truncate(MAX_CANDIDATES);
    let mut gzips = Vec::new();
    for (_, p, m) in candidates {
        let Ok(f) = File::open(&p) else { continue };
        if is_gzip(&f) {
            gzips.push((p, m, f));
            continue;
        }
        for mark in marks {
            if m.len() >= mark.end && mark.matches(&f) {
                return Some(Copy {
                    path: p,
                    key: key_of(&m),
                    file: f,
                    len: m.len(),
                    mark: *mark,
                    gzip: false,
                });
            }
        }
    }
    for (p, m, f) in gzips.into_iter().take(MAX_GZIP) {
        // The oldest mark is the first place the content must be kept from.
        let keep = marks.iter().map(|k| k.start).min().unwrap_or(0);
        match inflate(f, keep.min(from.saturating_sub(1)), marks, place.scratch) {
            Ok(Some((file, len, mark))) => {
                return Some(Copy {
                    path: p,
                    key: key_of(&m),
                    file,
                    len,
                    mark,
                    gzip: true,
                })
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(copy = %p.display(), error = %e, "cannot read a compressed rotated copy")
            }
        }
    }
    None
}

/// `f` readable at its content's offsets from `from` on: itself, or for gzip its content
/// inflated (from `from` on) into an unlinked file in `scratch`. Returns it and its
/// content length.
pub fn readable(f: File, from: u64, scratch: &Path) -> io::Result<(File, u64)> {
    if !is_gzip(&f) {
        let len = f.metadata()?.len();
        return Ok((f, len));
    }
    match inflate(f, from, &[], scratch)? {
        Some((file, len, _)) => Ok((file, len)),
        None => Err(io::Error::other("inflating found nothing")),
    }
}

/// A file that starts with gzip's magic bytes. Audit logs start with `{` (or a prefix).
fn is_gzip(f: &File) -> bool {
    let mut magic = [0u8; 2];
    matches!(f.read_at(&mut magic, 0), Ok(2)) && magic == [0x1f, 0x8b]
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

/// Inflate `gz`, keeping its content from `keep` on in an unlinked sparse file in
/// `scratch` at the same offsets. With `marks`, stop and return `None` as soon as none of
/// them can match. Returns the file, the content length and the mark that matched.
fn inflate(
    gz: File,
    keep: u64,
    marks: &[LineMark],
    scratch: &Path,
) -> io::Result<Option<(File, u64, LineMark)>> {
    fs::create_dir_all(scratch)?;
    let tmp = scratch.join(format!(
        ".inflated-copy-{}-{}.tmp",
        std::process::id(),
        SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    // Unlinked at once: the space is the open file's, freed when it is dropped.
    fs::remove_file(&tmp)?;
    let mut dec = MultiGzDecoder::new(io::BufReader::new(gz));
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: u64 = 0;
    let mut pending: Vec<LineMark> = marks.to_vec();
    let mut matched: Option<LineMark> = None;
    loop {
        let n = match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let end = pos + n as u64;
        if end > keep {
            let skip = keep.saturating_sub(pos) as usize;
            out.write_all_at(&buf[skip..n], pos + skip as u64)?;
        }
        pos = end;
        if matched.is_none() && !marks.is_empty() {
            // Check each mark once its bytes are all written.
            let mut i = 0;
            while i < pending.len() {
                if pending[i].end <= pos {
                    let m = pending.remove(i);
                    if m.matches(&out) {
                        matched = Some(m);
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            if matched.is_none() && pending.is_empty() {
                return Ok(None);
            }
        }
    }
    out.set_len(pos)?;
    let mark = match (matched, marks.is_empty()) {
        (Some(m), _) => m,
        (None, true) => LineMark {
            start: 0,
            end: 0,
            hash: 0,
        },
        (None, false) => return Ok(None),
    };
    Ok(Some((out, pos, mark)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(path: &Path, data: &[u8]) {
        let mut e = flate2::write::GzEncoder::new(File::create(path).unwrap(), Default::default());
        e.write_all(data).unwrap();
        e.finish().unwrap();
    }

    #[test]
    fn finds_the_copy_holding_the_mark_plain_or_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let old = b"a-line\nb-line\nc-line\nd-line\n";
        let mark = LineMark::of(b"b-line\n", 14);
        fs::write(&path, b"new\n").unwrap();
        // Same name prefix, wrong content; another log's name; the copy.
        fs::write(dir.path().join("audit.log.2"), b"x-line\ny-line\nz-line\n").unwrap();
        fs::write(dir.path().join("other.log.1"), old).unwrap();
        fs::write(dir.path().join("audit.log.1"), old).unwrap();
        let scratch = dir.path().join("state");
        let dirs = rotated_dirs(&path, &[]);
        let place = Place {
            path: &path,
            dirs: &dirs,
            scratch: &scratch,
        };
        let c = find(&place, &[mark], &[], 14).expect("the copy");
        assert_eq!(c.path, dir.path().join("audit.log.1"));
        assert_eq!(c.len, old.len() as u64);
        assert!(!c.gzip);
        // Excluded (already read): not found again.
        assert!(find(&place, &[mark], &[c.key], 14).is_none());

        fs::remove_file(dir.path().join("audit.log.1")).unwrap();
        gzip(&dir.path().join("audit.log.1.gz"), old);
        let c = find(&place, &[mark], &[], 14).expect("the compressed copy");
        assert!(c.gzip);
        assert_eq!(c.len, old.len() as u64);
        let mut rest = vec![0u8; 14];
        c.file.read_exact_at(&mut rest, 14).unwrap();
        assert_eq!(&rest, b"c-line\nd-line\n");
        assert!(
            fs::read_dir(&scratch).unwrap().next().is_none(),
            "the inflated copy is unlinked"
        );
        // Reopened by identity after a restart: inflated again from the offset.
        let (f, len) = readable(File::open(&c.path).unwrap(), 14, &scratch).unwrap();
        assert_eq!(len, old.len() as u64);
        f.read_exact_at(&mut rest, 14).unwrap();
        assert_eq!(&rest, b"c-line\nd-line\n");

        // No copy with the mark.
        let other = LineMark::of(b"q-line\n", 14);
        assert!(find(&place, &[other], &[], 14).is_none());
        assert!(find(&place, &[], &[], 14).is_none());

        // In logrotate's olddir, named in rotated_dirs (relative to the file's directory).
        fs::remove_file(&c.path).unwrap();
        fs::create_dir(dir.path().join("old")).unwrap();
        fs::write(dir.path().join("old/audit.log.1"), old).unwrap();
        assert!(find(&place, &[mark], &[], 14).is_none());
        let dirs = rotated_dirs(&path, &[PathBuf::from("old")]);
        let place = Place {
            dirs: &dirs,
            ..place
        };
        let c = find(&place, &[mark], &[], 14).expect("the copy in olddir");
        assert_eq!(c.path, dir.path().join("old/audit.log.1"));
    }
}
