//! What the daemon's `VhostUserBackend` impls (the virtio-compute device in
//! direct mode, [`crate::vhu_compute`], and in device mode,
//! [`crate::vhu_device`], and the vsock device, [`crate::vsock`]) share:
//! guest memory as the frontend last mapped it, the worker threads' exit
//! events, the check of a worker's event, the loop that pops a queue's
//! chains and completes them, the adaptive polling around it, and the stop
//! of a queue that waits for its chain in flight.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use tracing::debug;

use vhost_user_backend::{VringRwLock, VringT};
use virtio_queue::{DescriptorChain, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryLoadGuard, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

/// Guest memory as the vhost-user crates hand it over.
pub type GuestMem = GuestMemoryAtomic<GuestMemoryMmap>;

/// A chain popped from a queue, over a snapshot of guest memory.
pub type Chain = DescriptorChain<GuestMemoryLoadGuard<GuestMemoryMmap>>;

/// Errors of a device's worker, surfaced to the vhost-user layer (as
/// `io::Error`).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// An event other than a plain readable one.
    #[error("unexpected event set {0:#x}")]
    UnexpectedEvent(u32),
    /// An event id the device does not have.
    #[error("event for unknown queue or source {0}")]
    UnknownEvent(u16),
    /// The used ring could not be updated.
    #[error("cannot update the used ring")]
    UsedRing(#[source] virtio_queue::Error),
    /// The guest could not be signalled.
    #[error("cannot signal the guest")]
    Signal(#[source] io::Error),
}

impl From<WorkerError> for io::Error {
    fn from(e: WorkerError) -> Self {
        io::Error::other(e)
    }
}

/// A worker's event must be a plain readable one.
pub fn check_event(evset: EventSet) -> Result<(), WorkerError> {
    if evset == EventSet::IN {
        Ok(())
    } else {
        Err(WorkerError::UnexpectedEvent(evset.bits()))
    }
}

/// When a drain signals the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// After each completed chain the guest asked to hear about (with
    /// EVENT_IDX, only those): a guest waiting on its first chain need not
    /// wait for the rest.
    EachChain,
    /// Once, after the last chain, if any completed.
    Once,
}

/// Exit events handed to vhost-user-backend 0.24 (one per worker thread).
///
/// The crate registers each consumer's raw fd with its epoll and never
/// closes it; the backend that made them closes them when it is dropped.
#[derive(Debug, Default)]
struct ExitEvents(Mutex<Vec<RawFd>>);

impl ExitEvents {
    fn create(&self) -> Option<(EventConsumer, EventNotifier)> {
        let (consumer, notifier) =
            match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
                Ok(pair) => pair,
                Err(e) => {
                    crate::limited_error!(
                        crate::log::daemon_limiter(),
                        error = %e,
                        "cannot create the worker exit event"
                    );
                    return None;
                }
            };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(consumer.as_raw_fd());
        Some((consumer, notifier))
    }
}

impl Drop for ExitEvents {
    fn drop(&mut self) {
        let fds = std::mem::take(self.0.get_mut().unwrap_or_else(PoisonError::into_inner));
        for fd in fds {
            // SAFETY: `fd` is the consumer end created in `create` and given
            // to vhost-user-backend 0.24, which turns it into a raw fd for
            // its epoll set and never closes it. The backend owning this is
            // dropped only after every worker holding a clone of it (and
            // that epoll) has exited, so nothing uses `fd` any more and
            // nobody else owns it: closing it here is the one close it gets.
            unsafe { libc::close(fd) };
        }
    }
}

/// How long [`Glue::stop_queue`] lets a chain in flight finish on its own
/// before it ends the chain's waits on the guest.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The state every device backend keeps for the vhost-user layer.
#[derive(Debug)]
pub struct Glue {
    mem: RwLock<GuestMem>,
    exit: ExitEvents,
    /// One per queue, held while the queue is served: from the pop of a
    /// chain to its used entry and the guest's notification.
    serving: Vec<Mutex<()>>,
}

impl Glue {
    /// Glue for a device of `queues` queues over the (possibly still
    /// empty) guest memory `mem`.
    pub fn new(mem: GuestMem, queues: usize) -> Self {
        Glue {
            mem: RwLock::new(mem),
            exit: ExitEvents::default(),
            serving: (0..queues).map(|_| Mutex::new(())).collect(),
        }
    }

    fn serving(&self, index: usize) -> Result<MutexGuard<'_, ()>, WorkerError> {
        let m = self.serving.get(index).ok_or(WorkerError::UnknownEvent(
            u16::try_from(index).unwrap_or(u16::MAX),
        ))?;
        Ok(m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `VhostUserBackend::stop_vring` (the frontend's `GET_VRING_BASE`, by
    /// which it stops a queue, before a reset, a pause or a migration):
    /// returns once no chain of queue `index` is in flight. The queue is
    /// already marked not ready, so none is popped after this; without the
    /// wait, a chain still running would put its used entry into rings the
    /// frontend may have set up afresh meanwhile. A chain that has not
    /// finished after `STOP_GRACE` may be in a wait only the guest could
    /// end, which it cannot while its queue is stopped: `abandon` ends such
    /// waits and `resume` (once the chain is done) lets later waits behave
    /// as before.
    pub fn stop_queue(&self, index: usize, abandon: impl FnOnce(), resume: impl FnOnce()) {
        let Some(m) = self.serving.get(index) else {
            return;
        };
        let start = Instant::now();
        loop {
            match m.try_lock() {
                Ok(_) | Err(TryLockError::Poisoned(_)) => return,
                Err(TryLockError::WouldBlock) if start.elapsed() < STOP_GRACE => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(TryLockError::WouldBlock) => break,
            }
        }
        debug!(
            queue = index,
            "queue stopped with a chain in flight; ending its waits on the guest"
        );
        abandon();
        drop(m.lock().unwrap_or_else(PoisonError::into_inner));
        resume();
    }

    /// Waits until no chain of any queue is in flight, then returns the
    /// guards that keep it so (for a device reset).
    pub fn idle(&self) -> Vec<MutexGuard<'_, ()>> {
        self.serving
            .iter()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    /// Guest memory as last mapped.
    pub fn memory(&self) -> GuestMem {
        self.mem
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `VhostUserBackend::update_memory`.
    pub fn update_memory(&self, mem: GuestMem) {
        *self.mem.write().unwrap_or_else(PoisonError::into_inner) = mem;
    }

    /// `VhostUserBackend::exit_event`.
    pub fn exit_event(&self) -> Option<(EventConsumer, EventNotifier)> {
        self.exit.create()
    }

    /// Pops every chain available on `vring`, queue `index`, completes each
    /// with the used length `process` returns, and signals the guest as
    /// `notify` says. Returns how many chains there were.
    pub fn drain(
        &self,
        index: usize,
        vring: &VringRwLock,
        notify: Notify,
        process: impl FnMut(Chain) -> u32,
    ) -> Result<usize, WorkerError> {
        let _serving = self.serving(index)?;
        self.drain_held(vring, notify, process)
    }

    /// [`Glue::drain`], with the queue's serving lock held by the caller.
    fn drain_held(
        &self,
        vring: &VringRwLock,
        notify: Notify,
        mut process: impl FnMut(Chain) -> u32,
    ) -> Result<usize, WorkerError> {
        let atomic = self.memory();
        let mem = atomic.memory();
        let mut n = 0;
        loop {
            let chain = vring
                .get_mut()
                .get_queue_mut()
                .pop_descriptor_chain(mem.clone());
            let Some(chain) = chain else { break };
            let head = chain.head_index();
            let used = process(chain);
            vring.add_used(head, used).map_err(WorkerError::UsedRing)?;
            n += 1;
            if notify == Notify::EachChain
                && vring.needs_notification().map_err(WorkerError::UsedRing)?
            {
                vring.signal_used_queue().map_err(WorkerError::Signal)?;
            }
        }
        if notify == Notify::Once && n > 0 {
            vring.signal_used_queue().map_err(WorkerError::Signal)?;
        }
        Ok(n)
    }

    /// Spins for up to `poll` waiting for the guest to make a chain
    /// available on `vring`; true if one arrived.
    fn poll_avail(&self, vring: &VringRwLock, poll: Duration) -> bool {
        if poll.is_zero() {
            return false;
        }
        let atomic = self.memory();
        let mem = atomic.memory();
        let start = Instant::now();
        loop {
            {
                let state = vring.get_ref();
                let q = state.get_queue();
                if !q.ready() {
                    return false;
                }
                match q.avail_idx(&*mem, Ordering::Acquire) {
                    Ok(idx) if idx.0 != q.next_avail() => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            if start.elapsed() >= poll {
                return false;
            }
            // Yield rather than spin: when the cores are all busy, the
            // thread we wait for (the peer, or the runtime's workers it
            // waits for) may be queued behind this one on the same core.
            std::thread::yield_now();
        }
    }

    /// Serves a kicked queue: drains it (each chain through `process`,
    /// the guest signalled after each), then polls it for up to `poll`,
    /// then (with EVENT_IDX) re-enables notifications and goes round again
    /// if work slipped in meanwhile.
    ///
    /// A guest can publish an avail index that claims chains the queue will
    /// not pop (`pop_descriptor_chain` refuses an index more than a queue
    /// size ahead). Two drains in a row that pop nothing end the loop, so
    /// such a ring cannot keep the worker spinning.
    pub fn serve_queue(
        &self,
        index: usize,
        vring: &VringRwLock,
        event_idx: bool,
        poll: Duration,
        mut process: impl FnMut(Chain) -> u32,
    ) -> Result<(), WorkerError> {
        let _serving = self.serving(index)?;
        let mut empty_rounds = 0;
        loop {
            if event_idx {
                vring
                    .disable_notification()
                    .map_err(WorkerError::UsedRing)?;
            }
            if self.drain_held(vring, Notify::EachChain, &mut process)? == 0 {
                empty_rounds += 1;
            } else {
                empty_rounds = 0;
            }
            let stuck = empty_rounds >= 2;
            if !stuck && self.poll_avail(vring, poll) {
                continue;
            }
            if !event_idx {
                return Ok(());
            }
            if !vring.enable_notification().map_err(WorkerError::UsedRing)? {
                return Ok(());
            }
            if stuck {
                debug!(
                    queue = index,
                    "avail index ahead of what the queue will pop"
                );
                return Ok(());
            }
        }
    }
}
