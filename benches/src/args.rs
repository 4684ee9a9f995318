//! Command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::{Api, Side};

/// virtio-compute benchmark harness: each workload natively and through
/// virtio-compute, interleaved in one run.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run workloads natively and virtualized; print a Markdown table and
    /// write JSON and SVG results.
    Run(RunArgs),
    /// Run only the micro-benchmarks (same as `run --workloads micro`).
    Micro(RunArgs),
    /// List the cases a run would measure.
    List(ListArgs),
    /// Time to first call: fresh programs natively and through daemons
    /// with and without warm workers.
    Coldstart(ColdArgs),
    /// Internal: serves cases in this process against one runtime.
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// Internal: one fresh program's time to first call.
    #[command(hide = true)]
    ProbeStart,
}

/// Parses a byte count with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 10),
        Some((i, 'M' | 'm')) => (&s[..i], 20),
        Some((i, 'G' | 'g')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64K, 16M)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The API to measure.
    #[arg(long, value_enum, default_value = "opencl")]
    pub api: Api,
    /// Workload families to run, comma-separated (vectorAdd, matrixMul,
    /// BlackScholes, fastWalshTransform, convolutionSeparable,
    /// bandwidthTest, asyncAPI, clock, alignedTypes, micro); default all.
    #[arg(long, value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// Every workload at small sizes with few repetitions: a smoke test of
    /// correctness through the whole path, not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// Rounds; each round runs every case on both sides, alternating which
    /// side goes first [default: 3, or 1 with --quick].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Timed repetitions per case per round [default: per workload].
    #[arg(long)]
    pub reps: Option<usize>,
    /// Untimed warm-up runs per case per round [default: per workload].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// vectorAdd element counts, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub vector_sizes: Vec<usize>,
    /// matrixMul sizes (multiples of 16), comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub matrix_sizes: Vec<usize>,
    /// bandwidthTest transfer sizes, comma-separated (e.g. 64K,1M,16M).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub bandwidth_sizes: Vec<usize>,
    /// Use a running daemon at this endpoint instead of starting one (any
    /// `VCOMPUTE_ENDPOINT` value: device:PATH, vhost-user:PATH, unix:PATH, vsock:CID:PORT).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Transport to the daemon this harness starts (ignored with --endpoint).
    #[arg(long, value_enum, default_value_t = Transport::VhostUser)]
    pub transport: Transport,
    /// The daemon binary [default: next to this binary].
    #[arg(long)]
    pub daemon: Option<PathBuf>,
    /// The shim library, libvcompute_shim.so, for either API [default:
    /// next to this binary].
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Directory for results.json and results.svg.
    #[arg(long, default_value = "target/vcompute-bench")]
    pub out: PathBuf,
    /// Longest one case may take on one side, in seconds, before the run
    /// is declared failed.
    #[arg(long, default_value_t = 600)]
    pub case_timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ColdArgs {
    /// Fresh processes per target.
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// Pause between programs, in milliseconds (a warm worker is replaced
    /// in the meantime, as between invocations).
    #[arg(long, default_value_t = 300)]
    pub gap_ms: u64,
    /// The daemon binary [default: next to this binary].
    #[arg(long)]
    pub daemon: Option<PathBuf>,
    /// The shim library [default: next to this binary].
    #[arg(long)]
    pub shim: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// List the --quick cases.
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
pub struct WorkerArgs {
    /// The API to open.
    #[arg(long, value_enum)]
    pub api: Api,
    /// The side this worker measures (CUDA checks that it loaded the
    /// matching `libcuda.so.1`).
    #[arg(long, value_enum)]
    pub side: Side,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16m"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn run_flags_parse() {
        let cli = Cli::try_parse_from([
            "vcompute-bench",
            "run",
            "--workloads",
            "vectorAdd,bandwidthTest",
            "--bandwidth-sizes",
            "64K,16M",
            "--rounds",
            "2",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run");
        };
        assert_eq!(a.workloads, ["vectorAdd", "bandwidthTest"]);
        assert_eq!(a.bandwidth_sizes, [64 << 10, 16 << 20]);
        assert_eq!(a.rounds, Some(2));
        assert_eq!(a.api, Api::OpenCl);
        assert_eq!(a.transport, Transport::VhostUser);
    }

    #[test]
    fn cuda_runs_and_workers_parse() {
        let cli = Cli::try_parse_from(["vcompute-bench", "run", "--api", "cuda"]).unwrap();
        let Command::Run(a) = cli.command else {
            panic!("not run");
        };
        assert_eq!(a.api, Api::Cuda);
        for side in [Side::Native, Side::Virtual] {
            let cli = Cli::try_parse_from([
                "vcompute-bench",
                "worker",
                "--api",
                Api::Cuda.arg(),
                "--side",
                side.arg(),
            ])
            .unwrap();
            let Command::Worker(w) = cli.command else {
                panic!("not worker");
            };
            assert_eq!((w.api, w.side), (Api::Cuda, side));
        }
        // A worker must be told its side.
        assert!(Cli::try_parse_from(["vcompute-bench", "worker", "--api", "cuda"]).is_err());
    }
}
