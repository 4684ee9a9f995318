//! Unit tests for chain walking: hostile and malformed chains on a mock split
//! queue in a plain guest memory, with a fake executor that records what it
//! was asked to run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use protocol::header::{Header, FLAG_RESPONSE, HEADER_LEN, MAGIC};
use protocol::limits::{MAX_BODY_LEN, MAX_DESCRIPTORS_PER_CHAIN, MAX_REQUEST_AREA_LEN};
use protocol::opencl::{Empty, QueueOp};
use protocol::session::{FEATURE_BATCH, FEATURE_CUDA, FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::{
    decode_response, encode_request, FrameIter, Outcome, ProtocolError, Request, Response,
    SessionOpen,
};
use virtio_bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::*;

use crate::session::Session;

const MEM: usize = 0x10_0000;
const REQ: u64 = 0x1_0000;
const IN: u64 = 0x3_0000;
const RESP: u64 = 0x5_0000;
const OUT: u64 = 0x7_0000;
const RESP_LEN: u32 = 0x1_0000;

use crate::test_util::{FakeFactory, Log, Seen};

struct Rig {
    mem: GuestMemoryMmap,
    session: Session,
    scratch: Scratch,
    log: Log,
}

/// A descriptor: address, length, device-writable.
type D = (u64, u32, bool);

fn req_area(len: usize) -> D {
    (REQ, len as u32, false)
}
fn resp_area() -> D {
    (RESP, RESP_LEN, true)
}

impl Rig {
    fn new() -> Rig {
        let log = Log::default();
        Rig {
            mem: GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM)]).unwrap(),
            session: Session::new(
                Arc::new(FakeFactory(log.clone())),
                crate::limits::session_limits(16, 0),
            ),
            scratch: Scratch::default(),
            log,
        }
    }

    fn opened() -> Rig {
        let mut r = Rig::new();
        let out = r.call(CONTROL_QUEUE, &[open_req(1, PROTOCOL_VERSION)]);
        assert!(
            matches!(out[..], [(_, Outcome::Ok(Response::SessionOpen(_)))]),
            "{out:?}"
        );
        r
    }

    /// Runs one chain of `descs`; returns the used length.
    fn run(&mut self, queue: usize, descs: &[D]) -> u32 {
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .map(|&(a, l, w)| {
                let flags = if w { VRING_DESC_F_WRITE as u16 } else { 0 };
                RawDescriptor::from(SplitDescriptor::new(a, l, flags, 0))
            })
            .collect();
        let vq = MockSplitQueue::new(&self.mem, 16);
        // Every chain is the first one a fresh queue sees.
        self.mem
            .write_obj(0u16, vq.avail_addr().unchecked_add(2))
            .unwrap();
        let chain = vq.build_desc_chain(&raw).unwrap();
        process_chain(chain, queue, &mut self.session, &mut self.scratch)
    }

    fn responses(&self, used: u32) -> Vec<(Header, Outcome)> {
        let mut buf = vec![0u8; used as usize];
        self.mem.read_slice(&mut buf, GuestAddress(RESP)).unwrap();
        FrameIter::new(&buf)
            .map(|f| {
                let f = f.unwrap();
                assert!(f.header.flags & FLAG_RESPONSE != 0);
                (f.header, decode_response(&f).unwrap())
            })
            .collect()
    }

    /// Writes `area` as the request area and runs it with `extra` bulk
    /// descriptors around the response area.
    fn raw(&mut self, queue: usize, area: &[u8], inb: &[D], outb: &[D]) -> Vec<(Header, Outcome)> {
        self.mem.write_slice(area, GuestAddress(REQ)).unwrap();
        let mut descs = vec![req_area(area.len())];
        descs.extend_from_slice(inb);
        descs.push(resp_area());
        descs.extend_from_slice(outb);
        let used = self.run(queue, &descs);
        self.responses(used)
    }

    fn call(&mut self, queue: usize, reqs: &[Request]) -> Vec<(u64, Outcome)> {
        let mut area = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            encode_request(&mut area, 100 + i as u64, 0, r, 0, 0).unwrap();
        }
        self.raw(queue, &area, &[], &[])
            .into_iter()
            .map(|(h, o)| (h.request_id, o))
            .collect()
    }

    /// The session still answers a ping correctly.
    fn assert_usable(&mut self) {
        let out = self.call(1, &[Request::Ping(Empty {})]);
        assert_eq!(out, vec![(100, Outcome::Ok(Response::Ping(Empty {})))]);
    }

    fn executed(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

fn open_req(min: u16, max: u16) -> Request {
    Request::SessionOpen(SessionOpen {
        min_version: min,
        max_version: max,
        features: FEATURE_OPENCL | FEATURE_CUDA | FEATURE_BATCH,
        client: "unit".into(),
    })
}

fn ping_frame(id: u64) -> Vec<u8> {
    let mut v = Vec::new();
    encode_request(&mut v, id, 0, &Request::Ping(Empty {}), 0, 0).unwrap();
    v
}

fn finish_frame(id: u64, in_bulk: u16, out_bulk: u16) -> Vec<u8> {
    let mut v = Vec::new();
    encode_request(
        &mut v,
        id,
        0,
        &Request::ClFinish(QueueOp { queue: 1 }),
        in_bulk,
        out_bulk,
    )
    .unwrap();
    v
}

fn proto(e: ProtocolError) -> Outcome {
    Outcome::Protocol(e)
}

#[test]
fn session_open_grants_masked_features_and_limits() {
    let mut r = Rig::new();
    let out = r.call(CONTROL_QUEUE, &[open_req(1, 9)]);
    let [(100, Outcome::Ok(Response::SessionOpen(o)))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(o.version, PROTOCOL_VERSION);
    // CUDA was asked for but the factory only serves OpenCL.
    assert_eq!(o.features, FEATURE_OPENCL | FEATURE_BATCH);
    assert_eq!(o.max_body_len as usize, MAX_BODY_LEN);
    assert!(r.session.is_open());
    r.assert_usable();
}

#[test]
fn api_family_not_granted_never_reaches_the_executor() {
    // The factory serves OpenCL only: a CUDA call is refused at the session
    // layer, ending the chain, and the session stays usable.
    let mut r = Rig::opened();
    let cuda = Request::CuCtxSynchronize(protocol::cuda::CtxSynchronize { ctx: 1 });
    let out = r.call(1, &[cuda, Request::ClFinish(QueueOp { queue: 1 })]);
    assert_eq!(out, vec![(100, proto(ProtocolError::ApiUnavailable))]);
    assert!(r.executed().is_empty());
    r.assert_usable();
    // A session that asked for CUDA alone may not make OpenCL calls.
    let only_cuda = Request::SessionOpen(SessionOpen {
        min_version: 1,
        max_version: 1,
        features: FEATURE_CUDA,
        client: "unit".into(),
    });
    let out = r.call(CONTROL_QUEUE, &[only_cuda]);
    let [(_, Outcome::Ok(Response::SessionOpen(o)))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(o.features, 0);
    let out = r.call(1, &[Request::ClFinish(QueueOp { queue: 1 })]);
    assert_eq!(out, vec![(100, proto(ProtocolError::ApiUnavailable))]);
    assert!(r.executed().is_empty());
}

#[test]
fn request_before_session_open_is_refused() {
    let mut r = Rig::new();
    let out = r.call(
        1,
        &[
            Request::Ping(Empty {}),
            Request::ClFinish(QueueOp { queue: 1 }),
        ],
    );
    // The refusal ends the chain: the second frame is not answered.
    assert_eq!(out, vec![(100, proto(ProtocolError::NoSession))]);
    assert!(r.executed().is_empty());
    let out = r.call(CONTROL_QUEUE, &[open_req(1, 1)]);
    assert!(matches!(out[0].1, Outcome::Ok(_)));
    r.assert_usable();
}

#[test]
fn version_mismatch() {
    let mut r = Rig::new();
    let out = r.call(
        CONTROL_QUEUE,
        &[open_req(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 5)],
    );
    assert_eq!(out, vec![(100, proto(ProtocolError::VersionMismatch))]);
    assert!(!r.session.is_open());

    // After opening, a frame whose header carries another version.
    let mut r = Rig::opened();
    let mut area = ping_frame(5);
    area[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
    let out = r.raw(1, &area, &[], &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.request_id, 5);
    assert_eq!(out[0].1, proto(ProtocolError::VersionMismatch));
    r.assert_usable();
}

#[test]
fn malformed_header_rejects_chain() {
    let mut r = Rig::opened();
    // Ten bytes: not even a header.
    let out = r.raw(1, &[0x56, 0x43, 0x4d, 0x50, 1, 0, 0, 0, 3, 0], &[], &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.request_id, 0);
    assert_eq!(out[0].1, proto(ProtocolError::Malformed));
    // A good frame followed by a truncated one: nothing runs.
    let mut area = finish_frame(1, 0, 0);
    area.extend_from_slice(&ping_frame(2)[..HEADER_LEN - 1]);
    let out = r.raw(1, &area, &[], &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0.request_id, &out[0].1),
        (1, &proto(ProtocolError::Malformed))
    );
    assert!(r.executed().is_empty());
    r.assert_usable();
}

#[test]
fn bad_magic() {
    let mut r = Rig::opened();
    let mut area = ping_frame(9);
    area[0..4].copy_from_slice(&(MAGIC ^ 1).to_le_bytes());
    let out = r.raw(1, &area, &[], &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, proto(ProtocolError::Malformed));
    r.assert_usable();
}

#[test]
fn body_too_long() {
    let mut r = Rig::opened();
    let mut area = ping_frame(9);
    area[24..28].copy_from_slice(&(MAX_BODY_LEN as u32 + 1).to_le_bytes());
    assert_eq!(
        r.raw(1, &area, &[], &[])[0].1,
        proto(ProtocolError::Malformed)
    );
    // A body length within the limit but past the end of the area.
    area[24..28].copy_from_slice(&64u32.to_le_bytes());
    assert_eq!(
        r.raw(1, &area, &[], &[])[0].1,
        proto(ProtocolError::Malformed)
    );
    // A body that does not decode as the opcode's message.
    let mut area = finish_frame(3, 0, 0);
    area.push(0xff);
    let body_len = (area.len() - HEADER_LEN) as u32;
    area[24..28].copy_from_slice(&body_len.to_le_bytes());
    let out = r.raw(1, &area, &[], &[]);
    assert_eq!(
        (out[0].0.request_id, &out[0].1),
        (3, &proto(ProtocolError::Malformed))
    );
    assert!(r.executed().is_empty());
    r.assert_usable();
}

#[test]
fn unknown_opcode_stops_the_chain() {
    let mut r = Rig::opened();
    let mut area = ping_frame(1);
    let mut bad = ping_frame(2);
    bad[8..10].copy_from_slice(&0x7777u16.to_le_bytes());
    area.extend_from_slice(&bad);
    area.extend_from_slice(&finish_frame(3, 0, 0));
    let out = r.raw(1, &area, &[], &[]);
    let got: Vec<_> = out
        .iter()
        .map(|(h, o)| (h.request_id, h.opcode, o.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 0x0003, Outcome::Ok(Response::Ping(Empty {}))),
            (2, 0x7777, proto(ProtocolError::UnsupportedOpcode)),
        ]
    );
    assert!(
        r.executed().is_empty(),
        "frame after the error must not run"
    );
    r.assert_usable();
}

#[test]
fn wrong_queue() {
    let mut r = Rig::opened();
    let out = r.call(CONTROL_QUEUE, &[Request::Ping(Empty {})]);
    assert_eq!(out, vec![(100, proto(ProtocolError::UnsupportedOpcode))]);
    let out = r.call(1, &[open_req(1, 1)]);
    assert_eq!(out, vec![(100, proto(ProtocolError::UnsupportedOpcode))]);
    let out = r.call(1, &[Request::SessionClose(Empty {})]);
    assert_eq!(out, vec![(100, proto(ProtocolError::UnsupportedOpcode))]);
    assert!(r.session.is_open());
    r.assert_usable();
}

#[test]
fn bulk_segments_reach_the_executor_in_place() {
    let mut r = Rig::opened();
    r.mem.write_slice(b"hello", GuestAddress(IN)).unwrap();
    r.mem
        .write_slice(b"world!", GuestAddress(IN + 0x100))
        .unwrap();
    let mut area = finish_frame(1, 1, 0);
    area.extend_from_slice(&finish_frame(2, 1, 2));
    let out = r.raw(
        1,
        &area,
        &[(IN, 5, false), (IN + 0x100, 6, false)],
        &[(OUT, 8, true), (OUT + 0x100, 3, true)],
    );
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|(_, o)| *o == Outcome::Ok(Response::ClFinish(Empty {}))));
    let seen = r.executed();
    assert_eq!(seen[0].input, vec![b"hello".to_vec()]);
    assert!(seen[0].output_lens.is_empty());
    assert_eq!(seen[1].input, vec![b"world!".to_vec()]);
    assert_eq!(seen[1].output_lens, vec![8, 3]);
    let mut got = [0u8; 3];
    r.mem
        .read_slice(&mut got, GuestAddress(OUT + 0x100))
        .unwrap();
    assert_eq!(&got, b"out");
}

#[test]
fn bulk_count_mismatch_rejects_chain() {
    let mut r = Rig::opened();
    // The frame wants one in-bulk segment; the chain has none.
    let out = r.raw(1, &finish_frame(4, 1, 0), &[], &[]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0.request_id, &out[0].1),
        (4, &proto(ProtocolError::BadDescriptor))
    );
    // The chain carries an out-bulk segment nobody asked for.
    let out = r.raw(1, &finish_frame(5, 0, 0), &[], &[(OUT, 8, true)]);
    assert_eq!(out[0].1, proto(ProtocolError::BadDescriptor));
    assert!(r.executed().is_empty());
    r.assert_usable();
}

#[test]
fn bulk_descriptor_outside_guest_memory() {
    let mut r = Rig::opened();
    let out = r.raw(
        1,
        &finish_frame(6, 1, 0),
        &[(MEM as u64 - 4, 8, false)],
        &[],
    );
    assert_eq!(
        (out[0].0.request_id, &out[0].1),
        (6, &proto(ProtocolError::BadDescriptor))
    );
    let out = r.raw(1, &finish_frame(7, 0, 1), &[], &[(1 << 40, 8, true)]);
    assert_eq!(out[0].1, proto(ProtocolError::BadDescriptor));
    assert!(r.executed().is_empty());
    r.assert_usable();
}

#[test]
fn unusable_chains_complete_with_zero_length() {
    let mut r = Rig::opened();
    let area = ping_frame(1);
    r.mem.write_slice(&area, GuestAddress(REQ)).unwrap();
    let n = area.len();
    // Oversized request area.
    assert_eq!(
        r.run(
            1,
            &[(REQ, MAX_REQUEST_AREA_LEN as u32 + 1, false), resp_area()]
        ),
        0
    );
    // Request area outside guest memory.
    assert_eq!(r.run(1, &[(MEM as u64 - 8, 64, false), resp_area()]), 0);
    // No response area.
    assert_eq!(r.run(1, &[req_area(n)]), 0);
    // Response area outside guest memory.
    assert_eq!(r.run(1, &[req_area(n), (1 << 40, 64, true)]), 0);
    // Writable descriptor first.
    assert_eq!(r.run(1, &[resp_area(), req_area(n)]), 0);
    // Readable after writable.
    assert_eq!(r.run(1, &[req_area(n), resp_area(), (IN, 4, false)]), 0);
    // Empty request area: nothing to answer.
    assert_eq!(r.run(1, &[req_area(0), resp_area()]), 0);
    assert_eq!(r.session.counters().protocol_errors, 6);
    r.assert_usable();
}

#[test]
fn response_area_too_small() {
    let mut r = Rig::opened();
    let area = finish_frame(1, 0, 0);
    r.mem.write_slice(&area, GuestAddress(REQ)).unwrap();
    // Not even room for a header: nothing runs.
    assert_eq!(r.run(1, &[req_area(area.len()), (RESP, 16, true)]), 0);
    assert!(r.executed().is_empty());
    // Room for one header but not for a response body.
    let mut r = Rig::new();
    let mut area = Vec::new();
    encode_request(&mut area, 8, 0, &open_req(1, 1), 0, 0).unwrap();
    r.mem.write_slice(&area, GuestAddress(REQ)).unwrap();
    let used = r.run(
        CONTROL_QUEUE,
        &[req_area(area.len()), (RESP, HEADER_LEN as u32, true)],
    );
    assert_eq!(used as usize, HEADER_LEN);
    let out = r.responses(used);
    assert_eq!(
        (out[0].0.request_id, &out[0].1),
        (8, &proto(ProtocolError::BadDescriptor))
    );
    r.assert_usable();
}

#[test]
fn descriptor_walk_is_capped() {
    let mut s = Scratch::default();
    let d = |w: bool| SplitDescriptor::new(0, 1, if w { VRING_DESC_F_WRITE as u16 } else { 0 }, 0);
    let many = std::iter::once(d(false)).chain(std::iter::repeat(d(true)));
    assert_eq!(
        split(many, &mut s).err(),
        Some(ChainError::TooManyDescriptors)
    );
    let ok = std::iter::once(d(false))
        .chain(std::iter::repeat_n(d(true), MAX_DESCRIPTORS_PER_CHAIN - 1));
    assert!(split(ok, &mut s).is_ok());
    assert_eq!(s.out_desc.len(), MAX_DESCRIPTORS_PER_CHAIN - 2);
}

#[test]
fn session_close_and_reopen() {
    let mut r = Rig::opened();
    let out = r.call(CONTROL_QUEUE, &[Request::SessionClose(Empty {})]);
    assert_eq!(
        out,
        vec![(100, Outcome::Ok(Response::SessionClose(Empty {})))]
    );
    assert_eq!(
        r.call(1, &[Request::Ping(Empty {})])[0].1,
        proto(ProtocolError::NoSession)
    );
    r.call(CONTROL_QUEUE, &[open_req(1, 1)]);
    r.assert_usable();
    assert_eq!(r.session.counters().opens, 2);
}
