//! ocl-icd loads the shim as an ICD; with no daemon it lists no platforms,
//! promptly, and says why on stderr.
#![allow(clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

#[test]
fn clinfo_lists_no_platform_without_a_daemon() {
    if !common::installed("clinfo", "--version") {
        println!("SKIPPED: clinfo not installed");
        return;
    }
    let lib = common::build_shim();
    let start = Instant::now();
    let out = Command::new("timeout")
        .args(["20", "clinfo", "-l"])
        .env("OCL_ICD_VENDORS", &lib)
        .env("VCOMPUTE_ENDPOINT", "vhost-user:/nonexistent/vcompute.sock")
        .output()
        .expect("clinfo runs");
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(124), "clinfo hung");
    assert!(
        out.status.code().is_some(),
        "clinfo crashed: {:?}\n{stderr}",
        out.status
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(
        !stdout.contains("Platform #"),
        "unexpected platform:\n{stdout}"
    );
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("vcompute: cannot reach daemon"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one log line, got:\n{stderr}");
    assert!(lines[0].contains("/nonexistent/vcompute.sock"), "{stderr}");
}
