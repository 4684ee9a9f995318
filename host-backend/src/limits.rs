//! Defaults for the daemon's per-session and per-daemon bounds, and the
//! rate limiter for log lines a guest can trigger.
//!
//! Wire-format bounds live in [`protocol::limits`]; these are the operator's
//! knobs, each with the reason for its default.

use std::time::{Duration, Instant};

use crate::executor::SessionLimits;

/// Default for `--max-sessions`: concurrent guest connections. One session
/// holds one executor (a runtime context plus its staging buffers); 64 packs
/// a busy host with small VMs without exhausting GPU contexts.
pub const DEFAULT_MAX_SESSIONS: usize = 64;

/// Default for `--max-objects`: live objects (buffers, kernels, events...) in
/// one session. Real programs stay in the thousands; 65536 stops a runaway
/// guest long before the daemon's handle tables grow large.
pub const DEFAULT_MAX_OBJECTS: usize = 65536;

/// Default for `--max-device-memory`: 0, meaning no daemon-side cap. The
/// runtime's own out-of-memory errors still apply; operators packing many
/// tenants onto one GPU should set a share.
pub const DEFAULT_MAX_DEVICE_MEMORY: u64 = 0;

/// Default for `--poll-us`: how long a queue keeps polling its avail ring
/// after draining it. A kick+call round trip costs ~50 µs, a polled one ~2 µs,
/// so spinning for about one notification's cost pays for itself.
pub const DEFAULT_POLL_US: u64 = 50;

/// Default for `--vsock-port`: the port a guest connects to in vsock
/// device mode, and the one the shim's documentation uses
/// (`VCOMPUTE_ENDPOINT=vsock:2:7000`).
pub const DEFAULT_VSOCK_PORT: u32 = 7000;

/// Largest accepted `--poll-us`. Longer spins burn a core for little gain;
/// 10 ms already covers a whole synchronous call on a slow device.
pub const MAX_POLL_US: u64 = 10_000;

/// Bytes of one pinned staging buffer of the CUDA executor. Copies between
/// guest memory and the GPU go through these in chunks; PCIe DMA reaches
/// near-peak bandwidth from about 1 MiB per transfer, and a few MiB keep the
/// per-chunk driver overhead (a few µs) under 10% on a PCIe 5 link.
pub const STAGING_CHUNK: usize = 4 << 20;

/// Pinned staging buffers per session and device, allocated as copies need
/// them. Four let the guest-memory copy of one chunk overlap the DMA of the
/// previous ones; with 64 sessions that pins at most 1 GiB of host memory.
pub const STAGING_BUFFERS: usize = 4;

/// Warnings a single limiter lets through per [`WARN_WINDOW`]. Enough to show
/// what went wrong; a guest that keeps sending garbage gets summarised.
pub const WARN_BURST: u32 = 10;

/// The window over which [`WARN_BURST`] applies.
pub const WARN_WINDOW: Duration = Duration::from_secs(10);

/// Turns the operator's settings into the bounds handed to each executor.
/// A device-memory setting of 0 means unlimited (`u64::MAX`).
pub fn session_limits(max_objects: usize, max_device_memory: u64) -> SessionLimits {
    SessionLimits {
        max_objects,
        max_device_memory: if max_device_memory == 0 {
            u64::MAX
        } else {
            max_device_memory
        },
    }
}

/// Lets at most [`WARN_BURST`] events through per [`WARN_WINDOW`] and counts
/// the rest, so that a guest repeating a fault cannot flood the log.
#[derive(Debug)]
pub struct WarnLimiter {
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

impl Default for WarnLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl WarnLimiter {
    /// A limiter with a fresh window.
    pub fn new() -> Self {
        WarnLimiter {
            window_start: Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Returns `Some(n)` when the caller may log, where `n` is the number of
    /// events suppressed since the last allowed one (to mention in the line),
    /// or `None` when this event must be dropped.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= WARN_WINDOW {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window < WARN_BURST {
            self.in_window += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }

    /// Events dropped and not yet reported.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// Logs a `warn!` through a [`WarnLimiter`], mentioning how many earlier
/// lines were suppressed.
#[macro_export]
macro_rules! limited_warn {
    ($limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.allow() {
            if suppressed > 0 {
                tracing::warn!(suppressed, $($arg)+);
            } else {
                tracing::warn!($($arg)+);
            }
        }
    };
}

/// Logs an `info!` through a [`WarnLimiter`]: for lifecycle lines a guest
/// can repeat at will (opening and closing sessions).
#[macro_export]
macro_rules! limited_info {
    ($limiter:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $limiter.allow() {
            if suppressed > 0 {
                tracing::info!(suppressed, $($arg)+);
            } else {
                tracing::info!($($arg)+);
            }
        }
    };
}

/// Characters of a guest-chosen name (such as the session's client name)
/// that reach the log.
pub const LOGGED_NAME_CHARS: usize = 64;

/// A guest-chosen name as the log shows it: at most
/// [`LOGGED_NAME_CHARS`] characters, control characters escaped, so that
/// it can neither start a forged log line nor steer a terminal.
pub fn logged_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(LOGGED_NAME_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(LOGGED_NAME_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_device_memory_means_unlimited() {
        assert_eq!(session_limits(5, 0).max_device_memory, u64::MAX);
        assert_eq!(session_limits(5, 1 << 30).max_device_memory, 1 << 30);
        assert_eq!(session_limits(5, 0).max_objects, 5);
    }

    #[test]
    fn logged_names_are_short_and_escaped() {
        assert_eq!(logged_name("clinfo"), "clinfo");
        assert_eq!(logged_name("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = "x".repeat(1000);
        assert_eq!(logged_name(&long).chars().count(), LOGGED_NAME_CHARS + 1);
    }

    #[test]
    fn limiter_lets_a_burst_through_then_counts() {
        let mut l = WarnLimiter::new();
        for _ in 0..WARN_BURST {
            assert_eq!(l.allow(), Some(0));
        }
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        assert_eq!(l.suppressed(), 2);
        // A new window reports what was dropped.
        l.window_start -= WARN_WINDOW;
        assert_eq!(l.allow(), Some(2));
        assert_eq!(l.suppressed(), 0);
    }
}
