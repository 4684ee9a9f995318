//! Transports: how frames reach the daemon.
//!
//! A transport moves one *chain* at a time: the concatenated request frames,
//! the readable bulk segments they consume, and writable bulk segments for
//! the data they return. It hands back the response area (one response frame
//! per request frame). Every transport carries the same protocol messages.
//!
//! A transport may also *pipeline* chains on the request queue
//! ([`Transport::start`] / [`Transport::finish`]): a few chains in flight at
//! once, so that the guest copies the next chain's bulk data while the daemon
//! still works on the previous one. The daemon completes a queue's chains in
//! the order they were made available, and `finish` hands them back in that
//! order.
//!
//! | file | role |
//! |---|---|
//! | `device.rs` | a virtio-compute device through the guest driver's `/dev/vcomputeN` |
//! | `vhost_user.rs` | direct mode: the shim is the vhost-user frontend |
//! | `stream.rs` | records over a byte stream: `AF_VSOCK` or `AF_UNIX` |
//! | `ring.rs` | the driver side of a split virtqueue |
//! | `arena.rs` | the shared-memory (memfd) arena and its layout |
//! | `heap.rs` | the host-allocation heap over a range of the arena |
//! | `settings.rs` | the numeric environment settings: defaults, bounds, parsing |
//! | `error.rs` | [`TransportError`] and the causes it wraps |
//!
//! The endpoint is named by one environment variable, [`ENDPOINT_ENV`]:
//!
//! | value | transport |
//! |---|---|
//! | `device:/dev/vcompute0` | the virtio-compute device (guest-driver/ loaded) |
//! | `vhost-user:/path/to/socket` | direct mode (shared-memory virtqueues) |
//! | `vsock:CID:PORT` | a stream over `AF_VSOCK`; a guest uses CID 2, the host |
//! | `unix:/path/to/socket` | a stream over `AF_UNIX` |
//!
//! When the variable is unset and [`device::DEFAULT_NODE`] exists, the
//! device is used.

use std::ops::Range;
use std::path::{Path, PathBuf};

use protocol::QueueClass;

pub mod arena;
pub mod device;
mod error;
pub mod heap;
pub mod ring;
pub mod settings;
pub mod stream;
pub mod vhost_user;

pub use error::{ChainError, LinkError, SetupError, TransportError, ENDPOINT_FORMS};

/// Environment variable naming the daemon endpoint.
pub const ENDPOINT_ENV: &str = "VCOMPUTE_ENDPOINT";

/// Where the daemon listens, parsed from [`ENDPOINT_ENV`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A virtio-compute device node of the guest driver.
    Device(PathBuf),
    /// Direct mode: connect to a vhost-user socket and be its frontend.
    VhostUser(PathBuf),
    /// A stream to a unix socket.
    Unix(PathBuf),
    /// A stream to a vsock port.
    Vsock {
        /// Context id (2 = the host).
        cid: u32,
        /// Port the daemon listens on.
        port: u32,
    },
}

impl Endpoint {
    /// Parses `scheme:rest`. Unknown schemes and empty paths are rejected
    /// with [`TransportError::BadEndpoint`].
    pub fn parse(s: &str) -> Result<Self, TransportError> {
        let bad = || TransportError::BadEndpoint {
            value: s.to_owned(),
        };
        let (scheme, rest) = s.trim().split_once(':').ok_or_else(bad)?;
        match scheme {
            "device" if !rest.is_empty() => Ok(Endpoint::Device(PathBuf::from(rest))),
            "vhost-user" if !rest.is_empty() => Ok(Endpoint::VhostUser(PathBuf::from(rest))),
            "unix" if !rest.is_empty() => Ok(Endpoint::Unix(PathBuf::from(rest))),
            "vsock" => {
                let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
                Ok(Endpoint::Vsock {
                    cid: cid.parse().map_err(|_| bad())?,
                    port: port.parse().map_err(|_| bad())?,
                })
            }
            _ => Err(bad()),
        }
    }

    /// Reads and parses [`ENDPOINT_ENV`]; unset or empty is the device at
    /// [`device::DEFAULT_NODE`] if it exists, else
    /// [`TransportError::EndpointUnset`].
    pub fn from_env() -> Result<Self, TransportError> {
        Self::or_default_node(
            Self::from_value(std::env::var_os(ENDPOINT_ENV).as_deref()),
            device::node_present,
        )
    }

    /// `parsed`, or the device at [`device::DEFAULT_NODE`] when the
    /// variable was unset and `exists` says the node is there.
    pub fn or_default_node(
        parsed: Result<Self, TransportError>,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<Self, TransportError> {
        match parsed {
            Err(TransportError::EndpointUnset) if exists(Path::new(device::DEFAULT_NODE)) => {
                Ok(Endpoint::Device(PathBuf::from(device::DEFAULT_NODE)))
            }
            r => r,
        }
    }

    /// Parses the value of [`ENDPOINT_ENV`] (`None` when unset).
    pub fn from_value(value: Option<&std::ffi::OsStr>) -> Result<Self, TransportError> {
        match value.map(|v| (v, v.to_str())) {
            None => Err(TransportError::EndpointUnset),
            Some((_, Some(v))) if v.trim().is_empty() => Err(TransportError::EndpointUnset),
            Some((_, Some(v))) => Self::parse(v),
            Some((v, None)) => Err(TransportError::BadEndpoint {
                value: v.to_string_lossy().into_owned(),
            }),
        }
    }

    /// Connects the transport this endpoint names.
    pub fn connect(&self) -> Result<Box<dyn Transport>, TransportError> {
        match self {
            Endpoint::Device(path) => Ok(Box::new(device::DeviceTransport::open(
                path,
                &vhost_user::Options::from_env(),
            )?)),
            Endpoint::VhostUser(path) => Ok(Box::new(vhost_user::VhostUserTransport::connect(
                path,
                &vhost_user::Options::from_env(),
            )?)),
            Endpoint::Unix(path) => Ok(Box::new(stream::StreamTransport::connect_unix(
                path,
                &vhost_user::Options::from_env(),
            )?)),
            Endpoint::Vsock { cid, port } => Ok(Box::new(stream::StreamTransport::connect_vsock(
                *cid,
                *port,
                &vhost_user::Options::from_env(),
            )?)),
        }
    }
}

/// One chain's worth of work for a transport.
#[derive(Debug)]
pub struct Chain<'a> {
    /// Concatenated request frames.
    pub frames: &'a [u8],
    /// Readable bulk segments, in frame order.
    pub bulk_in: &'a [&'a [u8]],
    /// Writable bulk segments, in frame order; filled by the daemon.
    pub bulk_out: &'a mut [&'a mut [u8]],
}

/// What one chain may carry on a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request area (concatenated frames) in bytes.
    pub max_frames_len: usize,
    /// Most bulk segments (in and out together) in one chain.
    pub max_segments: usize,
    /// Most bulk bytes (in and out together) in one chain.
    pub max_bulk: usize,
}

/// What pipelined chains may carry on a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipeLimits {
    /// Most chains in flight at once.
    pub depth: usize,
    /// Largest request area of one pipelined chain.
    pub max_frames_len: usize,
    /// Most bulk segments (in and out together) in one pipelined chain.
    pub max_segments: usize,
    /// Most bulk bytes (in and out together) in one pipelined chain.
    pub max_bulk: usize,
}

/// One chain to start without waiting for it.
#[derive(Debug)]
pub struct PipeChain<'a> {
    /// Concatenated request frames.
    pub frames: &'a [u8],
    /// Readable bulk segments, in frame order; copied before `start` returns.
    pub bulk_in: &'a [&'a [u8]],
    /// Lengths of the writable bulk segments, in frame order; their bytes
    /// are handed back by [`Transport::finish`].
    pub out_lens: &'a [usize],
}

/// Moves chains to the daemon and back.
pub trait Transport: Send {
    /// Sends one chain on a queue of the given class and waits for its
    /// completion. Returns the response area bytes the daemon wrote
    /// (concatenated response frames).
    fn submit_on(&mut self, queue: QueueClass, chain: Chain<'_>)
        -> Result<Vec<u8>, TransportError>;

    /// Sends one chain on the request queue and waits for its completion.
    fn submit(&mut self, chain: Chain<'_>) -> Result<Vec<u8>, TransportError> {
        self.submit_on(QueueClass::Request, chain)
    }

    /// What one chain may carry.
    fn limits(&self) -> Limits;

    /// What pipelined chains may carry, or `None` if this transport does
    /// not pipeline (then [`Transport::start`] always fails).
    fn pipe_limits(&self) -> Option<PipeLimits> {
        None
    }

    /// Makes a chain available on the request queue without waiting for
    /// it. At most [`PipeLimits::depth`] chains may be in flight; a chain
    /// that does not fit a pipelined chain's limits, or one more than the
    /// depth, is a [`TransportError::Chain`] error.
    fn start(&mut self, chain: PipeChain<'_>) -> Result<(), TransportError> {
        let _ = chain;
        Err(ChainError::NotPipelined.into())
    }

    /// Allocates `len` bytes of host memory that the daemon can read and
    /// write in place (see [`Transport::is_shared`]), or `None` if this
    /// transport has no such memory or it is exhausted. The block stays
    /// mapped as long as the transport lives.
    fn host_alloc(&mut self, len: usize) -> Option<*mut u8> {
        let _ = len;
        None
    }

    /// Frees a block from [`Transport::host_alloc`] by its start address;
    /// returns its length, or `None` if no block starts there. Chains that
    /// name the block must have completed.
    fn host_free(&mut self, addr: usize) -> Option<usize> {
        let _ = addr;
        None
    }

    /// The address range of the live host block containing `addr`.
    fn host_block(&self, addr: usize) -> Option<Range<usize>> {
        let _ = addr;
        None
    }

    /// Whether `len` bytes at `addr` lie in this transport's shared host
    /// memory. A bulk segment that does is not copied: the daemon reads or
    /// writes it in place, so it must stay valid until its chain completes.
    fn is_shared(&self, addr: usize, len: usize) -> bool {
        let _ = (addr, len);
        false
    }

    /// Waits for the oldest chain still in flight from [`Transport::start`],
    /// copies its writable bulk segments into `bulk_out` (lengths as given
    /// to `start`) and returns its response area.
    fn finish(&mut self, bulk_out: &mut [&mut [u8]]) -> Result<Vec<u8>, TransportError> {
        let _ = bulk_out;
        Err(ChainError::NothingInFlight.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parses_vhost_user() {
        assert_eq!(
            Endpoint::parse("vhost-user:/run/vc.sock").ok(),
            Some(Endpoint::VhostUser(PathBuf::from("/run/vc.sock")))
        );
    }

    #[test]
    fn endpoint_parses_device() {
        assert_eq!(
            Endpoint::parse("device:/dev/vcompute0").ok(),
            Some(Endpoint::Device(PathBuf::from("/dev/vcompute0")))
        );
    }

    #[test]
    fn unset_endpoint_picks_the_device_node_only_if_it_exists() {
        let unset = || Err(TransportError::EndpointUnset);
        assert_eq!(
            Endpoint::or_default_node(unset(), |p| p == Path::new("/dev/vcompute0")).ok(),
            Some(Endpoint::Device(PathBuf::from("/dev/vcompute0")))
        );
        assert!(matches!(
            Endpoint::or_default_node(unset(), |_| false),
            Err(TransportError::EndpointUnset)
        ));
        // A set variable wins over the node, and a bad one stays an error.
        assert_eq!(
            Endpoint::or_default_node(Endpoint::parse("unix:/v.sock"), |_| true).ok(),
            Some(Endpoint::Unix(PathBuf::from("/v.sock")))
        );
        assert!(matches!(
            Endpoint::or_default_node(Endpoint::parse("tcp:x"), |_| true),
            Err(TransportError::BadEndpoint { .. })
        ));
    }

    #[test]
    fn endpoint_parses_streams() {
        assert_eq!(
            Endpoint::parse("vsock:2:7000").ok(),
            Some(Endpoint::Vsock { cid: 2, port: 7000 })
        );
        assert_eq!(
            Endpoint::parse("unix:/tmp/v.sock_7000").ok(),
            Some(Endpoint::Unix(PathBuf::from("/tmp/v.sock_7000")))
        );
    }

    #[test]
    fn endpoint_rejects_garbage() {
        for s in [
            "",
            "vhost-user:",
            "device:",
            "unix:",
            "/run/vc.sock",
            "vsock:3",
            "vsock:x:1",
            "vsock:2:99999999999",
            "tcp:x",
        ] {
            assert!(
                matches!(Endpoint::parse(s), Err(TransportError::BadEndpoint { value }) if value == s),
                "{s:?} should be rejected"
            );
        }
    }

    #[test]
    fn endpoint_unset_or_empty_says_so() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        for v in [None, Some(OsStr::new("")), Some(OsStr::new(" "))] {
            assert!(
                matches!(Endpoint::from_value(v), Err(TransportError::EndpointUnset)),
                "{v:?}"
            );
        }
        assert!(matches!(
            Endpoint::from_value(Some(OsStr::from_bytes(b"unix:\xff"))),
            Err(TransportError::BadEndpoint { .. })
        ));
        assert_eq!(
            Endpoint::from_value(Some(OsStr::new("unix:/v.sock"))).ok(),
            Some(Endpoint::Unix(PathBuf::from("/v.sock")))
        );
    }
}
