//! The pipeline: framed lines in, alerts out. It owns the parser and the engine and keeps
//! the counters every front end reports (entries by type, parse errors by reason). Replay,
//! the daemon, rule examples, tests and benches all feed lines through this one type.

pub mod examples;

use std::sync::Arc;

use crate::alert::Alert;
use crate::config::Config;
use crate::engine::{Engine, EngineStats, Outcome, TableSizes};
use crate::parse::ahead::{Ahead, Lines};
use crate::parse::{Entry, EntryKind, Framing, ParseError, Parser};
use crate::rules::RuleSet;

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
    stats: Stats,
    since: Option<i64>,
    until: Option<i64>,
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
                stats.parse_errors[e.index()] += 1;
                return Err(e);
            }
        };
        stats.entries += 1;
        match entry.kind {
            EntryKind::Request => stats.requests += 1,
            EntryKind::Response => stats.responses += 1,
            EntryKind::Other(_) => stats.other_types += 1,
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

impl Pipeline {
    pub fn new(cfg: Arc<Config>, rules: Arc<RuleSet>) -> Pipeline {
        Pipeline {
            parser: Parser::new(&cfg.parse.prefix),
            core: Core {
                engine: Engine::new(cfg, rules),
                stats: Stats::default(),
                since: None,
                until: None,
                observer: None,
            },
        }
    }

    /// The framing prefix the parser strips.
    pub fn prefix(&self) -> &[u8] {
        self.parser.prefix()
    }

    /// Only entries with `since <= time < until` reach the engine.
    pub fn set_time_range(&mut self, since: Option<i64>, until: Option<i64>) {
        self.core.since = since;
        self.core.until = until;
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

    /// A line longer than the cap was skipped by the framer.
    pub fn record_too_long(&mut self, bytes: u64) {
        let mut none = Vec::new();
        let _ = self.core.accept(
            Framing::default(),
            Err(ParseError::LineTooLong),
            None,
            bytes,
            &mut none,
        );
    }

    /// Feed one line (without its `\n`). Returns the parse error, if any, so a front end
    /// can log where it happened.
    pub fn feed_line(&mut self, line: &[u8], out: &mut Vec<Alert>) -> Result<(), ParseError> {
        let bytes = line.len() as u64 + 1;
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

    /// End of input.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        let before = out.len();
        self.core.engine.finish(out);
        if let Some(o) = &mut self.core.observer {
            if out.len() > before {
                o.alerts(&out[before..]);
            }
        }
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
