//! Unit tests for stream records: a session served over an in-memory
//! duplex, with the fake executor of `test_util`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Read, Write};
use std::sync::Arc;

use protocol::opencl::{Empty, QueueOp};
use protocol::session::{FEATURE_BATCH, FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::stream::{
    decode_response_record, encode_request_record, Direction, RecordHeader, RECORD_HEADER_LEN,
};
use protocol::{
    decode_response, encode_request, FrameIter, Outcome, ProtocolError, QueueClass, Request,
    Response, SessionOpen,
};

use super::*;
use crate::test_util::{FakeFactory, Log};

/// Reads from a fixed script, collects what is written.
struct Duplex {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn session(log: &Log) -> Session {
    Session::new(
        Arc::new(FakeFactory(log.clone())),
        crate::limits::session_limits(16, 0),
    )
}

/// One request: id, body, in-bulk segments, out-bulk lengths.
type Req<'a> = (u64, Request, Vec<&'a [u8]>, Vec<usize>);
/// One response record: (request id, outcome) per frame, and segments.
type Reply = (Vec<(u64, Outcome)>, Vec<Vec<u8>>);

fn record(queue: QueueClass, reqs: &[Req<'_>]) -> Vec<u8> {
    let mut frames = Vec::new();
    let mut ins = Vec::new();
    let mut outs = Vec::new();
    for (id, r, i, o) in reqs {
        encode_request(&mut frames, *id, 0, r, i.len() as u16, o.len() as u16).unwrap();
        ins.extend(i.iter().copied());
        outs.extend(o.iter().copied());
    }
    let mut rec = Vec::new();
    encode_request_record(&mut rec, queue, &frames, &ins, &outs).unwrap();
    rec
}

fn open() -> Vec<u8> {
    let open = Request::SessionOpen(SessionOpen {
        min_version: 1,
        max_version: PROTOCOL_VERSION,
        features: FEATURE_OPENCL | FEATURE_BATCH,
        client: "unit".into(),
    });
    record(QueueClass::Control, &[(1, open, vec![], vec![])])
}

/// Every response record in `bytes`: (request id, outcome) and segments.
fn replies(bytes: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let h = RecordHeader::decode(rest, Direction::Response).unwrap();
        let end = RECORD_HEADER_LEN + h.len as usize;
        let d = decode_response_record(&h, &rest[RECORD_HEADER_LEN..end]).unwrap();
        let frames = FrameIter::new(&d.frames)
            .map(|f| {
                let f = f.unwrap();
                (f.header.request_id, decode_response(&f).unwrap())
            })
            .collect();
        out.push((frames, d.segments.iter().map(|s| s.to_vec()).collect()));
        rest = &rest[end..];
    }
    out
}

fn serve_script(script: Vec<u8>) -> (Result<(), StreamError>, Vec<u8>, Log) {
    let log = Log::default();
    let mut s = session(&log);
    let mut d = Duplex {
        input: Cursor::new(script),
        output: Vec::new(),
    };
    let r = serve(&mut d, &mut s);
    (r, d.output, log)
}

fn finish(id: u64, ins: Vec<&'static [u8]>, outs: Vec<usize>) -> Req<'static> {
    (id, Request::ClFinish(QueueOp { queue: 1 }), ins, outs)
}

#[test]
fn records_run_in_order_with_inline_bulk() {
    let mut script = open();
    script.extend(record(
        QueueClass::Request,
        &[
            finish(2, vec![b"hello"], vec![]),
            finish(3, vec![], vec![5, 3]),
            (4, Request::ClFlush(QueueOp { queue: 1 }), vec![], vec![4]),
        ],
    ));
    let (r, out, log) = serve_script(script);
    r.unwrap();
    let got = replies(&out);
    assert_eq!(got.len(), 2);
    assert!(matches!(
        got[0].0[..],
        [(1, Outcome::Ok(Response::SessionOpen(_)))]
    ));
    let ok = Outcome::Ok(Response::ClFinish(Empty {}));
    assert_eq!(
        got[1].0,
        vec![(2, ok.clone()), (3, ok), (4, Outcome::Native(-30))]
    );
    // Frame 3's two segments carry what the executor wrote; the failed
    // frame 4 returns an empty segment.
    assert_eq!(
        got[1].1,
        vec![b"out\0\0".to_vec(), b"out".to_vec(), Vec::new()]
    );
    let seen = log.lock().unwrap();
    assert_eq!(seen[0].input, vec![b"hello".to_vec()]);
    assert_eq!(seen[1].output_lens, vec![5, 3]);
}

#[test]
fn requests_before_open_get_no_session() {
    let script = record(QueueClass::Request, &[finish(9, vec![], vec![])]);
    let (r, out, log) = serve_script(script);
    r.unwrap();
    let got = replies(&out);
    assert_eq!(
        got[0].0,
        vec![(9, Outcome::Protocol(ProtocolError::NoSession))]
    );
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn a_bad_record_body_is_answered_and_the_stream_goes_on() {
    let mut script = open();
    let mut bad = record(QueueClass::Request, &[finish(5, vec![b"abc"], vec![])]);
    // Claim a longer segment than the record holds: the body no longer
    // decodes, but the record length is intact.
    let at = RECORD_HEADER_LEN + protocol::HEADER_LEN + {
        let h = protocol::Header::decode(&bad[RECORD_HEADER_LEN..]).unwrap();
        h.body_len as usize
    };
    bad[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
    script.extend(bad);
    script.extend(record(QueueClass::Request, &[finish(6, vec![], vec![])]));
    let (r, out, log) = serve_script(script);
    r.unwrap();
    let got = replies(&out);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1].0,
        vec![(5, Outcome::Protocol(ProtocolError::Malformed))]
    );
    assert_eq!(
        got[2].0,
        vec![(6, Outcome::Ok(Response::ClFinish(Empty {})))]
    );
    assert_eq!(log.lock().unwrap().len(), 1, "the bad record ran nothing");
}

#[test]
fn a_bad_record_header_is_answered_then_the_stream_ends() {
    let mut script = open();
    script.extend_from_slice(&[0xAA; RECORD_HEADER_LEN]);
    script.extend(record(QueueClass::Request, &[finish(6, vec![], vec![])]));
    let (r, out, log) = serve_script(script);
    assert!(matches!(r, Err(StreamError::BadRecord(_))));
    let got = replies(&out);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].0,
        vec![(0, Outcome::Protocol(ProtocolError::Malformed))]
    );
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn wrong_queue_and_protocol_errors_stop_the_batch() {
    let mut script = open();
    let open_again = Request::SessionOpen(SessionOpen {
        min_version: 1,
        max_version: 1,
        features: 0,
        client: "x".into(),
    });
    script.extend(record(
        QueueClass::Request,
        &[
            finish(2, vec![], vec![]),
            (3, open_again, vec![], vec![]),
            finish(4, vec![], vec![]),
        ],
    ));
    let (r, out, _) = serve_script(script);
    r.unwrap();
    let got = replies(&out);
    assert_eq!(
        got[1].0,
        vec![
            (2, Outcome::Ok(Response::ClFinish(Empty {}))),
            (3, Outcome::Protocol(ProtocolError::UnsupportedOpcode)),
        ]
    );
}

#[test]
fn a_truncated_record_ends_the_stream_with_an_error() {
    let mut script = open();
    let rec = record(
        QueueClass::Request,
        &[finish(2, vec![b"0123456789"], vec![])],
    );
    script.extend_from_slice(&rec[..rec.len() - 3]);
    let (r, out, log) = serve_script(script);
    assert!(matches!(r, Err(StreamError::Io(_))));
    assert_eq!(replies(&out).len(), 1);
    assert!(log.lock().unwrap().is_empty());
    // A clean end between records is not an error.
    let (r, _, _) = serve_script(open());
    r.unwrap();
    let (r, _, _) = serve_script(Vec::new());
    r.unwrap();
}
