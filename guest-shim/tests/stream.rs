//! The stream transport and the client pipeline against a minimal stream
//! server in the test: fire-and-forget calls travel batched in one record
//! ahead of the synchronous call, their errors are sticky, pipelined
//! transfers keep several records in flight and get their out-bulk back in
//! order, and a server that goes away or stays silent fails the call
//! instead of hanging it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use protocol::opencl::{
    Empty, EnqueueCommon, EnqueueReadBuffer, EnqueueWriteBuffer, KernelArg, QueueOp, SetKernelArg,
};
use protocol::session::{SessionOpened, FEATURE_BATCH, FEATURE_OPENCL};
use protocol::stream::{
    decode_request_record, Direction, RecordHeader, ResponseRecord, RECORD_HEADER_LEN,
};
use protocol::{
    decode_request, encode_response, Outcome, Request, Response, FLAG_ASYNC, PROTOCOL_VERSION,
};
use vcompute_shim::client::{CallError, Client, Piece};
use vcompute_shim::transport::stream::StreamTransport;
use vcompute_shim::transport::vhost_user::Options;
use vcompute_shim::transport::{LinkError, TransportError};

const CL_INVALID_KERNEL: i32 = -48;

/// What the server saw: per record, (frames, fire-and-forget frames), and
/// how many records arrived while an earlier one was still unanswered.
#[derive(Default)]
struct Seen {
    records: Vec<(usize, usize)>,
    overlapped: usize,
}

fn answer(req: Request, ins: &[&[u8]], bufs: &mut HashMap<u64, Vec<u8>>) -> (Outcome, Vec<u8>) {
    let ok = |r| (Outcome::Ok(r), Vec::new());
    match req {
        Request::SessionOpen(o) => ok(Response::SessionOpen(SessionOpened {
            version: PROTOCOL_VERSION,
            features: o.features & (FEATURE_OPENCL | FEATURE_BATCH),
            max_body_len: protocol::limits::MAX_BODY_LEN as u32,
            max_transfer_len: protocol::limits::MAX_TRANSFER_LEN,
            max_frames_per_chain: protocol::limits::MAX_FRAMES_PER_CHAIN as u32,
        })),
        Request::SessionClose(_) => ok(Response::SessionClose(Empty {})),
        Request::Ping(_) => ok(Response::Ping(Empty {})),
        Request::ClFinish(_) => ok(Response::ClFinish(Empty {})),
        Request::ClSetKernelArg(a) if a.kernel == 0 => (Outcome::Native(CL_INVALID_KERNEL), vec![]),
        Request::ClSetKernelArg(_) => ok(Response::ClSetKernelArg(Empty {})),
        Request::ClEnqueueWriteBuffer(w) => {
            let b = bufs.entry(w.buffer).or_default();
            let end = w.offset as usize + ins[0].len();
            if b.len() < end {
                b.resize(end, 0);
            }
            b[w.offset as usize..end].copy_from_slice(ins[0]);
            ok(Response::ClEnqueueWriteBuffer(Empty {}))
        }
        Request::ClEnqueueReadBuffer(r) => {
            let b = bufs.get(&r.buffer).cloned().unwrap_or_default();
            let s = r.offset as usize;
            let data = b[s..s + r.size as usize].to_vec();
            (Outcome::Ok(Response::ClEnqueueReadBuffer(Empty {})), data)
        }
        other => panic!("unexpected request {other:?}"),
    }
}

/// True if `s` has bytes to read within `ms` milliseconds.
fn readable(s: &UnixStream, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid, initialised pollfd that outlives the call.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// Serves one connection; `silent` stops answering after the session opens.
fn serve(mut s: UnixStream, seen: Arc<Mutex<Seen>>, silent: bool) {
    let mut bufs = HashMap::new();
    loop {
        let mut head = [0u8; RECORD_HEADER_LEN];
        if s.read_exact(&mut head).is_err() {
            return;
        }
        let h = RecordHeader::decode(&head, Direction::Request).unwrap();
        let mut body = vec![0u8; h.len as usize];
        s.read_exact(&mut body).unwrap();
        let frames = decode_request_record(&h, &body).unwrap();
        let asyncs = frames
            .iter()
            .filter(|f| f.frame.header.flags & FLAG_ASYNC != 0)
            .count();
        let opened = !seen.lock().unwrap().records.is_empty();
        if silent && opened {
            thread::sleep(Duration::from_secs(30));
            return;
        }
        // Give a pipelining client the chance to send its next record first.
        if readable(&s, 50) {
            seen.lock().unwrap().overlapped += 1;
        }
        seen.lock().unwrap().records.push((frames.len(), asyncs));
        let mut out = Vec::new();
        let mut rec = ResponseRecord::begin(&mut out, h.queue);
        for f in &frames {
            let req = decode_request(&f.frame, PROTOCOL_VERSION).unwrap();
            let (outcome, data) = answer(req, &f.input, &mut bufs);
            let mut frame = Vec::new();
            encode_response(
                &mut frame,
                f.frame.header.request_id,
                f.frame.header.opcode,
                &outcome,
            );
            let segs: Vec<&[u8]> = f.output.iter().map(|_| data.as_slice()).collect();
            assert!(rec.push(&mut out, &frame, &segs));
        }
        rec.finish(&mut out).unwrap();
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

fn server(path: &Path, silent: bool) -> Arc<Mutex<Seen>> {
    let l = UnixListener::bind(path).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            serve(s, s2, silent);
        }
    });
    seen
}

fn opts(timeout: Duration) -> Options {
    Options {
        timeout,
        ..Options::default()
    }
}

fn connect(path: &Path) -> Client {
    let t = StreamTransport::connect_unix(path, &opts(Duration::from_secs(20))).unwrap();
    Client::with_transport(Box::new(t)).unwrap()
}

fn set_arg(kernel: u64) -> Request {
    Request::ClSetKernelArg(SetKernelArg {
        kernel,
        index: 0,
        arg: KernelArg::Bytes(vec![1, 2, 3, 4]),
    })
}

fn common() -> EnqueueCommon {
    EnqueueCommon {
        queue: 1,
        wait: vec![],
        event: None,
    }
}

#[test]
fn fire_and_forget_calls_share_one_record_and_errors_are_sticky() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let seen = server(&path, false);
    let c = connect(&path);
    for _ in 0..40 {
        c.post(set_arg(7), &[]).unwrap();
    }
    c.call(Request::ClFinish(QueueOp { queue: 1 }), &[], &mut [])
        .unwrap();
    // One failing fire-and-forget call: its error surfaces at the next sync.
    c.post(set_arg(0), &[]).unwrap();
    c.post(set_arg(7), &[]).unwrap();
    let r = c.call(Request::ClFinish(QueueOp { queue: 1 }), &[], &mut []);
    assert!(
        matches!(r, Err(CallError::Native(CL_INVALID_KERNEL))),
        "{r:?}"
    );
    c.ping().unwrap();
    let s = seen.lock().unwrap();
    // Open, then 40 async + finish, then 2 async + finish, then ping.
    assert_eq!(s.records[1..4], [(41, 40), (3, 2), (1, 0)]);
}

#[test]
fn pipelined_transfers_keep_records_in_flight_and_return_data_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let seen = server(&path, false);
    let c = connect(&path);
    let chunk = c.pipeline_chunk().expect("the stream transport pipelines");
    let data: Vec<u8> = (0..6 * chunk).map(|i| (i * 31 + i / 977) as u8).collect();
    c.call_pipelined(data.chunks(chunk).enumerate().map(|(i, piece)| Piece {
        req: Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
            common: common(),
            buffer: 5,
            offset: (i * chunk) as u64,
            size: piece.len() as u64,
        }),
        bulk_in: Some(piece),
        bulk_out: None,
    }))
    .unwrap();
    let mut back = vec![0u8; data.len()];
    c.call_pipelined(back.chunks_mut(chunk).enumerate().map(|(i, piece)| Piece {
        req: Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
            common: common(),
            buffer: 5,
            offset: (i * chunk) as u64,
            size: piece.len() as u64,
        }),
        bulk_in: None,
        bulk_out: Some(piece),
    }))
    .unwrap();
    assert!(back == data, "data read back differs");
    assert!(
        seen.lock().unwrap().overlapped >= 4,
        "records were not pipelined"
    );
}

#[test]
fn a_vanished_or_silent_server_fails_the_call() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listening.
    let r =
        StreamTransport::connect_unix(&dir.path().join("none.sock"), &opts(Duration::from_secs(1)));
    assert!(matches!(r, Err(TransportError::Connect { .. })));

    // A server that stops answering: the call fails after the timeout.
    let path = dir.path().join("silent.sock");
    let _seen = server(&path, true);
    let t = StreamTransport::connect_unix(&path, &opts(Duration::from_millis(300))).unwrap();
    let c = Client::with_transport(Box::new(t)).unwrap();
    let start = Instant::now();
    let r = c.ping();
    assert!(
        matches!(
            &r,
            Err(CallError::Transport(TransportError::Disconnected(why)))
                if matches!(**why, LinkError::NoAnswer { .. })
        ),
        "{r:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    // The stream is out of step now: later calls fail at once.
    assert!(c.ping().is_err());
}
