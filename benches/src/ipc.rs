//! What the runner and a worker process say to each other: one JSON object
//! per line. The runner writes [`ToWorker`] lines on the worker's stdin;
//! the worker answers each with one [`FromWorker`] line on stdout, prefixed
//! with [`PREFIX`] so that anything else a runtime prints there is ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workload::Case;

/// Marks the worker's protocol lines on stdout.
pub const PREFIX: &str = "vcompute-bench-ipc ";

/// A request to a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run `case`: `warmup` untimed runs, then `reps` timed ones.
    Run {
        case: Case,
        warmup: usize,
        reps: usize,
    },
}

/// What a worker's runtime says about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub api: String,
    pub platform_name: String,
    pub platform_vendor: String,
    pub platform_version: String,
    pub device_name: String,
    pub device_vendor: String,
    pub device_version: String,
    pub device_type: String,
    pub driver_version: String,
    pub compute_units: u32,
    pub global_mem_bytes: u64,
}

/// Samples of one case on one side, every one verified.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Nanoseconds per timed run.
    pub samples_ns: Vec<f64>,
    /// Secondary per-run figures some workloads report (asyncAPI: time the
    /// host spent issuing; clock: host wall time beside the device's).
    pub extra: BTreeMap<String, Vec<f64>>,
}

/// A worker's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// Sent once at start-up, before any request.
    Ready { runtime: RuntimeInfo },
    /// The case ran and every result matched its reference.
    Done { measurement: Measurement },
    /// The case failed: an API error or a wrong result.
    Failed { error: String },
}

/// Encodes one line (without the newline).
pub fn encode<T: Serialize>(msg: &T) -> String {
    // Serializing these plain types cannot fail; keep a readable fallback.
    serde_json::to_string(msg).unwrap_or_else(|e| format!("\"unencodable: {e}\""))
}
