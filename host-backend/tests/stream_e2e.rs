//! End to end over the stream transport: the shim talks to the daemon's
//! `--listen unix:` socket (records with inline bulk) instead of shared
//! virtqueues, and programs behave exactly as they do natively.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Child entry point: does nothing unless started by `child_command`.
#[test]
fn child_conformance() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("conformance") {
        return;
    }
    match conformance::run() {
        Ok(lines) => {
            for l in lines {
                println!("T|{l}");
            }
        }
        Err(code) => println!("T|failed with {code}"),
    }
}

#[test]
fn conformance_over_a_unix_stream_matches_native() {
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start_with_stream(&[]);
    let native = run_child(
        child_command("child_conformance", "conformance", &Target::Native),
        Duration::from_secs(120),
    );
    let stream = run_child(
        child_command("child_conformance", "conformance", &Target::Stream(&daemon)),
        Duration::from_secs(120),
    );
    let (n, s) = (transcript(&native), transcript(&stream));
    assert!(
        n.len() > 20 && !n.iter().any(|l| l.starts_with("failed")),
        "native run incomplete: {n:#?}"
    );
    assert_eq!(
        n,
        s,
        "transcripts differ; shim stderr:\n{}",
        String::from_utf8_lossy(&stream.stderr)
    );
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
