//! Batch parsing: every line of a chunk parsed at once, so chunks can be parsed on
//! several threads while one engine consumes them in input order.
//!
//! A [`Chunk`] holds whole lines (framed by [`crate::source::lines::LineReader`], so
//! over-long lines arrive as markers, never as bytes). [`BatchParser::parse`] fills one
//! simd-json tape per line, then hands the caller the parsed views of the whole chunk.
//! Tapes and buffers are pooled and reused chunk after chunk.

use std::ops::Range;

use memchr::memmem;
use simd_json::tape::Tape;
use simd_json::Buffers;

use super::{classify_error, frame, Entry, Framing, ParseError};

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
    /// The original bytes of a request entry (in [`BatchParser`]'s side buffer).
    pub raw: Option<Range<usize>>,
    /// Bytes the line took in the input, newline included.
    pub bytes: u64,
}

enum Slot {
    Done(Framing, Result<(), ParseError>, Option<Range<usize>>, u64),
    Tape(Framing, usize, Option<Range<usize>>, u64),
}

/// Parses chunks; one per thread.
pub struct BatchParser {
    prefix: Vec<u8>,
    buffers: Buffers,
    pool: Vec<Tape<'static>>,
    raw: Vec<u8>,
    slots: Vec<Slot>,
    scratch: Vec<u8>,
    finder: memmem::Finder<'static>,
}

impl BatchParser {
    pub fn new(prefix: &str) -> BatchParser {
        BatchParser {
            prefix: prefix.as_bytes().to_vec(),
            buffers: Buffers::new(16 * 1024),
            pool: Vec::new(),
            raw: Vec::new(),
            slots: Vec::new(),
            scratch: Vec::new(),
            finder: memmem::Finder::new(b"\"type\":\"request\""),
        }
    }

    /// Parse every line of `chunk`, then call `f` with the results in line order and the
    /// side buffer that `Parsed::raw` ranges point into.
    pub fn parse<R>(&mut self, chunk: &mut Chunk, f: impl FnOnce(&[Parsed<'_>], &[u8]) -> R) -> R {
        self.raw.clear();
        self.slots.clear();
        let mut tapes: Vec<Tape<'_>> = std::mem::take(&mut self.pool)
            .into_iter()
            .map(|t| t.reset())
            .collect();
        let mut used = 0usize;
        let mut rest: &mut [u8] = &mut chunk.data[..];
        let mut offset = 0usize;
        for span in &chunk.lines {
            let (start, end) = match *span {
                LineSpan::Line { start, end } => (start, end),
                LineSpan::TooLong(n) => {
                    self.slots.push(Slot::Done(
                        Framing::default(),
                        Err(ParseError::LineTooLong),
                        None,
                        n + 1,
                    ));
                    continue;
                }
            };
            let r = std::mem::take(&mut rest);
            let (_, tail) = r.split_at_mut(start - offset);
            let (line, tail) = tail.split_at_mut(end - start);
            rest = tail;
            offset = end;
            let bytes = (end - start) as u64 + 1;
            // simd-json unescapes in place: keep a request's original bytes in case its
            // response never arrives and the engine must read it again.
            let raw = if self.finder.find(line).is_some() {
                let s = self.raw.len();
                self.raw.extend_from_slice(line);
                Some(s..self.raw.len())
            } else {
                None
            };
            let mut framing = Framing::default();
            let body = match frame(line, &self.prefix, &mut framing) {
                Ok(Some(body)) => body,
                Ok(None) => {
                    framing.blank = true;
                    self.slots.push(Slot::Done(framing, Ok(()), None, bytes));
                    continue;
                }
                Err(e) => {
                    self.slots.push(Slot::Done(framing, Err(e), None, bytes));
                    continue;
                }
            };
            if tapes.len() == used {
                tapes.push(Tape(Vec::new()));
            }
            let first = body[0];
            // A line that does not end in `}` may be cut short; the test needs its bytes
            // after a failed parse, when the tape still borrows them: copy it (rare).
            let tail = if body.last() != Some(&b'}') {
                self.scratch.clear();
                self.scratch.extend_from_slice(body);
                true
            } else {
                false
            };
            let tape = &mut tapes[used];
            tape.0.clear();
            match simd_json::fill_tape(body, &mut self.buffers, tape) {
                Ok(()) if first == b'{' => {
                    self.slots.push(Slot::Tape(framing, used, raw, bytes));
                    used += 1;
                }
                Ok(()) => self.slots.push(Slot::Done(
                    framing,
                    Err(ParseError::NotAnObject),
                    None,
                    bytes,
                )),
                Err(e) => {
                    let kind = classify_error(&e, first, tail.then_some(&self.scratch[..]));
                    self.slots.push(Slot::Done(framing, Err(kind), None, bytes));
                }
            }
        }
        let parsed: Vec<Parsed<'_>> = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Done(framing, r, raw, bytes) => Parsed {
                    framing: *framing,
                    result: match r {
                        Ok(()) => Err(ParseError::InvalidJson),
                        Err(e) => Err(*e),
                    },
                    raw: raw.clone(),
                    bytes: *bytes,
                },
                Slot::Tape(framing, i, raw, bytes) => Parsed {
                    framing: *framing,
                    result: Entry::from_value(tapes[*i].as_value())
                        .map_err(|_| ParseError::MissingType),
                    raw: raw.clone(),
                    bytes: *bytes,
                },
            })
            .collect();
        let out = f(&parsed, &self.raw);
        drop(parsed);
        self.pool = tapes.into_iter().map(|t| t.reset()).collect();
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
        ];
        let mut single = Parser::default();
        let expected: Vec<String> = lines
            .iter()
            .map(|l| {
                let mut b = l.to_vec();
                single.parse(&mut b, |f, r| describe(f, &r))
            })
            .collect();
        let mut chunk = Chunk::default();
        for l in &lines {
            chunk.push_line(l);
        }
        chunk.lines.insert(3, LineSpan::TooLong(10_000_000));
        let mut batch = BatchParser::new("");
        for _round in 0..2 {
            let mut c = Chunk {
                data: chunk.data.clone(),
                lines: chunk.lines.clone(),
                ..Chunk::default()
            };
            let got: Vec<String> = batch.parse(&mut c, |parsed, raw| {
                for p in parsed {
                    if let (Some(r), Ok(e)) = (&p.raw, &p.result) {
                        assert!(
                            std::str::from_utf8(&raw[r.clone()])
                                .unwrap()
                                .contains("\"type\":\"request\""),
                            "{:?}",
                            e.request.id
                        );
                    }
                }
                parsed
                    .iter()
                    .map(|p| describe(p.framing, &p.result))
                    .collect()
            });
            let mut want = expected.clone();
            want.insert(3, "err line_too_long blank=false".into());
            assert_eq!(got, want);
        }
    }
}
