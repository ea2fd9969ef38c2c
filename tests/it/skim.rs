//! The fast path reads every line exactly as simd-json does: the same view, field by
//! field, or the same reason it is unreadable. Checked on the real samples, on mutations of
//! them (cut short, bytes changed, bytes dropped: the garbage a broken device writes), and
//! on simulated traffic; and the fast path must actually read the bulk of real lines.

use std::fmt::Write as _;

use crate::util::*;
use auditwatch::parse::{Auth, Entry, ParseError, Parser};
use auditwatch::simulate::{Injection, SimConfig, Simulation};

fn list(out: &mut String, name: &str, l: &auditwatch::parse::StrList<'_>) {
    let v: Vec<&str> = l.iter().collect();
    let _ = write!(out, " {name}={v:?} empty={}", l.is_empty());
    for s in &v {
        let _ = write!(out, " has({s})={}", l.contains(s));
    }
}

fn auth(out: &mut String, name: &str, a: &Auth<'_>) {
    let _ = write!(
        out,
        " {name}[present={} ct={:?} acc={:?} dn={:?} ent={:?} tt={:?}",
        a.present, a.client_token, a.accessor, a.display_name, a.entity_id, a.token_type
    );
    list(out, "pol", &a.policies);
    list(out, "tpol", &a.token_policies);
    list(out, "ipol", &a.identity_policies);
    let entries: Vec<_> = a.metadata.entries().collect();
    let strings: Vec<_> = a.metadata.iter().collect();
    let _ = write!(out, " md={entries:?} mds={strings:?}");
    let keys = entries.iter().map(|(k, _)| *k).chain([
        "role",
        "role_name",
        "service_account_namespace",
        "service_account_name",
        "absent",
    ]);
    for k in keys {
        let _ = write!(
            out,
            " get({k})={:?}/{}",
            a.metadata.get(k),
            a.metadata.contains_key(k)
        );
    }
    out.push(']');
}

/// Everything the view holds, in one string.
fn describe(r: Result<Entry<'_>, ParseError>) -> String {
    let e = match r {
        Ok(e) => e,
        Err(e) => return format!("error {e}"),
    };
    let mut out = format!(
        "kind={} time={:?} error={:?} raw_token={}",
        e.kind.as_str(),
        e.time,
        e.error,
        e.token_is_raw()
    );
    auth(&mut out, "auth", &e.auth);
    let q = &e.request;
    let _ = write!(
        out,
        " req[id={:?} op={:?} path={:?} mt={:?} mp={:?} ra={:?} ct={:?} cta={:?} ns={:?} ua={:?} dt={:?}]",
        q.id,
        q.operation,
        q.path,
        q.mount_type,
        q.mount_point,
        q.remote_address,
        q.client_token,
        q.client_token_accessor,
        q.namespace,
        q.user_agent,
        q.data_token
    );
    let p = &e.response;
    let _ = write!(
        out,
        " resp[present={} lease={:?} mt={:?} wrap={:?} wrap_path={:?}",
        p.present, p.lease_id, p.mount_type, p.wrap_token, p.wrap_creation_path
    );
    auth(&mut out, "auth", &p.auth);
    out.push(']');
    out
}

struct Both {
    fast: Parser,
    slow: Parser,
    probe: Parser,
    read_fast: usize,
    lines: usize,
}

impl Both {
    fn new() -> Both {
        let mut slow = Parser::default();
        slow.set_fast_path(false);
        Both {
            fast: Parser::default(),
            slow,
            probe: Parser::default(),
            read_fast: 0,
            lines: 0,
        }
    }

    /// Both parsers on one line: they must agree. Returns whether the fast path read it.
    fn check(&mut self, line: &[u8]) -> bool {
        let a = self
            .fast
            .parse(line, |f, r| format!("{f:?} {}", describe(r)));
        let b = self
            .slow
            .parse(line, |f, r| format!("{f:?} {}", describe(r)));
        assert_eq!(
            a,
            b,
            "fast path and simd-json differ on {}",
            String::from_utf8_lossy(line)
        );
        let fast = self.probe.fast_path_reads(line);
        // Anything valid it leaves to simd-json must be for a reason it states.
        if !fast
            && line.starts_with(b"{")
            && serde_json::from_slice::<serde_json::Value>(line).is_ok()
        {
            assert!(
                stated_reason(line).is_some(),
                "the fast path left a valid entry to simd-json for no stated reason: {}",
                String::from_utf8_lossy(line)
            );
        }
        self.lines += 1;
        self.read_fast += usize::from(fast);
        fast
    }
}

/// Why the fast path may leave a line that is valid JSON to simd-json, among the reasons
/// `src/parse/skim.rs` states: a surrogate escape in a string, a number with an exponent
/// or longer than 18 bytes, an escaped key, nesting deeper than 64. `None`: none of them,
/// so the fast path must read the line itself.
fn stated_reason(line: &[u8]) -> Option<&'static str> {
    let at = |i: usize| line.get(i).copied().unwrap_or(b'"');
    let (mut i, mut depth) = (0, 0u32);
    while i < line.len() {
        match line[i] {
            b'"' => {
                i += 1;
                let mut escaped = false;
                while at(i) != b'"' {
                    if at(i) != b'\\' {
                        i += 1;
                        continue;
                    }
                    escaped = true;
                    if at(i + 1) == b'u' {
                        let hex = line
                            .get(i + 2..i + 6)
                            .and_then(|h| std::str::from_utf8(h).ok());
                        let c = hex.and_then(|h| u16::from_str_radix(h, 16).ok());
                        if c.is_some_and(|c| (0xD800..=0xDFFF).contains(&c)) {
                            return Some("a surrogate escape in a string");
                        }
                        i += 6;
                    } else {
                        i += 2;
                    }
                }
                i += 1;
                let next = line[i.min(line.len())..]
                    .iter()
                    .find(|b| !b" \t\r\n".contains(b));
                if escaped && next == Some(&b':') {
                    return Some("an escaped key");
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > 64 {
                    return Some("nesting deeper than 64");
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let len = line[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(line.len() - i);
                let number = &line[i..i + len];
                if number.iter().any(|b| matches!(b, b'e' | b'E')) {
                    return Some("a number with an exponent");
                }
                if len > 18 {
                    return Some("a number longer than 18 bytes");
                }
                i += len;
            }
            _ => i += 1,
        }
    }
    None
}

#[test]
fn stated_reasons_are_found_where_they_are() {
    for (line, want) in [
        (
            r#"{"a":"\ud83d\ude00"}"#,
            Some("a surrogate escape in a string"),
        ),
        (r#"{"a":1e3}"#, Some("a number with an exponent")),
        (
            r#"{"a":-12345678901234567890}"#,
            Some("a number longer than 18 bytes"),
        ),
        (r#"{"k\u0065y" : 1}"#, Some("an escaped key")),
        (r#"{"a":"e\n1E9 [[["}"#, None),
        (r#"{"a":[1,-2.5,true,null],"b":{"c":"\u00e9"}}"#, None),
    ] {
        assert_eq!(stated_reason(line.as_bytes()), want, "{line}");
    }
    let deep = format!("{{\"d\":{}1{}}}", "[".repeat(64), "]".repeat(64));
    assert_eq!(
        stated_reason(deep.as_bytes()),
        Some("nesting deeper than 64")
    );
    let limit = format!("{{\"d\":{}1{}}}", "[".repeat(63), "]".repeat(63));
    assert_eq!(stated_reason(limit.as_bytes()), None);
}

/// Every line of the real samples; `None` when they are not configured (see
/// [`samples_dir`]).
fn sample_lines() -> Option<Vec<Vec<u8>>> {
    let dir = samples_dir()?;
    let mut lines = Vec::new();
    for f in sample_logs(&dir) {
        let bytes = std::fs::read(&f).unwrap();
        lines.extend(bytes.split(|&b| b == b'\n').map(|l| l.to_vec()));
    }
    Some(lines)
}

const SUBSTITUTES: &[u8] = b"\"\\{}[],: e0-.1tnu\x01\x7f\xff\xc3";

#[test]
fn fast_path_reads_every_real_sample_as_simd_json_does() {
    let Some(lines) = sample_lines() else {
        return;
    };
    let mut both = Both::new();
    let mut json_lines = 0;
    for l in &lines {
        both.check(l);
        if l.starts_with(b"{") && serde_json::from_slice::<serde_json::Value>(l).is_ok() {
            json_lines += 1;
        }
    }
    eprintln!(
        "fast path read {} of {} JSON lines ({} lines)",
        both.read_fast, json_lines, both.lines
    );
    // It is a fast path only if it reads nearly every real entry itself.
    assert!(
        both.read_fast * 100 >= json_lines * 97,
        "fast path read {} of {} JSON lines",
        both.read_fast,
        json_lines
    );
}

#[test]
fn fast_path_agrees_on_mutated_samples() {
    let Some(lines) = sample_lines() else {
        return;
    };
    let mut both = Both::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut fast_mutants = 0;
    for l in lines.iter().filter(|l| l.len() > 2) {
        for _ in 0..4 {
            let mut m = l.clone();
            match rng.below(3) {
                0 => m.truncate(rng.below(l.len())),
                1 => {
                    let at = rng.below(l.len());
                    m[at] = SUBSTITUTES[rng.below(SUBSTITUTES.len())];
                }
                _ => {
                    m.remove(rng.below(l.len()));
                }
            }
            fast_mutants += usize::from(both.check(&m));
        }
    }
    // Mutations that keep a line valid JSON (a changed letter in a string) are read fast.
    assert!(fast_mutants > 0);
}

#[test]
fn fast_path_agrees_on_simulated_traffic_and_reads_it_all() {
    let cfg = SimConfig {
        injections: Injection::ALL.to_vec(),
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(&cfg).unwrap();
    let mut both = Both::new();
    while let Some((_, line)) = sim.next_line() {
        both.check(line.as_bytes());
        if both.lines == 20_000 {
            break;
        }
    }
    assert!(both.lines >= 20_000);
    assert_eq!(
        both.read_fast, both.lines,
        "simulated lines left to simd-json"
    );
}

#[test]
fn fast_path_agrees_on_hand_made_edge_cases() {
    let mut both = Both::new();
    for line in [
        // Duplicate keys: the last wins at the top, the first in metadata and namespace.
        r#"{"type":"request","type":"response","request":{"id":"a","id":7,"path":"x","path":"y"}}"#,
        r#"{"type":"response","auth":{"metadata":{"role":1,"role":"r","x":null,"y":"v"}}}"#,
        r#"{"type":"response","request":{"namespace":{"path":"","id":"ns1","path":"p2"}}}"#,
        r#"{"type":"response","request":{"namespace":{"id":"ns1","path":"team/"}}}"#,
        r#"{"type":"response","request":{"namespace":"root"}}"#,
        // Headers: the first user-agent in any case, its first element.
        r#"{"type":"response","request":{"headers":{"User-Agent":["a","b"],"user-agent":["c"]}}}"#,
        r#"{"type":"response","request":{"headers":{"USER-AGENT":"flat"}}}"#,
        r#"{"type":"response","request":{"headers":{"x":[1],"user-agent":[{"a":1},"b"]}}}"#,
        // Wrong types read as absent.
        r#"{"type":"response","error":{"x":1},"auth":"nope","request":{"path":7,"id":"r1"},"response":{"secret":[]}}"#,
        r#"{"type":"response","response":{"secret":{"lease_id":"l1","lease_id":"l2"},"mount_type":"kv"}}"#,
        r#"{"type":"response","auth":{"policies":["a",1,null,"",{"b":2},"c"],"token_policies":"x"}}"#,
        r#"{"type":7}"#,
        r#"{"type":null,"type":"request"}"#,
        r#"{}"#,
        // Escapes in read strings, in skipped ones, in keys.
        r#"{"type":"response","error":"1 error occurred:\n\t* permission denied\n\n","request":{"path":"kv/\u00e9\"x\"\\/"}}"#,
        r#"{"type":"response","auth":{"metadata":{"k\u0065y":"v\u0000w"}}}"#,
        r#"{"type":"response","request":{"data":{"k\"ey":"\u003cb\u003e","n":[1,-2.5,0,true,false,null]}}}"#,
        r#"{"type":"response","request":{"headers":{"user\u002dagent":["esc"]}}}"#,
        r#"{"type":"response","time":"2026-03-02T10:00:00.5Z","auth":{"display_name":"\u0041"}}"#,
        // Whitespace everywhere JSON allows it.
        "{ \"type\" :\t\"request\" ,\r\n \"auth\" : { \"policies\" : [ \"a\" , \"b\" ] } }",
        // Numbers of every shape, and the ones left to simd-json.
        r#"{"type":"request","n":[0,-0,1.25,123456789012345678,1e3,1E-3,12345678901234567890]}"#,
        // Not entries, not JSON.
        r#"{"type":"request"} {"type":"request"}"#,
        r#"{"type":"request",}"#,
        r#"{"type":"request""#,
        r#"{"type":"request","a":[1,]}"#,
        r#"{"type":"request","a":"\x"}"#,
        r#"{"type":"request","a":"\u12"}"#,
        r#"{"type":"request","a":"\ud800"}"#,
        r#"{"type":"request","a":tru}"#,
        r#"{"type":"request","a":01}"#,
        r#"{"type":"request","a":.5}"#,
        r#"{"type":"request","a":+1}"#,
        r#"{"type":"request" "a":1}"#,
        r#"{"type":"request","a"}"#,
        "{\"type\":\"request\",\"a\":\"tab\there\"}",
        "{\"type\":\"request\",\"a\":\"\u{7f}\u{e9}\u{1F600}\"}",
    ] {
        both.check(line.as_bytes());
    }
    // Nesting up to the fast path's limit and past it.
    for depth in [20, 40, 63, 64, 65, 200] {
        let line = format!(
            "{{\"type\":\"request\",\"d\":{}1{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        both.check(line.as_bytes());
    }
    // A few must be read by the fast path itself, or this checks nothing.
    assert!(both.read_fast >= 20, "{}", both.read_fast);
}

/// The daemon's path: lines read ahead in batches (`Pipeline::feed_ahead`) give the same
/// alerts and counts as each line fed alone, including lines left to simd-json, broken and
/// blank lines, and batches read with another prefix than the pipeline's.
#[test]
fn read_ahead_feeds_the_engine_as_line_by_line_does() {
    use auditwatch::parse::ahead::{Ahead, Lines};
    use auditwatch::parse::chunk::Chunk;

    let mut input = Vec::new();
    for i in 0..600u32 {
        let line = match i % 6 {
            0 => cross_tenant_allowed(&rid(i)),
            // Left to simd-json (an exponent), still an entry.
            1 => cross_tenant_allowed(&rid(i)).replace("\"operation\"", "\"n\":1e3,\"operation\""),
            2 => "garbage".to_string(),
            3 => own_tenant_read(&rid(i)),
            4 => String::new(),
            _ => own_tenant_read(&rid(i))[..100].to_string(),
        };
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    // Batches of uneven sizes, cut at line ends, as the sources deliver them.
    let mut batches = Vec::new();
    let mut rest = Vec::new();
    for (n, c) in input.chunks(3000).enumerate() {
        rest.extend_from_slice(c);
        if n % 3 != 1 {
            let cut = rest.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            batches.push(rest.drain(..cut).collect::<Vec<u8>>());
        }
    }
    batches.push(rest);
    // Each line fed alone: the reference.
    let want = {
        let mut p = default_pipeline();
        let alerts = feed(&mut p, lines(&input));
        let alerts: Vec<String> = alerts.iter().map(|a| a.to_json_line()).collect();
        let stats = p.stats();
        (
            alerts,
            stats.parse_errors_total(),
            stats.lines,
            format!("{stats:?}"),
        )
    };
    let critical = want.0.iter().filter(|a| a.contains("\"critical\"")).count();
    assert_eq!(critical, 200, "a critical alert per cross-tenant read");
    assert_eq!(want.1, 200, "garbage and cut-short lines");
    assert_eq!(want.2, 600);
    // Batches read ahead under `prefix`; `chunk`: as parallel replay's chunk reader frames
    // them.
    let run = |prefix: &str, chunk: bool| {
        let mut p = default_pipeline();
        let (mut alerts, mut errors, mut lines) = (Vec::new(), 0, 0);
        let mut ahead = Ahead::default();
        for batch in &batches {
            let mut c = Chunk::default();
            let lines_of = if chunk {
                let body = batch.strip_suffix(b"\n").unwrap_or(batch);
                if !batch.is_empty() {
                    for l in body.split(|&b| b == b'\n') {
                        c.push_line(l);
                    }
                }
                Lines::Chunk(&c)
            } else {
                Lines::Split(batch)
            };
            ahead.read(lines_of, prefix.as_bytes());
            lines += p.feed_ahead(lines_of, &mut ahead, &mut alerts, &mut |_, _| errors += 1);
        }
        p.finish(&mut alerts);
        let alerts: Vec<String> = alerts.iter().map(|a| a.to_json_line()).collect();
        (alerts, errors, lines, format!("{:?}", p.stats()))
    };
    for chunk in [false, true] {
        assert_eq!(run("", chunk), want, "chunk {chunk}");
        assert_eq!(run("vault: ", chunk), want, "chunk {chunk}");
    }
}
