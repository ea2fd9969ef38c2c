//! Lines read ahead: the fast path (`skim`) run over a buffer of lines on one
//! thread, its results owned (offsets into the buffer and an arena), so that another
//! thread makes the views and feeds the engine. The daemon reads each batch ahead on a
//! parse thread while its engine thread processes the one before; parallel replay reads
//! chunks ahead on every core, and whichever core is free feeds them in order.
//!
//! Lines the fast path leaves (and blank or unframeable ones) are marked for the consumer's
//! own [`super::Parser`], which reads them as it always does: the outcome of every line is
//! exactly the one `Parser::parse` gives.

use std::ops::Range;

use super::chunk::{Chunk, LineSpan};
use super::entry::Skimmed;
use super::{frame, recycle, Entry, Framing, ParseError};

#[derive(Clone, Debug)]
enum Line {
    /// Read ahead: the framed body's place in the buffer and its record.
    Read {
        line: Range<usize>,
        body: Range<usize>,
        framing: Framing,
        rec: usize,
    },
    /// For the consumer's parser.
    Later(Range<usize>),
    /// Over the line cap, skipped by the framer: its length (newline excluded) and its
    /// head's index in the chunk.
    TooLong(u64, usize),
}

/// Lines to read ahead.
#[derive(Clone, Copy)]
pub enum Lines<'a> {
    /// A buffer split on `\n`, a last line without one counted too (the daemon's batches).
    Split(&'a [u8]),
    /// A chunk, as its reader framed it (parallel replay).
    Chunk(&'a Chunk),
}

impl<'a> Lines<'a> {
    /// The first bytes of the lines over the cap.
    fn heads(self) -> &'a [Vec<u8>] {
        match self {
            Lines::Split(_) => &[],
            Lines::Chunk(chunk) => &chunk.heads,
        }
    }

    /// The bytes the lines sit in.
    pub fn data(self) -> &'a [u8] {
        match self {
            Lines::Split(data) => data,
            Lines::Chunk(chunk) => chunk.data(),
        }
    }
}

/// The lines of one buffer, read ahead. Reused buffer after buffer.
#[derive(Default)]
pub struct Ahead {
    prefix: Vec<u8>,
    lines: Vec<Line>,
    skimmed: Skimmed,
    texts: Vec<&'static str>,
}

impl Ahead {
    /// Read `lines` with the fast path, framing each with `prefix`.
    pub fn read(&mut self, lines: Lines<'_>, prefix: &[u8]) {
        self.start(prefix);
        match lines {
            Lines::Split(data) => {
                let mut start = 0;
                while start < data.len() {
                    let end =
                        memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
                    self.line(data, start..end);
                    start = end + 1;
                }
            }
            Lines::Chunk(chunk) => {
                for span in &chunk.lines {
                    match *span {
                        LineSpan::Line { start, end } => self.line(chunk.data(), start..end),
                        LineSpan::TooLong { len, head } => {
                            self.lines.push(Line::TooLong(len, head))
                        }
                    }
                }
            }
        }
    }

    fn start(&mut self, prefix: &[u8]) {
        self.prefix.clear();
        self.prefix.extend_from_slice(prefix);
        self.lines.clear();
        self.skimmed.clear();
    }

    fn line(&mut self, data: &[u8], at: Range<usize>) {
        let line = &data[at.clone()];
        if line.first() == Some(&0) && super::over_cap::decode(line).is_some() {
            // A live source's marker for a line over the cap: the parser's to report.
            self.lines.push(Line::Later(at));
            return;
        }
        let mut framing = Framing::default();
        let read = match frame(line, &self.prefix, &mut framing) {
            Ok(Some(body)) => self.skimmed.read(body).map(|(_, rec)| {
                let from = body.as_ptr() as usize - data.as_ptr() as usize;
                (from..from + body.len(), rec)
            }),
            _ => None,
        };
        self.lines.push(match read {
            Some((body, rec)) => Line::Read {
                line: at,
                body,
                framing,
                rec,
            },
            None => Line::Later(at),
        });
    }

    /// The framing prefix the lines were read with.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Lines read (blank ones included).
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Each of `lines` (those given to [`Ahead::read`]) in order, with its size in the
    /// input (newline included) and its outcome when it was read ahead, or `None` when the
    /// caller must parse it. A line over the cap comes as its first bytes, with
    /// [`ParseError::LineTooLong`].
    pub fn each(
        &mut self,
        lines: Lines<'_>,
        mut f: impl FnMut(&[u8], u64, Option<(Framing, Result<Entry<'_>, ParseError>)>),
    ) {
        let data = lines.data();
        let mut texts: Vec<&str> = std::mem::take(&mut self.texts);
        for l in &self.lines {
            if let Line::Read { body, .. } = l {
                // Checked by the fast path; a cheap second pass gives the `&str` here.
                texts.push(simdutf8::basic::from_utf8(&data[body.clone()]).unwrap_or(""));
            }
        }
        let read = &self.lines;
        self.skimmed.views(&texts, |views| {
            for l in read {
                match l {
                    Line::Read {
                        line, framing, rec, ..
                    } => f(
                        &data[line.clone()],
                        line.len() as u64 + 1,
                        Some((*framing, views.entry(*rec))),
                    ),
                    Line::Later(line) => f(&data[line.clone()], line.len() as u64 + 1, None),
                    Line::TooLong(n, head) => f(
                        lines.heads().get(*head).map_or(&[][..], |h| &h[..]),
                        n + 1,
                        Some((Framing::default(), Err(ParseError::LineTooLong))),
                    ),
                }
            }
        });
        self.texts = recycle(texts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Parser;

    #[test]
    fn read_ahead_gives_what_the_parser_gives() {
        let data = b"{\"type\":\"request\",\"request\":{\"id\":\"a\",\"path\":\"p\"},\"auth\":{\"policies\":[\"x\"],\"metadata\":{\"role\":\"r\"}}}\n\
\n\
garbage\n\
{\"type\":\"response\",\"n\":1e5}\n\
vault: {\"type\":\"response\",\"error\":\"e\\n\"}\n\
{\"type\":\"req";
        let describe = |framing: Framing, r: Result<Entry<'_>, ParseError>| match r {
            Ok(e) => format!(
                "{framing:?} {} {:?} {:?} {:?} {:?}",
                e.kind.as_str(),
                e.request.id,
                e.error,
                e.auth.policies.iter().collect::<Vec<_>>(),
                e.auth.metadata.get("role")
            ),
            Err(e) => format!("{framing:?} {e}"),
        };
        let mut parser = Parser::new("vault: ");
        let want: Vec<String> = data
            .split(|&b| b == b'\n')
            .map(|l| parser.parse(l, describe))
            .collect();
        let mut ahead = Ahead::default();
        for _ in 0..2 {
            ahead.read(Lines::Split(data), b"vault: ");
            assert_eq!(ahead.len(), 6);
            let mut got = Vec::new();
            let mut read_ahead = 0;
            ahead.each(Lines::Split(data), |line, _, outcome| {
                got.push(match outcome {
                    Some((framing, r)) => {
                        read_ahead += 1;
                        describe(framing, r)
                    }
                    None => parser.parse(line, describe),
                })
            });
            assert_eq!(got, want);
            assert_eq!(read_ahead, 2);
        }
    }

    #[test]
    fn a_chunk_read_ahead_gives_what_the_parser_gives_on_every_kind_of_line() {
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
            // Left to simd-json (an exponent), between other lines it reads.
            br#"{"type":"request","n":1e5,"request":{"id":"e1"},"auth":{"policies":["p"]}}"#,
            br#"{"type":"response","n":2E-3,"request":{"id":"e2","path":"\u00e9"}}"#,
        ];
        let describe = |framing: Framing, r: Result<Entry<'_>, ParseError>| match r {
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
        };
        let mut parser = Parser::default();
        let mut want: Vec<(String, u64)> = lines
            .iter()
            .map(|l| (parser.parse(l, describe), l.len() as u64 + 1))
            .collect();
        want.insert(3, ("err line_too_long blank=false".into(), 10_000_001));
        let mut chunk = Chunk::default();
        for l in &lines {
            chunk.push_line(l);
        }
        chunk.lines.insert(
            3,
            LineSpan::TooLong {
                len: 10_000_000,
                head: 0,
            },
        );
        chunk.heads.push(b"{\"type\":\"request\"".to_vec());
        let data = chunk.data().to_vec();
        let mut ahead = Ahead::default();
        for _round in 0..2 {
            ahead.read(Lines::Chunk(&chunk), b"");
            let mut got = Vec::new();
            ahead.each(Lines::Chunk(&chunk), |line, bytes, outcome| {
                // A read line's bytes are its original bytes, for a request read again.
                if let Some((_, Ok(_))) = &outcome {
                    assert!(lines.contains(&line), "{}", String::from_utf8_lossy(line));
                }
                let d = match outcome {
                    Some((framing, r)) => describe(framing, r),
                    None => parser.parse(line, describe),
                };
                got.push((d, bytes));
            });
            assert_eq!(got, want);
            assert_eq!(chunk.data(), data, "the chunk is left as it was");
        }
    }
}
