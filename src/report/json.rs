//! The report as data: the [`Report`] serialised as pretty JSON (the same content as the
//! HTML page, for tooling and diffing).

use std::io::{self, Write};

use super::model::Report;

/// Write the report as JSON, newline-terminated.
pub fn write(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, r)?;
    out.write_all(b"\n")
}
