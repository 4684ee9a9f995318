//! The daemon's per-session and per-daemon bounds: the operator's knobs,
//! each default with its reason, and the bounds handed to executors.
//!
//! Wire-format bounds live in [`protocol::limits`].

use std::time::Duration;

/// Default for `--max-sessions`: concurrent guest connections. One session
/// holds one executor (a runtime context plus its staging buffers); 64 packs
/// a busy host with small VMs without exhausting GPU contexts.
pub const DEFAULT_MAX_SESSIONS: usize = 64;

/// Largest `--max-sessions`: every session may hold a runtime context and
/// a worker's descriptors and memory; far more than one GPU serves at once.
pub const MAX_MAX_SESSIONS: usize = 4096;

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

/// Default for `--warm-workers`: worker processes kept started, sandboxed
/// and with the runtime initialised. One hides the start-up of a worker
/// (process start plus runtime initialisation, hundreds of milliseconds on
/// POCL) from the next connection; each costs the memory of an idle
/// runtime (tens of MiB on POCL).
pub const DEFAULT_WARM_WORKERS: usize = 1;

/// Most `--warm-workers`: more would only hold memory.
pub const MAX_WARM_WORKERS: usize = 64;

/// Default for `--max-call-seconds`: the longest one call (a kernel, a
/// finish, a build) may run before its worker is ended. Five minutes is
/// past any interactive inference step and well before a hung kernel has
/// held a shared host for long; batch jobs raise it, 0 turns it off.
pub const DEFAULT_MAX_CALL_SECONDS: u64 = 300;

/// Default for `--worker-max-files`: descriptors one worker may hold. A
/// session needs a few dozen (guest memory regions, queue events, the
/// runtime's own); 4096 leaves room for busy programs and stops a runaway.
pub const DEFAULT_WORKER_MAX_FILES: u64 = 4096;

/// Least `--worker-max-files`: below this the runtime cannot start.
pub const MIN_WORKER_MAX_FILES: u64 = 64;

/// How long the supervisor waits for a worker to be ready (sandbox plus
/// runtime initialisation; the CUDA driver takes seconds on a large host).
pub const WORKER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the supervisor waits for a worker to say whether it accepted
/// the frontend it was handed.
pub const WORKER_ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stopping supervisor lets its workers end before killing them.
pub const WORKER_STOP_GRACE: Duration = Duration::from_secs(5);

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

/// Per-session resource bounds an executor enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Most live objects (of all kinds) one session may hold.
    pub max_objects: usize,
    /// Most device memory, in bytes, one session's buffers may total.
    pub max_device_memory: u64,
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_device_memory_means_unlimited() {
        assert_eq!(session_limits(5, 0).max_device_memory, u64::MAX);
        assert_eq!(session_limits(5, 1 << 30).max_device_memory, 1 << 30);
        assert_eq!(session_limits(5, 0).max_objects, 5);
    }
}
