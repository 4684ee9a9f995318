//! The device against the real daemon binary, driven by the emulated Linux
//! virtio-mmio driver: negotiation, config space, a session, a vector add
//! on POCL, a reset mid-request, and a daemon restart. Each runs against
//! the daemon in device mode (`--device`: the guest driver's device, many
//! sessions, config space over `GET_CONFIG`) and in direct mode (one
//! session per connection, no config space: the device's fallback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod driver;

use std::time::Duration;

use driver::{wait_until, Daemon, Driver};
use protocol::opencl::*;
use protocol::session::{FEATURE_OPENCL, PROTOCOL_VERSION};
use protocol::{Outcome, Request, Response, SessionOpen};
use vmm_plugin::spec::{
    status, DeviceConfig, DeviceStatus, API_OPENCL, CONFIG_LEN, FEATURE_CONFIG, FEATURE_EVENT_IDX,
    FEATURE_VERSION_1,
};
use vmm_plugin::InterruptCause;

/// How the daemon serves the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Direct,
    Device,
}

const MAX_SESSIONS: u32 = 8;

/// The workspace's daemon in `mode`. Its absence is a failure, not a skip:
/// the daemon is built from this workspace.
fn daemon(mode: Mode) -> Daemon {
    let max = MAX_SESSIONS.to_string();
    let args: &[&str] = match mode {
        Mode::Direct => &["--executor", "opencl"],
        Mode::Device => &["--executor", "opencl", "--device", "--max-sessions", &max],
    };
    Daemon::start(args).unwrap_or_else(|why| panic!("no daemon: {why}"))
}

fn connected_driver(d: &Daemon) -> Driver {
    let drv = Driver::new(&d.socket);
    assert!(
        wait_until(Duration::from_secs(10), || drv.dev.connected()),
        "the device never connected to the daemon"
    );
    drv
}

fn up(drv: &mut Driver) {
    let s = drv.init();
    assert_eq!(
        s,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        "driver init failed: status {s:#x}"
    );
}

/// Opens the session (in device mode, first the device session it lives
/// in); returns the features granted.
fn open_session(drv: &mut Driver, mode: Mode) -> u64 {
    if mode == Mode::Device {
        let st = drv.dev_open().expect("no answer to Open");
        assert_eq!(st.status, DeviceStatus::Ok, "{st:?}");
    }
    let out = drv.call(
        0,
        Request::SessionOpen(SessionOpen {
            min_version: 1,
            max_version: PROTOCOL_VERSION,
            features: FEATURE_OPENCL,
            client: "vmm-plugin-test".into(),
        }),
    );
    match out {
        Some(Outcome::Ok(Response::SessionOpen(o))) => {
            assert_eq!(o.version, PROTOCOL_VERSION);
            o.features
        }
        other => panic!(
            "unexpected SessionOpen reply {other:?}; device status {:#x}, rings {}",
            drv.status(),
            drv.ring_state()
        ),
    }
}

fn ping(drv: &mut Driver) -> bool {
    matches!(
        drv.call(1, Request::Ping(Empty {})),
        Some(Outcome::Ok(Response::Ping(_)))
    )
}

fn negotiation_config_and_session(mode: Mode) {
    let d = daemon(mode);
    let mut drv = connected_driver(&d);
    let offered = drv.device_features();
    assert_ne!(offered & FEATURE_VERSION_1, 0);
    assert_ne!(offered & FEATURE_CONFIG, 0);
    // The daemon offers EVENT_IDX; the device passes it through.
    assert_ne!(offered & FEATURE_EVENT_IDX, 0);
    // Nothing past what the spec lists.
    assert_eq!(offered & !vmm_plugin::spec::DEVICE_FEATURES, 0);
    up(&mut drv);
    assert_eq!(
        drv.features,
        offered & (FEATURE_VERSION_1 | FEATURE_CONFIG | FEATURE_EVENT_IDX)
    );
    let config = DeviceConfig::decode(&drv.config()).unwrap();
    assert_eq!(drv.config().len(), CONFIG_LEN);
    match mode {
        // The daemon's own config space, through GET_CONFIG.
        Mode::Device => {
            assert_eq!(config.max_sessions, MAX_SESSIONS, "{config:?}");
            assert_eq!(config.num_request_queues, 1);
            assert_ne!(config.api_families & API_OPENCL, 0);
            assert_eq!(config.protocol_version, u32::from(PROTOCOL_VERSION));
        }
        // A daemon without a config space of its own: the local fallback.
        Mode::Direct => assert_eq!(config, DeviceConfig::CARRIER),
    }
    let granted = open_session(&mut drv, mode);
    assert_ne!(granted & FEATURE_OPENCL, 0, "no OpenCL granted");
    assert!(ping(&mut drv));
    assert!(drv.host.count(InterruptCause::UsedBuffer) >= 2);
}

fn notify_through_an_ioeventfd(mode: Mode) {
    let d = daemon(mode);
    let mut drv = Driver::with_ioeventfd(&d.socket);
    assert!(wait_until(Duration::from_secs(10), || drv.dev.connected()));
    up(&mut drv);
    open_session(&mut drv, mode);
    assert!(ping(&mut drv));
}

const VADD: &str = "__kernel void vadd(__global const float *a, __global const float *b,
                                       __global float *c, uint n) {
    size_t i = get_global_id(0);
    if (i < n) c[i] = a[i] + b[i];
}";
const CTX: Handle = 1;
const QUEUE: Handle = 2;
const CL_MEM_READ_WRITE: u64 = 1;
const CL_DEVICE_TYPE_ALL: u64 = 0xffff_ffff;
const CL_CONTEXT_PLATFORM: u64 = 0x1084;

fn ok(drv: &mut Driver, req: Request) -> Response {
    let what = format!("{:?}", req.opcode());
    match drv.call(1, req) {
        Some(Outcome::Ok(r)) => r,
        other => panic!("{what}: {other:?}"),
    }
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// A vector add through the device; checks the result bit for bit.
fn vector_add(drv: &mut Driver) {
    let p = match ok(drv, Request::ClGetPlatformIds(Empty {})) {
        Response::ClGetPlatformIds(l) => l.handles[0],
        r => panic!("{r:?}"),
    };
    let dev = match ok(
        drv,
        Request::ClGetDeviceIds(GetDeviceIds {
            platform: p,
            device_type: CL_DEVICE_TYPE_ALL,
        }),
    ) {
        Response::ClGetDeviceIds(l) => l.handles[0],
        r => panic!("{r:?}"),
    };
    ok(
        drv,
        Request::ClCreateContext(CreateContext {
            id: CTX,
            properties: vec![CL_CONTEXT_PLATFORM, p, 0],
            devices: vec![dev],
        }),
    );
    ok(
        drv,
        Request::ClCreateCommandQueue(CreateCommandQueue {
            id: QUEUE,
            context: CTX,
            device: dev,
            properties: vec![],
        }),
    );
    let n = 1024usize;
    let a: Vec<f32> = (0..n)
        .map(|i| i as f32 * 0.37 + 1.0 / (i as f32 + 1.0))
        .collect();
    let b: Vec<f32> = (0..n).map(|i| (n - i) as f32 * 1.13 - 7.5).collect();
    let bytes = (n * 4) as u64;
    for id in [10, 11, 12] {
        ok(
            drv,
            Request::ClCreateBuffer(CreateBuffer {
                id,
                context: CTX,
                flags: CL_MEM_READ_WRITE,
                size: bytes,
            }),
        );
    }
    let common = || EnqueueCommon {
        queue: QUEUE,
        wait: vec![],
        event: None,
    };
    for (buf, data) in [(10, &a), (11, &b)] {
        let (out, _) = drv
            .call_frames(
                1,
                &[(
                    Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
                        common: common(),
                        buffer: buf,
                        offset: 0,
                        size: bytes,
                    }),
                    vec![floats(data)],
                    vec![],
                )],
            )
            .expect("no answer to a buffer write");
        assert!(matches!(out[0].1, Outcome::Ok(_)), "{out:?}");
    }
    ok(
        drv,
        Request::ClCreateProgramWithSource(CreateProgramWithSource {
            id: 20,
            context: CTX,
            source: VADD.into(),
        }),
    );
    ok(
        drv,
        Request::ClBuildProgram(BuildProgram {
            program: 20,
            devices: vec![dev],
            options: String::new(),
            headers: Default::default(),
        }),
    );
    ok(
        drv,
        Request::ClCreateKernel(CreateKernel {
            id: 21,
            program: 20,
            name: "vadd".into(),
        }),
    );
    for (i, m) in [10, 11, 12].into_iter().enumerate() {
        ok(
            drv,
            Request::ClSetKernelArg(SetKernelArg {
                kernel: 21,
                index: i as u32,
                arg: KernelArg::Mem(m),
            }),
        );
    }
    ok(
        drv,
        Request::ClSetKernelArg(SetKernelArg {
            kernel: 21,
            index: 3,
            arg: KernelArg::Bytes((n as u32).to_le_bytes().to_vec()),
        }),
    );
    ok(
        drv,
        Request::ClEnqueueNdRange(EnqueueNdRange {
            common: common(),
            kernel: 21,
            offset: vec![],
            global: vec![n as u64],
            local: vec![64],
        }),
    );
    ok(drv, Request::ClFinish(QueueOp { queue: QUEUE }));
    let (out, data) = drv
        .call_frames(
            1,
            &[(
                Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
                    common: common(),
                    buffer: 12,
                    offset: 0,
                    size: bytes,
                }),
                vec![],
                vec![bytes as u32],
            )],
        )
        .expect("no answer to the read");
    assert!(matches!(out[0].1, Outcome::Ok(_)), "{out:?}");
    let expect = floats(&a.iter().zip(&b).map(|(x, y)| x + y).collect::<Vec<_>>());
    assert_eq!(data[0], expect, "device result differs from the CPU's");
}

fn vector_add_on_pocl(mode: Mode) {
    let d = daemon(mode);
    let mut drv = connected_driver(&d);
    up(&mut drv);
    if open_session(&mut drv, mode) & FEATURE_OPENCL == 0 {
        println!("SKIPPED: the daemon has no OpenCL platform (install pocl-opencl-icd)");
        return;
    }
    vector_add(&mut drv);
}

/// The driver resets while a request runs (the daemon is still creating a
/// context) and re-initializes at once, as Linux's driver does. The
/// daemon's answer to each queue's stop (GET_VRING_BASE) and to the reset
/// waits for the chain in flight, so that chain's completion never lands
/// in the re-initialized rings. Several rounds, since a daemon without
/// that wait fails only some of them.
fn reset_mid_request_then_reinit_works(mode: Mode) {
    let d = daemon(mode);
    let mut drv = connected_driver(&d);
    up(&mut drv);
    open_session(&mut drv, mode);
    drv.call(1, Request::ClGetPlatformIds(Empty {})).unwrap();
    for round in 0..10 {
        // Creating a context takes the daemon a while; reset while it runs.
        let _abandoned = drv.post_frames(
            1,
            &[(
                Request::ClCreateContextFromType(CreateContextFromType {
                    id: CTX,
                    properties: vec![],
                    device_type: CL_DEVICE_TYPE_ALL,
                }),
                vec![],
                vec![],
            )],
        );
        drv.write32(vmm_plugin::spec::reg::STATUS, 0);
        assert_eq!(drv.status(), 0, "reset must read back as 0");
        // The device is whole again at once: a new session, a new request.
        up(&mut drv);
        open_session(&mut drv, mode);
        assert!(ping(&mut drv), "no ping after reset round {round}");
        drv.call(1, Request::ClGetPlatformIds(Empty {})).unwrap();
    }
    // And a full workload still runs after it.
    vector_add(&mut drv);
}

fn daemon_restart_asks_for_reset_then_serves_again(mode: Mode) {
    let mut d = daemon(mode);
    let mut drv = connected_driver(&d);
    up(&mut drv);
    open_session(&mut drv, mode);
    assert!(ping(&mut drv));
    let seen = drv.host.count(InterruptCause::ConfigChange);
    d.kill();
    // The driver is told (§2.1.2): config-change interrupt, needs-reset.
    assert!(
        drv.sees_needs_reset(seen, Duration::from_secs(5)),
        "no needs-reset after the daemon died (status {:#x})",
        drv.status()
    );
    // A request now does not hang: the driver sees the device is not live.
    drv.post(
        1,
        &[(driver::REQ_AREA, 16, false), (driver::RESP_AREA, 64, true)],
    );
    assert_eq!(drv.wait_used(1, Duration::from_secs(1)), None);
    // Re-init before the daemon is back: refused with needs-reset, quickly.
    let s = drv.init();
    assert_ne!(s & status::DEVICE_NEEDS_RESET, 0, "status {s:#x}");
    let seen = drv.host.count(InterruptCause::ConfigChange);
    d.restart();
    assert!(
        wait_until(Duration::from_secs(10), || drv.dev.connected()),
        "the device never reconnected"
    );
    // The driver waiting to reset is told the device is back.
    assert!(
        drv.sees_needs_reset(seen, Duration::from_secs(5)),
        "no config-change interrupt when the daemon came back"
    );
    up(&mut drv);
    if open_session(&mut drv, mode) & FEATURE_OPENCL == 0 {
        println!("SKIPPED: vector add after restart: no OpenCL platform");
        assert!(ping(&mut drv));
        return;
    }
    vector_add(&mut drv);
}

#[test]
fn device_mode_sessions_are_apart_through_the_device() {
    let d = daemon(Mode::Device);
    let mut drv = connected_driver(&d);
    up(&mut drv);
    open_session(&mut drv, Mode::Device);
    let a = drv.session.unwrap();
    open_session(&mut drv, Mode::Device);
    let b = drv.session.unwrap();
    assert_ne!(a, b);
    for id in [a, b] {
        drv.session = Some(id);
        assert!(ping(&mut drv), "session {id}");
    }
    let st = drv.dev_close(a).expect("no answer to Close");
    assert_eq!(st.status, DeviceStatus::Ok);
    // The closed session is gone; the other still answers.
    drv.session = Some(a);
    assert!(!ping(&mut drv), "closed session {a} still answers");
    drv.session = Some(b);
    assert!(ping(&mut drv));
}

/// Each scenario in both modes.
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod device_mode {
            $( #[test] fn $name() { super::$name(super::Mode::Device) } )*
        }
        mod direct_mode {
            $( #[test] fn $name() { super::$name(super::Mode::Direct) } )*
        }
    };
}

both_modes!(
    negotiation_config_and_session,
    notify_through_an_ioeventfd,
    vector_add_on_pocl,
    reset_mid_request_then_reinit_works,
    daemon_restart_asks_for_reset_then_serves_again,
);
