//! The virtio-compute guest shim.
//!
//! | module | role |
//! |---|---|
//! | [`client`] | the client pipeline: session, handles, batching, sticky errors |
//! | [`transport`] | how frames reach the daemon (vhost-user direct mode, vsock or unix streams) |
//! | [`includes`] | the header files an OpenCL build needs, found in the guest |
//! | `ffi` | the C ABI: the OpenCL ICD entry points; all `unsafe` lives here |
//! | `log` | the shim's log lines: rate limits, error cause chains |
pub mod client;
mod ffi;
pub mod includes;
mod log;
pub mod transport;
