//! `vcompute-bench`: see the library's documentation.

use clap::Parser;

fn main() {
    let cli = vcompute_bench::args::Cli::parse();
    std::process::exit(vcompute_bench::main_with(cli.command));
}
