//! Sources: where audit bytes come from. [`replay`] reads files at rest ([`input`]: plain,
//! gzip, rotated sets, stdin), on one thread or several ([`parallel`]); [`lines`] frames a
//! replay's byte stream into lines and chunks with a size cap, [`framer`] a live stream's.
//! The daemon's live sources — [`socket`] (Vault's socket device: tcp, udp, unix),
//! [`tail`] (Vault's file device, followed across rotation from a checkpoint) and
//! [`cloudwatch`] (CloudWatch Logs) — configured by [`settings`], hand whole lines to the
//! ingest queue as [`crate::ingest::batch::Batch`]es and never run detection on the read path.
//! [`kafka`] configures a Kafka consumer group, which the daemon runs with an engine per
//! partition (`crate::daemon::kafka`).

pub mod cloudwatch;
pub mod framer;
pub mod input;
pub mod kafka;
pub mod lines;
pub mod parallel;
pub mod replay;
pub mod settings;
pub mod socket;
pub mod tail;

use crate::yaml::{self, Ctx, MapReader};

/// Where reading starts without a checkpoint (file) or a committed offset (kafka).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

/// A source's `start_at`: `beginning` (the default) or `end`.
pub(crate) fn start_at(ctx: &mut Ctx, m: &mut MapReader) -> Option<StartAt> {
    match m.take("start_at") {
        None => Some(StartAt::Beginning),
        Some(n) => match yaml::string(ctx, n, "start_at").as_deref() {
            Some("beginning") => Some(StartAt::Beginning),
            Some("end") => Some(StartAt::End),
            Some(o) => {
                ctx.error(
                    n,
                    format!("start_at must be `beginning` or `end`, found `{o}`"),
                );
                None
            }
            None => None,
        },
    }
}
