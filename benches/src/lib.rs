//! `vcompute-bench`: the benchmark harness. Runs each workload natively
//! and through virtio-compute in the same invocation, interleaved, checks
//! every result against a CPU reference, and reports medians, spreads,
//! ratios and their geometric mean as Markdown, JSON and an SVG plot.
//!
//! | module | role |
//! |---|---|
//! | [`args`] | command line |
//! | [`config`] | the checked run plan |
//! | [`workload`] | the workload catalogue, shared by every API |
//! | [`reference`](mod@reference) | inputs and CPU references |
//! | [`problem`] | each workload's inputs, reference and check, shared by every API |
//! | [`check`] | comparing results with the references |
//! | [`api`] | one backend per compute API (`api::opencl`, `api::cuda`) |
//! | [`worker`] | a worker process: one backend against one runtime |
//! | [`ipc`] | the runner–worker line protocol |
//! | [`runner`] | interleaving native and virtualized workers |
//! | [`daemon`] | starting and stopping `vhost-device-compute` |
//! | [`coldstart`] | time to first call, with and without warm workers |
//! | [`stats`] | percentiles and geometric means |
//! | [`machine`] | the machine description |
//! | [`report`] | results: Markdown, JSON, SVG |

pub mod api;
pub mod args;
pub mod check;
pub mod coldstart;
pub mod config;
pub mod daemon;
pub mod ipc;
pub mod machine;
pub mod problem;
pub mod reference;
pub mod report;
pub mod runner;
pub mod stats;
pub mod worker;
pub mod workload;

use args::{Command, RunArgs};
use config::Config;
use report::Results;

/// Harness failures, each with the message the user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Run(#[from] runner::RunError),
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
    #[error(transparent)]
    Plot(#[from] report::plot::PlotError),
    #[error("{0}")]
    Cold(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs a benchmark and writes its outputs; returns the Markdown report.
pub fn bench(args: RunArgs) -> Result<String, Error> {
    let cfg = Config::try_from(args)?;
    let outcome = runner::run(&cfg)?;
    let results = Results::new(
        outcome,
        cfg.api,
        cfg.quick,
        cfg.rounds,
        machine::describe(),
        machine::now_utc(),
    );
    let write_err = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(&cfg.out).map_err(write_err(&cfg.out))?;
    let json = cfg.out.join("results.json");
    results.write_json(&json).map_err(write_err(&json))?;
    let svg = cfg.out.join("results.svg");
    report::plot::write_svg(&results, &svg)?;
    eprintln!(
        "vcompute-bench: wrote {} and {}",
        json.display(),
        svg.display()
    );
    Ok(report::markdown::render(&results))
}

/// Lists the cases of a run.
pub fn list(quick: bool) -> String {
    let sizes = if quick {
        workload::Sizes::quick()
    } else {
        workload::Sizes::full()
    };
    workload::catalogue(&sizes, &[])
        .iter()
        .map(|c| format!("{:<22}{c}\n", c.family()))
        .collect()
}

/// Runs a parsed command line; returns the process exit code.
pub fn main_with(command: Command) -> i32 {
    let result = match command {
        Command::Run(a) => bench(a).map(|table| print!("{table}")),
        Command::Micro(mut a) => {
            a.workloads = vec!["micro".into()];
            bench(a).map(|table| print!("{table}"))
        }
        Command::List(a) => {
            print!("{}", list(a.quick));
            Ok(())
        }
        Command::Worker(a) => worker::run(a.api, a.side).map_err(Error::from),
        Command::Coldstart(a) => coldstart::run(&a)
            .map(|table| print!("{table}"))
            .map_err(Error::Cold),
        Command::ProbeStart => coldstart::probe().map_err(Error::Cold),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vcompute-bench: FAILED: {e}");
            1
        }
    }
}
