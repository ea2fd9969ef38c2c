//! Line framing over any reader: `\n`-terminated lines handed out as mutable slices of a
//! reused buffer (the parser unescapes in place). A line longer than the cap is skipped
//! without being buffered whole, and reported with its length.

use std::io::{self, Read};

/// One framing step.
pub enum Frame<'b> {
    Line(&'b mut [u8]),
    /// A line over the cap was skipped; its length in bytes.
    TooLong(u64),
}

pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_line: usize,
    eof: bool,
    /// Bytes consumed from the reader so far.
    pub bytes_read: u64,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; 256 * 1024],
            start: 0,
            end: 0,
            max_line: max_line.max(1024),
            eof: false,
            bytes_read: 0,
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grow = self.buf.len().min(self.max_line + 1);
                self.buf.resize(self.buf.len() + grow, 0);
            }
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    self.bytes_read += n as u64;
                    if n == 0 {
                        self.eof = true;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line (without `\n`), or `None` at end of input. A final line without a
    /// newline is returned too.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        let mut scanned = self.start;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[scanned..self.end]) {
                let nl = scanned + pos;
                let s = self.start;
                self.start = nl + 1;
                if nl - s > self.max_line {
                    return Ok(Some(Frame::TooLong((nl - s) as u64)));
                }
                return Ok(Some(Frame::Line(&mut self.buf[s..nl])));
            }
            if self.end - self.start > self.max_line {
                // Skip the rest of this oversized line without keeping it.
                let mut skipped = (self.end - self.start) as u64;
                self.start = self.end;
                loop {
                    self.start = 0;
                    self.end = 0;
                    if self.fill()? == 0 {
                        return Ok(Some(Frame::TooLong(skipped)));
                    }
                    if let Some(pos) = memchr::memchr(b'\n', &self.buf[..self.end]) {
                        skipped += pos as u64;
                        self.start = pos + 1;
                        return Ok(Some(Frame::TooLong(skipped)));
                    }
                    skipped += self.end as u64;
                }
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let s = self.start;
                let e = self.end;
                self.start = self.end;
                return Ok(Some(Frame::Line(&mut self.buf[s..e])));
            }
            let unscanned_from = self.end - self.start;
            self.fill()?;
            scanned = self.start + unscanned_from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        r.buf = vec![0; 8];
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(match f {
                Frame::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Frame::TooLong(n) => format!("<too long {n}>"),
            });
        }
        out
    }

    #[test]
    fn frames_lines_across_refills() {
        assert_eq!(
            frames(b"ab\ncdefghijk\n\nlast", 1024),
            vec!["ab", "cdefghijk", "", "last"]
        );
        assert_eq!(frames(b"", 1024), Vec::<String>::new());
    }

    #[test]
    fn skips_oversized_lines() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend(b"\nafter\n");
        assert_eq!(frames(&input, 1024), vec!["ok", "<too long 5000>", "after"]);
        let mut tail = b"ok\n".to_vec();
        tail.extend(std::iter::repeat_n(b'y', 3000));
        assert_eq!(frames(&tail, 1024), vec!["ok", "<too long 3000>"]);
    }
}
