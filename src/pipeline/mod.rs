//! The pipeline: framed lines in, alerts out. It owns the parser and the engine and keeps
//! the counters every front end reports (entries by type, parse errors by reason). Replay,
//! the daemon, rule examples, tests and benches all feed lines through this one type.
//! A line that looks like an audit entry but could not be read raises an
//! `unreadable_entry` alert ([`unreadable`]) besides its counted reason; input a live
//! source lost raises `input_lost` ([`lost`]).

pub mod examples;
pub mod lost;
pub mod unreadable;

use std::sync::Arc;

use crate::alert::Alert;
use crate::config::Config;
use crate::engine::{Engine, EngineStats, Outcome, TableSizes};
use crate::parse::ahead::{Ahead, Lines};
use crate::parse::head::{Head, HEAD_BYTES};
use crate::parse::time::parse_rfc3339_nanos;
use crate::parse::{over_cap, Entry, EntryKind, Framing, ParseError, Parser};
use crate::rules::RuleSet;
use lost::{InputLoss, Lost};
use unreadable::{Unread, Unreadable, STAND_IN_TYPE};

/// Counters of what was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub bytes: u64,
    pub entries: u64,
    pub requests: u64,
    pub responses: u64,
    pub other_types: u64,
    pub blank_lines: u64,
    pub nul_prefixed_lines: u64,
    pub prefixed_lines: u64,
    pub filtered_by_time: u64,
    pub parse_errors: [u64; ParseError::ALL.len()],
}

impl Stats {
    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors.iter().sum()
    }

    pub fn add(&mut self, o: &Stats) {
        self.lines += o.lines;
        self.bytes += o.bytes;
        self.entries += o.entries;
        self.requests += o.requests;
        self.responses += o.responses;
        self.other_types += o.other_types;
        self.blank_lines += o.blank_lines;
        self.nul_prefixed_lines += o.nul_prefixed_lines;
        self.prefixed_lines += o.prefixed_lines;
        self.filtered_by_time += o.filtered_by_time;
        for (a, b) in self.parse_errors.iter_mut().zip(o.parse_errors) {
            *a += b;
        }
    }
}

pub struct Pipeline {
    parser: Parser,
    core: Core,
}

/// Everything after parsing, shared by the line path and the batch path.
struct Core {
    engine: Engine,
    unreadable: Unreadable,
    lost: Lost,
    stats: Stats,
    since: Option<i64>,
    until: Option<i64>,
    /// The wall clock's time at the end of input (`replay --idle-until`).
    idle_until: Option<i64>,
    observer: Option<Box<dyn EntryObserver>>,
}

impl Core {
    /// Count one framed and parsed line and hand its entry to the engine.
    fn accept(
        &mut self,
        framing: Framing,
        result: Result<Entry<'_>, ParseError>,
        raw: Option<&[u8]>,
        bytes: u64,
        out: &mut Vec<Alert>,
    ) -> Result<(), ParseError> {
        let stats = &mut self.stats;
        stats.lines += 1;
        stats.bytes += bytes;
        if framing.blank {
            stats.blank_lines += 1;
            return Ok(());
        }
        if framing.nul_prefix > 0 && result.is_ok() {
            stats.nul_prefixed_lines += 1;
        }
        if framing.prefixed {
            stats.prefixed_lines += 1;
        }
        let entry = match result {
            Ok(e) => e,
            Err(e) => {
                // A live source's marker of a line over the cap: the source counted the
                // line when it framed it (its own `line_too_long`), so only alert here.
                let marked = e == ParseError::LineTooLong && raw.is_some_and(is_marker);
                if !marked {
                    stats.parse_errors[e.index()] += 1;
                }
                if let Some(raw) = raw {
                    self.unread(e, raw, bytes, out);
                }
                return Err(e);
            }
        };
        stats.entries += 1;
        match entry.kind {
            EntryKind::Request => stats.requests += 1,
            EntryKind::Response => stats.responses += 1,
            EntryKind::Other(t) => {
                stats.other_types += 1;
                if t == STAND_IN_TYPE {
                    self.unreadable.process(&entry, out);
                    return Ok(());
                }
                if t == lost::STAND_IN_TYPE {
                    self.lost.process(&entry, out);
                    return Ok(());
                }
            }
        }
        if let Some(t) = entry.time {
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                stats.filtered_by_time += 1;
                return Ok(());
            }
        }
        if let Some(o) = &mut self.observer {
            o.observe(EntryView { entry: &entry });
        }
        let before = out.len();
        self.engine.process(&entry, raw, out);
        if let Some(o) = &mut self.observer {
            if out.len() > before {
                o.alerts(&out[before..]);
            }
        }
        Ok(())
    }
}

impl Core {
    /// A line that was not read: an `unreadable_entry` alert when it looks like an audit
    /// entry. `raw` is the line, or for one over the cap its first bytes (or the live
    /// sources' marker, which carries them).
    fn unread(&mut self, reason: ParseError, raw: &[u8], bytes: u64, out: &mut Vec<Alert>) {
        let (size, head, looks) = match reason {
            ParseError::LineTooLong => {
                let (size, first) = over_cap::decode(raw).unwrap_or((bytes.saturating_sub(1), raw));
                let head = Head::read(first);
                let looks = head.starts_like_entry();
                (size, head, looks)
            }
            ParseError::Jsonx => return,
            _ => {
                let head = Head::read(&raw[..raw.len().min(HEAD_BYTES)]);
                let looks = head.names_entry();
                (raw.len() as u64, head, looks)
            }
        };
        if !looks {
            return;
        }
        let time = head.time.as_deref().and_then(parse_rfc3339_nanos);
        if let Some(t) = time {
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                self.stats.filtered_by_time += 1;
                return;
            }
        }
        let before = out.len();
        let unread = Unread {
            reason,
            size,
            head: &head,
        };
        self.unreadable.report(&unread, self.engine.max_time(), out);
        if let Some(o) = &mut self.observer {
            if out.len() > before {
                o.alerts(&out[before..]);
            }
        }
    }
}

/// The state of the pipeline's engines, borrowed, for a snapshot
/// ([`crate::engine::snapshot`]).
#[derive(serde::Serialize)]
pub struct PipelineStateOut<'a> {
    main: crate::engine::snapshot::StateOut<'a>,
    unreadable: crate::engine::snapshot::StateOut<'a>,
    lost: crate::engine::snapshot::StateOut<'a>,
}

/// The state of the pipeline's engines, read back.
#[derive(serde::Deserialize)]
pub struct PipelineStateIn {
    main: crate::engine::snapshot::StateIn,
    unreadable: crate::engine::snapshot::StateIn,
    lost: crate::engine::snapshot::StateIn,
}

impl Pipeline {
    /// The engines' state, for a snapshot.
    pub fn save_state(&self) -> PipelineStateOut<'_> {
        PipelineStateOut {
            main: self.core.engine.save_state(),
            unreadable: self.core.unreadable.engine().save_state(),
            lost: self.core.lost.engine().save_state(),
        }
    }

    /// Take saved state (into a new pipeline); what was kept and dropped, all engines'
    /// rules together.
    pub fn restore_state(&mut self, saved: PipelineStateIn) -> crate::engine::snapshot::Restored {
        let mut r = self.core.engine.restore_state(saved.main);
        for u in [
            self.core
                .unreadable
                .engine_mut()
                .restore_state(saved.unreadable),
            self.core.lost.engine_mut().restore_state(saved.lost),
        ] {
            r.rules_kept += u.rules_kept;
            r.rules_new.extend(u.rules_new);
            r.rules_dropped.extend(u.rules_dropped);
        }
        r
    }

    pub fn new(cfg: Arc<Config>, rules: Arc<RuleSet>) -> Pipeline {
        let (rest, mine) = unreadable::split(&rules);
        let (rest, losses) = lost::split(&rest);
        Pipeline {
            parser: Parser::new(&cfg.parse.prefix),
            core: Core {
                unreadable: Unreadable::new(cfg.clone(), mine),
                lost: Lost::new(cfg.clone(), losses),
                engine: Engine::new(cfg, Arc::new(rest)),
                stats: Stats::default(),
                since: None,
                until: None,
                idle_until: None,
                observer: None,
            },
        }
    }

    /// The framing prefix the parser strips.
    pub fn prefix(&self) -> &[u8] {
        self.parser.prefix()
    }

    /// Swap in new rules and config (a reload): each engine gets its part of the rules, as
    /// at [`Pipeline::new`], and keeps the state of the rules that did not change.
    pub fn reload(&mut self, cfg: Arc<Config>, rules: Arc<RuleSet>) {
        let (rest, mine) = unreadable::split(&rules);
        let (rest, losses) = lost::split(&rest);
        self.core.unreadable.reload(cfg.clone(), mine);
        self.core.lost.reload(cfg.clone(), losses);
        self.core.engine.reload(cfg, Arc::new(rest));
    }

    /// Only entries with `since <= time < until` reach the engine.
    pub fn set_time_range(&mut self, since: Option<i64>, until: Option<i64>) {
        self.core.since = since;
        self.core.until = until;
    }

    /// At the end of input, before [`Pipeline::finish`] judges it, the wall clock says it
    /// is `now` (ns), as a daemon's idle tick would after the same input: a silence of the
    /// stream is named and held requests whose response timed out are judged
    /// ([`Engine::advance_clock`]). `None`, the default: replay has no wall clock.
    pub fn set_idle_until(&mut self, now: Option<i64>) {
        self.core.idle_until = now;
    }

    /// Show every entry that reaches the engine to `observer` (the forensics report);
    /// `None`, the default, costs one branch per entry.
    pub fn set_observer(&mut self, observer: Option<Box<dyn EntryObserver>>) {
        self.core.observer = observer;
    }

    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    pub fn engine(&self) -> &Engine {
        &self.core.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.core.engine
    }

    pub fn engine_stats(&self) -> EngineStats {
        self.core.engine.stats()
    }

    pub fn table_sizes(&self) -> TableSizes {
        self.core.engine.table_sizes()
    }

    /// A line longer than the cap was skipped by the framer: its size in the input
    /// (newline included) and its first bytes. Counted, and alerted on when those bytes
    /// look like an audit entry.
    pub fn record_too_long(&mut self, bytes: u64, head: &[u8], out: &mut Vec<Alert>) {
        let _ = self.core.accept(
            Framing::default(),
            Err(ParseError::LineTooLong),
            Some(head),
            bytes,
            out,
        );
    }

    /// Feed one line (without its `\n`). Returns the parse error, if any, so a front end
    /// can log where it happened.
    pub fn feed_line(&mut self, line: &[u8], out: &mut Vec<Alert>) -> Result<(), ParseError> {
        let bytes = input_bytes(line, line.len() as u64 + 1);
        let Pipeline { parser, core, .. } = self;
        // The parser leaves the line as it was: it is a request's original bytes, kept in
        // case its response never comes and it must be read again.
        parser.parse(line, |framing, result| {
            core.accept(framing, result, Some(line), bytes, out)
        })
    }

    /// Feed `lines`, read ahead into `ahead` (on another thread, say); the lines it left
    /// are parsed here. The same outcome, line for line, as [`feed_line`] on each.
    /// `on_error(index, reason)` hears of each unreadable line. Returns the number of
    /// lines.
    ///
    /// [`feed_line`]: Pipeline::feed_line
    pub fn feed_ahead(
        &mut self,
        lines: Lines<'_>,
        ahead: &mut Ahead,
        out: &mut Vec<Alert>,
        on_error: &mut dyn FnMut(usize, ParseError),
    ) -> u64 {
        if ahead.prefix() != self.parser.prefix() {
            // Read with another prefix: read the lines again with this parser's.
            ahead.read(lines, self.parser.prefix());
        }
        let Pipeline { parser, core, .. } = self;
        let mut n = 0;
        ahead.each(lines, |line, bytes, outcome| {
            let bytes = input_bytes(line, bytes);
            let r = match outcome {
                Some((framing, result)) => core.accept(framing, result, Some(line), bytes, out),
                None => parser.parse(line, |framing, result| {
                    core.accept(framing, result, Some(line), bytes, out)
                }),
            };
            if let Err(e) = r {
                on_error(n, e);
            }
            n += 1;
        });
        n as u64
    }

    /// Input a live source lost (told out of band, never by a line): an `input_lost`
    /// alert from the rules of that category.
    pub fn report_loss(&mut self, loss: &InputLoss<'_>, out: &mut Vec<Alert>) {
        let before = out.len();
        self.core.lost.report(loss, out);
        if let Some(o) = &mut self.core.observer {
            if out.len() > before {
                o.alerts(&out[before..]);
            }
        }
    }

    /// End of input.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let before = out.len();
        if let Some(now) = self.core.idle_until {
            self.core.engine.advance_clock(now, out);
        }
        self.core.engine.finish(out);
        self.core.unreadable.finish(out);
        self.core.lost.finish(out);
        if let Some(o) = &mut self.core.observer {
            if out.len() > before {
                o.alerts(&out[before..]);
            }
        }
    }
}

/// A line's size in the input: `bytes`, or for a live source's marker of a line over the
/// cap, the size of that line.
/// A live source's marker of a line over the cap ([`over_cap`]).
fn is_marker(line: &[u8]) -> bool {
    line.first() == Some(&0) && over_cap::decode(line).is_some()
}

fn input_bytes(line: &[u8], bytes: u64) -> u64 {
    match line.first() {
        Some(0) => over_cap::decode(line).map_or(bytes, |(len, _)| len + 1),
        _ => bytes,
    }
}

/// Sees every entry that reaches the engine (inside `--since`/`--until`), just before the
/// engine does; set with [`Pipeline::set_observer`].
pub trait EntryObserver: Send {
    fn observe(&mut self, entry: EntryView<'_, '_>);
    /// The alerts the engine raised right after the entry just observed (or at the end of
    /// input), in stream order whether lines are fed one by one or in batches.
    fn alerts(&mut self, _alerts: &[Alert]) {}
}

/// What an [`EntryObserver`] may see of an entry: when, who, what and how it ended. No
/// token, accessor, request or response data is reachable from it, so nothing an observer
/// keeps can carry a secret.
#[derive(Clone, Copy)]
pub struct EntryView<'e, 'a> {
    entry: &'e Entry<'a>,
}

impl<'a> EntryView<'_, 'a> {
    /// Unix nanoseconds, when the entry has a valid time.
    pub fn time(&self) -> Option<i64> {
        self.entry.time
    }
    pub fn kind(&self) -> EntryKind<'a> {
        self.entry.kind
    }
    pub fn display_name(&self) -> Option<&'a str> {
        self.entry.actor().display_name
    }
    pub fn entity_id(&self) -> Option<&'a str> {
        self.entry.actor().entity_id
    }
    pub fn remote_address(&self) -> Option<&'a str> {
        self.entry.request.remote_address
    }
    pub fn operation(&self) -> Option<&'a str> {
        self.entry.request.operation
    }
    pub fn path(&self) -> Option<&'a str> {
        self.entry.request.path
    }
    pub fn request_id(&self) -> Option<&'a str> {
        self.entry.request.id
    }
    /// The same outcome the rules see ([`crate::engine::Event`]).
    pub fn outcome(&self) -> Outcome {
        Outcome::of(self.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload splits the rules as `new` does: the `unreadable_entry` rules stay with
    /// their own engine (a stand-in entry alerts, and stops alerting when they are gone),
    /// and the main engine never gets them.
    #[test]
    fn a_reload_gives_each_engine_its_part_of_the_rules() {
        let cfg = Arc::new(Config::default());
        let all = Arc::new(RuleSet::embedded());
        let stand_in = br#"{"time":"2026-03-02T10:00:00Z","type":"auditwatch:unreadable"}"#;
        let mut p = Pipeline::new(cfg.clone(), all.clone());
        p.reload(cfg.clone(), all.clone());
        assert!(p
            .engine()
            .rules()
            .rules
            .iter()
            .all(|r| r.category != unreadable::CATEGORY));
        let mut out = Vec::new();
        let _ = p.feed_line(stand_in, &mut out);
        assert_eq!(
            out.len(),
            1,
            "the unreadable_entry rules still run: {out:?}"
        );
        let mut without = (*all).clone();
        without.rules.retain(|r| r.category != unreadable::CATEGORY);
        p.reload(cfg, Arc::new(without));
        let mut out = Vec::new();
        let _ = p.feed_line(
            br#"{"time":"2026-03-02T11:00:00Z","type":"auditwatch:unreadable"}"#,
            &mut out,
        );
        assert!(out.is_empty(), "removed rules are gone: {out:?}");
    }

    /// A loss told by a source raises one `input_lost` alert with its evidence and a
    /// stable id (the same loss told again is not raised twice); the main engine never has
    /// those rules.
    #[test]
    fn a_reported_loss_raises_input_lost_once_with_its_evidence() {
        let cfg = Arc::new(Config::default());
        let mut p = Pipeline::new(cfg, Arc::new(RuleSet::embedded()));
        assert!(p
            .engine()
            .rules()
            .rules
            .iter()
            .all(|r| r.category != lost::CATEGORY));
        let loss = InputLoss {
            source: "vault-file",
            reason: "rotated_away",
            file: "/var/log/vault/audit.log",
            dev: 2049,
            ino: 77,
            from_offset: 1300,
            lost_bytes: Some(2600),
            time: 1_772_445_600_000_000_000,
        };
        let mut out = Vec::new();
        p.report_loss(&loss, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let a = &out[0];
        assert_eq!(a.category, "input_lost");
        assert_eq!(a.severity, crate::alert::Severity::High);
        assert_eq!(a.id, format!("input-lost:{}", loss.identity()));
        assert_eq!(a.request_id, None, "not a Vault request");
        assert_eq!(a.outcome, None);
        assert_eq!(a.evidence["source"], "vault-file");
        assert_eq!(a.evidence["reason"], "rotated_away");
        assert_eq!(a.evidence["file"], "/var/log/vault/audit.log");
        assert_eq!(a.evidence["from_offset"], 1300);
        assert_eq!(a.evidence["lost_bytes"], 2600);
        assert!(
            a.summary.contains("2600 bytes of /var/log/vault/audit.log"),
            "{}",
            a.summary
        );
        let mut again = Vec::new();
        p.report_loss(
            &InputLoss {
                time: loss.time + 60_000_000_000,
                ..loss.clone()
            },
            &mut again,
        );
        assert!(again.is_empty(), "the same loss is one finding: {again:?}");
        let other = InputLoss {
            from_offset: 0,
            lost_bytes: None,
            ..loss
        };
        p.report_loss(&other, &mut again);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].evidence["lost_bytes"], serde_json::Value::Null);
    }

    /// What the live sources' framer hands on for a line over the cap reaches the rules
    /// of `unreadable_entry` through the batch path, and is not counted twice.
    #[test]
    fn a_live_sources_marker_raises_unreadable_entry_once() {
        let cfg = Arc::new(Config::default());
        let mut p = Pipeline::new(cfg, Arc::new(RuleSet::embedded()));
        let mut data = Vec::new();
        crate::parse::over_cap::encode(
            50 << 20,
            br#"{"time":"2026-03-02T10:00:00Z","type":"request","request":{"id":"r-9","path":"sys/mounts/x","data":{"k":"#,
            &mut data,
        );
        crate::parse::over_cap::encode(50 << 20, b"not an entry", &mut data);
        let mut ahead = Ahead::default();
        ahead.read(Lines::Split(&data), b"");
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let n = p.feed_ahead(Lines::Split(&data), &mut ahead, &mut out, &mut |_, e| {
            errors.push(e)
        });
        assert_eq!(n, 2);
        assert_eq!(errors, [ParseError::LineTooLong, ParseError::LineTooLong]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].category, "unreadable_entry");
        assert_eq!(out[0].request_id.as_deref(), Some("r-9"));
        assert_eq!(out[0].path.as_deref(), Some("sys/mounts/x"));
        assert_eq!(out[0].evidence["size_bytes"], 50 << 20);
        assert_eq!(p.stats().parse_errors_total(), 0, "counted by the source");
        assert_eq!(p.stats().bytes, 2 * ((50 << 20) + 1));
    }
}
