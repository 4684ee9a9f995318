//! Staged writes. A small write the guest posted (fire-and-forget) is
//! copied out of guest memory into a daemon buffer and handed to the
//! runtime non-blocking, instead of the daemon waiting for the runtime to
//! copy it: with POCL that wait is a hand-off to a worker thread and back,
//! some 15-25 µs, several times per batch of small calls.
//!
//! A posted write promises the guest nothing about completion (it finds out
//! through events or a synchronizing call, which the runtime honours for
//! the staged command as for any other), so staging changes no result.
//! The copies stay alive until the runtime reports the write complete.
//! Both their number and their bytes are bounded per session; when the
//! bound is reached, a write runs blocking as an unstaged one does.

use std::collections::VecDeque;

use cl3::event::CL_COMPLETE;
use opencl3::event::Event;

/// Largest write that is staged: above this the extra copy costs more
/// than the wait it saves.
pub(super) const STAGE_MAX: usize = 64 << 10;
/// Most bytes one session may have staged at once.
pub(super) const STAGED_BYTES_MAX: usize = 4 << 20;
/// Most writes one session may have staged at once (bounds the work of
/// checking them).
pub(super) const STAGED_WRITES_MAX: usize = 256;

/// The session's staged writes still in flight.
#[derive(Debug, Default)]
pub(super) struct Staging {
    writes: VecDeque<(Event, Vec<u8>)>,
    bytes: usize,
}

fn is_done(event: &Event) -> bool {
    // An error also ends the command; an unreadable status is treated as
    // not done, so the copy is kept.
    event
        .command_execution_status()
        .is_ok_and(|s| s.0 <= CL_COMPLETE)
}

impl Staging {
    /// Frees the copies of completed writes; returns whether `len` more
    /// bytes may be staged now.
    pub(super) fn room_for(&mut self, len: usize) -> bool {
        if len > STAGE_MAX {
            return false;
        }
        let mut freed = 0;
        self.writes.retain(|(event, data)| {
            let keep = !is_done(event);
            if !keep {
                freed += data.len();
            }
            keep
        });
        self.bytes -= freed;
        self.writes.len() < STAGED_WRITES_MAX && self.bytes + len <= STAGED_BYTES_MAX
    }

    /// Keeps `data` until `event` (the write reading it) completes.
    pub(super) fn push(&mut self, event: Event, data: Vec<u8>) {
        self.bytes += data.len();
        self.writes.push_back((event, data));
    }

    /// Writes in flight (for tests).
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.writes.len()
    }

    /// Waits for every staged write, then frees the copies.
    pub(super) fn settle(&mut self) {
        for (event, _) in &self.writes {
            // A failed wait (the command failed) also means the runtime is
            // done with the copy.
            let _ = event.wait();
        }
        self.writes.clear();
        self.bytes = 0;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // The runtime may still read the copies: never free them first.
        self.settle();
    }
}
