//! Transports: how frames reach the daemon.
//!
//! A transport moves one *chain* at a time: the concatenated request frames,
//! the readable bulk segments they consume, and writable bulk segments for
//! the data they return. It hands back the response area (one response frame
//! per request frame). Every transport carries the same protocol messages.
//!
//! | file | role |
//! |---|---|
//! | `vhost_user.rs` | direct mode: the shim is the vhost-user frontend |
//! | `ring.rs` | the driver side of a split virtqueue |
//! | `arena.rs` | the shared-memory (memfd) arena and its allocator |

/// Errors moving bytes to or from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `VCOMPUTE_ENDPOINT` is missing or does not parse.
    #[error("bad endpoint {0:?}: expected vhost-user:/path/to/socket")]
    BadEndpoint(String),
    /// The daemon could not be reached.
    #[error("cannot connect to the daemon at {path}: {source}")]
    Connect {
        /// Socket path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The vhost-user handshake failed.
    #[error("vhost-user setup failed: {0}")]
    Setup(String),
    /// The daemon went away or stopped answering.
    #[error("daemon connection lost: {0}")]
    Disconnected(String),
    /// The chain does not fit the arena or the queue.
    #[error("request too large for the transport: {0}")]
    TooLarge(String),
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

/// Moves chains to the daemon and back.
pub trait Transport: Send {
    /// Sends one chain and waits for its completion. Returns the response
    /// area bytes the daemon wrote (concatenated response frames).
    fn submit(&mut self, chain: Chain<'_>) -> Result<Vec<u8>, TransportError>;
}
