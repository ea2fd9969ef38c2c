//! Framing a byte stream into whole lines, for the live sources (a socket connection, a
//! tailed file). Invariants: a line is handed on only whole (with its `\n`); a line over
//! the cap is skipped and counted without ever being held whole, and handed on as a
//! marker line ([`crate::parse::over_cap`]) with its length and first
//! [`HEAD_BYTES`], so the pipeline raises an `unreadable_entry` alert for it; with
//! `strip_nul`, the runs of NUL bytes `copytruncate` leaves at a line start are skipped
//! and counted. Memory per framer: the cap (a partial line) plus [`HEAD_BYTES`].

use crate::parse::head::HEAD_BYTES;
use crate::parse::over_cap;

/// Splits a byte stream into whole lines with a length cap.
///
/// Complete lines (with their `\n`) are appended to the caller's buffer; the unterminated
/// rest is kept. A line longer than the cap is skipped without being kept whole. With
/// `strip_nul`, runs of NUL bytes at a line start (the hole `copytruncate` leaves) are
/// skipped.
#[derive(Debug)]
pub struct Framer {
    partial: Vec<u8>,
    /// The first bytes of the line being skipped.
    head: Vec<u8>,
    skipping: bool,
    skipped: u64,
    max_line: usize,
    strip_nul: bool,
}

/// What one [`Framer::push`] produced besides lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub lines: u64,
    /// Lines over the cap that were skipped (counted when their end is seen).
    pub too_long: u64,
    pub nul_bytes: u64,
}

impl Framer {
    pub fn new(max_line: usize, strip_nul: bool) -> Framer {
        Framer {
            partial: Vec::new(),
            head: Vec::new(),
            skipping: false,
            skipped: 0,
            max_line: max_line.max(1024),
            strip_nul,
        }
    }

    /// Bytes held for an unterminated line (not yet consumed).
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Drop the unterminated rest (connection closed, file truncated); its size, if any.
    pub fn discard(&mut self) -> Option<usize> {
        let n = self.partial.len() + self.skipped as usize;
        let had = !self.partial.is_empty() || self.skipping;
        self.partial.clear();
        self.head.clear();
        self.skipping = false;
        self.skipped = 0;
        had.then_some(n)
    }

    /// The unterminated rest, taken out (a datagram's last entry needs no newline).
    pub fn take_partial(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }

    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> FrameStats {
        let mut st = FrameStats::default();
        while !data.is_empty() {
            if self.skipping {
                match memchr::memchr(b'\n', data) {
                    Some(p) => {
                        let more = HEAD_BYTES.saturating_sub(self.head.len()).min(p);
                        self.head.extend_from_slice(&data[..more]);
                        over_cap::encode(self.skipped + p as u64, &self.head, out);
                        self.head.clear();
                        self.skipping = false;
                        self.skipped = 0;
                        st.too_long += 1;
                        data = &data[p + 1..];
                    }
                    None => {
                        self.skipped += data.len() as u64;
                        let more = HEAD_BYTES.saturating_sub(self.head.len()).min(data.len());
                        self.head.extend_from_slice(&data[..more]);
                        return st;
                    }
                }
                continue;
            }
            if self.strip_nul && self.partial.is_empty() {
                let n = data.iter().take_while(|&&b| b == 0).count();
                st.nul_bytes += n as u64;
                data = &data[n..];
                if data.is_empty() {
                    break;
                }
            }
            match memchr::memchr(b'\n', data) {
                Some(p) => {
                    if self.partial.len() + p > self.max_line {
                        self.keep_head(&data[..p]);
                        over_cap::encode((self.partial.len() + p) as u64, &self.head, out);
                        self.head.clear();
                        self.partial.clear();
                        st.too_long += 1;
                    } else if self.partial.is_empty() {
                        // Fast path: whole lines straight from the input, up to the last
                        // newline, when none of them is too long.
                        let last = memchr::memrchr(b'\n', data).unwrap_or(p);
                        let chunk = &data[..=last];
                        if self.strip_nul || too_long_inside(chunk, self.max_line) {
                            out.extend_from_slice(&data[..=p]);
                            st.lines += 1;
                        } else {
                            out.extend_from_slice(chunk);
                            st.lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
                            data = &data[last + 1..];
                            continue;
                        }
                    } else {
                        out.extend_from_slice(&self.partial);
                        out.extend_from_slice(&data[..=p]);
                        self.partial.clear();
                        st.lines += 1;
                    }
                    data = &data[p + 1..];
                }
                None => {
                    if self.partial.len() + data.len() > self.max_line {
                        self.skipped = (self.partial.len() + data.len()) as u64;
                        self.keep_head(data);
                        self.partial.clear();
                        self.skipping = true;
                    } else {
                        self.partial.extend_from_slice(data);
                    }
                    return st;
                }
            }
        }
        st
    }

    /// Keep the first [`HEAD_BYTES`] of the partial line followed by `more`.
    fn keep_head(&mut self, more: &[u8]) {
        self.head.clear();
        let from_partial = self.partial.len().min(HEAD_BYTES);
        self.head.extend_from_slice(&self.partial[..from_partial]);
        let rest = (HEAD_BYTES - from_partial).min(more.len());
        self.head.extend_from_slice(&more[..rest]);
    }
}

/// Does `chunk` (whole lines) hold a line longer than `max`?
fn too_long_inside(chunk: &[u8], max: usize) -> bool {
    if chunk.len() <= max + 1 {
        return false;
    }
    let mut start = 0;
    for p in memchr::memchr_iter(b'\n', chunk) {
        if p - start > max {
            return true;
        }
        start = p + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]], max: usize, nul: bool) -> (Vec<String>, FrameStats, Framer) {
        let mut f = Framer::new(max, nul);
        let mut out = Vec::new();
        let mut total = FrameStats::default();
        for c in chunks {
            let st = f.push(c, &mut out);
            total.lines += st.lines;
            total.too_long += st.too_long;
            total.nul_bytes += st.nul_bytes;
        }
        let lines = out
            .split_inclusive(|&b| b == b'\n')
            .map(|l| match over_cap::decode(&l[..l.len() - 1]) {
                Some((len, head)) => format!("<over cap {len}: {} bytes kept>\n", head.len()),
                None => String::from_utf8(l.to_vec()).unwrap(),
            })
            .collect();
        (lines, total, f)
    }

    #[test]
    fn frames_lines_split_across_reads() {
        let (lines, st, mut f) = frame(&[b"ab", b"c\nde", b"f\n\ngh"], 1024, false);
        assert_eq!(lines, vec!["abc\n", "def\n", "\n"]);
        assert_eq!(st.lines, 3);
        assert_eq!(f.discard(), Some(2), "the fragment `gh` is left");
        assert_eq!(f.discard(), None);
    }

    #[test]
    fn skips_lines_over_the_cap_without_keeping_them() {
        let long = vec![b'x'; 3000];
        let (lines, st, f) = frame(&[b"ok\n", &long, &long, b"\nafter\n"], 1024, false);
        assert_eq!(
            lines,
            vec!["ok\n", "<over cap 6000: 6000 bytes kept>\n", "after\n"]
        );
        assert_eq!(st.too_long, 1);
        assert_eq!(f.pending(), 0);
        let mut within = b"ok\n".to_vec();
        within.extend(vec![b'y'; 2000]);
        within.extend(b"\nafter\n");
        let (lines, st, _) = frame(&[&within], 1024, false);
        assert_eq!(
            lines,
            vec!["ok\n", "<over cap 2000: 2000 bytes kept>\n", "after\n"]
        );
        assert_eq!(st.too_long, 1);
        // Only the head of a line over the cap is kept, however it arrives.
        let huge = vec![b'z'; 200_000];
        let (lines, st, f) = frame(&[&huge[..70_000], &huge[70_000..], b"\n"], 1024, false);
        assert_eq!(
            lines,
            vec![format!("<over cap 200000: {HEAD_BYTES} bytes kept>\n")]
        );
        assert_eq!((st.too_long, f.pending()), (1, 0));
        assert_eq!(st.too_long, 1);
    }

    #[test]
    fn strips_nul_runs_at_line_starts() {
        let (lines, st, _) = frame(&[b"\0\0\0", b"\0{\"a\":1}\n\0\0{\"b\":2}\n"], 1024, true);
        assert_eq!(lines, vec!["{\"a\":1}\n", "{\"b\":2}\n"]);
        assert_eq!(st.nul_bytes, 6);
    }
}
