//! `vhost-device-compute` binary: start logging, parse arguments, and
//! supervise (or, when the supervisor started this process, be a worker).

use std::error::Error;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vhost_device_compute::args::Args;
use vhost_device_compute::config::Config;
use vhost_device_compute::{supervisor, worker};

/// Log filter when `RUST_LOG` is unset. virtio-queue logs every malformed
/// avail ring a guest publishes, without rate limiting; the daemon counts and
/// reports those itself, so the crate's own lines are off by default.
const DEFAULT_LOG: &str = "info,virtio_queue=off";

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
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match Config::try_from(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vhost-device-compute: error: {}", report(&e));
            return ExitCode::from(2);
        }
    };
    if let Some(fd) = config.worker_control {
        return worker::run(config, fd);
    }
    match supervisor::run(config, std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // log-policy: once per daemon, as it exits.
            tracing::error!("{}", report(&e));
            eprintln!("vhost-device-compute: error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}
