//! The `--metrics` endpoint: every connection gets one HTTP/1.0 response
//! with the Prometheus text of [`State::render`], then is closed. That is
//! all a Prometheus scrape (over TCP) or `curl --unix-socket` needs; the
//! request itself is read (bounded, with a timeout) and otherwise ignored,
//! so the endpoint has no parser to attack. A small hand-written responder
//! rather than an HTTP server crate: there is one resource and one method.

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::thread;
use std::time::Duration;

use crate::config::MetricsAddr;

use super::state::State;

/// Longest request read before answering.
const MAX_REQUEST: usize = 8192;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The running endpoint; removes its unix socket file when dropped.
#[derive(Debug)]
pub struct Endpoint {
    unix_path: Option<std::path::PathBuf>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds `addr` and serves it on a thread of its own.
pub fn serve(addr: &MetricsAddr, state: State) -> io::Result<Endpoint> {
    match addr {
        MetricsAddr::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let l = UnixListener::bind(path)?;
            // The metrics name clients; only the daemon's user reads them.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            spawn(move || loop {
                if let Ok((c, _)) = l.accept() {
                    let _ = c.set_read_timeout(Some(REQUEST_TIMEOUT));
                    answer(c, &state);
                }
            })?;
            Ok(Endpoint {
                unix_path: Some(path.clone()),
            })
        }
        MetricsAddr::Tcp(a) => {
            let l = TcpListener::bind(a)?;
            spawn(move || loop {
                if let Ok((c, _)) = l.accept() {
                    let _ = c.set_read_timeout(Some(REQUEST_TIMEOUT));
                    answer(c, &state);
                }
            })?;
            Ok(Endpoint { unix_path: None })
        }
    }
}

fn spawn(f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name("vcompute-metrics".into())
        .spawn(f)
        .map(|_| ())
}

/// Reads the request (up to its blank line, bounded) and writes the page.
fn answer<C: Read + Write>(mut c: C, state: &State) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while req.len() < MAX_REQUEST && !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let body = state.render();
    let _ = write!(
        c,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
