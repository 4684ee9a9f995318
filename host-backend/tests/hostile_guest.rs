//! A hostile guest on the real daemon: malformed frames, descriptors outside
//! its memory, oversized lengths and forged handles each get an error, the
//! daemon stays up, and a second session running real OpenCL work at the
//! same time gets exactly the native results.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod frontend;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use frontend::{wait_until, TestGuest, REQ_AREA, RESP_AREA, RESP_LEN};
use protocol::limits::MAX_INFO_LEN;
use protocol::opencl::*;
use protocol::session::{FEATURE_BATCH, FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::stream::{
    decode_response_record, encode_request_record, Direction, RecordHeader, RECORD_HEADER_LEN,
};
use protocol::{
    encode_request, FrameIter, Outcome, ProtocolError, QueueClass, Request, Response, SessionOpen,
};
use vm_memory::{Bytes, GuestAddress};

const CL_INVALID_DEVICE: i32 = -33;
const CL_INVALID_COMMAND_QUEUE: i32 = -36;
const CL_INVALID_MEM_OBJECT: i32 = -38;
const CL_INVALID_PROGRAM: i32 = -44;

/// The first response frame in the response area, if any was written.
fn first_outcome(g: &TestGuest, used: u32) -> Option<Outcome> {
    let mut resp = vec![0u8; used as usize];
    g.mem
        .read_slice(&mut resp, GuestAddress(RESP_AREA))
        .unwrap();
    let frame = FrameIter::new(&resp).next()?.ok()?;
    protocol::decode_response(&frame).ok()
}

/// A raw chain must complete (never hang) with either no response or a
/// protocol error.
fn expect_rejected(g: &mut TestGuest, what: &str, descs: &[(u64, u32, bool)]) {
    let used = g
        .submit(1, descs)
        .unwrap_or_else(|| panic!("{what}: the daemon never completed the chain"));
    if used > 0 {
        match first_outcome(g, used) {
            Some(Outcome::Protocol(_)) => {}
            other => panic!("{what}: expected a protocol error, got {other:?}"),
        }
    }
}

fn one(g: &mut TestGuest, req: Request) -> Outcome {
    let mut out = g.call(1, &[req]).expect("no answer");
    assert_eq!(out.len(), 1);
    out.remove(0).1
}

fn native(code: i32) -> Outcome {
    Outcome::Native(code)
}

fn attack_once(g: &mut TestGuest) {
    // Garbage instead of frames.
    let junk: Vec<u8> = (0..256u32).map(|i| (i * 37 + 11) as u8).collect();
    g.mem.write_slice(&junk, GuestAddress(REQ_AREA)).unwrap();
    expect_rejected(
        g,
        "garbage frames",
        &[(REQ_AREA, 256, false), (RESP_AREA, RESP_LEN, true)],
    );
    // A valid frame whose header claims more body than the area holds.
    let mut area = Vec::new();
    encode_request(&mut area, 1, 0, &Request::Ping(Empty {}), 0, 0).unwrap();
    area[24..28].copy_from_slice(&(1u32 << 20).to_le_bytes());
    g.mem.write_slice(&area, GuestAddress(REQ_AREA)).unwrap();
    expect_rejected(
        g,
        "body past the area",
        &[
            (REQ_AREA, area.len() as u32, false),
            (RESP_AREA, RESP_LEN, true),
        ],
    );
    // Request area outside guest memory, and absurdly long.
    expect_rejected(
        g,
        "request area outside memory",
        &[(1 << 40, 64, false), (RESP_AREA, RESP_LEN, true)],
    );
    expect_rejected(
        g,
        "request area of 4 GiB",
        &[(REQ_AREA, u32::MAX, false), (RESP_AREA, RESP_LEN, true)],
    );
    // A frame that names a bulk segment the chain does not carry.
    let mut area = Vec::new();
    let write = Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
        common: EnqueueCommon {
            queue: 1,
            wait: vec![],
            event: None,
        },
        buffer: 2,
        offset: 0,
        size: 64,
    });
    encode_request(&mut area, 2, 0, &write, 1, 0).unwrap();
    g.mem.write_slice(&area, GuestAddress(REQ_AREA)).unwrap();
    expect_rejected(
        g,
        "missing bulk segment",
        &[
            (REQ_AREA, area.len() as u32, false),
            (RESP_AREA, RESP_LEN, true),
        ],
    );
    // A bulk segment outside guest memory.
    expect_rejected(
        g,
        "bulk outside memory",
        &[
            (REQ_AREA, area.len() as u32, false),
            ((1 << 40) - 8, 64, false),
            (RESP_AREA, RESP_LEN, true),
        ],
    );
    // No writable descriptor at all: nothing can be answered, but the chain
    // must still be completed.
    let mut area = Vec::new();
    encode_request(&mut area, 3, 0, &Request::Ping(Empty {}), 0, 0).unwrap();
    g.mem.write_slice(&area, GuestAddress(REQ_AREA)).unwrap();
    assert_eq!(
        g.submit(1, &[(REQ_AREA, area.len() as u32, false)]),
        Some(0)
    );

    // Forged handles: numbers the other session uses, numbers nobody uses.
    for h in [1u64, 2, 3, 0xdead_beef, u64::MAX] {
        assert_eq!(
            one(g, Request::ClFinish(QueueOp { queue: h })),
            native(CL_INVALID_COMMAND_QUEUE)
        );
        assert_eq!(
            one(
                g,
                Request::ClRelease(Release {
                    kind: ObjectKind::MemObject,
                    object: h
                })
            ),
            native(CL_INVALID_MEM_OBJECT)
        );
        assert_eq!(
            one(
                g,
                Request::ClCreateKernel(CreateKernel {
                    id: 900,
                    program: h,
                    name: "vadd".into()
                })
            ),
            native(CL_INVALID_PROGRAM)
        );
    }
    assert_eq!(
        one(
            g,
            Request::ClGetInfo(GetInfo {
                kind: InfoKind::Device,
                object: 777,
                extra: 0,
                param: 0x102B,
                size: 64
            })
        ),
        native(CL_INVALID_DEVICE)
    );
    // Oversized lengths.
    assert_eq!(
        one(
            g,
            Request::ClGetInfo(GetInfo {
                kind: InfoKind::Platform,
                object: 1,
                extra: 0,
                param: 0x0902,
                size: MAX_INFO_LEN + 1
            })
        ),
        Outcome::Protocol(ProtocolError::Malformed)
    );
}

#[test]
fn hostile_guest_gets_errors_and_a_concurrent_session_is_unaffected() {
    if !have_native_opencl() {
        return;
    }
    let mut daemon = Daemon::start(&[]);
    let native_run = run_child(
        child_command("child_conformance", "conformance", &Target::Native),
        Duration::from_secs(120),
    );
    let expected = transcript(&native_run);
    assert!(expected.len() > 20, "native run incomplete: {expected:?}");

    // The attacker keeps going for as long as the honest session runs.
    let done = Arc::new(AtomicBool::new(false));
    let socket = daemon.socket().to_path_buf();
    let attacker = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut g = TestGuest::connect(&socket).expect("attacker connects");
            g.open_session();
            // Its own real objects, to show a huge allocation is refused
            // with the runtime's code and nothing else breaks.
            let platforms = match one(&mut g, Request::ClGetPlatformIds(Empty {})) {
                Outcome::Ok(Response::ClGetPlatformIds(HandleList { handles })) => handles,
                other => panic!("platforms: {other:?}"),
            };
            let devices = match one(
                &mut g,
                Request::ClGetDeviceIds(GetDeviceIds {
                    platform: platforms[0],
                    device_type: u64::from(u32::MAX),
                }),
            ) {
                Outcome::Ok(Response::ClGetDeviceIds(HandleList { handles })) => handles,
                other => panic!("devices: {other:?}"),
            };
            assert_eq!(
                one(
                    &mut g,
                    Request::ClCreateContext(CreateContext {
                        id: 5000,
                        properties: vec![],
                        devices: vec![devices[0]],
                    })
                ),
                Outcome::Ok(Response::ClCreateContext(Empty {}))
            );
            match one(
                &mut g,
                Request::ClCreateBuffer(CreateBuffer {
                    id: 5001,
                    context: 5000,
                    flags: 1,
                    size: 1 << 62,
                }),
            ) {
                Outcome::Native(code) => assert!(code < 0),
                other => panic!("a 4 EiB buffer was not refused: {other:?}"),
            }
            let mut rounds = 0;
            while !done.load(Ordering::SeqCst) || rounds == 0 {
                attack_once(&mut g);
                rounds += 1;
            }
            assert_eq!(g.ping(), Outcome::Ok(Response::Ping(Empty {})));
            rounds
        })
    };

    let honest = run_child(
        child_command("child_conformance", "conformance", &Target::Shim(&daemon)),
        Duration::from_secs(120),
    );
    done.store(true, Ordering::SeqCst);
    let rounds = attacker.join().expect("attacker thread");
    eprintln!("attacker ran {rounds} rounds while the honest session ran");
    assert_eq!(
        transcript(&honest),
        expected,
        "honest session disturbed; stderr:\n{}",
        String::from_utf8_lossy(&honest.stderr)
    );
    daemon.assert_alive();
}

/// Child entry point for the honest session.
#[test]
fn child_conformance() {
    conformance_child();
}

// ---- waits only the departed guest could have ended ----

/// A transport to the daemon: one call of several requests, `None` when
/// no answer came in time.
trait Conn {
    fn call(&mut self, control: bool, reqs: &[Request]) -> Option<Vec<Outcome>>;
}

impl Conn for TestGuest {
    fn call(&mut self, control: bool, reqs: &[Request]) -> Option<Vec<Outcome>> {
        let q = usize::from(!control);
        TestGuest::call(self, q, reqs).map(|v| v.into_iter().map(|(_, o)| o).collect())
    }
}

/// A raw client of the stream listener.
struct StreamClient(UnixStream);

impl StreamClient {
    fn connect(path: &Path) -> Option<Self> {
        let s = UnixStream::connect(path).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        Some(StreamClient(s))
    }
}

impl Conn for StreamClient {
    fn call(&mut self, control: bool, reqs: &[Request]) -> Option<Vec<Outcome>> {
        let mut frames = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            encode_request(&mut frames, i as u64 + 1, 0, r, 0, 0).unwrap();
        }
        let queue = if control {
            QueueClass::Control
        } else {
            QueueClass::Request
        };
        let mut rec = Vec::new();
        encode_request_record(&mut rec, queue, &frames, &[], &[]).unwrap();
        self.0.write_all(&rec).ok()?;
        let mut head = [0u8; RECORD_HEADER_LEN];
        self.0.read_exact(&mut head).ok()?;
        let h = RecordHeader::decode(&head, Direction::Response).ok()?;
        let mut body = vec![0u8; h.len as usize];
        self.0.read_exact(&mut body).ok()?;
        let d = decode_response_record(&h, &body).ok()?;
        Some(
            FrameIter::new(&d.frames)
                .map(|f| protocol::decode_response(&f.unwrap()).unwrap())
                .collect(),
        )
    }
}

fn open_req() -> Request {
    Request::SessionOpen(SessionOpen {
        min_version: 1,
        max_version: PROTOCOL_VERSION,
        features: FEATURE_OPENCL | FEATURE_BATCH,
        client: "stuck".into(),
    })
}

/// True when a session opens over `c` and answers a ping.
fn served(c: Option<impl Conn>) -> bool {
    let Some(mut c) = c else { return false };
    let opened = c.call(true, &[open_req()]);
    matches!(opened.as_deref(), Some([Outcome::Ok(_)]))
        && matches!(
            c.call(false, &[Request::Ping(Empty {})]).as_deref(),
            Some([Outcome::Ok(_)])
        )
}

/// Opens a session and makes context 1 on the first device, together
/// with object 2 from `second` (given that device); asserts that all of
/// it succeeded.
fn context_and(c: &mut impl Conn, second: impl FnOnce(u64) -> Request) {
    assert!(matches!(
        c.call(true, &[open_req()]).as_deref(),
        Some([Outcome::Ok(_)])
    ));
    let platform = match c
        .call(false, &[Request::ClGetPlatformIds(Empty {})])
        .as_deref()
    {
        Some([Outcome::Ok(Response::ClGetPlatformIds(l))]) => l.handles[0],
        other => panic!("platforms: {other:?}"),
    };
    let device = match c
        .call(
            false,
            &[Request::ClGetDeviceIds(GetDeviceIds {
                platform,
                device_type: u64::from(u32::MAX),
            })],
        )
        .as_deref()
    {
        Some([Outcome::Ok(Response::ClGetDeviceIds(l))]) => l.handles[0],
        other => panic!("devices: {other:?}"),
    };
    let setup = [
        Request::ClCreateContext(CreateContext {
            id: 1,
            properties: vec![],
            devices: vec![device],
        }),
        second(device),
    ];
    let out = c.call(false, &setup).expect("setup answered");
    assert!(out.iter().all(|o| matches!(o, Outcome::Ok(_))), "{out:?}");
}

/// Opens a session with a context and a user event, then sends a wait
/// on that event: a wait nothing but a later request of this same guest
/// could end, and the session serves its requests in order. Returns once
/// it is clear that no answer comes.
fn wait_on_own_user_event(c: &mut impl Conn) {
    context_and(c, |_| {
        Request::ClCreateUserEvent(CreateUserEvent { id: 2, context: 1 })
    });
    let wait = Request::ClWaitForEvents(WaitForEvents { events: vec![2] });
    assert!(c.call(false, &[wait]).is_none(), "the wait ended by itself");
}

#[test]
fn a_guest_gone_while_waiting_on_its_own_user_event_frees_its_session() {
    if !have_native_opencl() {
        return;
    }
    // One session slot each: a session that is never freed keeps the
    // next guest out.
    let mut daemon = Daemon::start(&["--max-sessions", "1"]);
    {
        let mut g = TestGuest::connect(daemon.socket()).expect("connect");
        wait_on_own_user_event(&mut g);
    }
    assert!(
        wait_until(|| served(TestGuest::connect(daemon.socket()).ok())),
        "the session of a departed vhost-user guest was never freed"
    );
    daemon.assert_alive();

    let mut daemon = Daemon::start_with_stream(&["--max-sessions", "1"]);
    {
        let mut c = StreamClient::connect(daemon.stream_path()).expect("connect");
        wait_on_own_user_event(&mut c);
    }
    assert!(
        wait_until(|| served(StreamClient::connect(daemon.stream_path()))),
        "the session of a departed stream client was never freed"
    );
    daemon.assert_alive();
}

#[test]
fn sigterm_stops_a_daemon_whose_sessions_wait_forever() {
    if !have_native_opencl() {
        return;
    }
    let mut daemon = Daemon::start_with_stream(&[]);
    let mut g = TestGuest::connect(daemon.socket()).expect("connect");
    wait_on_own_user_event(&mut g);
    let mut c = StreamClient::connect(daemon.stream_path()).expect("connect");
    wait_on_own_user_event(&mut c);
    let status = daemon.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "the daemon did not stop: {status:?}"
    );
    drop((g, c));
}

/// Opens a session with a context and a command queue on the first
/// device (context 1, queue 2).
fn context_and_queue(c: &mut impl Conn) {
    context_and(c, |device| {
        Request::ClCreateCommandQueue(CreateCommandQueue {
            id: 2,
            context: 1,
            device,
            properties: vec![],
        })
    });
}

#[test]
fn failing_a_user_event_behind_markers_does_not_kill_the_daemon() {
    // POCL 3.1 aborts the process when a failed event fails a marker or
    // barrier that no event handle refers to any more; the daemon gets an
    // event for every command and drops the ones the guest did not ask for.
    if !have_native_opencl() {
        return;
    }
    let mut daemon = Daemon::start(&[]);
    let mut g = TestGuest::connect(daemon.socket()).expect("connect");
    context_and_queue(&mut g);
    let common = |wait: Vec<Handle>, event| EnqueueCommon {
        queue: 2,
        wait,
        event,
    };
    let reqs = [
        Request::ClCreateUserEvent(CreateUserEvent { id: 3, context: 1 }),
        Request::ClCreateBuffer(CreateBuffer {
            id: 4,
            context: 1,
            flags: 1,
            size: 4096,
        }),
        // A barrier gated on the user event, its event not asked for.
        Request::ClEnqueueMarker(EnqueueMarker {
            common: common(vec![3], None),
            barrier: true,
        }),
        // A marker whose event the guest asks for and then releases.
        Request::ClEnqueueMarker(EnqueueMarker {
            common: common(vec![3], Some(5)),
            barrier: false,
        }),
        Request::ClRelease(Release {
            kind: ObjectKind::Event,
            object: 5,
        }),
        // Work behind them, and an implicit barrier after it.
        Request::ClEnqueueFillBuffer(EnqueueFillBuffer {
            common: common(vec![], None),
            buffer: 4,
            pattern: vec![7],
            offset: 0,
            size: 4096,
        }),
        Request::ClEnqueueMarker(EnqueueMarker {
            common: common(vec![], None),
            barrier: true,
        }),
        Request::ClFlush(QueueOp { queue: 2 }),
    ];
    let out = g.call(1, &reqs).expect("answered");
    assert!(
        out.iter().all(|(_, o)| matches!(o, Outcome::Ok(_))),
        "{out:?}"
    );
    let fail = Request::ClSetUserEventStatus(SetUserEventStatus {
        event: 3,
        status: -1,
    });
    assert!(matches!(one(&mut g, fail), Outcome::Ok(_)));
    // The failure reaches the commands behind the event; the daemon and
    // the session carry on.
    let _ = one(&mut g, Request::ClFinish(QueueOp { queue: 2 }));
    assert_eq!(g.ping(), Outcome::Ok(Response::Ping(Empty {})));
    daemon.assert_alive();
}
