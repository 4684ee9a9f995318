//! A worker process: opens one API backend against whatever runtime its
//! environment points at (native, or the shim), announces the runtime,
//! then runs the cases the runner sends on stdin, one answer per request.
//! It stays alive across cases and rounds, so kernels are built once per
//! side and both sides keep their runtime warm.

use std::io::{BufRead, Write};

use crate::api::{self, Api, Side};
use crate::ipc::{encode, FromWorker, ToWorker, PREFIX};

/// Worker failures that end the process.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The backend could not be opened.
    #[error("cannot open the runtime: {0}")]
    Open(#[from] api::WorkloadError),
    /// The runner's pipe failed.
    #[error("pipe to the runner: {0}")]
    Io(#[from] std::io::Error),
    /// The runner sent something unreadable.
    #[error("bad request from the runner: {0}")]
    Request(#[from] serde_json::Error),
}

fn send(out: &mut impl Write, msg: &FromWorker) -> std::io::Result<()> {
    writeln!(out, "{PREFIX}{}", encode(msg))?;
    out.flush()
}

/// Serves requests until stdin closes.
pub fn run(api: Api, side: Side) -> Result<(), WorkerError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut backend = match api::open(api, side) {
        Ok(b) => b,
        Err(e) => {
            send(
                &mut out,
                &FromWorker::Failed {
                    error: e.to_string(),
                },
            )?;
            return Err(e.into());
        }
    };
    send(
        &mut out,
        &FromWorker::Ready {
            runtime: backend.runtime().clone(),
        },
    )?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let ToWorker::Run { case, warmup, reps } = serde_json::from_str(&line)?;
        let answer = match backend.run(&case, warmup, reps) {
            Ok(measurement) => FromWorker::Done { measurement },
            Err(e) => FromWorker::Failed {
                error: e.to_string(),
            },
        };
        send(&mut out, &answer)?;
    }
    Ok(())
}
