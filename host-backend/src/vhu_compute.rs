//! The `VhostUserBackend` implementation of the virtio-compute device: one
//! instance per guest connection, owning that connection's [`Session`].
//!
//! Queue 0 is the control queue, queue 1 the request queue; one worker
//! thread serves both, so the session lock is never contended in practice.
//! After draining a queue the worker keeps polling its avail ring for
//! `poll` before re-enabling notifications (adaptive polling): a guest that
//! sends its next call within that window gets it served without a kick.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use protocol::{NUM_QUEUES, QUEUE_SIZE};
use tracing::debug;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringRwLock};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};

use crate::chain::{process_chain, Scratch};
use crate::executor::{Abandon, ExecutorFactory};
use crate::limited_info;
use crate::limits::SessionLimits;
use crate::session::{Counters, Session};
use crate::vhu_glue::{check_event, Glue, GuestMem, WorkerError};

struct Conn {
    session: Session,
    scratch: Scratch,
}

/// The device backend for one connection.
pub struct VhuCompute {
    conn: Mutex<Conn>,
    /// The session's abandoner, reachable while a request holds `conn`.
    abandon: Arc<dyn Abandon>,
    glue: Glue,
    event_idx: AtomicBool,
    poll: Duration,
}

impl std::fmt::Debug for VhuCompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhuCompute")
            .field("poll", &self.poll)
            .field("event_idx", &self.event_idx.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl VhuCompute {
    /// A backend for one new connection.
    pub fn new(
        factory: Arc<dyn ExecutorFactory>,
        limits: SessionLimits,
        poll: Duration,
        mem: GuestMem,
    ) -> Self {
        let session = Session::new(factory, limits);
        VhuCompute {
            abandon: session.abandoner(),
            conn: Mutex::new(Conn {
                session,
                scratch: Scratch::default(),
            }),
            glue: Glue::new(mem, NUM_QUEUES),
            event_idx: AtomicBool::new(false),
            poll,
        }
    }

    /// The guest has gone: ends the waits of a request still running
    /// that only the guest could have ended, so that the worker thread
    /// returns and the session can be dropped. Called from the thread that
    /// saw the frontend go.
    pub fn abandon_session(&self) {
        self.abandon.abandon();
    }

    /// This connection's session counters.
    pub fn counters(&self) -> Counters {
        self.lock_conn().session.counters()
    }

    fn lock_conn(&self) -> std::sync::MutexGuard<'_, Conn> {
        // A panic while holding the lock leaves the session as consistent as
        // any half-run request would; keep serving rather than poison forever.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves a kicked queue (see [`Glue::serve_queue`]).
    fn handle_queue(&self, index: usize, vring: &VringRwLock) -> Result<(), WorkerError> {
        let event_idx = self.event_idx.load(Ordering::Relaxed);
        self.glue
            .serve_queue(index, vring, event_idx, self.poll, |chain| {
                let mut conn = self.lock_conn();
                let Conn { session, scratch } = &mut *conn;
                process_chain(chain, index, session, scratch)
            })
    }
}

impl VhostUserBackend for VhuCompute {
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
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::RESET_DEVICE
    }

    fn reset_device(&self) {
        // A request may hold the session in a wait only the guest could
        // end; abandon it first, or this (the frontend's) thread would
        // wait for the lock for good. Then wait for the chains in flight
        // to be completed, so that none is completed into the rings the
        // frontend sets up after the reset.
        self.abandon.abandon();
        let _idle = self.glue.idle();
        let mut conn = self.lock_conn();
        limited_info!(
            conn.session.warn_limiter(),
            "device reset; dropping the session"
        );
        conn.session.reset();
        self.abandon.resume();
    }

    fn stop_vring(&self, queue_index: u32) -> io::Result<()> {
        self.glue.stop_queue(
            queue_index as usize,
            || self.abandon.abandon(),
            || self.abandon.resume(),
        );
        Ok(())
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Relaxed);
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
        _thread_id: usize,
    ) -> io::Result<()> {
        check_event(evset)?;
        let index = usize::from(device_event);
        let vring = vrings
            .get(index)
            .ok_or(WorkerError::UnknownEvent(device_event))?;
        debug!(queue = index, "kick");
        self.handle_queue(index, vring)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant;

    use protocol::opencl::Empty;
    use protocol::{encode_request, Request};
    use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::split::Descriptor as SplitDescriptor;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};

    use super::*;
    use crate::executor::{Executor, ExecutorError};
    use vhost_user_backend::VringT;

    struct NoExecutors;
    impl ExecutorFactory for NoExecutors {
        fn name(&self) -> &'static str {
            "none"
        }
        fn features(&self) -> u64 {
            0
        }
        fn open(&self, _: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
            Err(ExecutorError::NoOpenClPlatform)
        }
    }

    /// A backend and one request vring laid out by a mock driver.
    fn rig(mem: &GuestMemoryMmap, event_idx: bool) -> (VhuCompute, Vec<VringRwLock>) {
        let atomic = GuestMemoryAtomic::new(mem.clone());
        let be = VhuCompute::new(
            Arc::new(NoExecutors),
            crate::limits::session_limits(1, 0),
            Duration::from_micros(50),
            atomic.clone(),
        );
        be.set_event_idx(event_idx);
        let vq = MockSplitQueue::new(mem, 16);
        let vrings: Vec<VringRwLock> = (0..2)
            .map(|_| VringRwLock::new(atomic.clone(), 16).unwrap())
            .collect();
        let v = &vrings[1];
        v.set_queue_size(16);
        v.set_queue_info(vq.desc_table_addr().0, vq.avail_addr().0, vq.used_addr().0)
            .unwrap();
        v.set_queue_event_idx(event_idx);
        v.set_queue_ready(true);
        v.set_enabled(true);
        (be, vrings)
    }

    /// The used ring's index. Reads memory directly: building another
    /// `MockSplitQueue` would reset the rings.
    fn used_idx(mem: &GuestMemoryMmap, used: GuestAddress) -> u16 {
        mem.read_obj(used.unchecked_add(2)).unwrap()
    }

    #[test]
    fn kick_completes_chains_with_and_without_event_idx() {
        for event_idx in [false, true] {
            let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
            let (be, vrings) = rig(&mem, event_idx);
            let mut area = Vec::new();
            encode_request(&mut area, 1, 0, &Request::Ping(Empty {}), 0, 0).unwrap();
            mem.write_slice(&area, GuestAddress(0x1_0000)).unwrap();
            let flags = VRING_DESC_F_NEXT as u16;
            let descs = [
                RawDescriptor::from(SplitDescriptor::new(0x1_0000, area.len() as u32, flags, 1)),
                RawDescriptor::from(SplitDescriptor::new(
                    0x2_0000,
                    4096,
                    VRING_DESC_F_WRITE as u16,
                    0,
                )),
            ];
            let vq = MockSplitQueue::new(&mem, 16);
            vq.add_desc_chains(&descs, 0).unwrap();
            be.handle_event(1, EventSet::IN, &vrings, 0).unwrap();
            assert_eq!(used_idx(&mem, vq.used_addr()), 1);
            // Before SessionOpen the ping gets a NoSession answer.
            assert_eq!(be.counters().frames, 1);
            assert_eq!(be.counters().protocol_errors, 1);
        }
    }

    #[test]
    fn bogus_avail_index_does_not_spin_the_worker() {
        for event_idx in [false, true] {
            let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
            let (be, vrings) = rig(&mem, event_idx);
            let vq = MockSplitQueue::new(&mem, 16);
            // Claims 1000 chains on a 16-entry queue.
            mem.write_obj(1000u16, vq.avail_addr().unchecked_add(2))
                .unwrap();
            let start = Instant::now();
            be.handle_event(1, EventSet::IN, &vrings, 0).unwrap();
            assert!(start.elapsed() < Duration::from_secs(1));
            assert_eq!(used_idx(&mem, vq.used_addr()), 0);
        }
    }

    /// A backend with a session open whose request on queue 1, a wait
    /// that ends only when the session is abandoned (as a wait on the
    /// guest's own user event does), is running on a worker thread.
    struct Waiting {
        be: Arc<VhuCompute>,
        mem: GuestMemoryMmap,
        used: GuestAddress,
        worker: std::thread::JoinHandle<io::Result<()>>,
    }

    fn a_request_waiting_on_the_guest() -> Waiting {
        use protocol::opencl::WaitForEvents;
        use protocol::session::{FEATURE_OPENCL, PROTOCOL_VERSION};
        use protocol::SessionOpen;

        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let atomic = GuestMemoryAtomic::new(mem.clone());
        let be = Arc::new(VhuCompute::new(
            Arc::new(crate::test_util::FakeFactory(Default::default())),
            crate::limits::session_limits(16, 0),
            Duration::ZERO,
            atomic.clone(),
        ));
        let queues = [
            MockSplitQueue::create(&mem, GuestAddress(0x8_0000), 16),
            MockSplitQueue::create(&mem, GuestAddress(0x9_0000), 16),
        ];
        let vrings: Vec<VringRwLock> = queues
            .iter()
            .map(|q| {
                let v = VringRwLock::new(atomic.clone(), 16).unwrap();
                v.set_queue_size(16);
                v.set_queue_info(q.desc_table_addr().0, q.avail_addr().0, q.used_addr().0)
                    .unwrap();
                v.set_queue_ready(true);
                v.set_enabled(true);
                v
            })
            .collect();
        let submit = |q: usize, req: Request, at: u64| {
            let mut area = Vec::new();
            encode_request(&mut area, 1, 0, &req, 0, 0).unwrap();
            mem.write_slice(&area, GuestAddress(at)).unwrap();
            let descs = [
                RawDescriptor::from(SplitDescriptor::new(
                    at,
                    area.len() as u32,
                    VRING_DESC_F_NEXT as u16,
                    1,
                )),
                RawDescriptor::from(SplitDescriptor::new(
                    at + 0x8000,
                    4096,
                    VRING_DESC_F_WRITE as u16,
                    0,
                )),
            ];
            queues[q].add_desc_chains(&descs, 0).unwrap();
        };
        let open = Request::SessionOpen(SessionOpen {
            min_version: 1,
            max_version: PROTOCOL_VERSION,
            features: FEATURE_OPENCL,
            client: "reset".into(),
        });
        submit(0, open, 0x1_0000);
        be.handle_event(0, EventSet::IN, &vrings, 0).unwrap();
        assert!(be.counters().opens == 1);
        submit(
            1,
            Request::ClWaitForEvents(WaitForEvents { events: vec![1] }),
            0x2_0000,
        );
        let worker = {
            let (be, vrings) = (be.clone(), vrings.clone());
            std::thread::spawn(move || be.handle_event(1, EventSet::IN, &vrings, 0))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(used_idx(&mem, queues[1].used_addr()), 0, "the wait ended");
        Waiting {
            used: queues[1].used_addr(),
            be,
            mem,
            worker,
        }
    }

    /// Runs `f` on its own thread; panics unless it returns within 10 s.
    fn returns(f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("it waited for the guest's wait");
    }

    #[test]
    fn a_reset_while_a_request_waits_on_the_guest_returns() {
        let w = a_request_waiting_on_the_guest();
        let be = w.be.clone();
        returns(move || be.reset_device());
        // The chain was completed before the reset returned, so not into
        // rings set up after it.
        assert_eq!(used_idx(&w.mem, w.used), 1);
        w.worker.join().unwrap().unwrap();
        assert!(w.be.counters().opens == 1);
    }

    #[test]
    fn stopping_a_queue_waits_for_its_chain_in_flight() {
        let w = a_request_waiting_on_the_guest();
        let be = w.be.clone();
        // GET_VRING_BASE: the vhost-user layer has marked the queue not
        // ready, then asks the backend to stop it.
        returns(move || be.stop_vring(1).unwrap());
        assert_eq!(
            used_idx(&w.mem, w.used),
            1,
            "the queue's stop returned with its chain still in flight"
        );
        w.worker.join().unwrap().unwrap();
        // The session survives a stop (a pause is not a reset).
        assert!(w.be.counters().opens == 1);
    }

    #[test]
    fn unexpected_events_are_errors() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let (be, vrings) = rig(&mem, true);
        assert!(be.handle_event(1, EventSet::OUT, &vrings, 0).is_err());
        assert!(be.handle_event(7, EventSet::IN, &vrings, 0).is_err());
    }
}
