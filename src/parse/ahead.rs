//! Lines read ahead: the fast path (`skim`) run over a buffer of lines on one
//! thread, its results owned (offsets into the buffer and an arena), so that another
//! thread makes the views and feeds the engine. The daemon reads each batch ahead on a
//! parse thread while its engine thread processes the one before.
//!
//! Lines the fast path leaves (and blank or unframeable ones) are marked for the consumer's
//! own [`super::Parser`], which reads them as it always does: the outcome of every line is
//! exactly the one `Parser::parse` gives.

use std::ops::Range;

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
    /// Read the lines of `data`: split on `\n`, a last line without one counted too.
    pub fn read(&mut self, data: &[u8], prefix: &[u8]) {
        self.prefix.clear();
        self.prefix.extend_from_slice(prefix);
        self.lines.clear();
        self.skimmed.clear();
        let mut start = 0;
        while start < data.len() {
            let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
            let line = &data[start..end];
            let mut framing = Framing::default();
            let read = match frame(line, prefix, &mut framing) {
                Ok(Some(body)) => self.skimmed.read(body).map(|(_, rec)| {
                    let at = body.as_ptr() as usize - data.as_ptr() as usize;
                    (at..at + body.len(), rec)
                }),
                _ => None,
            };
            self.lines.push(match read {
                Some((body, rec)) => Line::Read {
                    line: start..end,
                    body,
                    framing,
                    rec,
                },
                None => Line::Later(start..end),
            });
            start = end + 1;
        }
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

    /// Each line of `data` (the buffer given to [`Ahead::read`]) in order, with its
    /// outcome when it was read ahead, or `None` when the caller must parse it.
    pub fn each(
        &mut self,
        data: &[u8],
        mut f: impl FnMut(&[u8], Option<(Framing, Result<Entry<'_>, ParseError>)>),
    ) {
        let mut texts: Vec<&str> = std::mem::take(&mut self.texts);
        for l in &self.lines {
            if let Line::Read { body, .. } = l {
                // Checked by the fast path; a cheap second pass gives the `&str` here.
                texts.push(simdutf8::basic::from_utf8(&data[body.clone()]).unwrap_or(""));
            }
        }
        let lines = &self.lines;
        self.skimmed.views(&texts, |views| {
            for l in lines {
                match l {
                    Line::Read {
                        line, framing, rec, ..
                    } => f(&data[line.clone()], Some((*framing, views.entry(*rec)))),
                    Line::Later(line) => f(&data[line.clone()], None),
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
            ahead.read(data, b"vault: ");
            assert_eq!(ahead.len(), 6);
            let mut got = Vec::new();
            let mut read_ahead = 0;
            ahead.each(data, |line, outcome| {
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
}
