//! `vcompute-bench`: runs each workload natively and through virtio-compute
//! in the same invocation, interleaved, and reports the ratio.
//!
//! | module | role |
//! |---|---|
//! | `args` | command line |
//! | `daemon` | starting and stopping `vhost-device-compute` |
//! | `runner` | interleaving native and virtualized worker processes |
//! | `worker` | the workloads themselves (OpenCL) |
//! | `stats` | percentiles and ratios |
//! | `report` | the Markdown table |

mod args;
mod daemon;
mod report;
mod runner;
mod stats;
mod worker;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let code = match cli.command {
        args::Command::Micro(opts) => match runner::run_micro(&opts) {
            Ok(table) => {
                print!("{table}");
                0
            }
            Err(e) => {
                eprintln!("vcompute-bench: {e}");
                1
            }
        },
        args::Command::Worker(opts) => match worker::run(&opts) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("vcompute-bench worker: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}
