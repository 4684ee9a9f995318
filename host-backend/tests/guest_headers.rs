//! A program's own header files reach the daemon's compiler, and nothing
//! of the host does: builds through the shim against the real daemon
//! (its sandboxed workers, on POCL), compared with native builds of the
//! same programs in the same working directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const SRC_ENV: &str = "VCOMPUTE_TEST_SRC";
const OPTS_ENV: &str = "VCOMPUTE_TEST_OPTS";

/// Child entry point: builds `SRC_ENV` with `OPTS_ENV`, prints the build
/// status, each log line, and the kernel's result.
#[test]
fn child_build() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("build") {
        return;
    }
    use opencl3::command_queue::CommandQueue;
    use opencl3::context::Context;
    use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
    use opencl3::kernel::{ExecuteKernel, Kernel};
    use opencl3::memory::{Buffer, CL_MEM_READ_WRITE};
    use opencl3::platform::get_platforms;
    use opencl3::program::Program;
    use opencl3::types::{cl_int, CL_BLOCKING};

    let src = std::env::var(SRC_ENV).unwrap();
    let opts = std::env::var(OPTS_ENV).unwrap_or_default();
    let platform = get_platforms().expect("platforms")[0];
    let device = Device::new(platform.get_devices(CL_DEVICE_TYPE_ALL).expect("devices")[0]);
    let ctx = Context::from_device(&device).expect("context");
    let queue = CommandQueue::create_default_with_properties(&ctx, 0, 0).expect("queue");
    let program = match Program::create_and_build_from_source(&ctx, &src, &opts) {
        Ok(p) => p,
        Err(log) => {
            println!("T|build failed");
            for l in log.lines() {
                println!("T|log {l}");
            }
            return;
        }
    };
    println!("T|build ok");
    let kernel = Kernel::create(&program, "k").expect("kernel");
    // SAFETY: no host pointer.
    let out = unsafe { Buffer::<cl_int>::create(&ctx, CL_MEM_READ_WRITE, 1, std::ptr::null_mut()) }
        .expect("buffer");
    // SAFETY: the kernel's one argument is the buffer.
    unsafe {
        ExecuteKernel::new(&kernel)
            .set_arg(&out)
            .set_global_work_size(1)
            .enqueue_nd_range(&queue)
            .expect("launch");
    }
    let mut v = [0 as cl_int; 1];
    // SAFETY: `v` outlives the blocking read.
    unsafe { queue.enqueue_read_buffer(&out, CL_BLOCKING, 0, &mut v, &[]) }.expect("read");
    println!("T|result {}", v[0]);
}

fn build(target: &Target<'_>, cwd: &Path, src: &str, opts: &str) -> Vec<String> {
    let mut cmd = child_command("child_build", "build", target);
    cmd.current_dir(cwd).env(SRC_ENV, src).env(OPTS_ENV, opts);
    transcript(&run_child(cmd, Duration::from_secs(120)))
}

/// A program tree: headers in the working directory and below it, one
/// that includes another.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("include/deep")).unwrap();
    std::fs::write(p.join("local.h"), "#define SEVEN 7\n").unwrap();
    std::fs::write(
        p.join("include/nine.h"),
        "#include \"deep/eight.h\"\n#define NINE (EIGHT + 1)\n",
    )
    .unwrap();
    std::fs::write(p.join("include/deep/eight.h"), "#define EIGHT 8\n").unwrap();
    std::fs::write(p.join("include/broken.h"), "this is not OpenCL C;\n").unwrap();
    dir
}

#[test]
fn a_programs_own_headers_build_as_natively() {
    if !have_native_opencl() {
        return;
    }
    let dir = tree();
    let daemon = Daemon::start(&[]);
    let src = "#include \"local.h\"\n#include <nine.h>\n\
               __kernel void k(__global int *o) { o[0] = SEVEN * 100 + NINE + X; }";
    let opts = "-I include -DX=1 -cl-std=CL1.2 -w";
    let native = build(&Target::Native, dir.path(), src, opts);
    let virt = build(&Target::Shim(&daemon), dir.path(), src, opts);
    assert!(native.contains(&"result 710".to_string()), "{native:?}");
    assert_eq!(native, virt);

    // An error inside a header is reported at the guest's path.
    let broken = "#include <broken.h>\n__kernel void k(__global int *o) { o[0] = 1; }";
    let virt = build(&Target::Shim(&daemon), dir.path(), broken, "-I include");
    assert!(virt.contains(&"build failed".to_string()), "{virt:?}");
    let at = format!("{}/include/broken.h:1:", dir.path().display());
    assert!(virt.iter().any(|l| l.contains(&at)), "{at} in {virt:?}");
    assert!(
        !virt.iter().any(|l| l.contains("vhost-device-compute-")),
        "the daemon's directories leaked into the log: {virt:?}"
    );
}

#[test]
fn host_files_stay_out_of_reach_and_unseen() {
    if !have_native_opencl() {
        return;
    }
    let dir = tree();
    let daemon = Daemon::start(&[]);
    for inc in [
        "/etc/passwd",
        "../../../../../../etc/passwd",
        "/usr/include/stdio.h",
    ] {
        let src = format!("#include \"{inc}\"\n__kernel void k(__global int *o) {{ o[0] = 1; }}");
        let virt = build(&Target::Shim(&daemon), dir.path(), &src, "");
        assert!(
            virt.contains(&"build failed".to_string()),
            "{inc}: {virt:?}"
        );
        assert!(
            virt.iter().any(|l| l.contains("file not found")),
            "{inc}: {virt:?}"
        );
        // Neither its contents, nor that it exists.
        for leak in ["root:", "Permission denied", "stdio.h:"] {
            assert!(
                !virt.iter().any(|l| l.contains(leak)),
                "{inc}: {leak:?} in {virt:?}"
            );
        }
    }
}

/// Program directories POCL has cached below `cache`.
fn cached_programs(cache: &Path) -> usize {
    let Ok(buckets) = std::fs::read_dir(cache.join("pocl")) else {
        return 0;
    };
    buckets
        .flatten()
        .filter(|b| b.path().is_dir())
        .map(|b| std::fs::read_dir(b.path()).map_or(0, |d| d.count()))
        .sum()
}

/// A kernel cache shared by workers serves the second connection's build
/// of the same program, with and without header files: the options a
/// build is given do not depend on the worker or on the build's turn.
#[test]
fn the_same_build_in_another_worker_hits_a_shared_kernel_cache() {
    if !have_native_opencl() {
        return;
    }
    let dir = tree();
    let cache = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&["--kernel-cache", cache.path().to_str().unwrap()]);
    let programs = [
        (
            "#include <nine.h>\n__kernel void k(__global int *o) { o[0] = NINE; }",
            "-I include",
            "result 9",
        ),
        (
            "__kernel void k(__global int *o) { o[0] = 4; }",
            "",
            "result 4",
        ),
    ];
    for (src, opts, want) in programs {
        let first = build(&Target::Shim(&daemon), dir.path(), src, opts);
        assert!(first.contains(&want.to_string()), "{first:?}");
        let after_first = cached_programs(cache.path());
        assert!(after_first > 0, "nothing cached in {:?}", cache.path());
        // Each build runs in a fresh worker (one per connection).
        let second = build(&Target::Shim(&daemon), dir.path(), src, opts);
        assert_eq!(first, second);
        assert_eq!(
            cached_programs(cache.path()),
            after_first,
            "the second build of {src:?} was compiled again"
        );
    }
    // Other headers: another entry, never the first build's.
    std::fs::write(
        dir.path().join("include/deep/eight.h"),
        "#define EIGHT 80\n",
    )
    .unwrap();
    let before = cached_programs(cache.path());
    let other = build(
        &Target::Shim(&daemon),
        dir.path(),
        programs[0].0,
        programs[0].1,
    );
    assert!(other.contains(&"result 81".to_string()), "{other:?}");
    assert!(cached_programs(cache.path()) > before);
}
