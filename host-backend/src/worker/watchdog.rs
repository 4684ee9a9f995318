//! The watchdog: when one call (a kernel that never ends, a finish that
//! never returns) has run longer than `--max-call-seconds`, the worker
//! tells the supervisor and exits at once. Its guest sees the connection
//! end, which the shim reports as a native error; nothing else is affected.

use std::io;
use std::thread;
use std::time::Duration;

use crate::control::{Control, FromWorker};
use crate::hooks;
use crate::log::daemon_limiter;

use super::EXIT_WATCHDOG;

/// How often calls are looked at: the worker ends within this of the limit.
const TICK: Duration = Duration::from_millis(100);

/// Starts the watchdog thread for calls longer than `limit`.
pub fn start(limit: Duration, control: Control) -> io::Result<()> {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    thread::Builder::new()
        .name("vcompute-watchdog".into())
        .spawn(move || loop {
            thread::sleep(TICK);
            let Some(h) = hooks::get() else { continue };
            let Some((ms, opcode)) = h.longest_call() else {
                continue;
            };
            if ms < limit_ms {
                continue;
            }
            crate::limited_error!(
                daemon_limiter(),
                opcode = format_args!("{opcode:#06x}"),
                seconds = limit.as_secs(),
                "a call ran past the watchdog's limit; ending the worker"
            );
            let _ = control.send_to_supervisor(&FromWorker::Watchdog {
                seconds: limit.as_secs(),
                opcode,
            });
            // SAFETY: `_exit` ends the process at once without running any
            // destructor, which is what is wanted while another thread is
            // stuck in the runtime: nothing of this process outlives it.
            unsafe { libc::_exit(i32::from(EXIT_WATCHDOG)) };
        })
        .map(|_| ())
}
