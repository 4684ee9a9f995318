//! Interleaves native and virtualized worker processes and gathers samples.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::MicroOpts;
use crate::daemon::Daemon;
use crate::report::{markdown, Row, Unit};
use crate::stats::summarize;

/// Where a worker's OpenCL calls go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Native,
    Virtual,
}

/// Longest a single worker may run before the run is declared failed.
const WORKER_TIMEOUT: Duration = Duration::from_secs(600);

fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("binary has no directory")?;
    Ok(dir.join(name))
}

type Samples = BTreeMap<String, Vec<f64>>;

fn run_worker(
    side: Side,
    opts: &MicroOpts,
    size: usize,
    reps: usize,
    shim: &PathBuf,
    endpoint: &str,
    into: &mut Samples,
) -> Result<(), String> {
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.args([
        "worker",
        "--reps",
        &reps.to_string(),
        "--size",
        &size.to_string(),
    ]);
    match side {
        Side::Native => {
            cmd.env_remove("OCL_ICD_VENDORS")
                .env_remove("VCOMPUTE_ENDPOINT");
        }
        Side::Virtual => {
            cmd.env("OCL_ICD_VENDORS", shim)
                .env("VCOMPUTE_ENDPOINT", endpoint);
        }
    }
    let _ = opts;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start worker: {e}"))?;
    let mut out = String::new();
    let mut stdout = child.stdout.take().ok_or("no worker stdout")?;
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + WORKER_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{side:?} worker timed out after {WORKER_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().map_err(|_| "worker output reader panicked")?;
    if !status.success() {
        return Err(format!(
            "{side:?} worker failed ({status}); no numbers reported"
        ));
    }
    for line in out.lines() {
        let mut it = line.split_whitespace();
        if let (Some("sample"), Some(name), Some(ns)) = (it.next(), it.next(), it.next()) {
            let ns: f64 = ns
                .parse()
                .map_err(|_| format!("bad sample line {line:?}"))?;
            into.entry(name.to_string()).or_default().push(ns);
        }
    }
    Ok(())
}

/// Runs the micro-benchmarks and returns the Markdown table.
pub fn run_micro(opts: &MicroOpts) -> Result<String, String> {
    let (reps, rounds, size) = if opts.quick {
        (200, 1, 1 << 20)
    } else {
        (opts.reps, opts.rounds, opts.size_mib << 20)
    };
    let shim = match &opts.shim {
        Some(p) => p.clone(),
        None => sibling("libvcompute_shim.so")?,
    };
    if !shim.exists() {
        return Err(format!("shim library not found at {}", shim.display()));
    }
    let mut daemon = None;
    let endpoint = match &opts.endpoint {
        Some(e) => e.clone(),
        None => {
            let bin = match &opts.daemon {
                Some(p) => p.clone(),
                None => sibling("vhost-device-compute")?,
            };
            let d = Daemon::start(&bin, opts.transport == crate::args::Transport::Unix)?;
            let e = d.endpoint.clone();
            daemon = Some(d);
            e
        }
    };
    let mut native = Samples::new();
    let mut virt = Samples::new();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}: native", round + 1);
        run_worker(
            Side::Native,
            opts,
            size,
            reps,
            &shim,
            &endpoint,
            &mut native,
        )?;
        eprintln!("round {}/{rounds}: virtio-compute", round + 1);
        run_worker(Side::Virtual, opts, size, reps, &shim, &endpoint, &mut virt)?;
        if let Some(d) = daemon.as_mut() {
            d.check_alive()?;
        }
    }
    let mut rows = Vec::new();
    for (name, unit) in [
        ("sync_finish", Unit::Latency),
        ("write", Unit::Bandwidth { bytes: size }),
        ("read", Unit::Bandwidth { bytes: size }),
    ] {
        let (Some(n), Some(v)) = (native.get(name), virt.get(name)) else {
            return Err(format!("workload {name} produced no samples"));
        };
        rows.push(Row {
            name: match unit {
                Unit::Latency => name.to_string(),
                Unit::Bandwidth { bytes } => format!("{name} {} MiB", bytes >> 20),
            },
            unit,
            native: summarize(n),
            virt: summarize(v),
        });
    }
    Ok(markdown(&rows))
}
