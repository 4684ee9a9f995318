//! The guest kernel driver of device mode, emulated over [`TestGuest`]: a
//! device header before every chain, Open/Close chains on the control
//! queue, and Submit chains whose areas and bulk segments may each be
//! split over several descriptors (as pinned user pages are), laid out in
//! reverse order with gaps so that only a correct gather or scatter reads
//! them back whole.

use std::time::Duration;

use protocol::device::{
    DeviceHeader, DeviceOp, DeviceStatus, StatusRecord, DEVICE_HEADER_LEN, STATUS_LEN,
};
use protocol::session::{FEATURE_BATCH, FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::{encode_request, FrameIter, Outcome, Request, Response, SessionOpen};
use vm_memory::{Bytes, GuestAddress};

use super::{FrameSpec, TestGuest, BULK_AREA, REQ_AREA, RESP_AREA};

/// Where queue `q`'s device header goes.
pub fn header_at(q: usize) -> u64 {
    0x2_0000 + q as u64 * 0x1_0000
}

/// Where queue `q`'s status descriptor points.
pub fn status_at(q: usize) -> u64 {
    0x4_0000 + q as u64 * 0x100
}

/// Each queue's share of the request, response and bulk regions.
const SHARE: u64 = 0x8_0000;
/// Bytes between the pieces of a split area.
const GAP: u64 = 64;

/// A device-mode chain built but not yet posted: tests may change its
/// descriptors or header before posting it.
#[derive(Debug, Clone)]
pub struct DevChain {
    /// The header written at [`header_at`] (its descriptor is `descs[0]`).
    pub header: DeviceHeader,
    /// The chain's descriptors, in order.
    pub descs: Vec<(u64, u32, bool)>,
    /// The response area's pieces.
    resp: Vec<(u64, u32)>,
    /// Each out-segment's pieces.
    outs: Vec<Vec<(u64, u32)>>,
}

/// What a posted chain came back with.
#[derive(Debug, Clone, PartialEq)]
pub struct DevOutcome {
    /// The status descriptor.
    pub status: StatusRecord,
    /// The used length.
    pub used: u32,
    /// Each answered frame: request id and outcome.
    pub outcomes: Vec<(u64, Outcome)>,
    /// Each out-segment's bytes.
    pub data: Vec<Vec<u8>>,
}

/// Splits `len` bytes into at most `split` pieces (one empty piece for
/// none), placed from `*at` on in reverse order with gaps.
fn lay(at: &mut u64, len: usize, split: usize) -> Vec<(u64, u32)> {
    let n = split.clamp(1, len.max(1));
    let size = len.div_ceil(n);
    let mut sizes: Vec<u32> = (0..n)
        .map(|k| (len.saturating_sub(k * size)).min(size) as u32)
        .collect();
    sizes.retain(|&s| s > 0);
    if sizes.is_empty() {
        sizes.push(0);
    }
    let mut pieces = vec![(0u64, 0u32); sizes.len()];
    for k in (0..sizes.len()).rev() {
        pieces[k] = (*at, sizes[k]);
        *at += u64::from(sizes[k]) + GAP;
    }
    pieces
}

impl TestGuest {
    fn write_pieces(&self, pieces: &[(u64, u32)], bytes: &[u8]) {
        let mut off = 0;
        for &(addr, len) in pieces {
            let len = len as usize;
            self.mem
                .write_slice(&bytes[off..off + len], GuestAddress(addr))
                .unwrap();
            off += len;
        }
    }

    fn read_pieces(&self, pieces: &[(u64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(addr, len) in pieces {
            let mut v = vec![0u8; len as usize];
            self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
            out.extend_from_slice(&v);
        }
        out
    }

    /// Writes `bytes` as queue `q`'s device header.
    pub fn write_header(&self, q: usize, bytes: &[u8]) {
        self.mem
            .write_slice(bytes, GuestAddress(header_at(q)))
            .unwrap();
    }

    /// The status descriptor of queue `q`'s last chain.
    pub fn dev_status(&self, q: usize) -> StatusRecord {
        let mut b = [0u8; STATUS_LEN];
        self.mem
            .read_slice(&mut b, GuestAddress(status_at(q)))
            .unwrap();
        StatusRecord::decode(&b).unwrap()
    }

    /// A header-and-status chain (Open, Close) naming `session`.
    pub fn dev_op_chain(&self, q: usize, op: DeviceOp, session: u32) -> DevChain {
        let header = DeviceHeader {
            op,
            session,
            req_descs: 0,
            resp_descs: 0,
            table: vec![],
        };
        self.write_header(q, &header.encode());
        DevChain {
            header,
            descs: vec![
                (header_at(q), DEVICE_HEADER_LEN as u32, false),
                (status_at(q), STATUS_LEN as u32, true),
            ],
            resp: vec![],
            outs: vec![],
        }
    }

    /// A Submit chain of `frames` in `session` on queue `q`, with the
    /// request area, the response area (`resp_len` bytes) and every bulk
    /// segment each split over up to `split` descriptors.
    pub fn dev_chain(
        &mut self,
        q: usize,
        session: u32,
        frames: &[FrameSpec],
        split: usize,
        resp_len: usize,
    ) -> DevChain {
        let mut area = Vec::new();
        for f in frames {
            let id = self.next_id;
            self.next_id += 1;
            encode_request(
                &mut area,
                id,
                f.flags,
                &f.req,
                f.input.len() as u16,
                f.output.len() as u16,
            )
            .unwrap();
        }
        let share = q as u64 * SHARE;
        let mut at = REQ_AREA + share;
        let req = lay(&mut at, area.len(), split);
        self.write_pieces(&req, &area);
        let mut at = BULK_AREA + share;
        let ins: Vec<Vec<(u64, u32)>> = frames
            .iter()
            .flat_map(|f| &f.input)
            .map(|seg| {
                let p = lay(&mut at, seg.len(), split);
                self.write_pieces(&p, seg);
                p
            })
            .collect();
        let outs: Vec<Vec<(u64, u32)>> = frames
            .iter()
            .flat_map(|f| &f.output)
            .map(|&len| {
                let p = lay(&mut at, len as usize, split);
                // Garbage the daemon must overwrite.
                self.write_pieces(&p, &vec![0xa5; len as usize]);
                p
            })
            .collect();
        assert!(at <= BULK_AREA + share + SHARE, "bulk does not fit");
        let mut at = RESP_AREA + share;
        let resp = lay(&mut at, resp_len, split);
        assert!(
            at <= RESP_AREA + share + SHARE,
            "response area does not fit"
        );

        let header = DeviceHeader {
            op: DeviceOp::Submit,
            session,
            req_descs: req.len() as u16,
            resp_descs: resp.len() as u16,
            table: ins.iter().chain(&outs).map(|p| p.len() as u16).collect(),
        };
        let hb = header.encode();
        self.write_header(q, &hb);
        let mut descs = vec![(header_at(q), hb.len() as u32, false)];
        let readable = req.iter().chain(ins.iter().flatten());
        descs.extend(readable.map(|&(a, l)| (a, l, false)));
        descs.push((status_at(q), STATUS_LEN as u32, true));
        let writable = resp.iter().chain(outs.iter().flatten());
        descs.extend(writable.map(|&(a, l)| (a, l, true)));
        DevChain {
            header,
            descs,
            resp,
            outs,
        }
    }

    /// Posts `chain` on queue `q` (its status area cleared first).
    pub fn dev_post(&mut self, q: usize, chain: &DevChain, indirect: bool) {
        self.mem
            .write_slice(&[0xffu8; STATUS_LEN], GuestAddress(status_at(q)))
            .unwrap();
        self.post(q, &chain.descs, indirect);
    }

    /// Waits for the chain posted on `q` and reads what it came back with.
    pub fn dev_finish(
        &mut self,
        q: usize,
        chain: &DevChain,
        timeout: Duration,
    ) -> Option<DevOutcome> {
        let used = self.wait_used(q, timeout)?;
        let status = self.dev_status(q);
        let resp = self.read_pieces(&chain.resp);
        let n = (status.response_len as usize).min(resp.len());
        let outcomes = FrameIter::new(&resp[..n])
            .map(|f| {
                let f = f.unwrap();
                (f.header.request_id, protocol::decode_response(&f).unwrap())
            })
            .collect();
        let data = chain.outs.iter().map(|p| self.read_pieces(p)).collect();
        Some(DevOutcome {
            status,
            used,
            outcomes,
            data,
        })
    }

    /// Posts `chain` and waits for it (5 s).
    pub fn dev_submit(&mut self, q: usize, chain: &DevChain, indirect: bool) -> Option<DevOutcome> {
        self.dev_post(q, chain, indirect);
        self.dev_finish(q, chain, Duration::from_secs(5))
    }

    /// An Open or Close chain on queue `q`; returns its status.
    pub fn dev_op(&mut self, q: usize, op: DeviceOp, session: u32) -> StatusRecord {
        let chain = self.dev_op_chain(q, op, session);
        let out = self
            .dev_submit(q, &chain, false)
            .expect("no answer to a device op");
        assert_eq!(out.used, STATUS_LEN as u32);
        out.status
    }

    /// Opens a device session; returns its id.
    pub fn dev_open(&mut self) -> u32 {
        let s = self.dev_op(0, DeviceOp::Open, 0);
        assert_eq!(s.status, DeviceStatus::Ok, "{s:?}");
        assert_ne!(s.session, 0);
        s.session
    }

    /// Closes device session `id`; returns the status.
    pub fn dev_close(&mut self, id: u32) -> DeviceStatus {
        self.dev_op(0, DeviceOp::Close, id).status
    }

    /// Runs `frames` in session `id` on queue `q`, every area in one
    /// descriptor; asserts the chain was taken.
    pub fn dev_frames(&mut self, q: usize, id: u32, frames: &[FrameSpec]) -> DevOutcome {
        let chain = self.dev_chain(q, id, frames, 1, 0x1_0000);
        let out = self.dev_submit(q, &chain, false).expect("no answer");
        assert_eq!(out.status.status, DeviceStatus::Ok, "{out:?}");
        assert_eq!(out.status.session, id);
        out
    }

    /// Runs `reqs` (no bulk) in session `id` on queue `q`; the outcomes.
    pub fn dev_requests(&mut self, q: usize, id: u32, reqs: &[Request]) -> Vec<Outcome> {
        let frames: Vec<FrameSpec> = reqs.iter().cloned().map(FrameSpec::plain).collect();
        self.dev_frames(q, id, &frames)
            .outcomes
            .into_iter()
            .map(|(_, o)| o)
            .collect()
    }

    /// Negotiates the protocol inside device session `id` (`SessionOpen`).
    pub fn dev_session_open(&mut self, id: u32) {
        let open = Request::SessionOpen(SessionOpen {
            min_version: 1,
            max_version: PROTOCOL_VERSION,
            features: FEATURE_OPENCL | FEATURE_BATCH,
            client: format!("device-session-{id}"),
        });
        match &self.dev_requests(0, id, &[open])[..] {
            [Outcome::Ok(Response::SessionOpen(o))] => {
                assert_eq!(o.features & FEATURE_OPENCL, FEATURE_OPENCL);
            }
            other => panic!("SessionOpen in device session {id}: {other:?}"),
        }
    }
}
