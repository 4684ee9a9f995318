//! What a worker process watches in the sessions it serves, set once per
//! process: when each call started (for the watchdog), which clients
//! opened sessions and how many a device has open (for the supervisor's
//! view). In the in-process server
//! nothing is installed and both cost one atomic load.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// A thread's call in progress: when it started (milliseconds after
/// the hooks were made, plus one; 0 when idle) and its opcode.
#[derive(Debug, Default)]
pub struct CallSlot {
    since: AtomicU64,
    opcode: AtomicU16,
}

impl CallSlot {
    /// The call in progress: `(elapsed, opcode)`, or `None` when idle.
    pub fn busy(&self, now_ms: u64) -> Option<(u64, u16)> {
        match self.since.load(Ordering::Acquire) {
            0 => None,
            since => Some((
                now_ms.saturating_sub(since - 1),
                self.opcode.load(Ordering::Relaxed),
            )),
        }
    }
}

/// The hooks of a worker process.
pub struct Hooks {
    epoch: Instant,
    slots: Mutex<Vec<Arc<CallSlot>>>,
    on_session: Box<dyn Fn(&str) + Send + Sync>,
    on_open_sessions: Option<Box<dyn Fn(usize) + Send + Sync>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

impl Hooks {
    /// Hooks that report every opened session to `on_session`.
    pub fn new(on_session: Box<dyn Fn(&str) + Send + Sync>) -> Self {
        Hooks {
            epoch: Instant::now(),
            slots: Mutex::new(Vec::new()),
            on_session,
            on_open_sessions: None,
        }
    }

    /// Also reports how many sessions a device-mode connection has open,
    /// each time that changes, to `on_open_sessions`.
    pub fn with_open_sessions(
        mut self,
        on_open_sessions: Box<dyn Fn(usize) + Send + Sync>,
    ) -> Self {
        self.on_open_sessions = Some(on_open_sessions);
        self
    }

    /// Milliseconds since the hooks were made.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The longest call in progress on any thread: `(elapsed ms, opcode)`.
    pub fn longest_call(&self) -> Option<(u64, u16)> {
        let now = self.now_ms();
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|s| s.busy(now))
            .max_by_key(|&(ms, _)| ms)
    }

    fn slot(&self) -> Arc<CallSlot> {
        let slot = Arc::<CallSlot>::default();
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(slot.clone());
        slot
    }
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Installs this process's hooks; false if some already were.
pub fn install(hooks: Hooks) -> bool {
    HOOKS.set(hooks).is_ok()
}

/// This process's hooks, if installed.
pub fn get() -> Option<&'static Hooks> {
    HOOKS.get()
}

thread_local! {
    static SLOT: OnceLock<Option<Arc<CallSlot>>> = const { OnceLock::new() };
}

/// Marks a call as in progress on this thread until dropped.
#[derive(Debug)]
pub struct CallGuard(Option<Arc<CallSlot>>);

/// Starts timing a call of `opcode` on this thread.
pub fn call(opcode: u16) -> CallGuard {
    let Some(hooks) = get() else {
        return CallGuard(None);
    };
    let slot = SLOT.with(|s| s.get_or_init(|| Some(hooks.slot())).clone());
    if let Some(s) = &slot {
        s.opcode.store(opcode, Ordering::Relaxed);
        s.since.store(hooks.now_ms() + 1, Ordering::Release);
    }
    CallGuard(slot)
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.since.store(0, Ordering::Release);
        }
    }
}

/// Reports that a session was opened by `client`.
pub fn session_opened(client: &str) {
    if let Some(h) = get() {
        (h.on_session)(client);
    }
}

/// Reports that a device-mode connection has `open` sessions now.
pub fn open_sessions(open: usize) {
    if let Some(f) = get().and_then(|h| h.on_open_sessions.as_ref()) {
        f(open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_reports_its_call_until_it_ends() {
        let s = CallSlot::default();
        assert_eq!(s.busy(100), None);
        s.opcode.store(7, Ordering::Relaxed);
        s.since.store(41, Ordering::Release);
        assert_eq!(s.busy(100), Some((60, 7)));
        s.since.store(0, Ordering::Release);
        assert_eq!(s.busy(100), None);
    }
}
