//! The session's user events, reachable from another thread.
//!
//! A wait on a user event (`clWaitForEvents`, a blocking transfer or
//! `clFinish` behind a command that waits on one) ends only when the guest
//! sets the event's status, and the session serves the guest's requests
//! in order on one thread: a guest that waits on its own unset user event
//! blocks that thread until it sets it, which it cannot do while the
//! thread is blocked. Should the guest then go away, the session could
//! never end. This registry holds a reference of its own to every user
//! event the session made, so that the transport, seeing the guest gone,
//! completes them from its thread ([`Abandon::abandon`]); the wait then
//! ends as it would at teardown (completed, not failed: see
//! `Table::complete_pending_user_events`).

use std::sync::{Mutex, MutexGuard, PoisonError};

use cl3::types::cl_event;
use opencl3::event::Event;

use super::handles::is_complete;
use crate::executor::Abandon;

/// Entries kept before completed events are dropped from the list.
const PRUNE_FLOOR: usize = 64;

#[derive(Debug, Default)]
struct Inner {
    /// References of our own to the session's user events.
    events: Vec<Event>,
    /// Set while the guest is gone: events are completed as they come.
    abandoned: bool,
    /// List length at which completed events are dropped.
    prune_at: usize,
}

/// The registry; see the module docs.
#[derive(Debug, Default)]
pub(super) struct UserEvents(Mutex<Inner>);

fn complete(ev: &Event) {
    if !is_complete(ev) {
        // An error here only means the status was already set.
        let _ = cl3::event::set_user_event_status(ev.get(), cl3::event::CL_COMPLETE);
    }
}

impl UserEvents {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a reference to a user event the session just created.
    pub(super) fn add(&self, ev: cl_event) {
        // SAFETY: `ev` is the live user event the runtime just returned;
        // the reference taken here is released when the `Event` drops.
        if unsafe { cl3::event::retain_event(ev) }.is_err() {
            return;
        }
        let own = Event::new(ev);
        let mut s = self.lock();
        if s.abandoned {
            complete(&own);
        }
        // Completed events need no reference; dropping them here (as the
        // list doubles) keeps it as long as the live ones, which the
        // session's object limit bounds.
        if s.events.len() >= s.prune_at.max(PRUNE_FLOOR) {
            s.events.retain(|e| !is_complete(e));
            s.prune_at = 2 * s.events.len();
        }
        s.events.push(own);
    }

    /// User events held (for tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.lock().events.len()
    }
}

impl Abandon for UserEvents {
    fn abandon(&self) {
        let mut s = self.lock();
        s.abandoned = true;
        s.events.iter().for_each(complete);
    }

    fn resume(&self) {
        self.lock().abandoned = false;
    }
}
