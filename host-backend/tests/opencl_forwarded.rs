//! End to end: the OpenCL calls forwarded beyond buffers and kernels
//! (images, samplers, rectangles, migration, separate compilation, clones,
//! sub-devices, destructor callbacks, threads waiting on user events)
//! behave through the shim exactly as natively, and a long-lived process
//! can make and drop tens of thousands of contexts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ptr;
use std::time::Duration;

use common::*;

/// Child entry point: the transcript of `common::forwarded`.
#[test]
fn child_forwarded() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("forwarded") {
        return;
    }
    match forwarded::run() {
        Ok(lines) => lines.iter().for_each(|l| println!("T|{l}")),
        Err(code) => println!("T|failed with {code}"),
    }
}

#[test]
fn forwarded_transcript_matches_native() {
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start(&[]);
    let run = |target: &Target<'_>| {
        let out = run_child(
            child_command("child_forwarded", "forwarded", target),
            Duration::from_secs(300),
        );
        (
            transcript(&out),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (native, native_err) = run(&Target::Native);
    let (virt, virt_err) = run(&Target::Shim(&daemon));
    assert!(
        native.len() > 25 && !native.iter().any(|l| l.starts_with("failed")),
        "native run incomplete: {native:#?}\n{native_err}"
    );
    for want in [
        "image 16MiB write=0 read=0 same=true",
        "sampler kernel build=0",
        "linked kernel k(20)=Ok(41)",
    ] {
        assert!(
            native.iter().any(|l| l.starts_with(want)),
            "no {want:?} in {native:#?}"
        );
    }
    assert!(
        native
            .iter()
            .any(|l| l.contains("(set, wait, finish, read)=(0, 0, 0, (0, 7))")),
        "{native:#?}"
    );
    assert_eq!(native, virt, "transcripts differ; shim stderr:\n{virt_err}");
}

/// Child entry point: 20,000 contexts, each with a queue, a program and
/// a buffer, made and dropped in one process.
#[test]
fn child_many_contexts() {
    use cl3::command_queue as cq;
    use cl3::{context, device, memory, platform, program};
    if std::env::var(CHILD_ENV).as_deref() != Ok("contexts") {
        return;
    }
    let p = platform::get_platform_ids().unwrap()[0];
    let d = device::get_device_ids(p, device::CL_DEVICE_TYPE_ALL).unwrap()[0];
    let src = "__kernel void k(__global int *a) { a[get_global_id(0)] += 1; }";
    for i in 0..20_000 {
        let step = |what: &str, r: Result<(), i32>| {
            if let Err(e) = r {
                println!("T|context {i}: {what} failed with {e}");
                std::process::exit(1);
            }
        };
        let ctx = context::create_context(&[d], ptr::null(), None, ptr::null_mut());
        step("context", ctx.map(|_| ()));
        let ctx = ctx.unwrap();
        // SAFETY: NULL properties are allowed.
        let q = unsafe { cq::create_command_queue_with_properties(ctx, d, ptr::null()) };
        step("queue", q.map(|_| ()));
        let prog = program::create_program_with_source(ctx, &[src]);
        step("program", prog.map(|_| ()));
        // SAFETY: no host pointer.
        let buf =
            unsafe { memory::create_buffer(ctx, memory::CL_MEM_READ_WRITE, 4096, ptr::null_mut()) };
        step("buffer", buf.map(|_| ()));
        // SAFETY: each object is released once.
        unsafe {
            step("release", memory::release_mem_object(buf.unwrap()));
            step("release", program::release_program(prog.unwrap()));
            step("release", cq::release_command_queue(q.unwrap()));
            step("release", context::release_context(ctx));
        }
    }
    println!("T|20000 contexts made and released");
}

/// The daemon allows this session 64 objects: had any of the 80,000 the
/// child made stayed behind, its next creation would fail, so the child
/// finishing proves the daemon's count is back where it started after
/// every context.
#[test]
fn twenty_thousand_contexts_in_one_process() {
    if !have_native_opencl() {
        return;
    }
    let mut daemon = Daemon::start(&["--max-objects", "64"]);
    let out = run_child(
        child_command("child_many_contexts", "contexts", &Target::Shim(&daemon)),
        Duration::from_secs(600),
    );
    assert_eq!(
        transcript(&out),
        vec!["20000 contexts made and released".to_string()],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.assert_alive();
}
