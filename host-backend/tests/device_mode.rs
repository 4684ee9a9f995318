//! Device mode end to end: a VMM-like frontend and an emulated guest
//! driver ([`frontend::device`]) drive the daemon's virtio-compute device,
//! several guest sessions on one connection.
//!
//! The in-process server with a fake executor checks the device's rules
//! (config space, sessions, hostile chains); the real daemon binary (its
//! supervisor and a sandboxed worker) on POCL runs verified OpenCL work in
//! two sessions at once, with segments split over several descriptors, and
//! ends sessions stuck in a wait by Close and by device reset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod frontend;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{have_native_opencl, Daemon};
use frontend::*;
use protocol::device::{
    DeviceConfig, DeviceHeader, DeviceOp, DeviceStatus, API_OPENCL, CONFIG_LEN, DEVICE_HEADER_LEN,
    MAX_DEVICE_HEADER_LEN, STATUS_LEN,
};
use protocol::opencl::*;
use protocol::{Outcome, ProtocolError, Request, Response, PROTOCOL_VERSION};
use vhost::vhost_user::message::VhostUserConfigFlags;
use vhost::vhost_user::VhostUserFrontend;
use vhost_device_compute::config::ServerConfig;
use vhost_device_compute::limits::session_limits;
use vhost_device_compute::listen::StopHandle;
use vhost_device_compute::server::Server;

/// The in-process server in device mode, with the fake executor.
struct Running {
    factory: Arc<FakeFactory>,
    stop: StopHandle,
    thread: Option<JoinHandle<()>>,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(max_sessions: usize) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("device.sock");
        let factory = Arc::new(FakeFactory::default());
        let server = Server::bind(
            ServerConfig {
                socket: Some(socket.clone()),
                listen: None,
                vsock: None,
                device: true,
                max_sessions,
                limits: session_limits(1000, 0),
                poll: Duration::from_micros(50),
            },
            factory.clone(),
        )
        .unwrap();
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run().unwrap());
        Running {
            factory,
            stop,
            thread: Some(thread),
            socket,
            _dir: dir,
        }
    }

    fn guest(&self) -> TestGuest {
        TestGuest::connect_device(&self.socket).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn ping() -> Request {
    Request::Ping(Empty {})
}

fn pong() -> Outcome {
    Outcome::Ok(Response::Ping(Empty {}))
}

/// A session opened and negotiated; `Ping` answers in it.
fn ready_session(g: &mut TestGuest) -> u32 {
    let id = g.dev_open();
    g.dev_session_open(id);
    assert_eq!(g.dev_requests(1, id, &[ping()]), vec![pong()]);
    id
}

fn read_config(g: &mut TestGuest, offset: u32, size: u32) -> vhost::Result<Vec<u8>> {
    let buf = vec![0u8; size as usize];
    g.frontend
        .get_config(offset, size, VhostUserConfigFlags::WRITABLE, &buf)
        .map(|(_, payload)| payload.to_vec())
}

#[test]
fn config_space_is_read_only_and_the_device_serves_on() {
    let srv = Running::start(7);
    let mut g = srv.guest();
    let bytes = read_config(&mut g, 0, CONFIG_LEN as u32).unwrap();
    let config = DeviceConfig::decode(&bytes).unwrap();
    assert_eq!(
        config,
        DeviceConfig {
            num_request_queues: 1,
            max_sessions: 7,
            api_families: API_OPENCL,
            protocol_version: u32::from(PROTOCOL_VERSION),
        }
    );
    assert_eq!(read_config(&mut g, 4, 4).unwrap(), 7u32.to_le_bytes());
    // A forged write is refused: ignored, the config stays as it was, and
    // the connection and its sessions carry on.
    let before = ready_session(&mut g);
    let forged = 1000u32.to_le_bytes();
    g.frontend
        .set_config(4, VhostUserConfigFlags::WRITABLE, &forged)
        .unwrap();
    assert_eq!(read_config(&mut g, 4, 4).unwrap(), 7u32.to_le_bytes());
    assert_eq!(g.dev_requests(1, before, &[ping()]), vec![pong()]);
    let id = ready_session(&mut g);
    assert_eq!(g.dev_close(id), DeviceStatus::Ok);
    // Reads past the fields are zeros.
    assert_eq!(
        read_config(&mut g, 12, 8).unwrap(),
        [PROTOCOL_VERSION as u8, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(read_config(&mut g, 200, 100).unwrap(), vec![0; 100]);
    assert_eq!(g.dev_requests(1, before, &[ping()]), vec![pong()]);
}

#[test]
fn a_driver_that_never_reads_the_config_is_served() {
    let srv = Running::start(4);
    let mut g = srv.guest();
    let id = ready_session(&mut g);
    assert_eq!(
        srv.factory.live.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(g.dev_close(id), DeviceStatus::Ok);
    assert!(wait_until(|| srv
        .factory
        .live
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0));
}

/// Sessions are fresh, bounded, and end with Close; a request names only
/// an open session; Open and Close belong on the control queue.
#[test]
fn sessions_are_fresh_bounded_and_checked() {
    let srv = Running::start(2);
    let mut g = srv.guest();
    let a = ready_session(&mut g);
    let b = ready_session(&mut g);
    assert_ne!(a, b);
    assert_eq!(
        g.dev_op(0, DeviceOp::Open, 0).status,
        DeviceStatus::TooManySessions
    );
    assert_eq!(
        g.dev_op(1, DeviceOp::Open, 0).status,
        DeviceStatus::WrongQueue
    );
    assert_eq!(
        g.dev_op(1, DeviceOp::Close, a).status,
        DeviceStatus::WrongQueue
    );
    // A chain naming a session that is not open runs nothing.
    for id in [0, b + 1, u32::MAX] {
        let chain = g.dev_chain(1, id, &[FrameSpec::plain(ping())], 1, 4096);
        let out = g.dev_submit(1, &chain, false).unwrap();
        assert_eq!(out.status.status, DeviceStatus::UnknownSession, "{id}");
        assert!(out.outcomes.is_empty());
    }
    assert_eq!(g.dev_close(a), DeviceStatus::Ok);
    assert_eq!(g.dev_close(a), DeviceStatus::UnknownSession);
    let chain = g.dev_chain(1, a, &[FrameSpec::plain(ping())], 1, 4096);
    assert_eq!(
        g.dev_submit(1, &chain, false).unwrap().status.status,
        DeviceStatus::UnknownSession
    );
    // The freed slot is reusable, its id is not.
    let c = g.dev_open();
    assert!(c != a && c != b);
    assert_eq!(g.dev_requests(1, b, &[ping()]), vec![pong()]);
    // A session's frames stay in it: c has not negotiated yet.
    assert_eq!(
        g.dev_requests(1, c, &[Request::ClGetPlatformIds(Empty {})]),
        vec![Outcome::Protocol(ProtocolError::NoSession)]
    );
    assert_eq!(
        g.dev_requests(1, b, &[Request::ClGetPlatformIds(Empty {})]),
        vec![Outcome::Ok(Response::ClGetPlatformIds(HandleList {
            handles: vec![7]
        }))]
    );
}

/// Expects `chain` on queue 1 to be refused as `BadChain` with nothing run.
fn expect_bad_chain(g: &mut TestGuest, what: &str, chain: &frontend::device::DevChain) {
    let out = g
        .dev_submit(1, chain, false)
        .unwrap_or_else(|| panic!("{what}: never completed"));
    assert_eq!(out.status.status, DeviceStatus::BadChain, "{what}: {out:?}");
    assert_eq!(out.used, STATUS_LEN as u32, "{what}");
    assert!(out.outcomes.is_empty(), "{what}");
}

#[test]
fn a_hostile_driver_gets_bad_chain_and_other_sessions_carry_on() {
    let srv = Running::start(4);
    let mut g = srv.guest();
    let victim = ready_session(&mut g);
    let id = ready_session(&mut g);
    let frames = [FrameSpec {
        req: Request::ClGetPlatformIds(Empty {}),
        flags: 0,
        input: vec![vec![1, 2, 3, 4, 5, 6]],
        output: vec![8],
    }];
    let good = g.dev_chain(1, id, &frames, 2, 4096);
    let calls_before = srv.factory.requests.lock().unwrap().len();

    // Descriptors outside guest memory: request, in-bulk, response, out-bulk.
    for (i, what) in [
        (1, "request"),
        (3, "in-bulk"),
        (6, "response"),
        (8, "out-bulk"),
    ] {
        let mut c = good.clone();
        c.descs[i].0 = MEM_SIZE + 0x1000;
        expect_bad_chain(&mut g, what, &c);
        let mut c = good.clone();
        c.descs[i].0 = MEM_SIZE - 2;
        c.descs[i].1 = 0x1000;
        expect_bad_chain(&mut g, &format!("{what} straddling the end"), &c);
    }
    // A header outside memory, or too long to be one.
    let mut c = good.clone();
    c.descs[0].0 = MEM_SIZE;
    expect_bad_chain(&mut g, "header outside memory", &c);
    let mut c = good.clone();
    c.descs[0].1 = (MAX_DEVICE_HEADER_LEN + 2) as u32;
    expect_bad_chain(&mut g, "overlong header", &c);
    // A short or corrupt header.
    for (what, bytes) in [
        (
            "short header",
            good.header.encode()[..DEVICE_HEADER_LEN - 2].to_vec(),
        ),
        ("bad magic", {
            let mut b = good.header.encode();
            b[0] ^= 0xff;
            b
        }),
        ("unknown op", {
            let mut b = good.header.encode();
            b[4] = 9;
            b
        }),
        ("flags set", {
            let mut b = good.header.encode();
            b[6] = 1;
            b
        }),
    ] {
        let mut c = good.clone();
        g.write_header(1, &bytes);
        c.descs[0].1 = bytes.len() as u32;
        expect_bad_chain(&mut g, what, &c);
    }
    // A status descriptor of the wrong size, or read-only.
    g.write_header(1, &good.header.encode());
    let mut c = good.clone();
    c.descs[5].1 = STATUS_LEN as u32 - 1;
    assert_eq!(g.submit(1, &c.descs), Some(0), "a short status was written");
    let mut c = good.clone();
    c.descs[5].2 = false;
    g.write_header(1, &c.header.encode());
    assert_eq!(g.submit(1, &c.descs), Some(0));
    // Tables that do not match the chain.
    for (what, table, req, resp) in [
        ("segment too long", vec![3, 2], 2, 2),
        ("segment too short", vec![1, 2], 2, 2),
        ("missing segment", vec![2], 2, 2),
        ("extra segment", vec![2, 2, 1], 2, 2),
        ("request area too long", vec![2, 2], 3, 2),
        ("response area too long", vec![2, 2], 2, 3),
        ("response area too short", vec![2, 2], 2, 1),
    ] {
        let h = DeviceHeader {
            table,
            req_descs: req,
            resp_descs: resp,
            ..good.header.clone()
        };
        g.write_header(1, &h.encode());
        let mut c = good.clone();
        c.descs[0].1 = h.encode().len() as u32;
        expect_bad_chain(&mut g, what, &c);
    }
    // A readable descriptor among the writable ones.
    let mut c = good.clone();
    g.write_header(1, &c.header.encode());
    c.descs[7].2 = false;
    expect_bad_chain(&mut g, "readable after writable", &c);
    // A chain of only a header.
    g.write_header(1, &good.header.encode());
    assert_eq!(g.submit(1, &good.descs[..1]), Some(0));
    // Open and Close on the request queue, a forged session, a header
    // naming the victim from another queue position: refused or run in the
    // victim's own session only.
    assert_eq!(
        g.dev_op(1, DeviceOp::Open, 0).status,
        DeviceStatus::WrongQueue
    );
    assert_eq!(
        g.dev_op(1, DeviceOp::Close, victim).status,
        DeviceStatus::WrongQueue
    );
    assert_eq!(
        srv.factory.requests.lock().unwrap().len(),
        calls_before,
        "a refused chain reached the executor"
    );
    // Frames that do not match a matching chain: a protocol error, as in
    // direct mode.
    let mut lying = frames.clone();
    lying[0].input.clear();
    let c = g.dev_chain(1, id, &lying, 1, 4096);
    let mut h = c.header.clone();
    h.table.insert(0, 1);
    g.write_header(1, &h.encode());
    let mut c2 = c.clone();
    c2.descs[0].1 = h.encode().len() as u32;
    c2.descs.insert(2, (BULK_AREA, 4, false));
    let out = g.dev_submit(1, &c2, false).unwrap();
    assert_eq!(out.status.status, DeviceStatus::Ok);
    assert!(matches!(
        out.outcomes[..],
        [(_, Outcome::Protocol(ProtocolError::BadDescriptor))]
    ));

    // Through all of it the good chain, and both sessions, still work.
    g.write_header(1, &good.header.encode());
    let out = g.dev_submit(1, &good, false).unwrap();
    assert_eq!(out.status.status, DeviceStatus::Ok, "{out:?}");
    assert_eq!(g.dev_requests(1, victim, &[ping()]), vec![pong()]);
    assert_eq!(g.dev_requests(1, id, &[ping()]), vec![pong()]);
    drop(g);
    // The device's connection still takes new guests.
    let mut g = srv.guest();
    ready_session(&mut g);
}

#[test]
fn reset_and_disconnect_free_every_session() {
    let srv = Running::start(4);
    let live = || srv.factory.live.load(std::sync::atomic::Ordering::SeqCst);
    let mut g = srv.guest();
    let a = ready_session(&mut g);
    ready_session(&mut g);
    assert_eq!(live(), 2);
    g.frontend.reset_device().unwrap();
    assert!(wait_until(|| live() == 0), "a reset left sessions open");
    g.reinit().unwrap();
    assert_eq!(
        g.dev_op(0, DeviceOp::Close, a).status,
        DeviceStatus::UnknownSession
    );
    let c = ready_session(&mut g);
    assert!(c > a, "an id was reused after a reset");
    assert_eq!(live(), 1);
    drop(g);
    assert!(
        wait_until(|| live() == 0),
        "a disconnect left sessions open"
    );
}

#[test]
fn indirect_chains_longer_than_the_ring_are_followed() {
    let srv = Running::start(4);
    let mut g = srv.guest();
    let id = ready_session(&mut g);
    let frames = [FrameSpec {
        req: Request::ClGetPlatformIds(Empty {}),
        flags: 0,
        input: vec![vec![9u8; 1000]],
        output: vec![700],
    }];
    // 2 + 5 request pieces + 300 + 300 ... more than QSIZE descriptors.
    let chain = g.dev_chain(1, id, &frames, 300, 8192);
    assert!(chain.descs.len() > usize::from(QSIZE));
    let out = g.dev_submit(1, &chain, true).unwrap();
    assert_eq!(out.status.status, DeviceStatus::Ok, "{out:?}");
    assert_eq!(
        out.outcomes[0].1,
        Outcome::Ok(Response::ClGetPlatformIds(HandleList { handles: vec![7] }))
    );
    // The fake executor writes nothing: the out-segment comes back zeroed,
    // not with the driver's garbage or another chain's bytes.
    assert_eq!(out.data, vec![vec![0u8; 700]]);
    assert_eq!(
        out.used,
        STATUS_LEN as u32 + out.status.response_len,
        "{out:?}"
    );
}

// ---------------------------------------------------------------------
// The real daemon on POCL.

const VADD: &str = "__kernel void vadd(__global const float *a, __global const float *b,
                                       __global float *c, uint n) {
    size_t i = get_global_id(0);
    if (i < n) c[i] = a[i] + b[i];
}";

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

fn ok_all(out: &[Outcome], what: &str) {
    assert!(
        out.iter().all(|o| matches!(o, Outcome::Ok(_))),
        "{what}: {out:?}"
    );
}

fn common(event: Option<Handle>) -> EnqueueCommon {
    EnqueueCommon {
        queue: 2,
        wait: vec![],
        event,
    }
}

/// In session `id`: context 1 and queue 2 on the first device, and (with
/// `program`) the vadd kernel 4 built; returns the device.
fn cl_setup(g: &mut TestGuest, id: u32, program: bool) -> Handle {
    let platform = match &g.dev_requests(1, id, &[Request::ClGetPlatformIds(Empty {})])[..] {
        [Outcome::Ok(Response::ClGetPlatformIds(l))] => l.handles[0],
        other => panic!("platforms: {other:?}"),
    };
    let device = match &g.dev_requests(
        1,
        id,
        &[Request::ClGetDeviceIds(GetDeviceIds {
            platform,
            device_type: u64::from(u32::MAX),
        })],
    )[..]
    {
        [Outcome::Ok(Response::ClGetDeviceIds(l))] => l.handles[0],
        other => panic!("devices: {other:?}"),
    };
    let mut reqs = vec![
        Request::ClCreateContext(CreateContext {
            id: 1,
            properties: vec![],
            devices: vec![device],
        }),
        Request::ClCreateCommandQueue(CreateCommandQueue {
            id: 2,
            context: 1,
            device,
            properties: vec![],
        }),
    ];
    if program {
        reqs.extend([
            Request::ClCreateProgramWithSource(CreateProgramWithSource {
                id: 3,
                context: 1,
                source: VADD.into(),
            }),
            Request::ClBuildProgram(BuildProgram {
                program: 3,
                devices: vec![device],
                options: String::new(),
                headers: Default::default(),
            }),
            Request::ClCreateKernel(CreateKernel {
                id: 4,
                program: 3,
                name: "vadd".into(),
            }),
        ]);
    }
    let out = g.dev_requests(1, id, &reqs);
    ok_all(&out, "setup");
    device
}

/// One vector add of `n` floats in session `id` (set up by `cl_setup`),
/// every area and segment split over up to `split` descriptors, as one
/// batch: write a and b, run, read c. Returns c.
fn vadd(g: &mut TestGuest, id: u32, n: usize, seed: f32, split: usize, indirect: bool) {
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.37 + seed).collect();
    let b: Vec<f32> = (0..n).map(|i| (n - i) as f32 * 1.13 - seed).collect();
    let bytes = (n * 4) as u64;
    let create: Vec<FrameSpec> = (10..13)
        .map(|h| {
            FrameSpec::plain(Request::ClCreateBuffer(CreateBuffer {
                id: h,
                context: 1,
                flags: 1,
                size: bytes,
            }))
        })
        .collect();
    let out = g.dev_frames(1, id, &create);
    ok_all(
        &out.outcomes.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
        "buffers",
    );
    let mut frames = vec![
        FrameSpec {
            req: Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
                common: common(None),
                buffer: 10,
                offset: 0,
                size: bytes,
            }),
            flags: 0,
            input: vec![floats(&a)],
            output: vec![],
        },
        FrameSpec {
            req: Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
                common: common(None),
                buffer: 11,
                offset: 0,
                size: bytes,
            }),
            flags: 0,
            input: vec![floats(&b)],
            output: vec![],
        },
    ];
    for (i, m) in [10, 11, 12].into_iter().enumerate() {
        frames.push(FrameSpec::plain(Request::ClSetKernelArg(SetKernelArg {
            kernel: 4,
            index: i as u32,
            arg: KernelArg::Mem(m),
        })));
    }
    frames.push(FrameSpec::plain(Request::ClSetKernelArg(SetKernelArg {
        kernel: 4,
        index: 3,
        arg: KernelArg::Bytes((n as u32).to_le_bytes().to_vec()),
    })));
    frames.push(FrameSpec::plain(Request::ClEnqueueNdRange(
        EnqueueNdRange {
            common: common(None),
            kernel: 4,
            offset: vec![],
            global: vec![n as u64],
            local: vec![],
        },
    )));
    frames.push(FrameSpec::plain(Request::ClFinish(QueueOp { queue: 2 })));
    frames.push(FrameSpec {
        req: Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
            common: common(None),
            buffer: 12,
            offset: 0,
            size: bytes,
        }),
        flags: 0,
        input: vec![],
        output: vec![bytes as u32],
    });
    let chain = g.dev_chain(1, id, &frames, split, 0x1_0000);
    let out = g
        .dev_finish_after_post(&chain, indirect)
        .expect("vector add answered");
    assert_eq!(out.status.status, DeviceStatus::Ok, "{out:?}");
    ok_all(
        &out.outcomes
            .iter()
            .map(|(_, o)| o.clone())
            .collect::<Vec<_>>(),
        "vector add",
    );
    assert_eq!(out.outcomes.len(), frames.len());
    let expect = floats(&a.iter().zip(&b).map(|(x, y)| x + y).collect::<Vec<_>>());
    assert_eq!(
        out.data,
        vec![expect],
        "session {id}: wrong sum (split {split})"
    );
    // Free the buffers for the next round.
    let release: Vec<Request> = (10..13)
        .map(|h| {
            Request::ClRelease(Release {
                kind: ObjectKind::MemObject,
                object: h,
            })
        })
        .collect();
    ok_all(&g.dev_requests(1, id, &release), "release");
}

trait PostFinish {
    fn dev_finish_after_post(
        &mut self,
        chain: &frontend::device::DevChain,
        indirect: bool,
    ) -> Option<frontend::device::DevOutcome>;
}

impl PostFinish for TestGuest {
    fn dev_finish_after_post(
        &mut self,
        chain: &frontend::device::DevChain,
        indirect: bool,
    ) -> Option<frontend::device::DevOutcome> {
        self.dev_post(1, chain, indirect);
        self.dev_finish(1, chain, Duration::from_secs(60))
    }
}

fn scrape(path: &Path) -> String {
    let mut c = UnixStream::connect(path).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    c.read_to_string(&mut page).unwrap();
    page.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// The open sessions the supervisor shows for its one device worker.
fn open_sessions(metrics: &Path) -> Option<u64> {
    scrape(metrics)
        .lines()
        .find(|l| l.starts_with("vcompute_worker_open_sessions{") && l.contains("kind=\"device\""))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_sessions_add_vectors_on_pocl_through_one_device() {
    if !have_native_opencl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.sock");
    let m = format!("unix:{}", metrics.display());
    let mut daemon = Daemon::start(&["--device", "--max-sessions", "4", "--metrics", &m]);
    let mut g = TestGuest::connect_device(daemon.socket()).unwrap();
    let config = DeviceConfig::decode(&read_config(&mut g, 0, CONFIG_LEN as u32).unwrap()).unwrap();
    assert_eq!(config.max_sessions, 4);
    assert_eq!(config.api_families & API_OPENCL, API_OPENCL);
    let a = ready_session(&mut g);
    let b = ready_session(&mut g);
    eventually("the metrics never showed two open sessions", || {
        open_sessions(&metrics) == Some(2)
    });
    cl_setup(&mut g, a, true);
    cl_setup(&mut g, b, true);
    // Interleaved: the same handles in both sessions name different
    // objects; in place (one descriptor a segment) and split over several
    // descriptors, through the ring and through indirect tables.
    for (round, (split, indirect)) in [(1, false), (3, false), (7, true), (1, true)]
        .into_iter()
        .enumerate()
    {
        let n = 4096 + round * 1000;
        vadd(&mut g, a, n, 1.5 + round as f32, split, indirect);
        vadd(&mut g, b, n + 17, -2.25 * round as f32, split, indirect);
    }
    assert_eq!(g.dev_close(a), DeviceStatus::Ok);
    assert_eq!(g.dev_close(b), DeviceStatus::Ok);
    eventually("the metrics never showed the sessions closed", || {
        open_sessions(&metrics) == Some(0)
    });
    daemon.assert_alive();
}

/// In session `id`: context 1 with user event 5, and a wait on it posted
/// on the request queue, which only this session could end.
fn post_wait_on_own_event(g: &mut TestGuest, id: u32) -> frontend::device::DevChain {
    let platform = match &g.dev_requests(1, id, &[Request::ClGetPlatformIds(Empty {})])[..] {
        [Outcome::Ok(Response::ClGetPlatformIds(l))] => l.handles[0],
        other => panic!("platforms: {other:?}"),
    };
    let device = match &g.dev_requests(
        1,
        id,
        &[Request::ClGetDeviceIds(GetDeviceIds {
            platform,
            device_type: u64::from(u32::MAX),
        })],
    )[..]
    {
        [Outcome::Ok(Response::ClGetDeviceIds(l))] => l.handles[0],
        other => panic!("devices: {other:?}"),
    };
    let setup = [
        Request::ClCreateContext(CreateContext {
            id: 1,
            properties: vec![],
            devices: vec![device],
        }),
        Request::ClCreateUserEvent(CreateUserEvent { id: 5, context: 1 }),
    ];
    ok_all(&g.dev_requests(1, id, &setup), "wait setup");
    let wait = Request::ClWaitForEvents(WaitForEvents { events: vec![5] });
    let chain = g.dev_chain(1, id, &[FrameSpec::plain(wait)], 1, 4096);
    g.dev_post(1, &chain, false);
    assert!(
        g.wait_used(1, Duration::from_millis(300)).is_none(),
        "the wait ended by itself"
    );
    chain
}

#[test]
fn close_and_reset_end_sessions_stuck_in_a_wait() {
    if !have_native_opencl() {
        return;
    }
    let mut daemon = Daemon::start(&["--device", "--max-sessions", "4"]);
    let mut g = TestGuest::connect_device(daemon.socket()).unwrap();
    let other = ready_session(&mut g);

    // Close on the control queue ends a session whose request waits on
    // the request queue.
    let stuck = ready_session(&mut g);
    let chain = post_wait_on_own_event(&mut g, stuck);
    assert_eq!(g.dev_close(stuck), DeviceStatus::Ok);
    let out = g
        .dev_finish(1, &chain, Duration::from_secs(10))
        .expect("the stuck request never completed after Close");
    assert_eq!(out.status.session, stuck);
    assert_eq!(g.dev_requests(1, other, &[ping()]), vec![pong()]);
    let chain = g.dev_chain(1, stuck, &[FrameSpec::plain(ping())], 1, 4096);
    assert_eq!(
        g.dev_submit(1, &chain, false).unwrap().status.status,
        DeviceStatus::UnknownSession,
        "a closed session still answered"
    );

    // A device reset while a request waits: the request completes, every
    // session is gone, and the re-initialised device serves again.
    let stuck = ready_session(&mut g);
    let chain = post_wait_on_own_event(&mut g, stuck);
    g.frontend.reset_device().unwrap();
    assert!(
        g.dev_finish(1, &chain, Duration::from_secs(10)).is_some(),
        "the stuck request never completed after the reset"
    );
    g.reinit().unwrap();
    assert_eq!(
        g.dev_op(0, DeviceOp::Close, other).status,
        DeviceStatus::UnknownSession
    );
    let fresh = ready_session(&mut g);
    assert!(fresh > stuck);
    cl_setup(&mut g, fresh, true);
    vadd(&mut g, fresh, 1024, 0.5, 2, false);
    daemon.assert_alive();

    // A guest that goes while a request waits frees the worker: with one
    // connection slot, the next VM is served.
    drop(g);
    let mut daemon2 = Daemon::start(&["--device", "--max-sessions", "1"]);
    {
        let mut g = TestGuest::connect_device(daemon2.socket()).unwrap();
        let id = ready_session(&mut g);
        post_wait_on_own_event(&mut g, id);
    }
    assert!(
        wait_until(|| TestGuest::connect_device(daemon2.socket())
            .ok()
            .is_some_and(|mut g| {
                let id = g.dev_op(0, DeviceOp::Open, 0);
                id.status == DeviceStatus::Ok
            })),
        "the device of a departed VM was never freed"
    );
    daemon2.assert_alive();
}
