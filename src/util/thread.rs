//! Joining a thread by a deadline, for shutdown: the drain has one deadline, and a thread
//! that has not finished by then is left behind (and said so by the caller) rather than
//! waited on forever.
//!
//! Invariant: never blocks past `deadline` (give or take one poll of 10 ms), and joins a
//! finished thread so its panic, if any, is handed to the caller.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often a thread is checked while waiting: short next to any drain deadline.
const POLL: Duration = Duration::from_millis(10);

/// Wait for `h` until `deadline`: its result when it finished, `None` when it is still
/// running (the handle is dropped: the thread goes on detached until the process ends).
pub fn join_until<T>(h: JoinHandle<T>, deadline: Instant) -> Option<thread::Result<T>> {
    while !h.is_finished() && Instant::now() < deadline {
        thread::sleep(POLL);
    }
    h.is_finished().then(|| h.join())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_finished_thread_is_joined_and_a_stuck_one_left_by_the_deadline() {
        let done = thread::spawn(|| 7);
        let got = join_until(done, Instant::now() + Duration::from_secs(5));
        assert_eq!(got.map(|r| r.ok()), Some(Some(7)));

        let (tx, rx) = mpsc::channel::<()>();
        let stuck = thread::spawn(move || {
            let _ = rx.recv();
        });
        let t0 = Instant::now();
        assert!(join_until(stuck, t0 + Duration::from_millis(50)).is_none());
        assert!(t0.elapsed() < Duration::from_secs(2));
        drop(tx);

        let panicked = thread::spawn(|| panic!("boom"));
        let got = join_until(panicked, Instant::now() + Duration::from_secs(5));
        assert!(matches!(got, Some(Err(_))));
    }
}
