//! The real daemon binary in vsock device mode (`--vsock-cid`), driven by a
//! minimal vhost-user frontend that plays the guest's virtio-vsock driver:
//! a session over a vsock connection, then hostile packets (closed ports,
//! unknown ops, lengths that lie, credit violations), each answered with
//! RST while another connection keeps being served and the daemon lives
//! on; a VM that disappears leaves the daemon's fds and threads where they
//! were.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use common::*;
use protocol::opencl::Empty;
use protocol::session::{FEATURE_BATCH, FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::stream::{
    decode_response_record, encode_request_record, Direction, RecordHeader, RECORD_HEADER_LEN,
};
use protocol::{
    decode_response, encode_request, FrameIter, Outcome, QueueClass, Request, Response, SessionOpen,
};
use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const GUEST_CID: u64 = 3;
const PORT: u32 = 7000;
const MEM_SIZE: u64 = 8 << 20;
const QSIZE: u16 = 256;
const RX: usize = 0;
const TX: usize = 1;
const RX_BUFS: u16 = 64;
const RX_BUF: u64 = 0x10_0000;
const RX_BUF_LEN: u32 = 0x1_0000;
const TX_BUF: u64 = 0x50_0000;
const HDR: usize = 44;

const OP_REQUEST: u16 = 1;
const OP_RESPONSE: u16 = 2;
const OP_RST: u16 = 3;
const OP_SHUTDOWN: u16 = 4;
const OP_RW: u16 = 5;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Pkt {
    src_cid: u64,
    dst_cid: u64,
    src_port: u32,
    dst_port: u32,
    len: u32,
    type_: u16,
    op: u16,
    buf_alloc: u32,
    fwd_cnt: u32,
}

impl Pkt {
    fn to_host(port: u32, dst_port: u32, op: u16, len: u32) -> Self {
        Pkt {
            src_cid: GUEST_CID,
            dst_cid: 2,
            src_port: port,
            dst_port,
            len,
            type_: 1,
            op,
            buf_alloc: 1 << 20,
            fwd_cnt: 0,
        }
    }

    fn encode(&self) -> [u8; HDR] {
        let mut b = [0u8; HDR];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.type_.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        Pkt {
            src_cid: u64::from_le_bytes(b[0..8].try_into().unwrap()),
            dst_cid: u64::from_le_bytes(b[8..16].try_into().unwrap()),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            type_: u16::from_le_bytes(b[28..30].try_into().unwrap()),
            op: u16::from_le_bytes(b[30..32].try_into().unwrap()),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }
}

/// The guest side of one vsock device: rx/tx queues in shared memory.
struct VsockGuest {
    _frontend: Frontend,
    mem: GuestMemoryMmap,
    kicks: Vec<EventFd>,
    _calls: Vec<EventFd>,
    tx_avail: u16,
    tx_used_seen: u16,
    rx_avail: u16,
    rx_used_seen: u16,
    /// Payload bytes received per guest port.
    inbox: HashMap<u32, Vec<u8>>,
    /// Every packet received, in order.
    log: Vec<Pkt>,
}

fn ring_base(q: usize) -> u64 {
    q as u64 * 0x1_0000
}

impl VsockGuest {
    fn connect(path: &Path) -> VsockGuest {
        let mut fe = Frontend::connect(path, 3).unwrap();
        fe.set_owner().unwrap();
        let features = fe.get_features().unwrap();
        let want = (1u64 << 32) | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();
        assert_eq!(features & want, want);
        fe.set_features(want).unwrap();
        let proto = fe.get_protocol_features().unwrap();
        assert!(proto.contains(VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ));
        fe.set_protocol_features(proto).unwrap();
        assert_eq!(fe.get_queue_num().unwrap(), 3);
        // The config space holds the guest CID the daemon was given.
        let (_, cfg) = fe
            .get_config(0, 8, VhostUserConfigFlags::WRITABLE, &[0u8; 8])
            .unwrap();
        assert_eq!(u64::from_le_bytes(cfg[..8].try_into().unwrap()), GUEST_CID);

        let file = tempfile::tempfile().unwrap();
        file.set_len(MEM_SIZE).unwrap();
        let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
            GuestAddress(0),
            MEM_SIZE as usize,
            Some(FileOffset::new(file, 0)),
        )])
        .unwrap();
        let region = mem.find_region(GuestAddress(0)).unwrap();
        let info = VhostUserMemoryRegionInfo::from_guest_region(region).unwrap();
        fe.set_mem_table(&[info]).unwrap();
        let host = |gpa: u64| mem.get_host_address(GuestAddress(gpa)).unwrap() as u64;
        let (mut kicks, mut calls) = (Vec::new(), Vec::new());
        for q in 0..3 {
            let base = ring_base(q);
            fe.set_vring_num(q, QSIZE).unwrap();
            let cfg = VringConfigData {
                queue_max_size: QSIZE,
                queue_size: QSIZE,
                flags: 0,
                desc_table_addr: host(base),
                used_ring_addr: host(base + 0x2000),
                avail_ring_addr: host(base + 0x1000),
                log_addr: None,
            };
            fe.set_vring_addr(q, &cfg).unwrap();
            fe.set_vring_base(q, 0).unwrap();
            let call = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            let kick = EventFd::new(libc::EFD_NONBLOCK).unwrap();
            fe.set_vring_call(q, &call).unwrap();
            fe.set_vring_kick(q, &kick).unwrap();
            fe.set_vring_enable(q, true).unwrap();
            calls.push(call);
            kicks.push(kick);
        }
        let mut g = VsockGuest {
            _frontend: fe,
            mem,
            kicks,
            _calls: calls,
            tx_avail: 0,
            tx_used_seen: 0,
            rx_avail: 0,
            rx_used_seen: 0,
            inbox: HashMap::new(),
            log: Vec::new(),
        };
        for i in 0..RX_BUFS {
            g.write_desc(
                RX,
                i,
                RX_BUF + u64::from(i) * u64::from(RX_BUF_LEN),
                RX_BUF_LEN,
                2,
                0,
            );
            g.offer_rx(i);
        }
        g.kicks[RX].write(1).unwrap();
        g
    }

    fn write_desc(&self, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = ring_base(q) + 16 * u64::from(i);
        self.mem.write_obj(addr, GuestAddress(d)).unwrap();
        self.mem.write_obj(len, GuestAddress(d + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(d + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(d + 14)).unwrap();
    }

    fn publish(&mut self, q: usize, head: u16) -> u16 {
        let avail = ring_base(q) + 0x1000;
        let idx = if q == RX {
            self.rx_avail
        } else {
            self.tx_avail
        };
        self.mem
            .write_obj(head, GuestAddress(avail + 4 + 2 * u64::from(idx % QSIZE)))
            .unwrap();
        fence(Ordering::SeqCst);
        let next = idx.wrapping_add(1);
        self.mem.write_obj(next, GuestAddress(avail + 2)).unwrap();
        fence(Ordering::SeqCst);
        next
    }

    fn offer_rx(&mut self, i: u16) {
        self.rx_avail = self.publish(RX, i);
    }

    /// Sends one packet whose header says `p` and whose data descriptor
    /// (if any) holds `data`; waits until the device has consumed it.
    fn send(&mut self, p: &Pkt, data: &[u8]) {
        let slot = (self.tx_avail % (QSIZE / 2)) * 2;
        let at = TX_BUF + u64::from(slot / 2) % 16 * 0x2_0000;
        self.mem.write_slice(&p.encode(), GuestAddress(at)).unwrap();
        if data.is_empty() {
            self.write_desc(TX, slot, at, HDR as u32, 0, 0);
        } else {
            self.mem
                .write_slice(data, GuestAddress(at + 0x100))
                .unwrap();
            self.write_desc(TX, slot, at, HDR as u32, 1, slot + 1);
            self.write_desc(TX, slot + 1, at + 0x100, data.len() as u32, 0, 0);
        }
        self.tx_avail = self.publish(TX, slot);
        self.kicks[TX].write(1).unwrap();
        let used = ring_base(TX) + 0x2000;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
            if idx == self.tx_avail {
                self.tx_used_seen = idx;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the device did not take the packet"
            );
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Collects received packets (re-offering their buffers) until `done`
    /// holds or 10 s pass; returns whether it held.
    fn recv_until(&mut self, mut done: impl FnMut(&VsockGuest) -> bool) -> bool {
        let used = ring_base(RX) + 0x2000;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
            while self.rx_used_seen != idx {
                fence(Ordering::SeqCst);
                let e = used + 4 + 8 * u64::from(self.rx_used_seen % QSIZE);
                let id: u32 = self.mem.read_obj(GuestAddress(e)).unwrap();
                let len: u32 = self.mem.read_obj(GuestAddress(e + 4)).unwrap();
                let addr = RX_BUF + u64::from(id) * u64::from(RX_BUF_LEN);
                let mut b = vec![0u8; len as usize];
                self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
                let p = Pkt::decode(&b);
                if p.op == OP_RW {
                    self.inbox
                        .entry(p.dst_port)
                        .or_default()
                        .extend_from_slice(&b[HDR..]);
                }
                self.log.push(p);
                self.rx_used_seen = self.rx_used_seen.wrapping_add(1);
                self.offer_rx(id as u16);
                self.kicks[RX].write(1).unwrap();
            }
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn got(&self, op: u16, port: u32) -> bool {
        self.log.iter().any(|p| p.op == op && p.dst_port == port)
    }

    fn connect_port(&mut self, port: u32) {
        self.send(&Pkt::to_host(port, PORT, OP_REQUEST, 0), &[]);
        assert!(
            self.recv_until(|g| g.got(OP_RESPONSE, port)),
            "no RESPONSE for port {port}: {:?}",
            self.log
        );
    }

    /// Sends one request record on `port` and waits for its response record.
    fn call(&mut self, port: u32, queue: QueueClass, req: Request) -> Outcome {
        let mut f = Vec::new();
        encode_request(&mut f, 1, 0, &req, 0, 0).unwrap();
        let mut rec = Vec::new();
        encode_request_record(&mut rec, queue, &f, &[], &[]).unwrap();
        self.inbox.remove(&port);
        self.send(&Pkt::to_host(port, PORT, OP_RW, rec.len() as u32), &rec);
        let complete = |g: &VsockGuest| {
            g.inbox.get(&port).is_some_and(|b| {
                b.len() >= RECORD_HEADER_LEN
                    && RecordHeader::decode(b, Direction::Response)
                        .is_ok_and(|h| b.len() >= RECORD_HEADER_LEN + h.len as usize)
            })
        };
        assert!(self.recv_until(complete), "no response on port {port}");
        let b = self.inbox.remove(&port).unwrap();
        let h = RecordHeader::decode(&b, Direction::Response).unwrap();
        let d = decode_response_record(&h, &b[RECORD_HEADER_LEN..]).unwrap();
        let f = FrameIter::new(&d.frames).next().unwrap().unwrap();
        decode_response(&f).unwrap()
    }

    fn open_session(&mut self, port: u32) {
        let open = Request::SessionOpen(SessionOpen {
            min_version: 1,
            max_version: PROTOCOL_VERSION,
            features: FEATURE_OPENCL | FEATURE_BATCH,
            client: "vsock-test".into(),
        });
        let out = self.call(port, QueueClass::Control, open);
        assert!(
            matches!(out, Outcome::Ok(Response::SessionOpen(_))),
            "{out:?}"
        );
    }

    fn ping(&mut self, port: u32) -> Outcome {
        self.call(port, QueueClass::Request, Request::Ping(Empty {}))
    }
}

/// The daemon's fd and thread counts once they have not changed for 500 ms
/// (the warm-up VM's teardown has finished).
fn stable_counts(d: &Daemon) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (d.fd_count(), d.thread_count());
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50));
        let now = (d.fd_count(), d.thread_count());
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

fn settle(d: &Daemon, fds: usize, threads: usize) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = (d.fd_count(), d.thread_count());
        if (now.0 <= fds && now.1 <= threads) || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hostile_vsock_packets_get_rst_and_the_daemon_serves_on() {
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start(&["--vsock-cid", "3"]);
    let ping = Outcome::Ok(Response::Ping(Empty {}));
    // Warm up once (runtime start-up), then take the baseline.
    {
        let mut g = VsockGuest::connect(daemon.socket());
        g.connect_port(900);
        g.open_session(900);
    }
    let (fds0, threads0) = stable_counts(&daemon);

    let mut g = VsockGuest::connect(daemon.socket());
    // A good connection with a live session throughout.
    g.connect_port(1000);
    g.open_session(1000);

    // A connection to a port nobody serves.
    g.send(&Pkt::to_host(1001, PORT + 1, OP_REQUEST, 0), &[]);
    assert!(g.recv_until(|g| g.got(OP_RST, 1001)), "closed port: no RST");
    // Data on a connection that was never opened.
    g.send(&Pkt::to_host(1002, PORT, OP_RW, 3), b"abc");
    assert!(
        g.recv_until(|g| g.got(OP_RST, 1002)),
        "unknown connection: no RST"
    );
    // An op the protocol does not have, on an open connection.
    g.connect_port(1003);
    g.send(&Pkt::to_host(1003, PORT, 99, 0), &[]);
    assert!(g.recv_until(|g| g.got(OP_RST, 1003)), "unknown op: no RST");
    // A header whose length is larger than the data it comes with.
    g.connect_port(1004);
    g.send(&Pkt::to_host(1004, PORT, OP_RW, 4000), b"short");
    assert!(g.recv_until(|g| g.got(OP_RST, 1004)), "bad length: no RST");
    // More data than the credit the daemon granted, in packets that each
    // parse. To keep the session from reading, the guest first stops
    // taking data (buf_alloc 0) and asks for a 4 MiB answer: the session
    // blocks writing it, reads no more, and the guest's data piles up.
    g.connect_port(1005);
    g.open_session(1005);
    let granted = g
        .log
        .iter()
        .find(|p| p.op == OP_RESPONSE && p.dst_port == 1005)
        .unwrap()
        .buf_alloc;
    let no_credit = |op, len| Pkt {
        buf_alloc: 0,
        ..Pkt::to_host(1005, PORT, op, len)
    };
    let mut f = Vec::new();
    encode_request(&mut f, 7, 0, &Request::Ping(Empty {}), 0, 1).unwrap();
    let mut rec = Vec::new();
    encode_request_record(&mut rec, QueueClass::Request, &f, &[], &[4 << 20]).unwrap();
    let mark = g.log.len();
    g.send(&no_credit(OP_RW, rec.len() as u32), &rec);
    let chunk = vec![0u8; 60 << 10];
    let mut sent = 0u32;
    while sent <= 2 * granted && !g.got(OP_RST, 1005) {
        g.send(&no_credit(OP_RW, chunk.len() as u32), &chunk);
        sent += chunk.len() as u32;
        g.recv_until(|_| true);
    }
    assert!(
        g.recv_until(|g| g.got(OP_RST, 1005)),
        "credit violation: no RST"
    );
    assert!(
        !g.log[mark..]
            .iter()
            .any(|p| p.op == OP_RW && p.dst_port == 1005),
        "the daemon sent data beyond the guest's zero credit"
    );

    // The good connection was never disturbed.
    assert_eq!(g.ping(1000), ping);
    assert!(!g.got(OP_RST, 1000));
    // And a shutdown ends it cleanly: the daemon answers with RST.
    g.send(&Pkt::to_host(1000, PORT, OP_SHUTDOWN, 0), &[]);
    assert!(g.recv_until(|g| g.got(OP_RST, 1000)), "shutdown: no RST");

    // The VM goes away with connections open; nothing is left behind.
    g.connect_port(1006);
    g.open_session(1006);
    drop(g);
    let (fds, threads) = settle(&daemon, fds0, threads0);
    assert_eq!(fds, fds0, "fds leaked");
    assert!(
        threads <= threads0,
        "threads leaked: {threads0} -> {threads}"
    );
    assert!(daemon.alive());
    // A new VM is served.
    let mut g = VsockGuest::connect(daemon.socket());
    g.connect_port(2000);
    g.open_session(2000);
    assert_eq!(g.ping(2000), ping);
}
