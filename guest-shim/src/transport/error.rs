//! Why a transport failed: [`TransportError`] and the causes it wraps.
//!
//! Each message says what failed and never repeats its cause: the cause is
//! the error's [`source`](std::error::Error::source), and whoever logs the
//! error writes the whole chain once (see [`crate::log::Chain`]).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::ENDPOINT_ENV;

/// The endpoint forms [`ENDPOINT_ENV`] accepts, as said in messages.
pub const ENDPOINT_FORMS: &str = "device:PATH, vhost-user:PATH, unix:PATH or vsock:CID:PORT";

/// Errors moving bytes to or from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// [`ENDPOINT_ENV`] is not set (and there is no device node to use).
    #[error(
        "{ENDPOINT_ENV} is not set and {} does not exist (expected {ENDPOINT_FORMS})",
        super::device::DEFAULT_NODE
    )]
    EndpointUnset,
    /// The endpoint does not parse.
    #[error("bad endpoint {value:?} ({ENDPOINT_ENV} expects {ENDPOINT_FORMS})")]
    BadEndpoint {
        /// The text given (lossily converted if it was not UTF-8).
        value: String,
    },
    /// The daemon could not be reached.
    #[error("cannot connect to {peer}")]
    Connect {
        /// The endpoint, as `scheme:address`.
        peer: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The vhost-user handshake with the daemon failed.
    #[error("vhost-user setup with the daemon at {} failed", socket.display())]
    Setup {
        /// The daemon's socket.
        socket: PathBuf,
        /// The step that failed.
        #[source]
        source: SetupError,
    },
    /// The daemon went away or stopped answering. The transport sends no
    /// further chain: every later call gets the same cause.
    #[error("daemon connection lost")]
    Disconnected(#[source] Arc<LinkError>),
    /// The chain does not fit the transport, or the transport cannot do
    /// what was asked of it.
    #[error("the transport cannot carry the chain")]
    Chain(#[from] ChainError),
}

impl TransportError {
    /// Whether the message names the endpoint itself (so a log line about
    /// it need not repeat it).
    pub fn names_endpoint(&self) -> bool {
        matches!(
            self,
            TransportError::EndpointUnset
                | TransportError::BadEndpoint { .. }
                | TransportError::Connect { .. }
                | TransportError::Setup { .. }
        )
    }
}

/// A step of the vhost-user handshake that failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A vhost-user request failed or was refused.
    #[error("{request} failed")]
    Request {
        /// The request, e.g. `SET_MEM_TABLE`.
        request: &'static str,
        /// Why.
        #[source]
        source: vhost::Error,
    },
    /// A local resource (the socket's duplicate, the memfd arena, an
    /// eventfd) could not be created.
    #[error("cannot create the {what}")]
    Resource {
        /// What it is.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The daemon does not offer a feature direct mode needs.
    #[error("the daemon does not offer {feature}")]
    MissingFeature {
        /// The feature's name.
        feature: &'static str,
    },
    /// The daemon has fewer queues than the protocol needs.
    #[error("the daemon has {offered} queues, {needed} needed")]
    TooFewQueues {
        /// Queues the daemon has.
        offered: u64,
        /// Queues needed.
        needed: usize,
    },
    /// The arena and host heap sizes leave no room for bulk staging, or
    /// do not fit the address space.
    #[error(
        "an arena of {} MiB with a host heap of {} MiB cannot be laid out \
         (it needs room for the rings, request, response and staging areas)",
        arena_len >> 20,
        host_len >> 20
    )]
    ArenaLayout {
        /// Arena bytes without the host heap.
        arena_len: usize,
        /// Host heap bytes.
        host_len: usize,
    },
}

/// Why the connection to the daemon was lost.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The daemon did not complete a chain in time.
    #[error("no answer from the daemon within {waited:?}")]
    NoAnswer {
        /// How long the transport waited.
        waited: Duration,
    },
    /// The daemon closed its end.
    #[error("the daemon closed the connection")]
    Closed,
    /// Waiting for the daemon's notification failed.
    #[error("waiting for the daemon failed")]
    Wait(#[source] io::Error),
    /// Notifying the daemon of a new chain failed.
    #[error("cannot notify the daemon of a new chain")]
    Kick(#[source] io::Error),
    /// Writing a record to the stream failed.
    #[error("sending to the daemon failed")]
    Send(#[source] io::Error),
    /// Reading a record from the stream failed.
    #[error("reading from the daemon failed")]
    Receive(#[source] io::Error),
    /// The daemon completed a different chain than the one waited for,
    /// or claimed a response longer than its area.
    #[error("the daemon completed used element ({id}, {len}) for chain {head}")]
    BadCompletion {
        /// Descriptor id of the used element.
        id: u32,
        /// Bytes the daemon says it wrote.
        len: u32,
        /// The chain waited for.
        head: u16,
    },
    /// The device refused the chain in a way no later chain recovers
    /// from (the session is gone or was never set up), or completed it
    /// with a response longer than its area.
    #[error("the device refused the chain ({status:?})")]
    DeviceRefused {
        /// The device's status.
        status: protocol::device::DeviceStatus,
    },
    /// The driver's submit call failed with the chain's outcome unknown
    /// (the device went away, the call was interrupted).
    #[error("the device driver failed the chain")]
    Device(#[source] io::Error),
    /// The daemon sent a record that does not decode.
    #[error("the daemon sent a malformed response record")]
    BadRecord(#[source] protocol::DecodeError),
}

/// Why a chain cannot go on a transport.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A chain needs at least one frame.
    #[error("a chain needs at least one frame")]
    Empty,
    /// A message body exceeds the protocol's limit.
    #[error("a message body exceeds the protocol limit")]
    BodyTooLarge,
    /// The frames exceed the request area.
    #[error("{len} bytes of frames, the request area holds {max}")]
    FramesTooLong {
        /// Bytes of frames.
        len: usize,
        /// The area's size.
        max: usize,
    },
    /// More bulk segments than a chain (or a call) holds.
    #[error("{count} bulk segments, at most {max} fit")]
    TooManySegments {
        /// Segments asked for.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More bulk bytes than a chain (or a call) carries.
    #[error("{len} bytes of bulk data, at most {max} fit (split with Client::max_chunk)")]
    BulkTooLarge {
        /// Bytes asked for.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The device refused this chain (it could not read it, or it went
    /// to the wrong queue); the session stays usable.
    #[error("the device refused the chain ({status:?})")]
    DeviceRefused {
        /// The device's status.
        status: protocol::device::DeviceStatus,
    },
    /// The driver refused the chain before the device saw it (a buffer it
    /// cannot pin, more descriptors than a chain may carry, a bound it
    /// enforces).
    #[error("the device driver refused the chain")]
    Driver(#[source] io::Error),
    /// A posted call's writable segment lies outside shared memory.
    #[error("a posted call's writable segment is not in shared memory")]
    OutNotShared,
    /// The frames could not be put into a stream record.
    #[error("the chain cannot be encoded as a stream record")]
    Encode(#[source] protocol::stream::EncodeError),
    /// This transport does not pipeline chains (in direct mode: the arena
    /// is too small to).
    #[error("this transport does not pipeline chains")]
    NotPipelined,
    /// As many pipelined chains as the transport allows are in flight.
    #[error("{depth} pipelined chains already in flight")]
    PipelineFull {
        /// Chains in flight.
        depth: usize,
    },
    /// `finish` was called with no pipelined chain in flight.
    #[error("no pipelined chain is in flight")]
    NothingInFlight,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Chain;

    #[test]
    fn messages_do_not_repeat_their_cause() {
        let e = TransportError::Disconnected(Arc::new(LinkError::Wait(io::Error::other("boom"))));
        assert_eq!(e.to_string(), "daemon connection lost");
        assert_eq!(
            Chain(&e).to_string(),
            "daemon connection lost: waiting for the daemon failed: boom"
        );
        let e = TransportError::Setup {
            socket: PathBuf::from("/run/vc.sock"),
            source: SetupError::TooFewQueues {
                offered: 1,
                needed: 2,
            },
        };
        assert_eq!(
            Chain(&e).to_string(),
            "vhost-user setup with the daemon at /run/vc.sock failed: \
             the daemon has 1 queues, 2 needed"
        );
    }

    #[test]
    fn endpoint_errors_say_what_is_expected() {
        let e = TransportError::BadEndpoint {
            value: "tcp:x".into(),
        };
        assert_eq!(
            e.to_string(),
            "bad endpoint \"tcp:x\" (VCOMPUTE_ENDPOINT expects \
             device:PATH, vhost-user:PATH, unix:PATH or vsock:CID:PORT)"
        );
        assert_eq!(
            TransportError::EndpointUnset.to_string(),
            "VCOMPUTE_ENDPOINT is not set and /dev/vcompute0 does not exist \
             (expected device:PATH, vhost-user:PATH, unix:PATH or vsock:CID:PORT)"
        );
        assert!(e.names_endpoint());
        let lost = TransportError::Disconnected(Arc::new(LinkError::Closed));
        assert!(!lost.names_endpoint());
    }
}
