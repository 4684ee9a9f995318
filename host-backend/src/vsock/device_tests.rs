//! The vsock device on mock virtqueues: packets the `virtio-vsock` parser
//! refuses (lengths that do not match their buffers, oversized payloads)
//! get RST, and other connections keep being served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};

use super::*;
use crate::test_util::{FakeFactory, Log};
use crate::vsock::muxer::tests::{pkt as guest_pkt, GUEST, PORT};
use crate::vsock::muxer::{op, HOST_CID};

const RX_RING: u64 = 0x1_0000;
const TX_RING: u64 = 0x2_0000;
const RX_BUF: u64 = 0x10_0000;
const TX_BUF: u64 = 0x40_0000;
const RX_BUF_LEN: u32 = 0x1_0000;

fn encode(h: &Hdr) -> [u8; PKT_HEADER_SIZE] {
    let mut b = [0u8; PKT_HEADER_SIZE];
    b[0..8].copy_from_slice(&h.src_cid.to_le_bytes());
    b[8..16].copy_from_slice(&h.dst_cid.to_le_bytes());
    b[16..20].copy_from_slice(&h.src_port.to_le_bytes());
    b[20..24].copy_from_slice(&h.dst_port.to_le_bytes());
    b[24..28].copy_from_slice(&h.len.to_le_bytes());
    b[28..30].copy_from_slice(&h.type_.to_le_bytes());
    b[30..32].copy_from_slice(&h.op.to_le_bytes());
    b[32..36].copy_from_slice(&h.flags.to_le_bytes());
    b[36..40].copy_from_slice(&h.buf_alloc.to_le_bytes());
    b[40..44].copy_from_slice(&h.fwd_cnt.to_le_bytes());
    b
}

struct Rig<'m> {
    mem: &'m GuestMemoryMmap,
    dev: VhuVsock,
    vrings: Vec<VringRwLock>,
    rx: MockSplitQueue<'m, GuestMemoryMmap>,
    tx: MockSplitQueue<'m, GuestMemoryMmap>,
    rx_next: u16,
    tx_next: u16,
    rx_seen: u16,
}

impl<'m> Rig<'m> {
    fn new(mem: &'m GuestMemoryMmap) -> Self {
        let atomic = GuestMemoryAtomic::new(mem.clone());
        let dev = VhuVsock::new(
            GUEST,
            PORT,
            4,
            Arc::new(FakeFactory(Log::default())),
            crate::limits::session_limits(16, 0),
            atomic.clone(),
        )
        .unwrap();
        let rx = MockSplitQueue::create(mem, GuestAddress(RX_RING), 16);
        let tx = MockSplitQueue::create(mem, GuestAddress(TX_RING), 16);
        let vrings: Vec<VringRwLock> = (0..NUM_QUEUES)
            .map(|_| VringRwLock::new(atomic.clone(), 16).unwrap())
            .collect();
        for (v, q) in [(&vrings[0], &rx), (&vrings[1], &tx)] {
            v.set_queue_size(16);
            v.set_queue_info(q.desc_table_addr().0, q.avail_addr().0, q.used_addr().0)
                .unwrap();
            v.set_queue_ready(true);
            v.set_enabled(true);
        }
        Rig {
            mem,
            dev,
            vrings,
            rx,
            tx,
            rx_next: 0,
            tx_next: 0,
            rx_seen: 0,
        }
    }

    /// Offers `n` receive buffers.
    fn offer_rx(&mut self, n: u16) {
        for _ in 0..n {
            let slot = self.rx_next % 16;
            let addr = RX_BUF + u64::from(slot) * u64::from(RX_BUF_LEN);
            let d = RawDescriptor::from(SplitDescriptor::new(
                addr,
                RX_BUF_LEN,
                VRING_DESC_F_WRITE as u16,
                0,
            ));
            self.rx.add_desc_chains(&[d], slot).unwrap();
            self.rx_next += 1;
        }
    }

    /// Sends a packet whose header says `h` and whose data descriptor holds
    /// `data` (which need not match `h.len`).
    fn send(&mut self, h: &Hdr, data: &[u8]) {
        let slot = (self.tx_next * 2) % 16;
        let at = TX_BUF + u64::from(slot) * 0x2_0000;
        self.mem.write_slice(&encode(h), GuestAddress(at)).unwrap();
        let mut descs = vec![RawDescriptor::from(SplitDescriptor::new(
            at,
            PKT_HEADER_SIZE as u32,
            if data.is_empty() {
                0
            } else {
                VRING_DESC_F_NEXT as u16
            },
            slot + 1,
        ))];
        if !data.is_empty() {
            let d = at + 0x1000;
            self.mem.write_slice(data, GuestAddress(d)).unwrap();
            descs.push(RawDescriptor::from(SplitDescriptor::new(
                d,
                data.len() as u32,
                0,
                0,
            )));
        }
        self.tx.add_desc_chains(&descs, slot).unwrap();
        self.tx_next += 1;
        self.dev
            .handle_event(TX, EventSet::IN, &self.vrings, 0)
            .unwrap();
    }

    /// Packets the device wrote to the guest since the last call, waiting
    /// (bounded) for session threads through wake events.
    fn received(&mut self, want: usize) -> Vec<(Hdr, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        loop {
            let used: u16 = self
                .mem
                .read_obj(self.rx.used_addr().unchecked_add(2))
                .unwrap();
            while self.rx_seen != used {
                let elem = self
                    .rx
                    .used_addr()
                    .unchecked_add(4 + 8 * u64::from(self.rx_seen % 16));
                let id: u32 = self.mem.read_obj(elem).unwrap();
                let len: u32 = self.mem.read_obj(elem.unchecked_add(4)).unwrap();
                let addr = RX_BUF + u64::from(id) * u64::from(RX_BUF_LEN);
                let mut hb = [0u8; PKT_HEADER_SIZE];
                self.mem.read_slice(&mut hb, GuestAddress(addr)).unwrap();
                let h = super::parse_raw_header(&hb);
                let mut data = vec![0u8; len as usize - PKT_HEADER_SIZE];
                self.mem
                    .read_slice(&mut data, GuestAddress(addr + PKT_HEADER_SIZE as u64))
                    .unwrap();
                out.push((h, data));
                self.rx_seen = self.rx_seen.wrapping_add(1);
            }
            if out.len() >= want || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(2));
            self.dev
                .handle_event(WAKE_EVENT as u16, EventSet::IN, &self.vrings, 0)
                .unwrap();
        }
    }
}

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x80_0000)]).unwrap()
}

#[test]
fn config_space_holds_the_guest_cid() {
    let m = mem();
    let r = Rig::new(&m);
    assert_eq!(r.dev.get_config(0, 8), GUEST.to_le_bytes().to_vec());
    assert_eq!(r.dev.get_config(4, 4), vec![0; 4]);
    assert!(r.dev.get_config(8, 8).is_empty());
    assert!(r.dev.get_config(u32::MAX, u32::MAX).is_empty());
}

#[test]
fn a_request_is_answered_through_the_rings() {
    let m = mem();
    let mut r = Rig::new(&m);
    r.offer_rx(4);
    r.send(&guest_pkt(1000, op::REQUEST, 0), &[]);
    let got = r.received(1);
    assert_eq!(got.len(), 1);
    let h = got[0].0;
    assert_eq!(
        (h.op, h.src_cid, h.dst_cid),
        (op::RESPONSE, HOST_CID, GUEST)
    );
    assert_eq!((h.src_port, h.dst_port), (PORT, 1000));
    assert_eq!(r.dev.live(), 1);
}

#[test]
fn packets_with_bad_lengths_get_rst_and_others_carry_on() {
    let m = mem();
    let mut r = Rig::new(&m);
    r.offer_rx(12);
    r.send(&guest_pkt(1, op::REQUEST, 0), &[]);
    r.send(&guest_pkt(2, op::REQUEST, 0), &[]);
    r.send(&guest_pkt(3, op::REQUEST, 0), &[]);
    assert_eq!(r.received(3).len(), 3);
    assert_eq!(r.dev.live(), 3);

    // The header claims more data than its descriptor holds.
    r.send(&guest_pkt(1, op::RW, 100), b"0123456789");
    // A payload above the largest packet the device accepts.
    r.send(&guest_pkt(2, op::RW, (64 << 10) + 1), b"x");
    // A header descriptor too short to hold a header at all: dropped, and
    // no connection is named.
    let short = RawDescriptor::from(SplitDescriptor::new(TX_BUF + 0xF_0000, 8, 0, 0));
    r.tx.add_desc_chains(&[short], 14).unwrap();
    r.dev.handle_event(TX, EventSet::IN, &r.vrings, 0).unwrap();
    let got = r.received(2);
    let rst: Vec<u32> = got
        .iter()
        .filter(|(h, _)| h.op == op::RST)
        .map(|(h, _)| h.dst_port)
        .collect();
    assert_eq!(rst, vec![1, 2]);
    assert_eq!(r.dev.live(), 1);

    // Connection 3 is untouched: a credit request is answered.
    r.send(&guest_pkt(3, op::CREDIT_REQUEST, 0), &[]);
    let got = r.received(1);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.op, got[0].0.dst_port), (op::CREDIT_UPDATE, 3));
    assert_eq!(r.dev.counters().resets, 2);
}

#[test]
fn nothing_is_sent_without_receive_buffers() {
    let m = mem();
    let mut r = Rig::new(&m);
    r.send(&guest_pkt(1, op::REQUEST, 0), &[]);
    assert!(r.received(0).is_empty());
    // The answer waits for a buffer, then arrives.
    r.offer_rx(1);
    r.dev.handle_event(RX, EventSet::IN, &r.vrings, 0).unwrap();
    let got = r.received(1);
    assert_eq!(got[0].0.op, op::RESPONSE);
}

#[test]
fn unexpected_events_are_errors() {
    let m = mem();
    let r = Rig::new(&m);
    assert!(r.dev.handle_event(1, EventSet::OUT, &r.vrings, 0).is_err());
    assert!(r.dev.handle_event(9, EventSet::IN, &r.vrings, 0).is_err());
    r.dev.handle_event(EVT, EventSet::IN, &r.vrings, 0).unwrap();
}
