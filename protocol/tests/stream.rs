//! Property tests for stream records: chains survive the trip through a
//! request record, responses through a response record, and no byte
//! sequence makes a record decoder panic or over-allocate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vcompute_protocol::opencl::Empty;
use vcompute_protocol::stream::*;
use vcompute_protocol::*;

/// A chain: per frame (request id, in-bulk segments, out-bulk lengths).
fn chain() -> impl Strategy<Value = Vec<(u64, Vec<Vec<u8>>, Vec<usize>)>> {
    prop::collection::vec(
        (
            any::<u64>(),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..4),
            prop::collection::vec(0usize..4096, 0..4),
        ),
        1..16,
    )
}

fn queue() -> impl Strategy<Value = QueueClass> {
    prop_oneof![Just(QueueClass::Control), Just(QueueClass::Request)]
}

proptest! {
    #[test]
    fn request_records_round_trip(chain in chain(), q in queue()) {
        let mut frames = Vec::new();
        let mut ins: Vec<&[u8]> = Vec::new();
        let mut outs = Vec::new();
        for (id, i, o) in &chain {
            encode_request(&mut frames, *id, FLAG_ASYNC, &Request::Ping(Empty {}), i.len() as u16, o.len() as u16).unwrap();
            ins.extend(i.iter().map(Vec::as_slice));
            outs.extend(o.iter().copied());
        }
        let mut rec = Vec::new();
        encode_request_record(&mut rec, q, &frames, &ins, &outs).unwrap();
        let h = RecordHeader::decode(&rec, Direction::Request).unwrap();
        prop_assert_eq!(h.queue, q);
        prop_assert_eq!(h.len as usize, rec.len() - RECORD_HEADER_LEN);
        let got = decode_request_record(&h, &rec[RECORD_HEADER_LEN..]).unwrap();
        prop_assert_eq!(got.len(), chain.len());
        for (g, (id, i, o)) in got.iter().zip(&chain) {
            prop_assert_eq!(g.frame.header.request_id, *id);
            prop_assert_eq!(&g.input, &i.iter().map(Vec::as_slice).collect::<Vec<_>>());
            prop_assert_eq!(&g.output, &o.iter().map(|&n| n as u32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn response_records_round_trip(
        resps in prop::collection::vec((any::<u64>(), any::<i32>(), prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..4)), 1..16),
        q in queue(),
    ) {
        let mut out = Vec::new();
        let mut rec = ResponseRecord::begin(&mut out, q);
        let mut f = Vec::new();
        let mut all = Vec::new();
        for (id, code, segs) in &resps {
            f.clear();
            encode_response(&mut f, *id, Opcode::Ping as u16, &Outcome::Native(*code));
            let s: Vec<&[u8]> = segs.iter().map(Vec::as_slice).collect();
            prop_assert!(rec.push(&mut out, &f, &s));
            all.extend(s);
        }
        rec.finish(&mut out).unwrap();
        let h = RecordHeader::decode(&out, Direction::Response).unwrap();
        let d = decode_response_record(&h, &out[RECORD_HEADER_LEN..]).unwrap();
        prop_assert_eq!(&d.segments, &all);
        let got: Vec<(u64, Outcome)> = FrameIter::new(&d.frames)
            .map(|f| { let f = f.unwrap(); (f.header.request_id, decode_response(&f).unwrap()) })
            .collect();
        let want: Vec<(u64, Outcome)> = resps.iter().map(|(id, c, _)| (*id, if *c == 0 { Outcome::Ok(Response::Ping(Empty {})) } else { Outcome::Native(*c) })).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_records_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        for dir in [Direction::Request, Direction::Response] {
            if let Ok(h) = RecordHeader::decode(&bytes, dir) {
                let body = bytes.get(RECORD_HEADER_LEN..).unwrap_or_default();
                let _ = decode_request_record(&h, body);
                let _ = decode_response_record(&h, body);
            }
        }
        // Decode the body under a header that claims exactly its length.
        let h = RecordHeader { queue: QueueClass::Request, frames: 8, len: bytes.len() as u32 };
        let _ = decode_request_record(&h, &bytes);
        let _ = decode_response_record(&h, &bytes);
    }

    #[test]
    fn corrupted_records_never_panic(chain in chain(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut frames = Vec::new();
        let mut ins: Vec<&[u8]> = Vec::new();
        let mut outs = Vec::new();
        for (id, i, o) in &chain {
            encode_request(&mut frames, *id, 0, &Request::Ping(Empty {}), i.len() as u16, o.len() as u16).unwrap();
            ins.extend(i.iter().map(Vec::as_slice));
            outs.extend(o.iter().copied());
        }
        let mut rec = Vec::new();
        encode_request_record(&mut rec, QueueClass::Request, &frames, &ins, &outs).unwrap();
        let at = pos.index(rec.len());
        rec[at] = byte;
        if let Ok(h) = RecordHeader::decode(&rec, Direction::Request) {
            let body = &rec[RECORD_HEADER_LEN..];
            if let Ok(got) = decode_request_record(&h, body) {
                prop_assert_eq!(got.len(), usize::from(h.frames));
            }
        }
    }
}

#[test]
fn a_truncated_record_is_refused() {
    let mut frames = Vec::new();
    encode_request(&mut frames, 1, 0, &Request::Ping(Empty {}), 1, 0).unwrap();
    let mut rec = Vec::new();
    encode_request_record(&mut rec, QueueClass::Request, &frames, &[b"abcdef"], &[]).unwrap();
    let h = RecordHeader::decode(&rec, Direction::Request).unwrap();
    let body = &rec[RECORD_HEADER_LEN..];
    for cut in 0..body.len() {
        let short = RecordHeader {
            len: cut as u32,
            ..h
        };
        assert!(
            decode_request_record(&short, &body[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // A body longer than declared (trailing bytes) is refused too.
    let mut long = body.to_vec();
    long.push(0);
    let h2 = RecordHeader {
        len: long.len() as u32,
        ..h
    };
    assert!(decode_request_record(&h2, &long).is_err());
}
