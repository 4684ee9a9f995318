//! The `VhostUserBackend` of the vhost-user-vsock device: moves packets
//! between the guest's virtqueues and the [`Muxer`].
//!
//! Queue 0 is the guest's receive queue, queue 1 its transmit queue, queue
//! 2 the event queue (unused: the daemon never migrates). One worker
//! thread serves all three plus the wake eventfd that session threads
//! signal when they have output or have freed receive space.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_queue::{QueueOwnedT, QueueT};
use virtio_vsock::packet::{VsockPacket, PKT_HEADER_SIZE};
use vm_memory::{Bytes, GuestAddressSpace};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{EventConsumer, EventNotifier};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::muxer::{Hdr, MuxCounters, Muxer};
use crate::executor::ExecutorFactory;
use crate::limits::SessionLimits;
use crate::log::WarnLimiter;
use crate::vhu_glue::{check_event, Glue, GuestMem, Notify, WorkerError};
use crate::{limited_info, limited_warn};

/// The guest's receive queue.
const RX: u16 = 0;
/// The guest's transmit queue.
const TX: u16 = 1;
/// The event queue.
const EVT: u16 = 2;
/// Queues of a vsock device.
const NUM_QUEUES: usize = 3;
/// Descriptors per queue offered (QEMU uses 128).
const QUEUE_SIZE: usize = 256;
/// The device event of the wake eventfd: above the queues and the exit
/// event, as vhost-user-backend requires.
pub const WAKE_EVENT: u64 = NUM_QUEUES as u64 + 1;
/// Largest packet payload accepted or sent. Linux guests send at most
/// 64 KiB per packet.
const MAX_PKT_DATA: u32 = 64 << 10;

struct State {
    muxer: Muxer,
    warn: WarnLimiter,
}

/// The vhost-user-vsock device for one VM.
pub struct VhuVsock {
    guest_cid: u64,
    state: Mutex<State>,
    glue: Glue,
    wake: Arc<EventFd>,
}

impl std::fmt::Debug for VhuVsock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhuVsock")
            .field("guest_cid", &self.guest_cid)
            .finish_non_exhaustive()
    }
}

impl VhuVsock {
    /// A device for guest `guest_cid` whose connections to `port` each get
    /// a session from `factory`; at most `max_conns` at once.
    pub fn new(
        guest_cid: u64,
        port: u32,
        max_conns: usize,
        factory: Arc<dyn ExecutorFactory>,
        limits: SessionLimits,
        mem: GuestMem,
    ) -> io::Result<Self> {
        let wake = Arc::new(EventFd::new(EFD_NONBLOCK)?);
        Ok(VhuVsock {
            guest_cid,
            state: Mutex::new(State {
                muxer: Muxer::new(guest_cid, port, max_conns, factory, limits, wake.clone()),
                warn: WarnLimiter::new(),
            }),
            glue: Glue::new(mem, NUM_QUEUES),
            wake,
        })
    }

    /// The eventfd to register with the worker's epoll as [`WAKE_EVENT`].
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Open guest connections.
    pub fn live(&self) -> usize {
        self.lock().muxer.live()
    }

    /// The muxer's counters.
    pub fn counters(&self) -> MuxCounters {
        self.lock().muxer.counters()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes every packet off the transmit queue and hands it to the muxer.
    fn process_tx(&self, st: &mut State, vring: &VringRwLock) -> Result<(), WorkerError> {
        let atomic = self.glue.memory();
        let mem = atomic.memory();
        self.glue
            .drain(usize::from(TX), vring, Notify::Once, |mut chain| {
                let first = chain.clone().next();
                match VsockPacket::from_tx_virtq_chain(&*mem, &mut chain, MAX_PKT_DATA) {
                    Ok(pkt) => {
                        let h = header_of(&pkt);
                        let mut data = vec![0u8; h.len as usize];
                        let copied = match pkt.data_slice() {
                            Some(s) => s.copy_to(&mut data),
                            None => 0,
                        };
                        data.truncate(copied);
                        st.muxer.on_packet(&h, &data);
                    }
                    Err(e) => {
                        limited_warn!(st.warn, error = %e, "guest sent a malformed vsock packet");
                        let raw = first.and_then(|d| {
                            let mut b = [0u8; PKT_HEADER_SIZE];
                            (d.len() as usize >= PKT_HEADER_SIZE)
                                .then(|| mem.read_slice(&mut b, d.addr()).ok().map(|()| b))
                                .flatten()
                        });
                        st.muxer
                            .on_bad_packet(raw.map(|b| parse_raw_header(&b)).as_ref());
                    }
                }
                0
            })?;
        Ok(())
    }

    /// Fills the guest's receive buffers with what the muxer owes it.
    fn process_rx(&self, st: &mut State, vring: &VringRwLock) -> Result<(), WorkerError> {
        let atomic = self.glue.memory();
        let mem = atomic.memory();
        let mut any = false;
        loop {
            let chain = vring
                .get_mut()
                .get_queue_mut()
                .pop_descriptor_chain(mem.clone());
            let Some(mut chain) = chain else { break };
            let head = chain.head_index();
            let mut pkt = match VsockPacket::from_rx_virtq_chain(&*mem, &mut chain, MAX_PKT_DATA) {
                Ok(p) => p,
                Err(e) => {
                    limited_warn!(st.warn, error = %e, "guest offered an unusable vsock receive buffer");
                    vring.add_used(head, 0).map_err(WorkerError::UsedRing)?;
                    any = true;
                    continue;
                }
            };
            let room = pkt.data_slice().map_or(0, |s| s.len());
            let Some((h, data)) = st.muxer.next_rx(room) else {
                // Nothing owed: give the buffer back for later.
                vring.get_mut().get_queue_mut().go_to_previous_position();
                break;
            };
            let written = match pkt.data_slice() {
                Some(s) if !data.is_empty() => s.write_slice(&data, 0).is_ok(),
                _ => data.is_empty(),
            };
            if !written {
                limited_warn!(st.warn, "cannot write a vsock packet to the guest");
            }
            pkt.set_src_cid(h.src_cid)
                .set_dst_cid(h.dst_cid)
                .set_src_port(h.src_port)
                .set_dst_port(h.dst_port)
                .set_len(h.len)
                .set_type(h.type_)
                .set_op(h.op)
                .set_flags(h.flags)
                .set_buf_alloc(h.buf_alloc)
                .set_fwd_cnt(h.fwd_cnt);
            let used = (PKT_HEADER_SIZE + data.len()) as u32;
            vring.add_used(head, used).map_err(WorkerError::UsedRing)?;
            any = true;
        }
        if any {
            vring.signal_used_queue().map_err(WorkerError::Signal)?;
        }
        Ok(())
    }
}

fn header_of<B: vm_memory::bitmap::BitmapSlice>(p: &VsockPacket<'_, B>) -> Hdr {
    Hdr {
        src_cid: p.src_cid(),
        dst_cid: p.dst_cid(),
        src_port: p.src_port(),
        dst_port: p.dst_port(),
        len: p.len(),
        type_: p.type_(),
        op: p.op(),
        flags: p.flags(),
        buf_alloc: p.buf_alloc(),
        fwd_cnt: p.fwd_cnt(),
    }
}

/// Reads the header fields of a packet the crate refused to parse (to
/// know which connection to reset). Layout: virtio specification 5.10.6.
fn parse_raw_header(b: &[u8; PKT_HEADER_SIZE]) -> Hdr {
    let u64_at = |o: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(v)
    };
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    Hdr {
        src_cid: u64_at(0),
        dst_cid: u64_at(8),
        src_port: u32_at(16),
        dst_port: u32_at(20),
        len: u32_at(24),
        type_: u16_at(28),
        op: u16_at(30),
        flags: u32_at(32),
        buf_alloc: u32_at(36),
        fwd_cnt: u32_at(40),
    }
}

impl VhostUserBackend for VhuVsock {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1) | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::REPLY_ACK
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        // struct virtio_vsock_config { le64 guest_cid; }
        let cfg = self.guest_cid.to_le_bytes();
        let start = (offset as usize).min(cfg.len());
        let end = start.saturating_add(size as usize).min(cfg.len());
        cfg[start..end].to_vec()
    }

    fn reset_device(&self) {
        let mut st = self.lock();
        limited_info!(
            st.warn,
            guest_cid = self.guest_cid,
            "vsock device reset; closing connections"
        );
        st.muxer.shutdown();
    }

    /// Every chain is popped and completed under the state lock, so once
    /// it is taken none is in flight.
    fn stop_vring(&self, _queue_index: u32) -> io::Result<()> {
        drop(self.lock());
        Ok(())
    }

    fn set_event_idx(&self, _enabled: bool) {}

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
        let mut st = self.lock();
        let rx = vrings
            .get(usize::from(RX))
            .ok_or(WorkerError::UnknownEvent(RX))?;
        match device_event {
            RX => {}
            TX => {
                let tx = vrings
                    .get(usize::from(TX))
                    .ok_or(WorkerError::UnknownEvent(TX))?;
                self.process_tx(&mut st, tx)?;
            }
            EVT => return Ok(()),
            e if u64::from(e) == WAKE_EVENT => {
                // Non-blocking: an empty counter just means a spurious wake.
                let _ = self.wake.read();
            }
            e => return Err(WorkerError::UnknownEvent(e).into()),
        }
        self.process_rx(&mut st, rx)?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
