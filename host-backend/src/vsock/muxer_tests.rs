//! The muxer against hostile and ordinary packet sequences, with the fake
//! executor of `test_util` behind each session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use protocol::opencl::QueueOp;
use protocol::session::{FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::stream::{
    decode_response_record, encode_request_record, Direction, RecordHeader, RECORD_HEADER_LEN,
};
use protocol::{encode_request, FrameIter, QueueClass, Request, SessionOpen};

use super::*;
use crate::test_util::{FakeFactory, Log};

/// The guest's context id.
pub(in crate::vsock) const GUEST: u64 = 3;
/// The port the daemon listens on.
pub(in crate::vsock) const PORT: u32 = 7000;

fn muxer(max: usize) -> Muxer {
    let wake = Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
    Muxer::new(
        GUEST,
        PORT,
        max,
        Arc::new(FakeFactory(Log::default())),
        crate::limits::session_limits(16, 0),
        wake,
    )
}

/// A stream packet header from the guest's port `peer` to the daemon.
pub(in crate::vsock) fn pkt(peer: u32, op: u16, len: u32) -> Hdr {
    Hdr {
        src_cid: GUEST,
        dst_cid: HOST_CID,
        src_port: peer,
        dst_port: PORT,
        len,
        type_: TYPE_STREAM,
        op,
        flags: 0,
        buf_alloc: 1 << 20,
        fwd_cnt: 0,
    }
}

/// Collects packets for the guest until `done` says stop or 5 s pass.
fn rx_until(m: &mut Muxer, mut done: impl FnMut(&[(Hdr, Vec<u8>)]) -> bool) -> Vec<(Hdr, Vec<u8>)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&got) {
        assert!(Instant::now() < deadline, "timed out; got {got:?}");
        match m.next_rx(64 << 10) {
            Some(p) => got.push(p),
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    got
}

fn connect(m: &mut Muxer, peer: u32) {
    m.on_packet(&pkt(peer, op::REQUEST, 0), &[]);
    let (h, _) = m.next_rx(4096).unwrap();
    assert_eq!((h.op, h.dst_port, h.src_port), (op::RESPONSE, peer, PORT));
    assert_eq!(h.buf_alloc, BUF_ALLOC);
}

fn open_record() -> Vec<u8> {
    let mut f = Vec::new();
    let open = Request::SessionOpen(SessionOpen {
        min_version: 1,
        max_version: PROTOCOL_VERSION,
        features: FEATURE_OPENCL,
        client: "vsock".into(),
    });
    encode_request(&mut f, 1, 0, &open, 0, 0).unwrap();
    let mut rec = Vec::new();
    encode_request_record(&mut rec, QueueClass::Control, &f, &[], &[]).unwrap();
    rec
}

fn finish_record(id: u64) -> Vec<u8> {
    let mut f = Vec::new();
    encode_request(
        &mut f,
        id,
        0,
        &Request::ClFinish(QueueOp { queue: 1 }),
        0,
        0,
    )
    .unwrap();
    let mut rec = Vec::new();
    encode_request_record(&mut rec, QueueClass::Request, &f, &[], &[]).unwrap();
    rec
}

/// Sends `bytes` as one RW packet on `peer`.
fn send(m: &mut Muxer, peer: u32, bytes: &[u8]) {
    m.on_packet(&pkt(peer, op::RW, bytes.len() as u32), bytes);
}

/// Reads one whole response record of `peer` from RW packets; returns its
/// request ids.
fn response_ids(m: &mut Muxer, peer: u32) -> Vec<u64> {
    let mut bytes = Vec::new();
    let complete = |b: &[u8]| {
        b.len() >= RECORD_HEADER_LEN
            && b.len()
                >= RECORD_HEADER_LEN
                    + RecordHeader::decode(b, Direction::Response).unwrap().len as usize
    };
    rx_until(m, |got| {
        bytes = got
            .iter()
            .filter(|(h, _)| h.op == op::RW && h.dst_port == peer)
            .flat_map(|(_, d)| d.clone())
            .collect();
        complete(&bytes)
    });
    let h = RecordHeader::decode(&bytes, Direction::Response).unwrap();
    let d = decode_response_record(&h, &bytes[RECORD_HEADER_LEN..]).unwrap();
    FrameIter::new(&d.frames)
        .map(|f| f.unwrap().header.request_id)
        .collect()
}

#[test]
fn a_connection_carries_records_to_its_session_and_back() {
    let mut m = muxer(4);
    connect(&mut m, 1000);
    send(&mut m, 1000, &open_record());
    assert_eq!(response_ids(&mut m, 1000), vec![1]);
    // A record split over several packets is reassembled.
    let rec = finish_record(2);
    let (a, b) = rec.split_at(7);
    send(&mut m, 1000, a);
    send(&mut m, 1000, b);
    assert_eq!(response_ids(&mut m, 1000), vec![2]);
    assert_eq!(m.live(), 1);
    assert_eq!(m.counters().accepted, 1);
}

#[test]
fn closed_ports_and_unknown_connections_get_rst() {
    let mut m = muxer(4);
    let mut other = pkt(5, op::REQUEST, 0);
    other.dst_port = PORT + 1;
    m.on_packet(&other, &[]);
    let (h, _) = m.next_rx(4096).unwrap();
    assert_eq!((h.op, h.src_port, h.dst_port), (op::RST, PORT + 1, 5));
    // Data, shutdown and credit requests on a connection never opened.
    for o in [op::RW, op::SHUTDOWN, op::CREDIT_REQUEST, op::CREDIT_UPDATE] {
        m.on_packet(&pkt(6, o, 0), &[]);
        assert_eq!(m.next_rx(4096).unwrap().0.op, op::RST, "op {o}");
    }
    // A reset is never answered.
    m.on_packet(&pkt(6, op::RST, 0), &[]);
    assert!(m.next_rx(4096).is_none());
    // Another socket type.
    let mut dgram = pkt(7, op::REQUEST, 0);
    dgram.type_ = 2;
    m.on_packet(&dgram, &[]);
    assert_eq!(m.next_rx(4096).unwrap().0.op, op::RST);
    assert_eq!(m.live(), 0);
    // Packets from another context or to another host are dropped silently.
    let mut spoof = pkt(8, op::REQUEST, 0);
    spoof.src_cid = 99;
    m.on_packet(&spoof, &[]);
    assert!(m.next_rx(4096).is_none());
}

#[test]
fn unknown_ops_and_bad_packets_reset_only_their_connection() {
    let mut m = muxer(4);
    connect(&mut m, 1);
    connect(&mut m, 2);
    connect(&mut m, 3);
    m.on_packet(&pkt(1, 42, 0), &[]);
    let (h, _) = m.next_rx(4096).unwrap();
    assert_eq!((h.op, h.dst_port), (op::RST, 1));
    // A second REQUEST on an open connection is a protocol violation too.
    m.on_packet(&pkt(2, op::REQUEST, 0), &[]);
    assert_eq!(
        m.next_rx(4096).unwrap().0,
        Hdr {
            op: op::RST,
            ..m.to_guest(2, op::RST, 0)
        }
    );
    // A packet the parser refused, naming connection 3.
    m.on_bad_packet(Some(&pkt(3, op::RW, u32::MAX)));
    assert_eq!(m.next_rx(4096).unwrap().0.dst_port, 3);
    m.on_bad_packet(None);
    assert_eq!(m.live(), 0);
    // The daemon still accepts and serves a new connection.
    connect(&mut m, 4);
    send(&mut m, 4, &open_record());
    assert_eq!(response_ids(&mut m, 4), vec![1]);
}

#[test]
fn data_beyond_the_granted_credit_resets_the_connection() {
    let mut m = muxer(4);
    connect(&mut m, 1);
    connect(&mut m, 2);
    // More than BUF_ALLOC unread bytes: the session never reads a record
    // this long (its header is garbage), so send it all at once.
    let flood = vec![0u8; BUF_ALLOC as usize + 1];
    send(&mut m, 1, &flood);
    let got = rx_until(&mut m, |g| g.iter().any(|(h, _)| h.op == op::RST));
    assert!(got.iter().any(|(h, _)| h.op == op::RST && h.dst_port == 1));
    assert_eq!(m.counters().credit_violations, 1);
    // A length field that disagrees with the payload is a violation too.
    m.on_packet(&pkt(2, op::RW, 10), b"abc");
    assert_eq!(m.counters().credit_violations, 2);
    assert_eq!(m.live(), 0);
}

#[test]
fn the_daemon_respects_the_guests_credit() {
    let mut m = muxer(4);
    let mut req = pkt(1, op::REQUEST, 0);
    req.buf_alloc = 10;
    m.on_packet(&req, &[]);
    assert_eq!(m.next_rx(4096).unwrap().0.op, op::RESPONSE);
    let rec = open_record();
    let mut hdr = pkt(1, op::RW, rec.len() as u32);
    hdr.buf_alloc = 10;
    m.on_packet(&hdr, &rec);
    let got = rx_until(&mut m, |g| g.iter().any(|(h, _)| h.op == op::RW));
    let sent: usize = got.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(sent, 10, "no more than the guest's buffer");
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        m.next_rx(4096).is_none_or(|(h, _)| h.op != op::RW),
        "nothing more until the guest reports progress"
    );
    // The guest consumed the 10 bytes.
    let mut upd = pkt(1, op::CREDIT_UPDATE, 0);
    upd.buf_alloc = 10;
    upd.fwd_cnt = 10;
    m.on_packet(&upd, &[]);
    let (h, d) = m.next_rx(4096).unwrap();
    assert_eq!((h.op, d.len()), (op::RW, 10));
    // Asking for credit (with no room to take data) gets an update that
    // reports everything consumed.
    let mut ask = pkt(1, op::CREDIT_REQUEST, 0);
    ask.buf_alloc = 10;
    ask.fwd_cnt = 10;
    m.on_packet(&ask, &[]);
    let (h, _) = m.next_rx(4096).unwrap();
    assert_eq!((h.op, h.fwd_cnt), (op::CREDIT_UPDATE, rec.len() as u32));
}

#[test]
fn shutdown_ends_the_session_and_the_connection() {
    let mut m = muxer(4);
    connect(&mut m, 1);
    send(&mut m, 1, &open_record());
    assert_eq!(response_ids(&mut m, 1), vec![1]);
    m.on_packet(&pkt(1, op::SHUTDOWN, 0), &[]);
    let got = rx_until(&mut m, |g| g.iter().any(|(h, _)| h.op == op::RST));
    assert_eq!(got.last().unwrap().0.dst_port, 1);
    assert_eq!(m.live(), 0);
}

#[test]
fn the_connection_limit_is_enforced() {
    let mut m = muxer(1);
    connect(&mut m, 1);
    m.on_packet(&pkt(2, op::REQUEST, 0), &[]);
    assert_eq!(m.next_rx(4096).unwrap().0.op, op::RST);
    assert_eq!(m.live(), 1);
    // A guest reset frees the slot once its session has ended.
    m.on_packet(&pkt(1, op::RST, 0), &[]);
    connect_when_free(&mut m, 2);
}

/// Opens a connection from `peer`, retrying while the muxer is full.
fn connect_when_free(m: &mut Muxer, peer: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        m.on_packet(&pkt(peer, op::REQUEST, 0), &[]);
        match m.next_rx(4096) {
            Some((h, _)) if h.op == op::RESPONSE => return,
            _ => assert!(Instant::now() < deadline, "the slot never came back"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_record(id: u64) -> Vec<u8> {
    let mut f = Vec::new();
    let wait = Request::ClWaitForEvents(protocol::opencl::WaitForEvents { events: vec![1] });
    encode_request(&mut f, id, 0, &wait, 0, 0).unwrap();
    let mut rec = Vec::new();
    encode_request_record(&mut rec, QueueClass::Request, &f, &[], &[]).unwrap();
    rec
}

#[test]
fn a_session_waiting_on_its_guest_ends_with_the_connection() {
    // The fake executor's wait ends only when its session is abandoned,
    // as a wait on the guest's own user event does.
    for end in [op::RST, op::SHUTDOWN] {
        let mut m = muxer(4);
        connect(&mut m, 1);
        send(&mut m, 1, &open_record());
        assert_eq!(response_ids(&mut m, 1), vec![1]);
        send(&mut m, 1, &wait_record(2));
        std::thread::sleep(Duration::from_millis(50));
        m.on_packet(&pkt(1, end, 0), &[]);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            m.shutdown();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the session never ended after op {end}"));
    }
}

fn build_record(id: u64) -> Vec<u8> {
    let mut f = Vec::new();
    let build = Request::ClBuildProgram(protocol::opencl::BuildProgram {
        program: 1,
        devices: vec![],
        options: String::new(),
        headers: Default::default(),
    });
    encode_request(&mut f, id, 0, &build, 0, 0).unwrap();
    let mut rec = Vec::new();
    encode_request_record(&mut rec, QueueClass::Request, &f, &[], &[]).unwrap();
    rec
}

#[test]
fn connections_still_closing_count_against_the_limit() {
    // A guest that resets connections whose sessions are busy and opens
    // new ones must not hold more sessions than the limit.
    let mut m = muxer(1);
    connect(&mut m, 1);
    send(&mut m, 1, &open_record());
    assert_eq!(response_ids(&mut m, 1), vec![1]);
    send(&mut m, 1, &build_record(2));
    std::thread::sleep(Duration::from_millis(50));
    m.on_packet(&pkt(1, op::RST, 0), &[]);
    m.on_packet(&pkt(2, op::REQUEST, 0), &[]);
    let (h, _) = m.next_rx(4096).unwrap();
    assert_eq!((h.op, h.dst_port), (op::RST, 2), "a session past the limit");
    // Once the busy session has ended, its slot is free.
    std::thread::sleep(crate::test_util::BUSY);
    connect_when_free(&mut m, 3);
}

#[test]
fn resets_owed_to_a_guest_that_takes_none_are_bounded() {
    // A guest that floods closed ports and posts no receive buffer.
    let mut m = muxer(4);
    let mut req = pkt(1, op::REQUEST, 0);
    req.dst_port = PORT + 1;
    for port in 0..100_000 {
        req.src_port = port;
        m.on_packet(&req, &[]);
    }
    let mut owed = 0;
    while let Some((h, _)) = m.next_rx(4096) {
        assert_eq!(h.op, op::RST);
        owed += 1;
    }
    assert!(owed <= MAX_OWED_RESETS, "{owed} resets were kept");
    assert!(owed > 0);
    // The queue drained, resets flow again.
    m.on_packet(&req, &[]);
    assert_eq!(m.next_rx(4096).unwrap().0.op, op::RST);
}
