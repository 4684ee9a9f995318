//! A hostile or broken driver at the MMIO level, against the device with a
//! real daemon behind it: nothing it writes panics, nothing unchecked
//! reaches the daemon, and a correct driver afterwards is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod driver;

use std::time::{Duration, Instant};

use driver::{wait_until, Daemon, Driver};
use protocol::opencl::Empty;
use protocol::{Outcome, Request, Response};
use vmm_plugin::spec::{reg, status, FEATURE_VERSION_1};

/// A tiny deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const UP: u32 = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

fn negotiate(drv: &Driver) {
    drv.write32(reg::STATUS, 0);
    drv.write32(reg::STATUS, status::ACKNOWLEDGE);
    drv.write32(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    drv.write32(reg::DRIVER_FEATURES_SEL, 1);
    drv.write32(reg::DRIVER_FEATURES, (FEATURE_VERSION_1 >> 32) as u32);
    drv.write32(reg::DRIVER_FEATURES_SEL, 0);
    drv.write32(reg::DRIVER_FEATURES, 0);
    drv.write32(
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    assert_ne!(drv.status() & status::FEATURES_OK, 0);
}

fn serves(drv: &mut Driver) -> bool {
    if drv.init() != UP {
        return false;
    }
    let open = drv.call(
        0,
        Request::SessionOpen(protocol::SessionOpen {
            min_version: 1,
            max_version: protocol::PROTOCOL_VERSION,
            features: 0,
            client: "hostile".into(),
        }),
    );
    matches!(open, Some(Outcome::Ok(Response::SessionOpen(_))))
        && matches!(
            drv.call(1, Request::Ping(Empty {})),
            Some(Outcome::Ok(Response::Ping(_)))
        )
}

#[test]
fn bad_queue_setups_and_status_orders_are_refused() {
    let d =
        Daemon::start(&["--executor", "opencl"]).unwrap_or_else(|why| panic!("no daemon: {why}"));
    let mut drv = Driver::new(&d.socket);
    assert!(wait_until(Duration::from_secs(10), || drv.dev.connected()));
    let mem = driver::MEM_SIZE;
    // (size, desc, avail, used): each bad in one way.
    let bad: &[(u32, u64, u64, u64)] = &[
        (3, 0, 0x1000, 0x2000),
        (512, 0, 0x1000, 0x2000),
        (0, 0, 0x1000, 0x2000),
        (256, mem, 0x1000, 0x2000),
        (256, 0, mem - 2, 0x2000),
        (256, 0, 0x1000, mem - 0x100),
        (256, 8, 0x1000, 0x2000),
        (256, 0, 0x1001, 0x2000),
        (256, 0, 0x1000, 0x2002),
        (256, !0xf, 0x1000, 0x2000),
    ];
    for &(size, desc, avail, used) in bad {
        negotiate(&drv);
        drv.write32(reg::QUEUE_SEL, 0);
        drv.write32(reg::QUEUE_NUM, size);
        for (lo, a) in [
            (reg::QUEUE_DESC_LOW, desc),
            (reg::QUEUE_DRIVER_LOW, avail),
            (reg::QUEUE_DEVICE_LOW, used),
        ] {
            drv.write32(lo, a as u32);
            drv.write32(lo + 4, (a >> 32) as u32);
        }
        drv.write32(reg::QUEUE_READY, 1);
        let refused = drv.read32(reg::QUEUE_READY) == 0
            // A bad size write is ignored; the default size then stands
            // with good rings, which is fine.
            || (!size.is_power_of_two() || size > 256) && desc == 0 && avail == 0x1000 && used == 0x2000;
        assert!(
            refused,
            "queue accepted: {size} {desc:#x} {avail:#x} {used:#x}"
        );
        drv.write32(reg::STATUS, 0);
    }
    // QueueReady before any address.
    negotiate(&drv);
    drv.write32(reg::QUEUE_SEL, 1);
    drv.write32(reg::QUEUE_READY, 1);
    assert_eq!(drv.read32(reg::QUEUE_READY), 0);
    // DRIVER_OK before FEATURES_OK: needs reset, the daemon not started.
    drv.write32(reg::STATUS, 0);
    drv.write32(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    drv.write32(
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK,
    );
    assert_eq!(drv.status() & status::DRIVER_OK, 0);
    assert_ne!(drv.status() & status::DEVICE_NEEDS_RESET, 0);
    // FEATURES_OK with a feature never offered: not latched.
    drv.write32(reg::STATUS, 0);
    drv.write32(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    drv.write32(reg::DRIVER_FEATURES_SEL, 1);
    drv.write32(reg::DRIVER_FEATURES, 1 | (1 << 10)); // VERSION_1, bit 42
    drv.write32(
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    assert_eq!(drv.status() & status::FEATURES_OK, 0);
    // After all that, a correct driver is served by the same connection.
    assert!(serves(&mut drv), "device unusable after hostile setup");
}

#[test]
fn random_register_traffic_never_panics_and_a_reset_recovers() {
    let d =
        Daemon::start(&["--executor", "opencl"]).unwrap_or_else(|why| panic!("no daemon: {why}"));
    let mut drv = Driver::new(&d.socket);
    assert!(wait_until(Duration::from_secs(10), || drv.dev.connected()));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let offsets = [
        reg::STATUS,
        reg::QUEUE_SEL,
        reg::QUEUE_NUM,
        reg::QUEUE_READY,
        reg::QUEUE_NOTIFY,
        reg::QUEUE_DESC_LOW,
        reg::QUEUE_DESC_HIGH,
        reg::QUEUE_DRIVER_LOW,
        reg::QUEUE_DEVICE_LOW,
        reg::DRIVER_FEATURES,
        reg::DRIVER_FEATURES_SEL,
        reg::INTERRUPT_ACK,
        reg::CONFIG,
    ];
    for _ in 0..20_000 {
        let r = rng.next();
        let off = if r & 1 == 0 {
            offsets[(r >> 1) as usize % offsets.len()]
        } else {
            (r >> 8) % 0x2000
        };
        let len = [1usize, 2, 4, 8, 3][(r >> 40) as usize % 5];
        let mut buf = (rng.next()).to_le_bytes()[..len].to_vec();
        if r >> 60 == 0 {
            drv.dev.read(off, &mut buf);
        } else {
            drv.dev.write(off, &buf);
        }
    }
    // Out-of-range offsets and sizes, including the extremes.
    for off in [0x1000u64, 0xffff_ffff, u64::MAX, u64::MAX - 3] {
        let mut b = [0u8; 4];
        drv.dev.read(off, &mut b);
        assert_eq!(b, [0; 4]);
        drv.dev.write(off, &[1, 2, 3, 4]);
    }
    let mut empty = [];
    drv.dev.read(reg::MAGIC_VALUE, &mut empty);
    // A vCPU never blocked on the daemon: the next correct driver works,
    // on this connection or a fresh one if the traffic made it start and
    // break the daemon's rings.
    let t = Instant::now();
    let mut ok = serves(&mut drv);
    if !ok {
        assert!(wait_until(Duration::from_secs(10), || drv.dev.connected()));
        ok = serves(&mut drv);
    }
    assert!(ok, "device unusable after random traffic");
    assert!(t.elapsed() < Duration::from_secs(30));
}

#[test]
fn no_daemon_means_needs_reset_not_a_hang() {
    let dir = std::env::temp_dir().join(driver::unique("vmm-plugin-none"));
    let drv = Driver::new(&dir.join("absent.sock"));
    let mut drv = drv;
    let t = Instant::now();
    let s = drv.init();
    assert!(t.elapsed() < Duration::from_secs(2), "init blocked");
    assert_ne!(s & status::DEVICE_NEEDS_RESET, 0, "status {s:#x}");
    assert_eq!(s & status::DRIVER_OK, status::DRIVER_OK);
    assert!(!drv.dev.connected());
}
