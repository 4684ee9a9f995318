//! A third-party OpenCL program, unmodified: CLBlast's dot-product tuner
//! compiles several kernel variants, runs each, and verifies every result
//! against a reference kernel. Through the shim it must report the same
//! configurations with the same verdicts as it does natively.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const TUNER: &str = "clblast_tuner_xdot";

/// The tuner's result rows, without the timing columns:
/// (id, parameter, local size, global size, verdict).
fn verdicts(target: &Target<'_>) -> Vec<String> {
    // The tuner writes its results as JSON into the working directory.
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(TUNER);
    cmd.args(["-precision", "32", "-n", "65536", "-runs", "1"])
        .current_dir(scratch.path());
    aim(&mut cmd, target);
    let out = run_child(cmd, Duration::from_secs(300));
    assert!(out.status.success(), "{TUNER} failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| {
            // Drop ANSI colours.
            let mut clean = String::new();
            let mut esc = false;
            for c in l.chars() {
                match (esc, c) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => clean.push(c),
                }
            }
            clean
        })
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            // | ID | total | param | local | global | compiles | time | rate | status |
            let pick = |i: usize| cols.get(i).copied().unwrap_or("");
            let compiled = pick(6).split_whitespace().next().unwrap_or("");
            format!(
                "{} {} {} {} {} {}",
                pick(1),
                pick(3),
                pick(4),
                pick(5),
                compiled,
                pick(9)
            )
        })
        .collect()
}

#[test]
fn clblast_tuner_verdicts_match_native() {
    if which(TUNER).is_none() {
        eprintln!("SKIPPED: {TUNER} is not installed (apt-get install clblast-utils)");
        return;
    }
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start(&[]);
    let native = verdicts(&Target::Native);
    let virt = verdicts(&Target::Shim(&daemon));
    let verified = native
        .iter()
        .filter(|l| l.ends_with("results match"))
        .count();
    assert!(
        verified >= 12,
        "native run verified too little: {native:#?}"
    );
    assert_eq!(native, virt, "verdicts differ from native");
}
