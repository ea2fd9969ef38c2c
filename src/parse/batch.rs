//! Batch parsing: every line of a chunk parsed at once, so chunks can be parsed on
//! several threads while one engine consumes them in input order.
//!
//! A [`Chunk`] holds whole lines (framed by [`crate::source::lines::LineReader`], so
//! over-long lines arrive as markers, never as bytes). [`BatchParser::parse`] reads each
//! line with the fast path (`skim`) or, for the lines it leaves, with simd-json
//! on a copy, then hands the caller the parsed views of the whole chunk. The chunk itself
//! is never modified, so a request's original bytes are its line in the chunk. Buffers
//! are pooled and reused chunk after chunk.

use std::ops::Range;

use simd_json::tape::Tape;
use simd_json::Buffers;

use super::entry::Skimmed;
use super::{classify_error, frame, recycle, Entry, Framing, ParseError};

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

/// One parsed line.
pub struct Parsed<'c> {
    pub framing: Framing,
    pub result: Result<Entry<'c>, ParseError>,
    /// The line's original bytes (in the chunk data handed to the caller).
    pub raw: Option<Range<usize>>,
    /// Bytes the line took in the input, newline included.
    pub bytes: u64,
}

enum Slot {
    /// Decided by framing (blank, NUL bytes, too long, ...).
    Done(Framing, Result<(), ParseError>, u64),
    /// Read by the fast path: its record.
    Skim(Framing, usize, Range<usize>, u64),
    /// Left to simd-json: its copy.
    Copy(Framing, usize, Range<usize>, u64),
}

/// Tapes kept between chunks (one per line simd-json read in a chunk), and their largest.
const POOLED_TAPES: usize = 64;
const POOLED_TAPE_NODES: usize = 1 << 16;
/// The largest copy buffer kept between chunks.
const POOLED_COPY_BYTES: usize = 1 << 20;

/// Parses chunks; one per thread.
pub struct BatchParser {
    prefix: Vec<u8>,
    buffers: Buffers,
    pool: Vec<Tape<'static>>,
    slots: Vec<Slot>,
    skimmed: Skimmed,
    /// The framed bodies of the lines left to simd-json, one after another (one buffer,
    /// no larger than the chunk), and per line: its body's place in the chunk, its
    /// length here, and the outcome.
    copies: Vec<u8>,
    copied: Vec<(Range<usize>, usize, Result<(), ParseError>)>,
    texts: Vec<&'static str>,
}

impl BatchParser {
    pub fn new(prefix: &str) -> BatchParser {
        BatchParser {
            prefix: prefix.as_bytes().to_vec(),
            buffers: Buffers::new(16 * 1024),
            pool: Vec::new(),
            slots: Vec::new(),
            skimmed: Skimmed::default(),
            copies: Vec::new(),
            copied: Vec::new(),
            texts: Vec::new(),
        }
    }

    /// Parse every line of `chunk`, then call `f` with the results in line order and the
    /// chunk data that `Parsed::raw` ranges point into.
    pub fn parse<R>(&mut self, chunk: &Chunk, f: impl FnOnce(&[Parsed<'_>], &[u8]) -> R) -> R {
        let data = &chunk.data[..];
        self.slots.clear();
        self.skimmed.clear();
        self.copied.clear();
        self.copies.clear();
        let mut texts: Vec<&str> = std::mem::take(&mut self.texts);
        for span in &chunk.lines {
            let (start, end) = match *span {
                LineSpan::Line { start, end } => (start, end),
                LineSpan::TooLong(n) => {
                    self.slots.push(Slot::Done(
                        Framing::default(),
                        Err(ParseError::LineTooLong),
                        n + 1,
                    ));
                    continue;
                }
            };
            let line = &data[start..end];
            let bytes = (end - start) as u64 + 1;
            let mut framing = Framing::default();
            let body = match frame(line, &self.prefix, &mut framing) {
                Ok(Some(body)) => body,
                Ok(None) => {
                    framing.blank = true;
                    self.slots.push(Slot::Done(framing, Ok(()), bytes));
                    continue;
                }
                Err(e) => {
                    self.slots.push(Slot::Done(framing, Err(e), bytes));
                    continue;
                }
            };
            if let Some((text, i)) = self.skimmed.read(body) {
                texts.push(text);
                self.slots.push(Slot::Skim(framing, i, start..end, bytes));
                continue;
            }
            let i = self.copied.len();
            self.copies.extend_from_slice(body);
            let at = body.as_ptr() as usize - data.as_ptr() as usize;
            self.copied.push((at..at + body.len(), body.len(), Ok(())));
            self.slots.push(Slot::Copy(framing, i, start..end, bytes));
        }

        // simd-json on the copies: each tape borrows its own part of the buffer.
        let mut tapes: Vec<Tape<'_>> = std::mem::take(&mut self.pool)
            .into_iter()
            .map(|t| t.reset())
            .collect();
        let mut rest: &mut [u8] = &mut self.copies[..];
        for (i, (body, len, outcome)) in self.copied.iter_mut().enumerate() {
            let (copy, tail) = std::mem::take(&mut rest).split_at_mut(*len);
            rest = tail;
            if tapes.len() == i {
                tapes.push(Tape(Vec::new()));
            }
            let body = &data[body.clone()];
            let first = body[0];
            let tape = &mut tapes[i];
            tape.0.clear();
            *outcome = match simd_json::fill_tape(copy, &mut self.buffers, tape) {
                Ok(()) if first == b'{' => Ok(()),
                Ok(()) => Err(ParseError::NotAnObject),
                Err(e) => {
                    let tail = (body.last() != Some(&b'}')).then_some(body);
                    Err(classify_error(&e, first, tail))
                }
            };
        }

        let (slots, copied) = (&self.slots, &self.copied);
        let out = self.skimmed.views(&texts, |views| {
            let parsed: Vec<Parsed<'_>> = slots
                .iter()
                .map(|s| match s {
                    Slot::Done(framing, r, bytes) => Parsed {
                        framing: *framing,
                        result: Err(r.err().unwrap_or(ParseError::InvalidJson)),
                        raw: None,
                        bytes: *bytes,
                    },
                    Slot::Skim(framing, i, raw, bytes) => Parsed {
                        framing: *framing,
                        result: views.entry(*i),
                        raw: Some(raw.clone()),
                        bytes: *bytes,
                    },
                    Slot::Copy(framing, i, raw, bytes) => Parsed {
                        framing: *framing,
                        result: copied[*i].2.and_then(|()| {
                            Entry::from_value(tapes[*i].as_value())
                                .map_err(|_| ParseError::MissingType)
                        }),
                        raw: Some(raw.clone()),
                        bytes: *bytes,
                    },
                })
                .collect();
            f(&parsed, data)
        });
        // Bounded: a chunk of many broken lines, or one huge line, is not kept for good.
        self.pool = tapes
            .into_iter()
            .take(POOLED_TAPES)
            .map(|t| t.reset())
            .filter(|t| t.0.capacity() <= POOLED_TAPE_NODES)
            .collect();
        if self.copies.capacity() > POOLED_COPY_BYTES {
            self.copies = Vec::new();
        }
        self.texts = recycle(texts);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Parser;

    fn describe(framing: Framing, r: &Result<Entry<'_>, ParseError>) -> String {
        match r {
            Ok(e) => format!(
                "ok {} {:?} {:?} {:?} nul={} pre={}",
                e.kind.as_str(),
                e.time,
                e.request.id,
                e.auth.policies.iter().collect::<Vec<_>>(),
                framing.nul_prefix,
                framing.prefixed
            ),
            Err(e) => format!("err {e} blank={}", framing.blank),
        }
    }

    #[test]
    fn batch_and_line_parsers_agree_on_every_kind_of_line() {
        let lines: Vec<&[u8]> = vec![
            br#"{"time":"2026-03-02T10:00:00Z","type":"request","auth":{"policies":["a","b"]},"request":{"id":"r1","path":"x"}}"#,
            br#"{"time":"2026-03-02T10:00:01Z","type":"response","request":{"id":"r1","path":"esc\"aped\u00e9"}}"#,
            b"",
            b"   \r",
            b"garbage",
            br#"{"type":"req"#,
            br#"{"type":"response"} trailing text"#,
            br#"{"type":"response"}}"#,
            b"[1,2]",
            b"{}",
            b"<json:object name=\"x\"/>",
            b"{\"type\":\"a\0\"}",
            b"\0\0\0{\"type\":\"request\"}",
            b"{\"type\":\"\xff\"}",
            b"Nov 22 host vault: {\"type\":\"request\",\"request\":{\"id\":\"p\"}}",
            br#"{"type":"kmip-request"}"#,
            // Read by simd-json (an exponent), between other lines simd-json reads.
            br#"{"type":"request","n":1e5,"request":{"id":"e1"},"auth":{"policies":["p"]}}"#,
            br#"{"type":"response","n":2E-3,"request":{"id":"e2","path":"\u00e9"}}"#,
        ];
        let mut single = Parser::default();
        let expected: Vec<String> = lines
            .iter()
            .map(|l| {
                let b = l.to_vec();
                single.parse(&b, |f, r| describe(f, &r))
            })
            .collect();
        let mut chunk = Chunk::default();
        for l in &lines {
            chunk.push_line(l);
        }
        chunk.lines.insert(3, LineSpan::TooLong(10_000_000));
        let mut batch = BatchParser::new("");
        for _round in 0..2 {
            let c = Chunk {
                data: chunk.data.clone(),
                lines: chunk.lines.clone(),
                ..Chunk::default()
            };
            let got: Vec<String> = batch.parse(&c, |parsed, raw| {
                // Every read line's original bytes, for a request that must be re-read.
                let mut originals = lines.iter().filter(|l| !l.is_empty());
                for p in parsed {
                    if p.result.is_ok() {
                        let r = p.raw.clone().expect("raw bytes of a read line");
                        let want = originals.find(|l| **l == &raw[r.clone()]);
                        assert!(want.is_some(), "{:?}", String::from_utf8_lossy(&raw[r]));
                    }
                }
                parsed
                    .iter()
                    .map(|p| describe(p.framing, &p.result))
                    .collect()
            });
            assert_eq!(c.data, chunk.data, "the chunk is left as it was");
            let mut want = expected.clone();
            want.insert(3, "err line_too_long blank=false".into());
            assert_eq!(got, want);
        }
    }

    #[test]
    fn buffers_kept_between_chunks_are_bounded() {
        let mut batch = BatchParser::new("");
        let mut c = Chunk::default();
        // Many lines for simd-json (an exponent), and one of several megabytes.
        for i in 0..500 {
            c.push_line(
                format!(
                    r#"{{"type":"request","n":1e{},"request":{{"id":"x"}}}}"#,
                    i % 100
                )
                .as_bytes(),
            );
        }
        let big = format!(
            r#"{{"type":"request","n":1e1,"pad":"{}"}}"#,
            "x".repeat(3 << 20)
        );
        c.push_line(big.as_bytes());
        let read = batch.parse(&c, |parsed, _| {
            parsed.iter().filter(|p| p.result.is_ok()).count()
        });
        assert_eq!(read, 501);
        assert!(batch.pool.len() <= POOLED_TAPES, "{}", batch.pool.len());
        assert!(batch
            .pool
            .iter()
            .all(|t| t.0.capacity() <= POOLED_TAPE_NODES));
        assert!(batch.copies.capacity() <= POOLED_COPY_BYTES);
    }
}
