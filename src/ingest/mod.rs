//! Ingest: what stands between the live sources and the engine. Sources hand it
//! [`batch::Batch`]es of whole lines; the [`queue`] takes
//! batches of lines from every source without ever making a socket source wait, keeps them
//! in order per source, and spills to an on-disk spool when the engine is behind.

pub mod batch;
pub mod queue;

use std::path::PathBuf;

use crate::yaml::{self, Ctx, MapReader, Node};

/// `spool`: the ingest queue between the sources and the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolSettings {
    /// Directory of the on-disk spool; `None`: a private temporary directory removed at
    /// exit (a set directory keeps what was not processed across restarts).
    pub dir: Option<PathBuf>,
    pub memory_bytes: u64,
    pub max_disk_bytes: u64,
    pub segment_bytes: u64,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            dir: None,
            memory_bytes: 64 << 20,
            max_disk_bytes: 1 << 30,
            segment_bytes: 64 << 20,
        }
    }
}

pub fn apply_spool(ctx: &mut Ctx, node: &Node, s: &mut SpoolSettings) {
    let Some(mut m) = MapReader::new(ctx, node, "spool") else {
        return;
    };
    if let Some(n) = m.take("dir") {
        if let Some(d) = yaml::string(ctx, n, "spool.dir") {
            s.dir = (!d.is_empty()).then(|| PathBuf::from(d));
        }
    }
    if let Some(n) = m.take("memory_bytes") {
        match yaml::positive(ctx, n, "memory_bytes") {
            Some(v) if v >= 65536 => s.memory_bytes = v,
            Some(_) => ctx.error(n, "memory_bytes must be at least 65536"),
            None => {}
        }
    }
    if let Some(n) = m.take("max_disk_bytes") {
        s.max_disk_bytes = yaml::uint(ctx, n, "max_disk_bytes").unwrap_or(s.max_disk_bytes);
    }
    if let Some(n) = m.take("segment_bytes") {
        match yaml::positive(ctx, n, "segment_bytes") {
            Some(v) if v >= 65536 => s.segment_bytes = v,
            Some(_) => ctx.error(n, "segment_bytes must be at least 65536"),
            None => {}
        }
    }
    m.finish(ctx, "spool");
}

impl yaml::Section for SpoolSettings {
    fn keys(&self) -> &'static [&'static str] {
        &["spool"]
    }

    fn apply(&mut self, ctx: &mut Ctx, _key: &str, node: &Node) {
        apply_spool(ctx, node, self);
    }
}
