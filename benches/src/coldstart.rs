//! Time to first call (`vcompute-bench coldstart`): how long a fresh OpenCL
//! program waits, from its first call, until the platform list is back
//! (connect, session, worker hand-over) and until its first kernel has
//! finished (context, build, launch, read-back). Measured natively and
//! through daemons with and without warm workers, interleaved in one run;
//! each sample is a new process, as a serverless function is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::{Api, SHIM_FILE};
use crate::args::ColdArgs;
use crate::daemon::Daemon;
use crate::stats;

/// The probe's kernel: small, so that its build cost is the runtime's
/// fixed cost of compiling and linking one kernel.
const KERNEL: &str = "__kernel void k(__global int *o) { o[get_global_id(0)] = 7; }";

/// One way a program reaches OpenCL.
struct Target {
    name: &'static str,
    endpoint: Option<String>,
}

/// The probe's measurement: microseconds to the platform list, and to the
/// first finished kernel.
pub fn probe() -> Result<(), String> {
    use opencl3::command_queue::CommandQueue;
    use opencl3::context::Context;
    use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
    use opencl3::kernel::{ExecuteKernel, Kernel};
    use opencl3::memory::{Buffer, CL_MEM_WRITE_ONLY};
    use opencl3::platform::get_platforms;
    use opencl3::program::Program;
    use opencl3::types::CL_BLOCKING;

    let t0 = Instant::now();
    let platforms = get_platforms().map_err(|e| format!("clGetPlatformIDs: {e}"))?;
    let first = t0.elapsed();
    let platform = platforms.first().ok_or("no platform")?;
    let devices = platform
        .get_devices(CL_DEVICE_TYPE_ALL)
        .map_err(|e| format!("clGetDeviceIDs: {e}"))?;
    let device = Device::new(*devices.first().ok_or("no device")?);
    let ctx = Context::from_device(&device).map_err(|e| format!("clCreateContext: {e}"))?;
    let queue = CommandQueue::create_default_with_properties(&ctx, 0, 0)
        .map_err(|e| format!("clCreateCommandQueue: {e}"))?;
    let program = Program::create_and_build_from_source(&ctx, KERNEL, "")
        .map_err(|log| format!("clBuildProgram: {log}"))?;
    let kernel = Kernel::create(&program, "k").map_err(|e| format!("clCreateKernel: {e}"))?;
    const N: usize = 256;
    // SAFETY: no host pointer.
    let out = unsafe { Buffer::<i32>::create(&ctx, CL_MEM_WRITE_ONLY, N, std::ptr::null_mut()) }
        .map_err(|e| format!("clCreateBuffer: {e}"))?;
    // SAFETY: the kernel's one argument is the buffer.
    unsafe {
        ExecuteKernel::new(&kernel)
            .set_arg(&out)
            .set_global_work_size(N)
            .enqueue_nd_range(&queue)
    }
    .map_err(|e| format!("clEnqueueNDRangeKernel: {e}"))?;
    let mut v = vec![0i32; N];
    // SAFETY: `v` outlives the blocking read.
    unsafe { queue.enqueue_read_buffer(&out, CL_BLOCKING, 0, &mut v, &[]) }
        .map_err(|e| format!("clEnqueueReadBuffer: {e}"))?;
    let kernel_done = t0.elapsed();
    if v.iter().any(|&x| x != 7) {
        return Err("the kernel's result is wrong".into());
    }
    println!("{} {}", first.as_micros(), kernel_done.as_micros());
    Ok(())
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(exe
        .parent()
        .ok_or("this binary has no directory")?
        .join(name))
}

/// Runs one probe process at `target`; returns its two times.
fn sample(shim: &Path, target: &Target, cache: &Path) -> Result<(Duration, Duration), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("probe-start").stdin(Stdio::null());
    match &target.endpoint {
        None => {
            // A fresh kernel cache: natively, too, the first build of a
            // program that has never run on this host.
            cmd.env_remove("OCL_ICD_VENDORS")
                .env_remove("VCOMPUTE_ENDPOINT")
                .env("POCL_CACHE_DIR", cache);
        }
        Some(e) => {
            cmd.env("OCL_ICD_VENDORS", shim).env("VCOMPUTE_ENDPOINT", e);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start a probe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.split_whitespace().map(str::parse::<u64>);
    match (out.status.success(), f.next(), f.next()) {
        (true, Some(Ok(a)), Some(Ok(b))) => {
            Ok((Duration::from_micros(a), Duration::from_micros(b)))
        }
        _ => Err(format!(
            "the {} probe failed: {}",
            target.name,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

fn ms(d: f64) -> String {
    format!("{:.1} ms", d * 1e3)
}

/// Runs the comparison; returns the Markdown table.
pub fn run(args: &ColdArgs) -> Result<String, String> {
    let shim = match &args.shim {
        Some(p) => p.clone(),
        None => sibling(SHIM_FILE)?,
    };
    let bin = match &args.daemon {
        Some(p) => p.clone(),
        None => sibling("vhost-device-compute")?,
    };
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let shared = scratch.path().join("shared-cache");
    std::fs::create_dir(&shared).map_err(|e| e.to_string())?;
    let shared = shared.display().to_string();
    let daemons = [
        ("no warm worker", vec!["--warm-workers", "0"]),
        ("1 warm worker", vec!["--warm-workers", "1"]),
        (
            "1 warm worker, shared kernel cache",
            vec!["--warm-workers", "1", "--kernel-cache", shared.as_str()],
        ),
    ];
    let mut started = Vec::new();
    for (i, (name, extra)) in daemons.iter().enumerate() {
        let d = Daemon::start_with(&bin, Api::OpenCl, false, extra, &format!("cold{i}"))?;
        started.push((*name, d));
    }
    let mut targets = vec![Target {
        name: "native",
        endpoint: None,
    }];
    targets.extend(started.iter().map(|(name, d)| Target {
        name,
        endpoint: Some(d.endpoint.clone()),
    }));
    let mut times: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); targets.len()];
    for round in 0..args.samples {
        // Alternate the order so that drift favours no target.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..targets.len()).collect()
        } else {
            (0..targets.len()).rev().collect()
        };
        for i in order {
            let cache = scratch.path().join(format!("native-{round}"));
            let (a, b) = sample(&shim, &targets[i], &cache)?;
            times[i].0.push(a.as_secs_f64());
            times[i].1.push(b.as_secs_f64());
            // Between programs, as between invocations: a warm worker has
            // been replaced by then.
            std::thread::sleep(Duration::from_millis(args.gap_ms));
        }
        for (_, d) in started.iter_mut() {
            d.check_alive()?;
        }
    }
    let mut table = format!(
        "Time to first call, {} fresh processes per target (p50 / p90), `vcompute-bench coldstart --samples {}`:\n\n\
         | target | first clGetPlatformIDs | first kernel finished |\n|---|---|---|\n",
        args.samples, args.samples
    );
    for (t, (first, kernel)) in targets.iter().zip(&times) {
        let (f, k) = (stats::summarize(first), stats::summarize(kernel));
        table.push_str(&format!(
            "| {} | {} / {} | {} / {} |\n",
            t.name,
            ms(f.median),
            ms(f.p90),
            ms(k.median),
            ms(k.p90),
        ));
    }
    Ok(table)
}
