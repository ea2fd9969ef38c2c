//! A line over the framing cap, as the live sources' framer hands it on: not the line
//! (never held whole) but a marker line with its length and its first
//! [`HEAD_BYTES`](super::head::HEAD_BYTES), so that the pipeline can raise an
//! `unreadable_entry` alert with the header fields those bytes hold. Replay's readers pass
//! the same two facts directly, without a marker.
//!
//! The marker starts with a NUL byte, which Vault never writes (Go's encoder escapes it),
//! and which the file source's framer strips from line starts, so no entry Vault wrote is
//! taken for one. A peer that forges one gets at most an `unreadable_entry` alert.

const MARK: &[u8] = b"\0auditwatch-over-cap ";

/// Append the marker line for a line of `len` bytes (newline excluded) starting with
/// `head` (which holds no newline), newline included.
pub fn encode(len: u64, head: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(MARK);
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head);
    out.push(b'\n');
}

/// The length and first bytes of the line a marker line stands for (without its newline).
pub fn decode(line: &[u8]) -> Option<(u64, &[u8])> {
    let rest = line.strip_prefix(MARK)?;
    let sp = memchr::memchr(b' ', rest)?;
    let len = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
    Some((len, &rest[sp + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips() {
        let mut out = Vec::new();
        encode(41_943_041, b"{\"type\":\"request\"", &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let line = &out[..out.len() - 1];
        assert_eq!(
            decode(line),
            Some((41_943_041, &b"{\"type\":\"request\""[..]))
        );
        assert_eq!(decode(b"{\"type\":\"request\"}"), None);
        assert_eq!(decode(b"\0auditwatch-over-cap x y"), None);
    }
}
