//! Chunks of lines: what parallel replay reads ahead on several threads (with
//! [`super::ahead::Ahead::read_chunk`]) while one engine consumes them in input order.
//!
//! A [`Chunk`] holds whole lines (framed by [`crate::source::lines::ChunkReader`], so
//! over-long lines arrive as markers, never as bytes). The chunk itself is never
//! modified, so a request's original bytes are its line in the chunk.

/// Where a line sits in a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSpan {
    Line {
        start: usize,
        end: usize,
    },
    /// A line over the cap was skipped by the framer (its length, newline excluded).
    TooLong(u64),
}

/// Whole lines of one input, in order.
#[derive(Default)]
pub struct Chunk {
    pub data: Vec<u8>,
    pub lines: Vec<LineSpan>,
    /// Position of the chunk in the stream (chunks are consumed in this order).
    pub seq: u64,
    /// Index of the input the lines come from.
    pub input: usize,
    /// The last chunk of its input.
    pub last_of_input: bool,
}

impl Chunk {
    pub fn clear(&mut self) {
        self.data.clear();
        self.lines.clear();
        self.last_of_input = false;
    }

    pub fn push_line(&mut self, line: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(line);
        self.lines.push(LineSpan::Line {
            start,
            end: self.data.len(),
        });
    }
}
