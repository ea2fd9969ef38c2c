//! Chunks of lines: what parallel replay reads ahead on several threads (with
//! [`super::ahead::Ahead::read`] and [`super::ahead::Lines::Chunk`]) while one engine
//! consumes them in input order.
//!
//! A [`Chunk`] holds whole lines (framed by [`crate::source::lines::ChunkReader`], so
//! over-long lines arrive as markers with their first bytes, never whole). The chunk itself is never
//! modified, so a request's original bytes are its line in the chunk.

/// Where a line sits in a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSpan {
    Line {
        start: usize,
        end: usize,
    },
    /// A line over the cap was skipped by the framer: its length (newline excluded) and
    /// the index of its first bytes in [`Chunk::heads`].
    TooLong {
        len: u64,
        head: usize,
    },
}

/// Whole lines of one input, in order.
#[derive(Default)]
pub struct Chunk {
    /// The lines' bytes are `buf[..len]`. Past `len`, `buf` stays initialised from chunk
    /// to chunk, so reading into it never zero-fills (a reader without `read_buf`, such
    /// as a counting wrapper, would otherwise have every byte zeroed before it is read).
    buf: Vec<u8>,
    len: usize,
    pub lines: Vec<LineSpan>,
    /// The first bytes (at most [`crate::parse::head::HEAD_BYTES`]) of each line over the
    /// cap, for the header fields of its `unreadable_entry` alert.
    pub heads: Vec<Vec<u8>>,
    /// Index of the input the lines come from.
    pub input: usize,
    /// The last chunk of its input.
    pub last_of_input: bool,
}

impl Chunk {
    /// The bytes the line spans point into.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.lines.clear();
        self.heads.clear();
        self.last_of_input = false;
    }

    pub fn push_line(&mut self, line: &[u8]) {
        let start = self.len;
        self.extend(line);
        self.lines.push(LineSpan::Line {
            start,
            end: self.len,
        });
    }

    /// Append bytes to the data.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.spare(bytes.len()).copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Room for `n` bytes past the data, to read into; [`Chunk::grow`] then takes in
    /// what was read.
    pub fn spare(&mut self, n: usize) -> &mut [u8] {
        if self.buf.len() < self.len + n {
            self.buf.resize(self.len + n, 0);
        }
        &mut self.buf[self.len..self.len + n]
    }

    /// Take in `n` bytes written into [`Chunk::spare`].
    pub fn grow(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// Keep the first `n` bytes of the data.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// The data and the line spans (and heads), to frame the one into the other.
    pub fn parts(&mut self) -> (&[u8], &mut Vec<LineSpan>, &mut Vec<Vec<u8>>) {
        (&self.buf[..self.len], &mut self.lines, &mut self.heads)
    }

    /// Mark a line over the cap, of `len` bytes starting with `head`.
    pub fn push_too_long(&mut self, len: u64, head: &[u8]) {
        let head_at = self.heads.len();
        self.heads
            .push(head[..head.len().min(crate::parse::head::HEAD_BYTES)].to_vec());
        self.lines.push(LineSpan::TooLong { len, head: head_at });
    }
}
