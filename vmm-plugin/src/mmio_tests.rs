//! The register model alone: the Linux driver's sequence, and everything a
//! hostile driver may write.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::spec::{FEATURE_CONFIG, FEATURE_EVENT_IDX};
use vm_memory::GuestAddress;

const OFFER: u64 = FEATURE_VERSION_1 | FEATURE_EVENT_IDX | FEATURE_CONFIG;

fn mem() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
}

fn rd(r: &MmioRegs, off: u64) -> u32 {
    let mut b = [0u8; 4];
    r.read(off, &mut b);
    u32::from_le_bytes(b)
}

fn wr(r: &mut MmioRegs, off: u64, v: u32) -> Effect {
    r.write(off, &v.to_le_bytes(), mem)
}

fn negotiated() -> MmioRegs {
    let mut r = MmioRegs::new(OFFER, [7; CONFIG_LEN]);
    assert_eq!(wr(&mut r, reg::STATUS, 0), Effect::Reset);
    wr(&mut r, reg::STATUS, status::ACKNOWLEDGE);
    wr(&mut r, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    wr(&mut r, reg::DRIVER_FEATURES_SEL, 1);
    wr(&mut r, reg::DRIVER_FEATURES, (OFFER >> 32) as u32);
    wr(&mut r, reg::DRIVER_FEATURES_SEL, 0);
    wr(&mut r, reg::DRIVER_FEATURES, OFFER as u32);
    wr(
        &mut r,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    assert_ne!(rd(&r, reg::STATUS) & status::FEATURES_OK, 0);
    r
}

fn setup_queue(r: &mut MmioRegs, q: u32, base: u64) {
    wr(r, reg::QUEUE_SEL, q);
    wr(r, reg::QUEUE_NUM, 256);
    wr(r, reg::QUEUE_DESC_LOW, base as u32);
    wr(r, reg::QUEUE_DESC_HIGH, 0);
    wr(r, reg::QUEUE_DRIVER_LOW, (base + 0x1000) as u32);
    wr(r, reg::QUEUE_DRIVER_HIGH, 0);
    wr(r, reg::QUEUE_DEVICE_LOW, (base + 0x2000) as u32);
    wr(r, reg::QUEUE_DEVICE_HIGH, 0);
    wr(r, reg::QUEUE_READY, 1);
}

const ALL_OK: u32 = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

#[test]
fn identity_registers() {
    let r = MmioRegs::new(OFFER, [0; CONFIG_LEN]);
    assert_eq!(rd(&r, reg::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(rd(&r, reg::VERSION), 2);
    assert_eq!(rd(&r, reg::DEVICE_ID), 56);
    assert_eq!(rd(&r, reg::DEVICE_FEATURES), OFFER as u32);
    assert_eq!(rd(&r, reg::QUEUE_NUM_MAX), 256);
}

#[test]
fn linux_sequence_activates() {
    let mut r = negotiated();
    setup_queue(&mut r, 0, 0);
    setup_queue(&mut r, 1, 0x1_0000);
    assert_eq!(rd(&r, reg::QUEUE_READY), 1);
    assert_eq!(wr(&mut r, reg::STATUS, ALL_OK), Effect::Activate);
    assert!(r.live());
    assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 1), Effect::Notify(1));
    assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 2), Effect::None);
    assert_eq!(r.driver_features, OFFER);
}

/// Whether FEATURES_OK latches after the driver writes `features`, each a
/// (`DRIVER_FEATURES_SEL`, `DRIVER_FEATURES`) pair.
fn features_ok_with(features: &[(u32, u32)]) -> bool {
    let mut r = MmioRegs::new(OFFER, [0; CONFIG_LEN]);
    wr(&mut r, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    for &(sel, bits) in features {
        wr(&mut r, reg::DRIVER_FEATURES_SEL, sel);
        wr(&mut r, reg::DRIVER_FEATURES, bits);
    }
    wr(
        &mut r,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    rd(&r, reg::STATUS) & status::FEATURES_OK != 0
}

#[test]
fn unoffered_features_do_not_latch_features_ok() {
    // What was offered does.
    assert!(features_ok_with(&[
        (1, (OFFER >> 32) as u32),
        (0, OFFER as u32)
    ]));
    // VERSION_1 and bit 36, never offered.
    assert!(!features_ok_with(&[(1, 1 | (1 << 4))]));
    // Without VERSION_1.
    assert!(!features_ok_with(&[]));
    // A bit past 63.
    assert!(!features_ok_with(&[(1, 1), (2, 1)]));
}

#[test]
fn status_out_of_order_is_refused() {
    // DRIVER_OK without FEATURES_OK: needs reset, no activation.
    let mut r = MmioRegs::new(OFFER, [0; CONFIG_LEN]);
    wr(&mut r, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    let e = wr(
        &mut r,
        reg::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK,
    );
    assert_eq!(e, Effect::None);
    assert_eq!(rd(&r, reg::STATUS) & status::DRIVER_OK, 0);
    assert_ne!(rd(&r, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    // Even a correct sequence cannot go on until the reset.
    assert_eq!(
        wr(&mut r, reg::STATUS, ALL_OK | status::DEVICE_NEEDS_RESET),
        Effect::None
    );
    assert_eq!(wr(&mut r, reg::STATUS, 0), Effect::Reset);
    assert_eq!(rd(&r, reg::STATUS), 0);
    // DRIVER before ACKNOWLEDGE does not latch.
    wr(&mut r, reg::STATUS, status::DRIVER);
    assert_eq!(rd(&r, reg::STATUS), 0);
    // Clearing a bit without a reset is ignored.
    let mut r = negotiated();
    wr(&mut r, reg::STATUS, status::ACKNOWLEDGE);
    assert_ne!(rd(&r, reg::STATUS) & status::FEATURES_OK, 0);
}

#[test]
fn bad_queues_never_become_ready() {
    let m = mem();
    // Sizes: not a power of two, too big, zero: the write is refused and
    // the default (valid) size stays; still, the rings must be set.
    let mut r = negotiated();
    wr(&mut r, reg::QUEUE_SEL, 0);
    for n in [0, 3, 512, u32::MAX] {
        wr(&mut r, reg::QUEUE_NUM, n);
        assert_eq!(r.queues[0].size, 256);
    }
    // QueueReady before any address.
    wr(&mut r, reg::QUEUE_READY, 1);
    assert_eq!(rd(&r, reg::QUEUE_READY), 0);
    // Outside guest memory, misaligned.
    for (desc, avail, used) in [
        (0x20_0000u64, 0x1000u64, 0x2000u64),
        (0, 0x1000, 0xf_ff00),
        (8, 0x1000, 0x2000),
        (0, 0x1000, 0x2002),
        (0xffff_ffff_ffff_f000, 0x1000, 0x2000),
    ] {
        let mut r = negotiated();
        for (lo, hi, a) in [
            (reg::QUEUE_DESC_LOW, reg::QUEUE_DESC_HIGH, desc),
            (reg::QUEUE_DRIVER_LOW, reg::QUEUE_DRIVER_HIGH, avail),
            (reg::QUEUE_DEVICE_LOW, reg::QUEUE_DEVICE_HIGH, used),
        ] {
            r.write(lo, &(a as u32).to_le_bytes(), || m.clone());
            r.write(hi, &((a >> 32) as u32).to_le_bytes(), || m.clone());
        }
        r.write(reg::QUEUE_READY, &1u32.to_le_bytes(), || m.clone());
        assert_eq!(
            rd(&r, reg::QUEUE_READY),
            0,
            "{desc:#x} {avail:#x} {used:#x}"
        );
    }
    // Queue registers before FEATURES_OK are ignored.
    let mut r = MmioRegs::new(OFFER, [0; CONFIG_LEN]);
    setup_queue(&mut r, 0, 0);
    assert_eq!(rd(&r, reg::QUEUE_READY), 0);
    // A queue past the last one reads as absent and takes no writes.
    let mut r = negotiated();
    setup_queue(&mut r, 2, 0);
    assert_eq!(rd(&r, reg::QUEUE_NUM_MAX), 0);
    assert_eq!(rd(&r, reg::QUEUE_READY), 0);
}

#[test]
fn any_offset_and_size_is_harmless() {
    let m = mem();
    let mut r = negotiated();
    for off in (0..0x200u64).chain([u64::MAX - 3, u64::MAX, 0x1000, 0xffff_ffff]) {
        for len in [0usize, 1, 2, 3, 4, 5, 8, 16] {
            let mut b = vec![0xaa; len];
            r.read(off, &mut b);
            r.write(off, &vec![0xff; len], || m.clone());
        }
    }
    // Config space: byte reads and wide reads, zeros past its end.
    let r = negotiated();
    let mut b = [0u8; 8];
    r.read(reg::CONFIG + CONFIG_LEN as u64 - 4, &mut b);
    assert_eq!(b, [7, 7, 7, 7, 0, 0, 0, 0]);
    // A 2-byte register read reads as zero.
    let mut b = [1u8; 2];
    r.read(reg::MAGIC_VALUE, &mut b);
    assert_eq!(b, [0, 0]);
}

#[test]
fn needs_reset_tells_only_a_live_driver() {
    let mut r = MmioRegs::new(OFFER, [0; CONFIG_LEN]);
    assert!(!r.needs_reset());
    assert_eq!(rd(&r, reg::STATUS), 0);
    let mut r = negotiated();
    setup_queue(&mut r, 0, 0);
    wr(&mut r, reg::STATUS, ALL_OK);
    assert!(r.needs_reset());
    assert_eq!(rd(&r, reg::INTERRUPT_STATUS), interrupt::CONFIG_CHANGE);
    assert!(!r.live());
    wr(&mut r, reg::INTERRUPT_ACK, interrupt::CONFIG_CHANGE);
    assert_eq!(rd(&r, reg::INTERRUPT_STATUS), 0);
    // A kick to a device needing reset goes nowhere.
    assert_eq!(wr(&mut r, reg::QUEUE_NOTIFY, 0), Effect::None);
}

#[test]
fn register_offsets_are_the_specs() {
    // virtio 1.2 §4.2.2, table "MMIO Device Register Layout": a mix-up of
    // the bindings' names would otherwise go unseen, since the test driver
    // uses the same names.
    let layout = [
        (reg::MAGIC_VALUE, 0x000),
        (reg::DEVICE_FEATURES_SEL, 0x014),
        (reg::DRIVER_FEATURES_SEL, 0x024),
        (reg::QUEUE_READY, 0x044),
        (reg::STATUS, 0x070),
        (reg::QUEUE_DRIVER_LOW, 0x090),
        (reg::QUEUE_DRIVER_HIGH, 0x094),
        (reg::QUEUE_DEVICE_LOW, 0x0a0),
        (reg::QUEUE_DEVICE_HIGH, 0x0a4),
        (reg::CONFIG_GENERATION, 0x0fc),
        (reg::CONFIG, 0x100),
    ];
    for (got, want) in layout {
        assert_eq!(got, want);
    }
    assert_eq!(status::DEVICE_NEEDS_RESET, 0x40);
    assert_eq!(interrupt::CONFIG_CHANGE, 2);
}
