//! The client pipeline every API family uses: session open, handle
//! allocation, batching of fire-and-forget calls, and sticky errors.
use protocol::{opencl::Handle, ProtocolError, Request, Response};

use crate::transport::TransportError;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The runtime's native error code.
    #[error("native error {0}")]
    Native(i32),
    /// The daemon refused the request.
    #[error("daemon refused the request: {0}")]
    Protocol(ProtocolError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A connected session with the daemon.
#[derive(Debug)]
pub struct Client {}

impl Client {
    /// Connects to the endpoint named by `VCOMPUTE_ENDPOINT` and opens a
    /// session.
    pub fn connect_from_env() -> Result<Client, CallError> {
        unimplemented!("transport helper")
    }

    /// Synchronous call: flushes pending fire-and-forget calls, sends `req`
    /// in the same chain and waits for its answer. A sticky error from the
    /// flushed calls is returned in preference to `req`'s own result.
    pub fn call(
        &self,
        _req: Request,
        _bulk_in: &[&[u8]],
        _bulk_out: &mut [&mut [u8]],
    ) -> Result<Response, CallError> {
        unimplemented!("transport helper")
    }

    /// Fire-and-forget: queues `req` (copying `bulk_in` now) and returns at
    /// once. A failure surfaces at the next synchronizing call.
    pub fn post(&self, _req: Request, _bulk_in: &[&[u8]]) -> Result<(), CallError> {
        unimplemented!("transport helper")
    }

    /// Sends every queued call and waits; returns the sticky error, if any.
    pub fn flush(&self) -> Result<(), CallError> {
        unimplemented!("transport helper")
    }

    /// A fresh, never-reused object handle.
    pub fn new_handle(&self) -> Handle {
        unimplemented!("transport helper")
    }
}
