//! End to end: unmodified OpenCL code runs through the shim and the daemon
//! (on POCL) and behaves exactly as it does natively.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

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
fn conformance_transcript_matches_native() {
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start(&[]);
    let native = run_child(
        child_command("child_conformance", "conformance", &Target::Native),
        Duration::from_secs(120),
    );
    let virt = run_child(
        child_command("child_conformance", "conformance", &Target::Shim(&daemon)),
        Duration::from_secs(120),
    );
    let (n, v) = (transcript(&native), transcript(&virt));
    assert!(
        n.len() > 20 && !n.iter().any(|l| l.starts_with("failed")),
        "native run incomplete: {n:#?}\nstderr: {}",
        String::from_utf8_lossy(&native.stderr)
    );
    assert!(n
        .iter()
        .any(|l| l.contains("vadd") && l.contains("exact=true")));
    assert!(n
        .iter()
        .any(|l| l.contains("matmul") && l.contains("close=true")));
    assert_eq!(
        n,
        v,
        "transcripts differ; shim stderr:\n{}",
        String::from_utf8_lossy(&virt.stderr)
    );
}

fn clinfo(target: &Target<'_>) -> String {
    let mut cmd = Command::new("clinfo");
    aim(&mut cmd, target);
    let out = run_child(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "clinfo failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn clinfo_matches_native() {
    if which("clinfo").is_none() {
        eprintln!("SKIPPED: clinfo is not installed (apt-get install clinfo)");
        return;
    }
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start(&[]);
    let native = clinfo(&Target::Native);
    let virt = clinfo(&Target::Shim(&daemon));
    assert!(native.contains("Number of platforms"), "{native}");
    let diff: Vec<(&str, &str)> = native
        .lines()
        .zip(virt.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        diff.is_empty() && native.lines().count() == virt.lines().count(),
        "clinfo differs from native ({} vs {} lines):\n{diff:#?}",
        native.lines().count(),
        virt.lines().count()
    );
}

#[test]
fn missing_daemon_reports_platform_not_found_promptly() {
    if which("clinfo").is_none() {
        eprintln!("SKIPPED: clinfo is not installed (apt-get install clinfo)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let start = Instant::now();
    let out = run_child(
        {
            let mut c = Command::new("clinfo");
            c.arg("-l").env("OCL_ICD_VENDORS", shim_lib()).env(
                "VCOMPUTE_ENDPOINT",
                format!("vhost-user:{}", dir.path().join("none.sock").display()),
            );
            c
        },
        Duration::from_secs(30),
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("Platform #0"), "{stdout}");
    assert!(
        stderr.contains("none.sock"),
        "the log line should name the endpoint: {stderr}"
    );
}
