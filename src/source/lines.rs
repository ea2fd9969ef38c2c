//! Line framing over any reader: `\n`-terminated lines handed out as slices of a reused
//! buffer, or gathered into chunks for parallel replay. A line longer than the cap is
//! skipped without being buffered whole, and reported with its length and its first
//! [`HEAD_BYTES`] (what an `unreadable_entry` alert reads its header fields from).

use std::io::{self, Read};

use crate::parse::chunk::{Chunk, LineSpan};
use crate::parse::head::HEAD_BYTES;

/// One framing step.
pub enum Frame<'b> {
    Line(&'b mut [u8]),
    /// A line over the cap was skipped: its length in bytes and its first bytes.
    TooLong {
        len: u64,
        head: &'b [u8],
    },
}

pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_line: usize,
    eof: bool,
    /// The first bytes of a line over the cap, kept while the rest is skipped.
    head: Vec<u8>,
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
            head: Vec::new(),
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
                    return Ok(Some(Frame::TooLong {
                        len: (nl - s) as u64,
                        head: &self.buf[s..s + HEAD_BYTES.min(nl - s)],
                    }));
                }
                return Ok(Some(Frame::Line(&mut self.buf[s..nl])));
            }
            if self.end - self.start > self.max_line {
                // Skip the rest of this oversized line, keeping only its head.
                let mut skipped = (self.end - self.start) as u64;
                self.head.clear();
                let head_end = self.start + HEAD_BYTES.min(self.end - self.start);
                self.head.extend_from_slice(&self.buf[self.start..head_end]);
                self.start = self.end;
                loop {
                    self.start = 0;
                    self.end = 0;
                    if self.fill()? == 0 {
                        return Ok(Some(Frame::TooLong {
                            len: skipped,
                            head: &self.head,
                        }));
                    }
                    let line_end = memchr::memchr(b'\n', &self.buf[..self.end]);
                    let more = HEAD_BYTES.saturating_sub(self.head.len());
                    let upto = line_end.unwrap_or(self.end).min(more);
                    self.head.extend_from_slice(&self.buf[..upto]);
                    if let Some(pos) = line_end {
                        skipped += pos as u64;
                        self.start = pos + 1;
                        return Ok(Some(Frame::TooLong {
                            len: skipped,
                            head: &self.head,
                        }));
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

/// Line framing straight into a [`Chunk`] for parallel replay: the reader's bytes land in
/// the chunk's buffer (one copy, from the kernel or the inflater) and lines are framed in
/// place, with the same frames as [`LineReader`]: an over-long line becomes a
/// [`LineSpan::TooLong`] with its length and is never kept whole; a last line without a
/// newline is a line.
pub struct ChunkReader<R> {
    inner: R,
    /// The start of a line that did not fit in the previous chunk.
    carry: Vec<u8>,
    /// Bytes skipped so far of an over-long line still being read.
    skipping: Option<u64>,
    /// The first bytes of that line.
    head: Vec<u8>,
    max_line: usize,
    eof: bool,
    /// A pipe or terminal: hand lines on as soon as the producer stops keeping up.
    streaming: bool,
}

impl<R: Read> ChunkReader<R> {
    pub fn new(inner: R, max_line: usize) -> ChunkReader<R> {
        ChunkReader {
            inner,
            carry: Vec::new(),
            skipping: None,
            head: Vec::new(),
            max_line: max_line.max(1024),
            eof: false,
            streaming: false,
        }
    }

    /// For stdin: a live stream (`tail -f audit.log | auditwatch replay -`) must not wait for
    /// a full chunk. A read that returns less than a pipe's 64 KiB means the producer is not
    /// keeping the pipe full, and the lines read so far go on at once.
    pub fn streaming(mut self) -> ChunkReader<R> {
        self.streaming = true;
        self
    }

    /// Frame the whole lines of `data` from `scan`; returns where the unfinished line starts.
    fn frame(
        &mut self,
        (data, lines, heads): (&[u8], &mut Vec<LineSpan>, &mut Vec<Vec<u8>>),
        mut scan: usize,
    ) -> usize {
        while let Some(pos) = memchr::memchr(b'\n', &data[scan..]) {
            let nl = scan + pos;
            match self.skipping.take() {
                Some(n) => {
                    let more = HEAD_BYTES.saturating_sub(self.head.len()).min(pos);
                    self.head.extend_from_slice(&data[scan..scan + more]);
                    heads.push(std::mem::take(&mut self.head));
                    lines.push(LineSpan::TooLong {
                        len: n + pos as u64,
                        head: heads.len() - 1,
                    })
                }
                None if nl - scan > self.max_line => {
                    heads.push(data[scan..scan + HEAD_BYTES.min(nl - scan)].to_vec());
                    lines.push(LineSpan::TooLong {
                        len: (nl - scan) as u64,
                        head: heads.len() - 1,
                    })
                }
                None => lines.push(LineSpan::Line {
                    start: scan,
                    end: nl,
                }),
            }
            scan = nl + 1;
        }
        scan
    }

    /// Fill `chunk` (cleared by the caller) with about `target` bytes of whole lines;
    /// `Ok(true)` when the input ended with this chunk.
    pub fn fill(&mut self, chunk: &mut Chunk, target: usize) -> io::Result<bool> {
        chunk.extend(&self.carry);
        self.carry.clear();
        let mut scan = 0;
        let mut drained = false;
        loop {
            // Frame what is buffered: whole lines, and over-long ones as markers.
            scan = self.frame(chunk.parts(), scan);
            // The unfinished line: skip it once it is over the cap, keeping its head.
            let partial = chunk.data().len() - scan;
            if let Some(n) = self.skipping.as_mut() {
                *n += partial as u64;
                let more = HEAD_BYTES.saturating_sub(self.head.len()).min(partial);
                self.head
                    .extend_from_slice(&chunk.data()[scan..scan + more]);
                chunk.truncate(scan);
            } else if partial > self.max_line {
                self.skipping = Some(partial as u64);
                self.head.clear();
                self.head
                    .extend_from_slice(&chunk.data()[scan..scan + HEAD_BYTES.min(partial)]);
                chunk.truncate(scan);
            }
            let end = chunk.data().len();
            if self.eof {
                match self.skipping.take() {
                    Some(n) => {
                        let head = std::mem::take(&mut self.head);
                        chunk.push_too_long(n, &head);
                    }
                    None if scan < end => chunk.lines.push(LineSpan::Line { start: scan, end }),
                    None => {}
                }
                return Ok(true);
            }
            if scan >= target || (drained && !chunk.lines.is_empty()) {
                self.carry.extend_from_slice(&chunk.data()[scan..]);
                chunk.truncate(scan);
                return Ok(false);
            }
            const PIPE: usize = 64 * 1024;
            // Into the chunk's spare room: a pipe's worth when streaming (one read, of
            // whatever the pipe holds now); else up to the target, at least 64 KiB, fewer
            // bytes only at the end of the input.
            let want = if self.streaming {
                PIPE
            } else {
                target.saturating_sub(end).max(PIPE)
            };
            let room = chunk.spare(want);
            let mut got = 0;
            let read = loop {
                match read_retrying(&mut self.inner, &mut room[got..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        got += n;
                        if self.streaming || got == want {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            chunk.grow(got);
            match read {
                Ok(()) if self.streaming => {
                    drained = got < PIPE;
                    if got == 0 {
                        self.eof = true;
                    }
                }
                Ok(()) if got < want => self.eof = true,
                Ok(()) => {}
                Err(e) => {
                    // What was read before the error is kept: frame its whole lines; the
                    // unfinished one is dropped, as the line reader does.
                    scan = self.frame(chunk.parts(), scan);
                    chunk.truncate(scan);
                    return Err(e);
                }
            }
        }
    }
}

fn read_retrying(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of the first line of `input` that is `len` long.
    fn input_head(input: &[u8], len: u64) -> Vec<u8> {
        let line = input
            .split(|&b| b == b'\n')
            .find(|l| l.len() as u64 == len)
            .expect("a line of that length");
        line[..HEAD_BYTES.min(line.len())].to_vec()
    }

    fn frames(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        r.buf = vec![0; 8];
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            out.push(match f {
                Frame::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Frame::TooLong { len, head } => {
                    assert!(
                        head == input_head(input, len),
                        "the head of a line of {len}"
                    );
                    format!("<too long {len}>")
                }
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

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn chunked(input: &[u8], max: usize, step: usize, target: usize, live: bool) -> Vec<String> {
        let mut r = ChunkReader::new(Trickle { data: input, step }, max);
        if live {
            r = r.streaming();
        }
        let mut out = Vec::new();
        loop {
            let mut c = Chunk::default();
            let ended = r.fill(&mut c, target).unwrap();
            for l in &c.lines {
                out.push(match *l {
                    LineSpan::Line { start, end } => {
                        String::from_utf8_lossy(&c.data()[start..end]).into_owned()
                    }
                    LineSpan::TooLong { len, head } => {
                        assert!(c.heads[head].len() == HEAD_BYTES.min(len as usize));
                        format!("<too long {len}>")
                    }
                });
            }
            if ended {
                return out;
            }
        }
    }

    #[test]
    fn chunk_framing_matches_the_line_reader() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            b"ab\ncdefghijk\n\nlast".to_vec(),
            b"a\r\nb\r\n".to_vec(),
        ];
        // Lines of every length around the cap, with and without a final newline.
        let mut seed = 7u64;
        for _ in 0..40 {
            let mut v = Vec::new();
            for _ in 0..(seed % 9) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let len = [0, 1, 1023, 1024, 1025, 3000, 9000][(seed >> 33) as usize % 7];
                v.extend(std::iter::repeat_n(b'x', len));
                v.push(b'\n');
            }
            if seed.is_multiple_of(2) {
                v.extend(b"tail");
            }
            cases.push(v);
        }
        for input in &cases {
            let expected = frames(input, 1024);
            for (step, target) in [(3, 1), (7, 100), (4096, 2048), (1 << 20, 256 * 1024)] {
                // Streaming zero-fills 64 KiB per read: tiny reads would make the test slow.
                for live in [false, step >= 4096] {
                    assert_eq!(
                        chunked(input, 1024, step, target, live),
                        expected,
                        "step {step}, target {target}, streaming {live}, input of {} bytes",
                        input.len()
                    );
                }
            }
        }
    }

    #[test]
    fn a_read_error_keeps_the_whole_lines_read_before_it() {
        struct Broken(Vec<u8>);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("corrupt deflate stream"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0.drain(..n);
                Ok(n)
            }
        }
        let mut r = ChunkReader::new(Broken(b"one\ntwo\nthr".to_vec()), 1024);
        let mut c = Chunk::default();
        let e = r.fill(&mut c, 256 * 1024).unwrap_err();
        assert_eq!(e.to_string(), "corrupt deflate stream");
        let got: Vec<&[u8]> = c
            .lines
            .iter()
            .map(|l| match *l {
                LineSpan::Line { start, end } => &c.data()[start..end],
                LineSpan::TooLong { .. } => b"?",
            })
            .collect();
        assert_eq!(got, [&b"one"[..], b"two"]);
    }

    /// A live pipe: lines go on without waiting for a full chunk or the end.
    #[test]
    fn a_streaming_reader_hands_on_what_a_quiet_pipe_holds() {
        struct Live(Vec<&'static [u8]>);
        impl Read for Live {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let next = self
                    .0
                    .pop()
                    .expect("read again although lines were waiting");
                buf[..next.len()].copy_from_slice(next);
                Ok(next.len())
            }
        }
        let mut r = ChunkReader::new(Live(vec![b"two\n", b"one\npart"]), 1024).streaming();
        let mut c = Chunk::default();
        assert!(!r.fill(&mut c, 256 * 1024).unwrap());
        assert_eq!(c.lines, [LineSpan::Line { start: 0, end: 3 }]);
        let mut c = Chunk::default();
        assert!(!r.fill(&mut c, 256 * 1024).unwrap());
        assert_eq!(c.data(), b"parttwo\n");
        assert_eq!(c.lines, [LineSpan::Line { start: 0, end: 7 }]);
    }
}
