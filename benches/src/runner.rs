//! Runs a plan: starts (or reaches) the daemon, one worker process per
//! side, and interleaves them case by case and round by round, with the
//! side that goes first alternating so that drift in the machine's state
//! does not favour one side. The first failure ends the run: no partial
//! numbers are reported.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::api::cuda::libdir::ShimLibDir;
use crate::api::{Api, Side, VirtualTarget, SHIM_FILE};
use crate::args::Transport;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::ipc::{encode, FromWorker, Measurement, RuntimeInfo, ToWorker, PREFIX};
use crate::workload::Case;

/// How long a worker may take to open its runtime.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of a worker's stderr kept for the failure report.
const STDERR_TAIL: usize = 20;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Something the run needs is missing or would not start.
    #[error("{0}")]
    Setup(String),
    /// A worker failed, died or stopped answering.
    #[error("{side} side failed{at}: {detail}{context}{stderr}", side = side.label())]
    Worker {
        side: Side,
        at: String,
        detail: String,
        context: String,
        stderr: String,
    },
    /// The daemon this run started exited.
    #[error("{detail} (noticed after `{case}`, round {round})")]
    Daemon {
        detail: String,
        case: String,
        round: usize,
    },
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    pub native_runtime: RuntimeInfo,
    pub virtual_runtime: RuntimeInfo,
    pub endpoint: String,
    /// Per case, in plan order: (native, virtualized) samples.
    pub measurements: Vec<(Case, Measurement, Measurement)>,
}

/// One worker process and the pipes to it.
struct Worker {
    side: Side,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

fn sibling(name: &str) -> Result<PathBuf, RunError> {
    let exe = std::env::current_exe().map_err(|e| RunError::Setup(e.to_string()))?;
    let dir = exe
        .parent()
        .ok_or_else(|| RunError::Setup("this binary has no directory".into()))?;
    Ok(dir.join(name))
}

impl Worker {
    fn spawn(api: Api, side: Side, target: &VirtualTarget) -> Result<Worker, RunError> {
        let exe = std::env::current_exe().map_err(|e| RunError::Setup(e.to_string()))?;
        let mut cmd = Command::new(exe);
        cmd.args(["worker", "--api", api.arg(), "--side", side.arg()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        api.point_at(&mut cmd, side, target);
        let mut child = cmd
            .spawn()
            .map_err(|e| RunError::Setup(format!("cannot start a {} worker: {e}", side.label())))?;
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(msg) = line.strip_prefix(PREFIX) {
                        if tx.send(msg.to_string()).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let tail = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == STDERR_TAIL {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            });
        }
        Ok(Worker {
            side,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        })
    }

    /// A failure of this worker, with its stderr tail.
    fn error(&mut self, at: &str, detail: String) -> RunError {
        // Give the reader threads a moment to collect a dying worker's
        // last words.
        std::thread::sleep(Duration::from_millis(100));
        let tail: Vec<String> = self
            .stderr
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        RunError::Worker {
            side: self.side,
            at: at.to_string(),
            detail,
            context: String::new(),
            stderr: if tail.is_empty() {
                String::new()
            } else {
                format!("\n  worker stderr:\n    {}", tail.join("\n    "))
            },
        }
    }

    fn recv(&mut self, timeout: Duration, at: &str) -> Result<FromWorker, RunError> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line)
                .map_err(|e| self.error(at, format!("unreadable answer {line:?}: {e}"))),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(self.error(at, format!("no answer within {} s", timeout.as_secs())))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self
                    .child
                    .wait()
                    .map_or_else(|e| e.to_string(), |s| s.to_string());
                Err(self.error(at, format!("the worker exited ({status})")))
            }
        }
    }

    fn ready(&mut self) -> Result<RuntimeInfo, RunError> {
        match self.recv(STARTUP_TIMEOUT, " at start-up")? {
            FromWorker::Ready { runtime } => Ok(runtime),
            FromWorker::Failed { error } => Err(self.error(" at start-up", error)),
            FromWorker::Done { .. } => {
                Err(self.error(" at start-up", "answered out of turn".into()))
            }
        }
    }

    fn run(
        &mut self,
        case: &Case,
        warmup: usize,
        reps: usize,
        timeout: Duration,
    ) -> Result<Measurement, RunError> {
        let at = format!(" in `{case}`");
        let req = encode(&ToWorker::Run {
            case: case.clone(),
            warmup,
            reps,
        });
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{req}").and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("stdin closed")),
        };
        if let Err(e) = sent {
            return Err(self.error(&at, format!("cannot send the request: {e}")));
        }
        match self.recv(timeout, &at)? {
            FromWorker::Done { measurement } => {
                check_measurement(&measurement, reps).map_err(|d| self.error(&at, d))?;
                Ok(measurement)
            }
            FromWorker::Failed { error } => Err(self.error(&at, error)),
            FromWorker::Ready { .. } => Err(self.error(&at, "answered out of turn".into())),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin ends a healthy worker; kill covers a stuck one.
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rejects a measurement that cannot be a set of real timings.
fn check_measurement(m: &Measurement, reps: usize) -> Result<(), String> {
    if m.samples_ns.len() != reps {
        return Err(format!(
            "returned {} samples, {reps} were asked for",
            m.samples_ns.len()
        ));
    }
    if let Some(bad) = m.samples_ns.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!("returned an impossible sample: {bad} ns"));
    }
    Ok(())
}

fn progress(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}, eta {eta}] {msg}")
    {
        pb.set_style(style);
    }
    pb
}

/// Runs the plan in `cfg`.
pub fn run(cfg: &Config) -> Result<Outcome, RunError> {
    cfg.api
        .check_available()
        .map_err(|e| RunError::Setup(e.to_string()))?;
    let shim = match &cfg.shim {
        Some(p) => p.clone(),
        None => sibling(SHIM_FILE)?,
    };
    if !shim.exists() {
        return Err(RunError::Setup(format!(
            "the shim library is not at {} (build it, or pass --shim)",
            shim.display()
        )));
    }
    let cuda_lib_dir = match cfg.api {
        Api::Cuda => Some(ShimLibDir::create(&shim).map_err(RunError::Setup)?),
        Api::OpenCl => None,
    };
    let mut daemon = None;
    let endpoint = match &cfg.endpoint {
        Some(e) => e.clone(),
        None => {
            let bin = match &cfg.daemon {
                Some(p) => p.clone(),
                None => sibling("vhost-device-compute")?,
            };
            let d = Daemon::start(&bin, cfg.api, cfg.transport == Transport::Unix)
                .map_err(RunError::Setup)?;
            eprintln!(
                "vcompute-bench: started {} (pid {}) at {}",
                bin.display(),
                d.pid(),
                d.endpoint
            );
            let e = d.endpoint.clone();
            daemon = Some(d);
            e
        }
    };
    let target = VirtualTarget {
        shim,
        endpoint: endpoint.clone(),
        cuda_lib_dir,
    };
    // Says what became of the daemon, for a virtualized-side failure.
    let context = |daemon: &mut Option<Daemon>| match daemon {
        Some(d) => match d.check_alive() {
            Ok(()) => String::new(),
            Err(e) => format!("\n  {e}"),
        },
        None => format!("\n  (is the daemon at {endpoint} still running?)"),
    };
    let annotate = |e: RunError, daemon: &mut Option<Daemon>| match e {
        RunError::Worker {
            side: Side::Virtual,
            at,
            detail,
            stderr,
            ..
        } => RunError::Worker {
            side: Side::Virtual,
            at,
            detail,
            context: context(daemon),
            stderr,
        },
        other => other,
    };

    let mut native = Worker::spawn(cfg.api, Side::Native, &target)?;
    let mut virt = Worker::spawn(cfg.api, Side::Virtual, &target)?;
    let native_runtime = native.ready()?;
    let virtual_runtime = virt.ready().map_err(|e| annotate(e, &mut daemon))?;

    let mut measurements: Vec<(Case, Measurement, Measurement)> = cfg
        .cases
        .iter()
        .map(|c| (c.clone(), Measurement::default(), Measurement::default()))
        .collect();
    let pb = progress((cfg.rounds * cfg.cases.len() * 2) as u64);
    let log_lines = pb.is_hidden();
    let timeout = cfg.case_timeout;
    for round in 0..cfg.rounds {
        for (i, (case, n_meas, v_meas)) in measurements.iter_mut().enumerate() {
            let order = if (round + i) % 2 == 0 {
                [Side::Native, Side::Virtual]
            } else {
                [Side::Virtual, Side::Native]
            };
            let (warmup, reps) = (cfg.warmup_for(case), cfg.reps_for(case));
            for side in order {
                let step = format!("round {}/{} {} {case}", round + 1, cfg.rounds, side.label());
                pb.set_message(step.clone());
                let (worker, into) = match side {
                    Side::Native => (&mut native, &mut *n_meas),
                    Side::Virtual => (&mut virt, &mut *v_meas),
                };
                let m = worker
                    .run(case, warmup, reps, timeout)
                    .map_err(|e| annotate(e, &mut daemon))?;
                into.samples_ns.extend(m.samples_ns);
                for (k, v) in m.extra {
                    into.extra.entry(k).or_default().extend(v);
                }
                pb.inc(1);
                if log_lines {
                    eprintln!(
                        "[{}/{}] {step}: ok",
                        pb.position(),
                        pb.length().unwrap_or(0)
                    );
                }
            }
            if let Some(d) = daemon.as_mut() {
                d.check_alive().map_err(|detail| RunError::Daemon {
                    detail,
                    case: case.to_string(),
                    round: round + 1,
                })?;
            }
        }
    }
    pb.finish_and_clear();
    Ok(Outcome {
        native_runtime,
        virtual_runtime,
        endpoint,
        measurements,
    })
}
