//! The worker sandbox on its own: a child of this test binary enters it
//! (the daemon's own function, as a worker does) and then tries what a
//! compromised runtime would. The OpenCL compiler, run inside, cannot read a
//! host file even when a source names one; outside it can.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use vhost_device_compute::config::SandboxConfig;

const SCRATCH_ENV: &str = "VCOMPUTE_TEST_SCRATCH";

/// A source that includes a host file; the build log places diagnostics
/// inside the file (`/etc/passwd:1:5: ...`) when the compiler read it.
const INCLUDE_PASSWD: &str =
    "#include \"/etc/passwd\"\n__kernel void k(__global int *o) { o[0] = 1; }";

/// A source that includes a host header by absolute path.
const INCLUDE_HOST_HEADER: &str =
    "#include \"/usr/include/stdio.h\"\n__kernel void k(__global int *o) { o[0] = 1; }";

fn probe(sandboxed: bool) {
    let scratch = PathBuf::from(std::env::var_os(SCRATCH_ENV).unwrap());
    // SAFETY: this child is single-threaded here, before the runtime loads.
    unsafe { std::env::set_var("POCL_CACHE_DIR", scratch.join("pocl")) };
    if sandboxed {
        let cfg = SandboxConfig {
            max_files: 1024,
            ..SandboxConfig::default()
        };
        let level = vhost_device_compute::worker::enter_sandbox(&cfg, &scratch).unwrap();
        println!("T|landlock {}", level.as_str());
    }
    let passwd = std::fs::read("/etc/passwd");
    println!(
        "T|read passwd {}",
        match passwd {
            Ok(_) => "allowed".to_string(),
            Err(e) => format!("{:?}", e.kind()),
        }
    );
    let own = scratch.join("own-file");
    let ok = std::fs::write(&own, b"x").is_ok() && std::fs::read(&own).is_ok();
    println!("T|scratch {ok}");
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
    println!(
        "T|list home {}",
        if std::fs::read_dir(&home).is_ok() {
            "allowed"
        } else {
            "denied"
        }
    );

    use opencl3::context::Context;
    use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
    use opencl3::platform::get_platforms;
    use opencl3::program::Program;
    let platform = get_platforms().expect("platforms")[0];
    let device = Device::new(platform.get_devices(CL_DEVICE_TYPE_ALL).expect("devices")[0]);
    let ctx = Context::from_device(&device).expect("context");
    let log = match Program::create_and_build_from_source(&ctx, INCLUDE_PASSWD, "") {
        Ok(_) => String::from("built"),
        Err(log) => log,
    };
    println!(
        "T|include {}",
        if log.contains("/etc/passwd:1:") {
            "read the file"
        } else {
            "did not read the file"
        }
    );
    // A host header by absolute path (natively: found, and its own
    // includes are what fails).
    let log = match Program::create_and_build_from_source(&ctx, INCLUDE_HOST_HEADER, "") {
        Ok(_) => String::from("built"),
        Err(log) => log,
    };
    println!(
        "T|host header {}",
        if log.contains("/usr/include/stdio.h:") {
            "read"
        } else {
            "not read"
        }
    );
    let plain = Program::create_and_build_from_source(
        &ctx,
        "__kernel void k(__global int *o) { o[0] = 1; }",
        "",
    );
    println!("T|plain build {}", plain.is_ok());
}

/// Child entry point: the probe inside the sandbox.
#[test]
fn child_sandboxed() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("sandboxed") {
        probe(true);
    }
}

/// Child entry point: the same probe outside it.
#[test]
fn child_unsandboxed() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("unsandboxed") {
        probe(false);
    }
}

fn run(name: &str, mode: &str) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = child_command(name, mode, &Target::Native);
    cmd.env(SCRATCH_ENV, scratch.path());
    let out = run_child(cmd, Duration::from_secs(120));
    let t = transcript(&out);
    assert!(
        t.iter().any(|l| l.starts_with("plain build")),
        "{t:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t
}

#[test]
fn the_compiler_and_runtime_see_only_what_the_sandbox_allows() {
    if !have_native_opencl() {
        return;
    }
    let outside = run("child_unsandboxed", "unsandboxed");
    assert!(
        outside.contains(&"read passwd allowed".into()),
        "{outside:?}"
    );
    assert!(
        outside.contains(&"include read the file".into()),
        "{outside:?}"
    );

    let inside = run("child_sandboxed", "sandboxed");
    assert!(inside.contains(&"landlock full".into()), "{inside:?}");
    assert!(
        inside.contains(&"read passwd PermissionDenied".into()),
        "{inside:?}"
    );
    assert!(inside.contains(&"list home denied".into()), "{inside:?}");
    assert!(inside.contains(&"scratch true".into()), "{inside:?}");
    assert!(
        inside.contains(&"include did not read the file".into()),
        "{inside:?}"
    );
    assert!(
        inside.contains(&"host header not read".into()),
        "{inside:?}"
    );
    // And the runtime still builds and links kernels inside it.
    assert!(inside.contains(&"plain build true".into()), "{inside:?}");
}
