//! End to end over the stream transport: the shim talks to the daemon's
//! `--listen unix:` socket (records with inline bulk) instead of shared
//! virtqueues, and programs behave exactly as they do natively.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Child entry point: does nothing unless started by `child_command`.
#[test]
fn child_conformance() {
    conformance_child();
}

#[test]
fn conformance_over_a_unix_stream_matches_native() {
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start_with_stream(&[]);
    assert_conformance_matches_native(&Target::Stream(&daemon));
}

#[test]
fn both_listeners_serve_at_once() {
    if which("clinfo").is_none() {
        eprintln!("SKIPPED: clinfo is not installed (apt-get install clinfo)");
        return;
    }
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start_with_stream(&[]);
    let run = |t: &Target<'_>| {
        let mut cmd = Command::new("clinfo");
        aim(&mut cmd, t);
        let out = run_child(cmd, Duration::from_secs(60));
        assert!(out.status.success(), "clinfo failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| run(&Target::Shim(&daemon)));
        let b = s.spawn(|| run(&Target::Stream(&daemon)));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.contains("Device Name"), "{a}");
    assert_eq!(
        a, b,
        "the same daemon answers the same over both transports"
    );
}

/// Copies `from` to `to` in irregular small pieces (as a VMM forwarding
/// vsock packets might), until either side closes.
fn pump(mut from: UnixStream, mut to: UnixStream) {
    const CAP: usize = 997;
    let mut buf = [0u8; CAP];
    let mut n = 1;
    loop {
        n = n % CAP + 131;
        let got = match from.read(&mut buf[..n.min(CAP)]) {
            Ok(0) | Err(_) => break,
            Ok(g) => g,
        };
        if to.write_all(&buf[..got]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Emulates Firecracker's and Cloud Hypervisor's hybrid vsock for guest-
/// initiated connections: each connection accepted on `guest` (standing in
/// for the guest's AF_VSOCK connect to port 7000) is forwarded to
/// `<uds_path>_7000`, with no handshake on that side.
fn hybrid_vsock_bridge(guest: &Path, uds_port_path: std::path::PathBuf) {
    let l = UnixListener::bind(guest).expect("bind bridge");
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(g) = conn else { break };
            let Ok(h) = UnixStream::connect(&uds_port_path) else {
                break;
            };
            let (g2, h2) = (g.try_clone().unwrap(), h.try_clone().unwrap());
            std::thread::spawn(move || pump(g, h));
            std::thread::spawn(move || pump(h2, g2));
        }
    });
}

#[test]
fn conformance_through_an_emulated_hybrid_vsock_bridge() {
    if !have_native_opencl() {
        return;
    }
    // The daemon listens where the VMM forwards guest port 7000 to.
    let daemon = Daemon::start_with_stream_named("v.sock_7000", &[]);
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("guest-vsock-7000");
    hybrid_vsock_bridge(&guest, daemon.stream_path().to_path_buf());
    let native = run_child(
        child_command("child_conformance", "conformance", &Target::Native),
        Duration::from_secs(120),
    );
    let mut cmd = child_command("child_conformance", "conformance", &Target::Native);
    cmd.env("OCL_ICD_VENDORS", shim_lib())
        .env("VCOMPUTE_ENDPOINT", format!("unix:{}", guest.display()));
    let bridged = run_child(cmd, Duration::from_secs(120));
    assert!(transcript(&native).len() > 20, "native run incomplete");
    assert_eq!(
        transcript(&native),
        transcript(&bridged),
        "shim stderr:\n{}",
        String::from_utf8_lossy(&bridged.stderr)
    );
}
