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
    conformance_child();
}

#[test]
fn conformance_transcript_matches_native() {
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start(&[]);
    assert_conformance_matches_native(&Target::Shim(&daemon));
}

fn clinfo(target: &Target<'_>) -> String {
    let mut cmd = Command::new("clinfo");
    aim(&mut cmd, target);
    let out = run_child(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "clinfo failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extensions POCL 3.1 lists whose host API the shim does not carry
/// (content-size buffers, command buffers, SPIR binaries, which the
/// daemon refuses as foreign binaries): the daemon does not advertise them.
const UNCARRIED_EXTENSIONS: &[&str] = &[
    "cl_pocl_content_size",
    "cl_khr_command_buffer",
    "cl_khr_spir",
];

/// The clinfo lines a session sees differently from native, each for
/// what the daemon does not forward: `(label, native, through the shim)`.
/// Shared virtual memory and native kernels read as absent; the queries
/// of removed extensions (command buffers, SPIR versions) as unknown.
fn expected_differences(native: &str) -> String {
    let mut out = Vec::new();
    let mut in_svm = false;
    let mut skip_indent = None;
    for line in native.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(i) = skip_indent {
            if indent > i {
                continue;
            }
            skip_indent = None;
        }
        let text = line.trim();
        if text.starts_with("Command buffer capabilities") {
            skip_indent = Some(indent);
            continue;
        }
        if text.starts_with("SPIR versions") {
            continue;
        }
        if UNCARRIED_EXTENSIONS.iter().any(|e| text.starts_with(e)) {
            // A line of an extensions-with-version list.
            continue;
        }
        if text.starts_with("Shared Virtual Memory (SVM) capabilities") {
            in_svm = true;
        } else if indent <= 2 {
            in_svm = false;
        }
        let mut l = line.to_string();
        let absent = (in_svm
            && ["Coarse-grained", "Fine-grained buffer", "Atomics"]
                .iter()
                .any(|p| text.starts_with(p)))
            || text.starts_with("Run native kernels");
        if absent {
            l = l.replacen("Yes", "No", 1);
        }
        if text.starts_with("Platform Extensions  ") || text.starts_with("Device Extensions  ") {
            let (label, list) = l.split_at(l.find("cl_").unwrap_or(l.len()));
            let kept: Vec<&str> = list
                .split_whitespace()
                .filter(|e| !UNCARRIED_EXTENSIONS.contains(e))
                .collect();
            l = format!("{label}{}", kept.join(" "));
        }
        out.push(l);
    }
    out.join("\n")
}

/// Collapses runs of spaces inside extension lists (the daemon rewrites
/// a list it removes entries from with single spaces).
fn normalized(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("Platform Extensions  ")
                || l.trim_start().starts_with("Device Extensions  ")
            {
                let at = l.find("cl_").unwrap_or(l.len());
                let (label, list) = l.split_at(at);
                format!(
                    "{label}{}",
                    list.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    let want = normalized(&expected_differences(&native));
    let got = normalized(&virt);
    let diff: Vec<(&str, &str)> = want
        .lines()
        .zip(got.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        diff.is_empty() && want.lines().count() == got.lines().count(),
        "clinfo differs from native beyond what is not forwarded ({} vs {} lines):\n{diff:#?}",
        want.lines().count(),
        got.lines().count()
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

/// Whether `addr` lies in a mapping of the shim's shared arena.
fn in_shared_arena(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines().any(|l| {
        let Some((range, rest)) = l.split_once(' ') else {
            return false;
        };
        let Some((a, b)) = range.split_once('-') else {
            return false;
        };
        let (a, b) = (
            usize::from_str_radix(a, 16).unwrap_or(0),
            usize::from_str_radix(b, 16).unwrap_or(0),
        );
        (a..b).contains(&addr) && rest.contains("memfd:vcompute-arena")
    })
}

/// Child entry point: maps a `CL_MEM_ALLOC_HOST_PTR` buffer, says whether
/// the mapping lies in shared memory, and checks a write from it and a
/// read into it.
#[test]
fn child_alloc_host_ptr_map() {
    use opencl3::command_queue::CommandQueue;
    use opencl3::context::Context;
    use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
    use opencl3::memory::{
        Buffer, ClMem, CL_MAP_READ, CL_MAP_WRITE, CL_MEM_ALLOC_HOST_PTR, CL_MEM_READ_WRITE,
    };
    use opencl3::types::{cl_mem, CL_BLOCKING};

    if std::env::var(CHILD_ENV).as_deref() != Ok("hostmap") {
        return;
    }
    let platform = opencl3::platform::get_platforms().unwrap()[0];
    let device = Device::new(platform.get_devices(CL_DEVICE_TYPE_ALL).unwrap()[0]);
    let ctx = Context::from_device(&device).unwrap();
    let q = CommandQueue::create_default_with_properties(&ctx, 0, 0).unwrap();
    let len = 3 << 20;
    // SAFETY: no host pointer is passed.
    let host = unsafe {
        Buffer::<u8>::create(
            &ctx,
            CL_MEM_ALLOC_HOST_PTR | CL_MEM_READ_WRITE,
            len,
            std::ptr::null_mut(),
        )
    }
    .unwrap();
    // SAFETY: as above.
    let mut dev =
        unsafe { Buffer::<u8>::create(&ctx, CL_MEM_READ_WRITE, len, std::ptr::null_mut()) }
            .unwrap();
    let mut ptr: cl_mem = std::ptr::null_mut();
    let flags = CL_MAP_READ | CL_MAP_WRITE;
    // SAFETY: a blocking map of the whole buffer into `ptr`.
    unsafe { q.enqueue_map_buffer(&host, CL_BLOCKING, flags, 0, len, &mut ptr, &[]) }.unwrap();
    println!("T|shared={}", in_shared_arena(ptr as usize));
    // SAFETY: the mapping covers `len` bytes until the unmap below.
    let mapped = unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) };
    let pattern: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
    mapped.copy_from_slice(&pattern);
    // SAFETY: blocking transfers between live buffers and the mapping.
    unsafe { q.enqueue_write_buffer(&mut dev, CL_BLOCKING, 0, mapped, &[]) }.unwrap();
    mapped.fill(0);
    // SAFETY: as above.
    unsafe { q.enqueue_read_buffer(&dev, CL_BLOCKING, 0, mapped, &[]) }.unwrap();
    println!("T|round_trip={}", mapped == pattern.as_slice());
    // SAFETY: `ptr` is the address the map returned for `host`.
    unsafe { q.enqueue_unmap_mem_object(host.get(), ptr, &[]) }.unwrap();
    q.finish().unwrap();
    println!("T|done");
}

#[test]
fn alloc_host_ptr_maps_are_shared_memory_on_the_virtqueue_transport() {
    if !have_native_opencl() {
        return;
    }
    let daemon = Daemon::start_with_stream(&[]);
    let run = |target: &Target<'_>| {
        let out = run_child(
            child_command("child_alloc_host_ptr_map", "hostmap", target),
            Duration::from_secs(120),
        );
        let t = transcript(&out);
        assert!(
            t.contains(&"done".to_string()) && t.contains(&"round_trip=true".to_string()),
            "{t:?}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    };
    // Transfers from and to the mapping are then read and written in place.
    assert!(run(&Target::Shim(&daemon)).contains(&"shared=true".to_string()));
    // Without shared memory (a stream) the mapping is ordinary memory.
    assert!(run(&Target::Stream(&daemon)).contains(&"shared=false".to_string()));
    assert!(run(&Target::Native).contains(&"shared=false".to_string()));
}
