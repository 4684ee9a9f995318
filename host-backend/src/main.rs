//! `vhost-device-compute` binary: start logging, parse arguments, serve.

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vhost_device_compute::args::{Args, Config};
use vhost_device_compute::server;

fn report(e: &dyn Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::try_from(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vhost-device-compute: error: {}", report(&e));
            return ExitCode::from(2);
        }
    };
    match server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", report(&e));
            eprintln!("vhost-device-compute: error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}
