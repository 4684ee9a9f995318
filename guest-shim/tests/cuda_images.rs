//! Module images larger than one call carries: over the stream transport
//! a record holds at most 16 MiB of bulk data, so a larger fat binary is
//! staged in pieces and then loaded by name. The test loads a 40 MiB fat
//! binary (its PTX entry declares the kernel; a large entry of another
//! kind makes up the size) through the shim over a unix socket, and checks
//! what the recording double received.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "cuda/mod.rs"]
mod cuda;

use std::ptr::null_mut;

use cuda::{ok, Cu, Daemon, PTX};
use protocol::fatbin::build::{fatbin, Spec};
use protocol::limits::MAX_STREAM_BULK;
use protocol::{Opcode, Request};

/// The fat binary the scenario loads: the PTX of [`PTX`] and a 40 MiB
/// entry of a kind the parser skips.
fn big_image() -> Vec<u8> {
    let filler: Vec<u8> = (0..40usize << 20).map(|i| (i % 251) as u8 + 1).collect();
    fatbin(&[
        Spec::plain(protocol::fatbin::KIND_PTX, PTX.as_bytes()),
        Spec::plain(7, &filler),
    ])
}

#[test]
fn a_fat_binary_larger_than_a_stream_record_is_staged() {
    let daemon = Daemon::start("images");
    daemon.run_scenario_over("scenario_big_image", &daemon.stream_endpoint());
    let image = big_image();
    let stages = daemon.recorder.requests(Opcode::CuModuleStage);
    assert!(
        stages.len() >= image.len() / MAX_STREAM_BULK,
        "{}",
        stages.len()
    );
    let calls = daemon.recorder.calls();
    let staged: Vec<u8> = calls
        .iter()
        .filter(|c| matches!(c.request, Request::CuModuleStage(_)))
        .flat_map(|c| c.input.clone())
        .collect();
    assert!(staged == image, "the pieces add up to the image");
    let load = calls
        .iter()
        .find(|c| matches!(c.request, Request::CuModuleLoad(_)))
        .expect("a load");
    let Request::CuModuleLoad(l) = &load.request else {
        unreachable!()
    };
    assert!(
        l.upload.is_some() && load.input.is_empty(),
        "loaded by name"
    );
    assert_eq!(l.image_len, image.len() as u64);
    assert!(load.outcome.is_ok());
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_big_image() {
    let Some(cu) = Cu::load() else { return };
    let image = big_image();
    // SAFETY: the driver API, used as documented; the image is a complete
    // fat binary that outlives the load.
    unsafe {
        ok((cu.cuInit)(0));
        let mut ctx = null_mut();
        ok((cu.cuCtxCreate_v2)(&mut ctx, 0, 0));
        let mut module = null_mut();
        ok((cu.cuModuleLoadData)(&mut module, image.as_ptr().cast()));
        let mut f = null_mut();
        ok((cu.cuModuleGetFunction)(&mut f, module, c"scale".as_ptr()));
    }
    println!("SCENARIO OK");
}

#[test]
fn forged_fat_binaries_are_refused_in_the_guest() {
    let daemon = Daemon::start("forged-fatbin");
    daemon.run_scenario("scenario_forged_fatbin");
    assert!(
        daemon.recorder.requests(Opcode::CuModuleLoad).is_empty(),
        "nothing was sent"
    );
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_forged_fatbin() {
    let Some(cu) = Cu::load() else { return };
    let good = fatbin(&[Spec::plain(protocol::fatbin::KIND_PTX, PTX.as_bytes())]);
    let mut version = good.clone();
    version[4] = 2;
    let mut entry = good.clone();
    entry[16 + 8..16 + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut header = good.clone();
    header[6..8].copy_from_slice(&4u16.to_le_bytes());
    // A wrapper (the runtime's form) around a forged fat binary.
    let mut wrapper = [0u8; 24];
    wrapper[..4].copy_from_slice(&protocol::fatbin::WRAPPER_MAGIC.to_le_bytes());
    wrapper[4] = 1;
    wrapper[8..16].copy_from_slice(&(entry.as_ptr() as u64).to_le_bytes());
    // SAFETY: the driver API, used as documented; every image is alive.
    unsafe {
        ok((cu.cuInit)(0));
        let mut ctx = null_mut();
        ok((cu.cuCtxCreate_v2)(&mut ctx, 0, 0));
        let mut module = null_mut();
        for img in [&version[..], &entry[..], &header[..], &wrapper[..]] {
            assert_eq!((cu.cuModuleLoadData)(&mut module, img.as_ptr().cast()), 200);
        }
    }
    println!("SCENARIO OK");
}
