//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// virtio-compute benchmark harness.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Micro-benchmarks: synchronous round trip and write/read bandwidth.
    Micro(MicroOpts),
    /// Internal: runs workloads in this process against one target.
    #[command(hide = true)]
    Worker(WorkerOpts),
}

#[derive(Debug, Args)]
pub struct MicroOpts {
    /// Samples per workload per round.
    #[arg(long, default_value_t = 2000)]
    pub reps: usize,
    /// Rounds; each round runs native then virtualized.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Transfer size for the bandwidth workloads, in MiB.
    #[arg(long, default_value_t = 64)]
    pub size_mib: usize,
    /// Use a running daemon at this endpoint instead of starting one (any
    /// `VCOMPUTE_ENDPOINT` value: vhost-user:PATH, unix:PATH, vsock:CID:PORT).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Transport to the daemon this harness starts (ignored with --endpoint).
    #[arg(long, value_enum, default_value_t = Transport::VhostUser)]
    pub transport: Transport,
    /// The daemon binary (default: next to this binary).
    #[arg(long)]
    pub daemon: Option<PathBuf>,
    /// The shim library (default: libvcompute_shim.so next to this binary).
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Small sizes and few repetitions: a smoke test, not a measurement.
    #[arg(long)]
    pub quick: bool,
}

/// How the shim reaches a daemon the harness starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Shared-memory virtqueues (direct mode).
    VhostUser,
    /// Records over the daemon's `--listen unix:` socket.
    Unix,
}

#[derive(Debug, Args)]
pub struct WorkerOpts {
    /// Samples per workload.
    #[arg(long)]
    pub reps: usize,
    /// Transfer size in bytes.
    #[arg(long)]
    pub size: usize,
}
