//! Standard output of the subcommands, and the one rule for a reader that goes away.
//!
//! `auditwatch replay … | head` closes the pipe once `head` has its lines. That is the
//! reader's choice, not a failure of ours: the first write that finds stdout's pipe
//! closed (EPIPE: Rust ignores SIGPIPE, so it arrives as a `BrokenPipe` error) ends the
//! process at once, quietly, with exit 0, whatever the subcommand was doing. Nothing is
//! left to save at that point: what stdout was for can no longer be delivered, and the
//! subcommands that print keep no state worth a clean shutdown.
//!
//! Invariant: everything a subcommand prints to stdout goes through [`stdout`] (or
//! [`out!`] / [`outln!`]), so this is decided here and nowhere else. Any other write error
//! ends the process with exit 1 and says so on stderr. The daemon (`run`) is not a stdout
//! printer: its JSON lines sink counts failed writes (`write_error`) and keeps detecting.

use std::io::{self, Write};
use std::process;

use super::EXIT_RUNTIME;

/// The process's stdout, with the closed-pipe rule applied to every write and flush.
pub struct Stdout(io::Stdout);

pub fn stdout() -> Stdout {
    Stdout(io::stdout())
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        closed_pipe_ends_quietly(self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        closed_pipe_ends_quietly(self.0.flush())
    }
}

fn closed_pipe_ends_quietly<T>(r: io::Result<T>) -> io::Result<T> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => process::exit(0),
        r => r,
    }
}

/// `print!` through [`stdout`]: for what `print!` would do, without its panic.
pub fn print(args: std::fmt::Arguments<'_>) {
    if let Err(e) = stdout().write_fmt(args) {
        eprintln!("error: cannot write to stdout: {e}");
        process::exit(i32::from(EXIT_RUNTIME));
    }
}

/// `print!` to stdout under the closed-pipe rule.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::print(format_args!($($arg)*))
    };
}

/// `println!` to stdout under the closed-pipe rule.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
