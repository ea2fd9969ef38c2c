//! The forensics report (`auditwatch replay --report FILE`): what an engineer replaying
//! weeks of audit logs after an incident hands on — what was replayed, a one-sentence
//! verdict, a timeline of alerts over traffic, alerts by tenant, actor and rule, and every
//! alert with its evidence and the same actor's entries around it. [`collect`] sees every
//! entry (through the pipeline's [`EntryObserver`] hook, off by default) and every alert,
//! within fixed caps whatever the replay's size; [`html`] renders one self-contained page,
//! [`json`] the same content as data. The report is built only from alert records and
//! per-entry summaries ([`crate::pipeline::EntryView`]): no request or response data, no
//! token, ever reaches it.

pub mod collect;
pub mod html;
pub mod json;
pub mod model;

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use collect::{Caps, Collector, Replayed};
pub use model::Report;

use crate::alert::Alert;
use crate::pipeline::{EntryObserver, EntryView};

/// The report's form, told by the file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
}

impl Format {
    /// `.html`/`.htm` or `.json` (any case); `None` otherwise.
    pub fn from_path(p: &Path) -> Option<Format> {
        let ext = p.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "html" | "htm" => Some(Format::Html),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A shared handle on a [`Collector`]: the pipeline holds one as its observer (it sees each
/// entry, then the alerts raised right after it), the front end keeps one to
/// [`finish`](Recorder::finish) the report.
#[derive(Clone)]
pub struct Recorder(Arc<Mutex<Collector>>);

impl Recorder {
    pub fn new(caps: Caps) -> Recorder {
        Recorder(Arc::new(Mutex::new(Collector::new(caps))))
    }

    fn lock(&self) -> MutexGuard<'_, Collector> {
        crate::util::sync::lock(&self.0)
    }

    /// The observer to hand to [`crate::pipeline::Pipeline::set_observer`].
    pub fn observer(&self) -> Box<dyn EntryObserver> {
        Box::new(self.clone())
    }

    pub fn finish(&self, src: &Replayed<'_>) -> Report {
        self.lock().finish(src)
    }
}

impl EntryObserver for Recorder {
    fn observe(&mut self, entry: EntryView<'_, '_>) {
        self.lock().entry(entry);
    }

    fn alerts(&mut self, alerts: &[Alert]) {
        let mut c = self.lock();
        for a in alerts {
            c.alert(a);
        }
    }
}

/// Write the report to `path` in `format`.
pub fn write_file(report: &Report, format: Format, path: &Path) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, std::fs::File::create(path)?);
    match format {
        Format::Html => html::write(report, &mut out)?,
        Format::Json => json::write(report, &mut out)?,
    }
    out.flush()
}
