//! A checked run plan, made from the command line.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::Api;
use crate::args::{RunArgs, Transport};
use crate::workload::{catalogue, Case, Sizes, FAMILIES, MATRIX_TILE};

/// Command-line values that do not make a run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown workload {0:?}; the workloads are: {list}", list = FAMILIES.join(", "))]
    UnknownWorkload(String),
    #[error("matrixMul sizes must be positive multiples of {MATRIX_TILE}, not {0}")]
    MatrixSize(usize),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("the selection has no cases")]
    Empty,
}

/// What a run does.
#[derive(Debug, Clone)]
pub struct Config {
    pub api: Api,
    pub quick: bool,
    pub cases: Vec<Case>,
    pub rounds: usize,
    reps: Option<usize>,
    warmup: Option<usize>,
    pub endpoint: Option<String>,
    /// How the shim reaches a daemon the harness starts.
    pub transport: Transport,
    pub daemon: Option<PathBuf>,
    pub shim: Option<PathBuf>,
    pub out: PathBuf,
    pub case_timeout: Duration,
}

impl Config {
    /// Timed repetitions of `case` per round.
    pub fn reps_for(&self, case: &Case) -> usize {
        self.reps.unwrap_or_else(|| {
            let full = case.default_reps();
            if self.quick {
                (full / 10).clamp(2, 200)
            } else {
                full
            }
        })
    }

    /// Warm-up runs of `case` per round.
    pub fn warmup_for(&self, case: &Case) -> usize {
        self.warmup.unwrap_or_else(|| case.default_warmup())
    }
}

/// The sizes a run uses: the quick or full set, with any size flags
/// replacing their lists.
pub fn sizes(args: &RunArgs) -> Sizes {
    let mut s = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if !args.vector_sizes.is_empty() {
        s.vector.clone_from(&args.vector_sizes);
    }
    if !args.matrix_sizes.is_empty() {
        s.matrix.clone_from(&args.matrix_sizes);
    }
    if !args.bandwidth_sizes.is_empty() {
        s.bandwidth.clone_from(&args.bandwidth_sizes);
    }
    s
}

impl TryFrom<RunArgs> for Config {
    type Error = ConfigError;

    fn try_from(args: RunArgs) -> Result<Config, ConfigError> {
        for w in &args.workloads {
            if !FAMILIES.iter().any(|f| f.eq_ignore_ascii_case(w)) {
                return Err(ConfigError::UnknownWorkload(w.clone()));
            }
        }
        let sizes = sizes(&args);
        if let Some(&bad) = sizes
            .matrix
            .iter()
            .find(|&&n| n == 0 || n % MATRIX_TILE != 0)
        {
            return Err(ConfigError::MatrixSize(bad));
        }
        if sizes.vector.contains(&0) {
            return Err(ConfigError::Zero("a vectorAdd size"));
        }
        if sizes.bandwidth.contains(&0) {
            return Err(ConfigError::Zero("a bandwidthTest size"));
        }
        let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
        if rounds == 0 {
            return Err(ConfigError::Zero("--rounds"));
        }
        if args.reps == Some(0) {
            return Err(ConfigError::Zero("--reps"));
        }
        if args.case_timeout == 0 {
            return Err(ConfigError::Zero("--case-timeout"));
        }
        let mut cases = catalogue(&sizes, &args.workloads);
        cases.retain(|c| c.runs_on(args.api));
        if cases.is_empty() {
            return Err(ConfigError::Empty);
        }
        Ok(Config {
            api: args.api,
            quick: args.quick,
            cases,
            rounds,
            reps: args.reps,
            warmup: args.warmup,
            endpoint: args.endpoint,
            transport: args.transport,
            daemon: args.daemon,
            shim: args.shim,
            out: args.out,
            case_timeout: Duration::from_secs(args.case_timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["vcompute-bench", "run"];
        argv.extend_from_slice(args);
        let Command::Run(a) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not run");
        };
        Config::try_from(a)
    }

    #[test]
    fn quick_runs_every_family_once_with_few_reps() {
        let c = config(&["--quick"]).unwrap();
        assert_eq!(c.rounds, 1);
        let mut fams: Vec<&str> = c.cases.iter().map(Case::family).collect();
        fams.dedup();
        assert_eq!(fams, FAMILIES);
        assert_eq!(c.reps_for(&Case::NullSync), 200);
        assert_eq!(c.reps_for(&Case::MatrixMul { n: 128 }), 2);
    }

    #[test]
    fn overrides_apply() {
        let c = config(&[
            "--workloads",
            "matrixMul",
            "--matrix-sizes",
            "32,64",
            "--reps",
            "7",
        ])
        .unwrap();
        assert_eq!(
            c.cases,
            [Case::MatrixMul { n: 32 }, Case::MatrixMul { n: 64 }]
        );
        assert_eq!(c.reps_for(&c.cases[0]), 7);
        assert_eq!(c.rounds, 3);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        assert_eq!(
            config(&["--workloads", "nbody"]).unwrap_err(),
            ConfigError::UnknownWorkload("nbody".into())
        );
        assert_eq!(
            config(&["--matrix-sizes", "100"]).unwrap_err(),
            ConfigError::MatrixSize(100)
        );
        assert_eq!(
            config(&["--rounds", "0"]).unwrap_err(),
            ConfigError::Zero("--rounds")
        );
        let e = config(&["--workloads", "nbody"]).unwrap_err().to_string();
        assert!(e.contains("vectorAdd, matrixMul"), "{e}");
    }
}
