//! Marker and barrier events, held until they complete.
//!
//! POCL 3.1 aborts the whole process (`pocl_update_event_failed`) when a
//! failed event fails a marker or barrier command that no event handle
//! refers to any more. The daemon gets an event for every command and
//! drops the ones the guest did not ask for (and the guest may release
//! the ones it did), so a guest that gates a marker or barrier on its own
//! user event (or on commands behind it: a barrier with no wait list
//! waits on everything before it) and then fails that event would take
//! the daemon down. The session therefore keeps a reference of its own to
//! every marker and barrier until the runtime reports it complete.

use std::collections::VecDeque;

use cl3::types::cl_event;
use opencl3::event::Event;

use super::handles::is_complete;

/// Most markers and barriers one session may have pending at once. Each
/// held event costs the runtime's event record; markers complete as their
/// queue runs, so only a queue held back (by a user event never set) piles
/// them up, and past this bound a new one is refused.
pub(super) const MAX_PENDING_MARKERS: usize = 16384;

/// The session's pending markers and barriers.
#[derive(Debug, Default)]
pub(super) struct Markers {
    events: VecDeque<Event>,
    /// Length at which completed ones are next dropped.
    prune_at: usize,
}

impl Markers {
    /// Drops completed ones: the oldest at once (markers on an in-order
    /// queue complete in order, so a finished queue frees them all), the
    /// rest whenever the list has doubled. True when one more may be
    /// enqueued.
    pub(super) fn room(&mut self) -> bool {
        while self.events.front().is_some_and(is_complete) {
            self.events.pop_front();
        }
        if self.events.len() >= self.prune_at.max(64) {
            self.events.retain(|e| !is_complete(e));
            self.prune_at = 2 * self.events.len();
        }
        self.events.len() < MAX_PENDING_MARKERS
    }

    /// Holds a reference of our own to the marker or barrier `ev` just
    /// enqueued. Should that fail, waits for it instead: it must not be
    /// left without a handle while it can still fail.
    pub(super) fn hold(&mut self, ev: cl_event) {
        // SAFETY: `ev` is the live event the enqueue just returned; the
        // reference taken here is released when the `Event` drops.
        match unsafe { cl3::event::retain_event(ev) } {
            Ok(()) => self.events.push_back(Event::new(ev)),
            Err(_) => {
                let _ = cl3::event::wait_for_events(&[ev]);
            }
        }
    }

    /// Markers and barriers held (for tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.events.len()
    }
}
