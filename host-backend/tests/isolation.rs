//! One tenant's crash, hang or exploit reaches no one else: every
//! connection is served by a sandboxed worker process of its own.
//!
//! The programs run as children of this test binary through the shim (see
//! `common`), against the real daemon binary on POCL. POCL compiles guest
//! kernels to native code, so a kernel can make system calls itself
//! (inline `syscall`), which is how the sandbox's rules are exercised.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Environment of a child: the kernel source it builds and runs.
const SRC_ENV: &str = "VCOMPUTE_TEST_SRC";
/// Environment of a child: a file it creates once its work is under way.
const MARK_ENV: &str = "VCOMPUTE_TEST_MARK";
/// Environment of a child: a file whose existence tells it to finish.
const DONE_ENV: &str = "VCOMPUTE_TEST_DONE";
/// Environment of a child: the secret it keeps in device memory (hex).
const SECRET_ENV: &str = "VCOMPUTE_TEST_SECRET";

/// A kernel that opens `/etc/passwd` with a raw system call and stores the
/// result (a descriptor, or a negative errno).
const OPEN_PASSWD: &str = r#"
__kernel void k(__global long *out) {
    __constant char *path = "/etc/passwd";
    long ret;
    __asm__ volatile ("syscall" : "=a"(ret) : "a"(2L), "D"(path), "S"(0L) : "rcx", "r11", "memory");
    out[0] = ret;
}"#;

/// A kernel that calls `ptrace(PTRACE_TRACEME)`: forbidden to workers.
const PTRACE: &str = r#"
__kernel void k(__global long *out) {
    long ret;
    __asm__ volatile ("syscall" : "=a"(ret) : "a"(101L), "D"(0L), "S"(0L) : "rcx", "r11", "memory");
    out[0] = ret;
}"#;

/// A kernel that never ends.
const FOREVER: &str = r#"
__kernel void k(__global long *out) {
    volatile __global long *p = out;
    for (;;) { p[0] += 1; }
}"#;

/// A source that crashes clang itself.
const CRASH_COMPILER: &str =
    "#pragma clang __debug crash\n__kernel void k(__global long *out) { out[0] = 1; }";

/// A plain kernel.
const FORTY_TWO: &str = "__kernel void k(__global long *out) { out[0] = 42; }";

/// Iterations of the long computation per work-item.
const LONG_ITERS: u64 = 120_000_000;
/// Work-items of the long computation.
const LONG_ITEMS: usize = 64;

fn xorshift_sum(gid: u64, iters: u64) -> u64 {
    let mut x = gid.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut sum = 0u64;
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum = sum.wrapping_add(x);
    }
    sum
}

mod cl {
    //! The OpenCL calls of the child programs, with error codes kept.
    pub use opencl3::command_queue::CommandQueue;
    pub use opencl3::context::Context;
    pub use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
    pub use opencl3::kernel::{ExecuteKernel, Kernel};
    pub use opencl3::memory::{Buffer, CL_MEM_READ_WRITE};
    pub use opencl3::platform::get_platforms;
    pub use opencl3::program::Program;
    pub use opencl3::types::{cl_long, CL_BLOCKING};

    pub fn context() -> (Context, Device) {
        let platform = get_platforms().expect("platforms")[0];
        let device = Device::new(platform.get_devices(CL_DEVICE_TYPE_ALL).expect("devices")[0]);
        (Context::from_device(&device).expect("context"), device)
    }
}

/// Child entry point: builds `SRC_ENV`, runs `k` on one work-item and
/// prints `T|build`, `T|run` and `T|result` lines (error codes, the value).
#[test]
fn child_run_source() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("run-source") {
        return;
    }
    use cl::*;
    let src = std::env::var(SRC_ENV).unwrap();
    let (ctx, _) = cl::context();
    let queue = CommandQueue::create_default_with_properties(&ctx, 0, 0).expect("queue");
    let program = match Program::create_and_build_from_source(&ctx, &src, "") {
        Ok(p) => p,
        Err(log) => {
            println!("T|build failed");
            eprintln!("{log}");
            return;
        }
    };
    println!("T|build 0");
    let kernel = Kernel::create(&program, "k").expect("kernel");
    // SAFETY: no host pointer.
    let out =
        unsafe { Buffer::<cl_long>::create(&ctx, CL_MEM_READ_WRITE, 1, std::ptr::null_mut()) }
            .expect("buffer");
    // SAFETY: the kernel's one argument is the buffer.
    let run = unsafe {
        ExecuteKernel::new(&kernel)
            .set_arg(&out)
            .set_global_work_size(1)
            .enqueue_nd_range(&queue)
    };
    if let Some(mark) = std::env::var_os(MARK_ENV) {
        std::fs::write(mark, b"").unwrap();
    }
    let finished = run.map(|_| ()).and_then(|()| queue.finish());
    match finished {
        Ok(()) => println!("T|run 0"),
        Err(e) => {
            println!("T|run {}", e.0);
            return;
        }
    }
    let mut v = [0 as cl_long; 1];
    // SAFETY: `v` outlives the blocking read.
    match unsafe { queue.enqueue_read_buffer(&out, CL_BLOCKING, 0, &mut v, &[]) } {
        Ok(_) => println!("T|result {}", v[0]),
        Err(e) => println!("T|read {}", e.0),
    }
}

/// Child entry point: a long computation whose every result is checked.
#[test]
fn child_long_computation() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("long") {
        return;
    }
    use cl::*;
    let (ctx, _) = cl::context();
    let queue = CommandQueue::create_default_with_properties(&ctx, 0, 0).expect("queue");
    let src = r#"
__kernel void k(__global ulong *out, ulong iters) {
    ulong gid = get_global_id(0);
    ulong x = (gid * 0x9E3779B97F4A7C15UL) | 1UL;
    ulong sum = 0;
    for (ulong i = 0; i < iters; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        sum += x;
    }
    out[gid] = sum;
}"#;
    let program = Program::create_and_build_from_source(&ctx, src, "").expect("build");
    let kernel = Kernel::create(&program, "k").expect("kernel");
    // SAFETY: no host pointer.
    let out =
        unsafe { Buffer::<u64>::create(&ctx, CL_MEM_READ_WRITE, LONG_ITEMS, std::ptr::null_mut()) }
            .expect("buffer");
    // SAFETY: the arguments match the kernel's.
    unsafe {
        ExecuteKernel::new(&kernel)
            .set_arg(&out)
            .set_arg(&LONG_ITERS)
            .set_global_work_size(LONG_ITEMS)
            .enqueue_nd_range(&queue)
            .expect("launch");
    }
    std::fs::write(std::env::var_os(MARK_ENV).unwrap(), b"").unwrap();
    let start = Instant::now();
    queue.finish().expect("finish");
    let mut v = vec![0u64; LONG_ITEMS];
    // SAFETY: `v` outlives the blocking read.
    unsafe { queue.enqueue_read_buffer(&out, CL_BLOCKING, 0, &mut v, &[]) }.expect("read");
    // A sample checked against the CPU (the whole set would take as long
    // as the kernel again in a debug build).
    let exact = [0usize, LONG_ITEMS - 1]
        .iter()
        .all(|&g| v[g] == xorshift_sum(g as u64, LONG_ITERS));
    println!(
        "T|long exact={exact} after {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

/// Child entry point: asks for a device-side queue, which POCL does not
/// implement (it aborts its process natively; the daemon refuses the
/// properties before the runtime sees them, as the device info advertises
/// no device-side queues).
#[test]
fn child_device_queue() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("device-queue") {
        return;
    }
    use opencl3::command_queue::{
        CL_QUEUE_ON_DEVICE, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, CL_QUEUE_PROPERTIES,
    };
    let (ctx, device) = cl::context();
    let props = [
        CL_QUEUE_PROPERTIES as u64,
        CL_QUEUE_ON_DEVICE | CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE,
        0,
    ];
    // SAFETY: `props` is a zero-terminated property list.
    let q = unsafe {
        cl3::command_queue::create_command_queue_with_properties(
            ctx.get(),
            device.id(),
            props.as_ptr(),
        )
    };
    match q {
        Ok(_) => println!("T|queue 0"),
        Err(e) => println!("T|queue {e}"),
    }
}

/// Child entry point: keeps a secret in device memory until told to end.
#[test]
fn child_secret_keeper() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("secret") {
        return;
    }
    use cl::*;
    let hex = std::env::var(SECRET_ENV).unwrap();
    let secret: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let (ctx, _) = cl::context();
    let queue = CommandQueue::create_default_with_properties(&ctx, 0, 0).expect("queue");
    // SAFETY: no host pointer.
    let mut buf = unsafe {
        Buffer::<u8>::create(&ctx, CL_MEM_READ_WRITE, secret.len(), std::ptr::null_mut())
    }
    .expect("buffer");
    // SAFETY: `secret` outlives the blocking write.
    unsafe { queue.enqueue_write_buffer(&mut buf, CL_BLOCKING, 0, &secret, &[]) }.expect("write");
    queue.finish().expect("finish");
    std::fs::write(std::env::var_os(MARK_ENV).unwrap(), b"").unwrap();
    let done = std::env::var_os(DONE_ENV).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !Path::new(&done).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("T|kept");
}

fn run_source(daemon: &Daemon, src: &str, timeout: Duration) -> Vec<String> {
    let mut cmd = child_command("child_run_source", "run-source", &Target::Shim(daemon));
    cmd.env(SRC_ENV, src);
    transcript(&run_child(cmd, timeout))
}

fn wait_for(path: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A native error code in a transcript line like `run -5`, if it is one.
fn failed(lines: &[String], what: &str) -> bool {
    lines.iter().any(|l| {
        l.strip_prefix(what)
            .and_then(|c| c.trim().parse::<i32>().ok())
            .is_some_and(|c| c != 0)
            || l == &format!("{what} failed")
    })
}

#[test]
fn a_crashing_runtime_ends_only_its_own_session() {
    if !have_native_opencl() {
        return;
    }
    let mut daemon = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("long-started");
    let mut long = child_command("child_long_computation", "long", &Target::Shim(&daemon));
    long.env(MARK_ENV, &mark);
    let long = std::thread::spawn(move || transcript(&run_child(long, Duration::from_secs(300))));
    wait_for(&mark, Duration::from_secs(60));

    // A device-side queue: refused (POCL would abort the process serving it).
    let queue = transcript(&run_child(
        child_command("child_device_queue", "device-queue", &Target::Shim(&daemon)),
        Duration::from_secs(60),
    ));
    assert!(failed(&queue, "queue"), "{queue:?}");
    // A source that crashes the compiler.
    let crash = run_source(&daemon, CRASH_COMPILER, Duration::from_secs(60));
    assert!(failed(&crash, "build"), "{crash:?}");
    // A kernel's forbidden system call.
    let ptrace = run_source(&daemon, PTRACE, Duration::from_secs(60));
    assert!(failed(&ptrace, "run"), "{ptrace:?}");
    daemon.assert_alive();
    // All of that happened while the long computation ran.
    assert!(
        !long.is_finished(),
        "the long computation ended too soon to tell"
    );

    // The long computation, in the same daemon all along, is unharmed.
    let long = long.join().unwrap();
    assert!(
        long.iter().any(|l| l.starts_with("long exact=true")),
        "{long:?}"
    );
    // And a program started afterwards works.
    let after = run_source(&daemon, FORTY_TWO, Duration::from_secs(60));
    assert!(after.contains(&"result 42".to_string()), "{after:?}");
    daemon.assert_alive();
}

#[test]
fn kernels_cannot_open_host_files_and_forbidden_calls_end_only_their_worker() {
    if !have_native_opencl() {
        return;
    }
    // Natively the kernel does open the file: the check below can fail.
    let mut native = child_command("child_run_source", "run-source", &Target::Native);
    native.env(SRC_ENV, OPEN_PASSWD);
    let native = transcript(&run_child(native, Duration::from_secs(60)));
    let fd = native
        .iter()
        .find_map(|l| l.strip_prefix("result "))
        .and_then(|v| v.parse::<i64>().ok());
    assert!(fd.is_some_and(|fd| fd >= 0), "native: {native:?}");

    let mut daemon = Daemon::start(&[]);
    let sandboxed = run_source(&daemon, OPEN_PASSWD, Duration::from_secs(60));
    assert!(
        sandboxed.contains(&format!("result {}", -libc::EACCES)),
        "through the shim: {sandboxed:?}"
    );
    let ptrace = run_source(&daemon, PTRACE, Duration::from_secs(60));
    assert!(failed(&ptrace, "run"), "{ptrace:?}");
    daemon.assert_alive();
    let after = run_source(&daemon, FORTY_TWO, Duration::from_secs(60));
    assert!(after.contains(&"result 42".to_string()), "{after:?}");
}

#[test]
fn a_kernel_that_never_ends_is_stopped_by_the_watchdog() {
    if !have_native_opencl() {
        return;
    }
    // Long enough for a build on a loaded machine: builds are calls too.
    let mut daemon = Daemon::start(&["--max-call-seconds", "8"]);
    let start = Instant::now();
    let forever = run_source(&daemon, FOREVER, Duration::from_secs(60));
    let took = start.elapsed();
    assert!(failed(&forever, "run"), "{forever:?}");
    // The limit, plus building the kernel and noticing (100 ms ticks).
    assert!(took < Duration::from_secs(30), "the guest waited {took:?}");
    daemon.assert_alive();
    let after = run_source(&daemon, FORTY_TWO, Duration::from_secs(60));
    assert!(after.contains(&"result 42".to_string()), "{after:?}");
}

/// The processes of a daemon: the supervisor and its workers.
fn daemon_processes(supervisor: u32) -> Vec<u32> {
    let mut pids = vec![supervisor];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(supervisor) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `needle` occurs anywhere in the readable memory of `pid`.
fn memory_holds(pid: u32, needle: &[u8]) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return false;
    };
    let Ok(mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return false;
    };
    const CHUNK: u64 = 4 << 20;
    let mut buf = vec![0u8; CHUNK as usize + needle.len()];
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut at = start;
        while at < end {
            let len = (end - at).min(CHUNK + needle.len() as u64) as usize;
            let Ok(n) = mem.read_at(&mut buf[..len], at) else {
                break;
            };
            let hay = &buf[..n];
            if hay.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            if n < len {
                break;
            }
            at += CHUNK;
        }
    }
    false
}

#[test]
fn a_sessions_memory_is_in_its_own_worker_only() {
    if !have_native_opencl() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: reading other processes' memory needs root");
        return;
    }
    let daemon = Daemon::start(&["--warm-workers", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    // The secret: 4 KiB no process could hold by chance.
    let mut secret = [0u8; 4096];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut secret,
    )
    .unwrap();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    // Session A keeps the secret; session B is another tenant, idle.
    let start = |name: &str, secret: &str| {
        let mark = dir.path().join(name);
        let mut cmd = child_command("child_secret_keeper", "secret", &Target::Shim(&daemon));
        cmd.env(SECRET_ENV, secret)
            .env(MARK_ENV, &mark)
            .env(DONE_ENV, &done);
        (
            std::thread::spawn(move || transcript(&run_child(cmd, Duration::from_secs(180)))),
            mark,
        )
    };
    let (a, a_mark) = start("a", &hex);
    let (b, b_mark) = start("b", "00");
    wait_for(&a_mark, Duration::from_secs(60));
    wait_for(&b_mark, Duration::from_secs(60));

    let pids = daemon_processes(daemon.pid());
    let holders: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| memory_holds(p, &secret))
        .collect();
    std::fs::write(&done, b"").unwrap();
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert!(a.contains(&"kept".to_string()) && b.contains(&"kept".to_string()));
    // Supervisor, A's worker, B's worker and a warm one were scanned.
    assert!(pids.len() >= 4, "daemon processes: {pids:?}");
    // Exactly one process holds the secret (so the scan does find it), and
    // it is a worker, not the supervisor: A's.
    assert_eq!(
        holders.len(),
        1,
        "processes holding the secret: {holders:?} of {pids:?}"
    );
    assert_ne!(holders[0], daemon.pid());
}
