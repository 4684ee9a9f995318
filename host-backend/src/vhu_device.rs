//! The `VhostUserBackend` of the virtio-compute device in *device mode*: a
//! VMM attaches the socket, a guest kernel driver binds the device, and
//! each guest process gets a session of its own, named by the device header
//! the driver writes at the start of every chain (see [`protocol::device`]).
//!
//! - Sessions: a table from session id to [`Session`]. `Open` (control
//!   queue) takes a fresh id (ids are never reused while the device lives)
//!   unless `max_sessions` are open; `Close` abandons the session's waits on
//!   the guest, then drops it; a device reset and the end of the connection
//!   drop them all. `Submit` runs the chain's frames in its session, under
//!   that session's own lock.
//! - Threads: the control queue and each request queue get a worker thread
//!   of their own (`queues_per_thread`), so that a `Close` on the control
//!   queue can end a session whose request waits on the request queue.
//!   Sessions on one queue share its thread: a long call of one holds up
//!   the chains behind it on that queue.
//! - The config space ([`DeviceConfig`]) is read-only: writes are ignored
//!   (and counted, and logged rate-limited). Nothing depends on
//!   the driver reading it or acking [`protocol::device::F_CONFIG`]: under
//!   a carrier device the VMM serves a config space of its own.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use protocol::device::{
    DeviceConfig, DeviceOp, DeviceStatus, StatusRecord, API_CUDA, API_OPENCL, F_CONFIG,
};
use protocol::session::{FEATURE_CUDA, FEATURE_OPENCL};
use protocol::{CONTROL_QUEUE, NUM_QUEUES, PROTOCOL_VERSION, QUEUE_SIZE};
use tracing::debug;
use vhost::vhost_user::message::{
    VhostUserProtocolFeatures, VhostUserVirtioFeatures, VHOST_USER_CONFIG_SIZE,
};
use vhost_user_backend::{VhostUserBackend, VringRwLock};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use crate::chain::queue_class;
use crate::device_chain::{self, DeviceScratch, Parsed};
use crate::executor::{Abandon, ExecutorFactory};
use crate::limits::SessionLimits;
use crate::log::WarnLimiter;
use crate::session::Session;
use crate::vhu_glue::{check_event, Chain, Glue, GuestMem, WorkerError};
use crate::{limited_info, limited_warn};

/// Largest config space a frontend may read (vhost-user's
/// `VHOST_USER_CONFIG_SIZE`); bytes past [`protocol::device::CONFIG_LEN`]
/// read as zero.
const MAX_CONFIG_READ: usize = VHOST_USER_CONFIG_SIZE as usize;

/// One open session.
struct Slot {
    session: Mutex<Session>,
    /// Reachable while a request holds `session`.
    abandon: Arc<dyn Abandon>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock leaves the session as consistent
        // as any half-run request would; keep serving.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session for a control-queue chain. Its frames (`SessionOpen`,
    /// `SessionClose`) end whatever the session runs, so a request of the
    /// session that holds the lock in a wait on the guest is abandoned
    /// first: otherwise the control queue, and every other session's Open
    /// and Close behind it, would wait for that request.
    fn lock_for_control(&self) -> MutexGuard<'_, Session> {
        if let Ok(s) = self.session.try_lock() {
            return s;
        }
        self.abandon.abandon();
        let s = self.lock();
        self.abandon.resume();
        s
    }

    /// Ends the session: its waits on the guest first, so that a request
    /// still running returns and the lock can be taken; then its executor.
    fn end(&self) {
        self.abandon.abandon();
        self.lock().reset();
    }
}

#[derive(Default)]
struct Table {
    open: HashMap<u32, Arc<Slot>>,
    /// Ids handed out so far; the next one is this plus one.
    issued: u32,
}

/// What the device has done, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Chains completed.
    pub chains: u64,
    /// Chains answered `BadChain` (or completed without a status).
    pub bad_chains: u64,
    /// Chains refused for their session or queue (`UnknownSession`,
    /// `WrongQueue`, `TooManySessions`, `Unavailable`).
    pub refused: u64,
    /// Sessions opened over the device's life.
    pub opened: u64,
    /// Config space writes refused.
    pub config_writes: u64,
}

#[derive(Default)]
struct AtomicCounters {
    chains: AtomicU64,
    bad_chains: AtomicU64,
    refused: AtomicU64,
    opened: AtomicU64,
    config_writes: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The device-mode backend for one connection (one device).
pub struct VhuDevice {
    factory: Arc<dyn ExecutorFactory>,
    limits: SessionLimits,
    max_sessions: usize,
    sessions: Mutex<Table>,
    /// One per queue, used only by that queue's worker thread.
    scratch: Vec<Mutex<DeviceScratch>>,
    glue: Glue,
    event_idx: AtomicBool,
    poll: Duration,
    counters: AtomicCounters,
    /// Warnings and lifecycle lines any guest process can trigger.
    warn: Mutex<WarnLimiter>,
}

impl std::fmt::Debug for VhuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhuDevice")
            .field("max_sessions", &self.max_sessions)
            .field("open_sessions", &self.open_sessions())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl VhuDevice {
    /// A device for one new connection, serving at most `max_sessions`
    /// sessions at once.
    pub fn new(
        factory: Arc<dyn ExecutorFactory>,
        limits: SessionLimits,
        max_sessions: usize,
        poll: Duration,
        mem: GuestMem,
    ) -> Self {
        VhuDevice {
            factory,
            limits,
            max_sessions,
            sessions: Mutex::default(),
            scratch: (0..NUM_QUEUES).map(|_| Mutex::default()).collect(),
            glue: Glue::new(mem, NUM_QUEUES),
            event_idx: AtomicBool::new(false),
            poll,
            counters: AtomicCounters::default(),
            warn: Mutex::new(WarnLimiter::new()),
        }
    }

    /// The config space.
    pub fn config(&self) -> DeviceConfig {
        let features = self.factory.features();
        let mut api_families = 0;
        if features & FEATURE_OPENCL != 0 {
            api_families |= API_OPENCL;
        }
        if features & FEATURE_CUDA != 0 {
            api_families |= API_CUDA;
        }
        DeviceConfig {
            num_request_queues: (NUM_QUEUES - 1) as u32,
            max_sessions: u32::try_from(self.max_sessions).unwrap_or(u32::MAX),
            api_families,
            protocol_version: u32::from(PROTOCOL_VERSION),
        }
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.table().open.len()
    }

    /// The device's counters so far.
    pub fn counters(&self) -> DeviceCounters {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DeviceCounters {
            chains: get(&c.chains),
            bad_chains: get(&c.bad_chains),
            refused: get(&c.refused),
            opened: get(&c.opened),
            config_writes: get(&c.config_writes),
        }
    }

    /// The guest has gone: ends the waits of every request still running
    /// that only the guest could have ended, so that the worker threads
    /// return. The sessions go with the device.
    pub fn abandon_sessions(&self) {
        let slots: Vec<Arc<Slot>> = self.table().open.values().cloned().collect();
        for s in slots {
            s.abandon.abandon();
        }
    }

    /// Undoes [`VhuDevice::abandon_sessions`]: the sessions' later waits
    /// behave as before.
    fn resume_sessions(&self) {
        let slots: Vec<Arc<Slot>> = self.table().open.values().cloned().collect();
        for s in slots {
            s.abandon.resume();
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn warn(&self) -> MutexGuard<'_, WarnLimiter> {
        self.warn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report_open(&self, open: usize) {
        crate::hooks::open_sessions(open);
    }

    /// Ends every session (device reset).
    fn end_all(&self) {
        let slots: Vec<Arc<Slot>> = {
            let mut t = self.table();
            let slots = t.open.drain().map(|(_, s)| s).collect();
            self.report_open(0);
            slots
        };
        // Every wait first, so that no request holds one session's lock
        // while another is being ended; then the chains in flight are let
        // finish, so that none is completed into the rings the frontend
        // sets up after the reset.
        for s in &slots {
            s.abandon.abandon();
        }
        let _idle = self.glue.idle();
        for s in &slots {
            s.lock().reset();
        }
        if !slots.is_empty() {
            limited_info!(
                self.warn(),
                sessions = slots.len(),
                "device reset; its sessions are closed"
            );
        }
    }

    fn open(&self, queue: usize) -> (DeviceStatus, u32) {
        if queue != CONTROL_QUEUE {
            return (DeviceStatus::WrongQueue, 0);
        }
        let mut t = self.table();
        if t.open.len() >= self.max_sessions {
            return (DeviceStatus::TooManySessions, 0);
        }
        let Some(id) = t.issued.checked_add(1) else {
            return (DeviceStatus::Unavailable, 0);
        };
        t.issued = id;
        let session = Session::new(self.factory.clone(), self.limits);
        let slot = Slot {
            abandon: session.abandoner(),
            session: Mutex::new(session),
        };
        t.open.insert(id, Arc::new(slot));
        let open = t.open.len();
        self.report_open(open);
        drop(t);
        bump(&self.counters.opened);
        limited_info!(self.warn(), session = id, open, "device session opened");
        (DeviceStatus::Ok, id)
    }

    fn close(&self, queue: usize, id: u32) -> DeviceStatus {
        if queue != CONTROL_QUEUE {
            return DeviceStatus::WrongQueue;
        }
        let (slot, open) = {
            let mut t = self.table();
            let Some(slot) = t.open.remove(&id) else {
                return DeviceStatus::UnknownSession;
            };
            let open = t.open.len();
            self.report_open(open);
            (slot, open)
        };
        slot.end();
        limited_info!(self.warn(), session = id, open, "device session closed");
        DeviceStatus::Ok
    }

    fn submit(
        &self,
        mem: &GuestMemoryMmap,
        parsed: &Parsed,
        queue: usize,
        scratch: &mut DeviceScratch,
    ) -> (DeviceStatus, u32) {
        let id = parsed.header.session;
        let Some(slot) = self.table().open.get(&id).cloned() else {
            return (DeviceStatus::UnknownSession, 0);
        };
        let mut session = if queue == CONTROL_QUEUE {
            slot.lock_for_control()
        } else {
            slot.lock()
        };
        match device_chain::run(mem, parsed, queue_class(queue), &mut session, scratch) {
            Ok(n) => (DeviceStatus::Ok, n),
            Err(e) => {
                session.counters_mut().protocol_errors += 1;
                limited_warn!(session.warn_limiter(), queue, session = id, error = %e, "chain does not match its header");
                (DeviceStatus::BadChain, 0)
            }
        }
    }

    /// Processes one chain popped from `queue`; returns its used length.
    fn process(&self, chain: Chain, queue: usize, scratch: &mut DeviceScratch) -> u32 {
        bump(&self.counters.chains);
        let mem: &GuestMemoryMmap = chain.memory();
        let parsed = match device_chain::parse(mem, chain.clone(), scratch) {
            Ok(p) => p,
            Err(e) => {
                bump(&self.counters.bad_chains);
                limited_warn!(self.warn(), queue, error = %e, "chain does not match its header");
                let Some(status) = scratch.status_candidate() else {
                    return 0;
                };
                let record = StatusRecord {
                    status: DeviceStatus::BadChain,
                    session: 0,
                    response_len: 0,
                };
                return device_chain::complete(mem, &status, record);
            }
        };
        let (status, session, response_len) = match parsed.header.op {
            DeviceOp::Open => {
                let (s, id) = self.open(queue);
                (s, id, 0)
            }
            DeviceOp::Close => (
                self.close(queue, parsed.header.session),
                parsed.header.session,
                0,
            ),
            DeviceOp::Submit => {
                let (s, n) = self.submit(mem, &parsed, queue, scratch);
                (s, parsed.header.session, n)
            }
        };
        match status {
            DeviceStatus::Ok => {}
            DeviceStatus::BadChain => bump(&self.counters.bad_chains),
            refused => {
                bump(&self.counters.refused);
                limited_warn!(self.warn(), queue, session, status = ?refused, "device request refused");
            }
        }
        let record = StatusRecord {
            status,
            session,
            response_len,
        };
        device_chain::complete(mem, &parsed.status, record)
    }
}

impl VhostUserBackend for VhuDevice {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        usize::from(QUEUE_SIZE)
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << F_CONFIG)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::RESET_DEVICE
            | VhostUserProtocolFeatures::CONFIG
    }

    fn queues_per_thread(&self) -> Vec<u64> {
        // One queue per thread: thread i serves queue i.
        (0..NUM_QUEUES).map(|q| 1u64 << q).collect()
    }

    fn reset_device(&self) {
        self.end_all();
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        self.glue.stop_queue(
            queue_index as usize,
            || self.abandon_sessions(),
            || self.resume_sessions(),
        );
        Ok(())
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Relaxed);
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let (offset, size) = (offset as usize, size as usize);
        match offset.checked_add(size) {
            Some(end) if end <= MAX_CONFIG_READ => {
                let bytes = self.config().encode();
                (offset..end)
                    .map(|i| bytes.get(i).copied().unwrap_or(0))
                    .collect()
            }
            // An empty reply is the vhost-user protocol's error.
            _ => Vec::new(),
        }
    }

    /// The config space is read-only: a write is refused by being ignored.
    /// An error here would end the whole connection (vhost-user-backend
    /// stops serving a frontend on any failed request), and with it every
    /// session of the VM.
    fn set_config(&self, offset: u32, buf: &[u8]) -> io::Result<()> {
        bump(&self.counters.config_writes);
        limited_warn!(
            self.warn(),
            offset,
            len = buf.len(),
            "config space write ignored: it is read-only"
        );
        Ok(())
    }

    fn update_memory(&self, mem: GuestMem) -> io::Result<()> {
        self.glue.update_memory(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        self.glue.exit_event()
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        thread_id: usize,
    ) -> io::Result<()> {
        check_event(evset)?;
        // Each thread has one queue, its event 0.
        let vring = match (device_event, vrings) {
            (0, [v]) if thread_id < NUM_QUEUES => v,
            _ => return Err(WorkerError::UnknownEvent(device_event).into()),
        };
        let queue = thread_id;
        debug!(queue, "kick");
        let mut scratch = self
            .scratch
            .get(queue)
            .ok_or(WorkerError::UnknownEvent(device_event))?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        self.glue
            .serve_queue(queue, vring, event_idx, self.poll, |chain| {
                self.process(chain, queue, &mut scratch)
            })?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use protocol::device::CONFIG_LEN;
    use vm_memory::GuestMemoryAtomic;

    use super::*;
    use crate::test_util::FakeFactory;

    fn device(max_sessions: usize) -> VhuDevice {
        VhuDevice::new(
            Arc::new(FakeFactory(Default::default())),
            crate::limits::session_limits(16, 0),
            max_sessions,
            Duration::ZERO,
            GuestMemoryAtomic::new(GuestMemoryMmap::new()),
        )
    }

    #[test]
    fn config_reads_are_bounded_and_writes_refused() {
        let d = device(5);
        let c = DeviceConfig::decode(&d.get_config(0, CONFIG_LEN as u32)).unwrap();
        assert_eq!(c.num_request_queues, 1);
        assert_eq!(c.max_sessions, 5);
        assert_eq!(c.protocol_version, u32::from(PROTOCOL_VERSION));
        assert_eq!(d.get_config(4, 4), 5u32.to_le_bytes());
        // Past the fields: zeros; past what a frontend may read: an error.
        assert_eq!(d.get_config(12, 8)[4..], [0; 4]);
        assert_eq!(d.get_config(4000, 96), vec![0; 96]);
        assert!(d.get_config(4000, 97).is_empty());
        assert!(d.get_config(u32::MAX, 2).is_empty());
        d.set_config(4, &[1, 2, 3, 4]).unwrap();
        assert_eq!(d.get_config(4, 4), 5u32.to_le_bytes());
        assert_eq!(d.counters().config_writes, 1);
    }

    #[test]
    fn ids_are_fresh_and_bounded() {
        let d = device(2);
        let (s1, a) = d.open(CONTROL_QUEUE);
        let (s2, b) = d.open(CONTROL_QUEUE);
        assert_eq!((s1, s2), (DeviceStatus::Ok, DeviceStatus::Ok));
        assert!(a != 0 && b != 0 && a != b);
        assert_eq!(d.open(CONTROL_QUEUE).0, DeviceStatus::TooManySessions);
        assert_eq!(d.open(1).0, DeviceStatus::WrongQueue);
        assert_eq!(d.close(1, a), DeviceStatus::WrongQueue);
        assert_eq!(d.close(CONTROL_QUEUE, a), DeviceStatus::Ok);
        assert_eq!(d.close(CONTROL_QUEUE, a), DeviceStatus::UnknownSession);
        let (_, c) = d.open(CONTROL_QUEUE);
        assert!(c != a && c != b, "an id was reused");
        d.reset_device();
        assert_eq!(d.open_sessions(), 0);
        assert_eq!(d.close(CONTROL_QUEUE, b), DeviceStatus::UnknownSession);
    }

    #[test]
    fn each_queue_has_a_thread_of_its_own() {
        let d = device(1);
        let masks = d.queues_per_thread();
        assert_eq!(masks.len(), NUM_QUEUES);
        assert_eq!(masks.iter().fold(0, |a, m| a | m), (1 << NUM_QUEUES) - 1);
        assert!(masks.iter().all(|m| m.count_ones() == 1));
    }
}
