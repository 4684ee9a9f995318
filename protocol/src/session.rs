//! Session open: version and feature negotiation.
//!
//! The guest sends [`SessionOpen`] on the control queue before any API call.
//! The daemon answers with the highest version both support and the feature
//! bits it grants, or with [`crate::ProtocolError::VersionMismatch`].

use bincode::{Decode, Encode};

/// Version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Oldest version this build still accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// The OpenCL API family is available.
pub const FEATURE_OPENCL: u64 = 1 << 0;
/// The CUDA driver API family is available.
pub const FEATURE_CUDA: u64 = 1 << 1;
/// Several frames may share one chain (batched fire-and-forget calls).
pub const FEATURE_BATCH: u64 = 1 << 2;
/// Every feature bit this build knows.
pub const KNOWN_FEATURES: u64 = FEATURE_OPENCL | FEATURE_CUDA | FEATURE_BATCH;

/// Guest → daemon: open a session.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SessionOpen {
    /// Oldest protocol version the guest can speak.
    pub min_version: u16,
    /// Newest protocol version the guest can speak.
    pub max_version: u16,
    /// Feature bits the guest would like.
    pub features: u64,
    /// Free-form client description for the daemon's logs.
    pub client: String,
}

/// Daemon → guest: the negotiated session parameters.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SessionOpened {
    /// The version both will use from now on.
    pub version: u16,
    /// Granted feature bits: the guest's request masked by what the daemon has.
    pub features: u64,
    /// Largest body the daemon accepts.
    pub max_body_len: u32,
    /// Largest single transfer the daemon accepts.
    pub max_transfer_len: u64,
    /// Most frames per chain the daemon accepts.
    pub max_frames_per_chain: u32,
}

/// Picks the version to use, or `None` if the ranges do not overlap.
pub fn negotiate_version(guest_min: u16, guest_max: u16) -> Option<u16> {
    let hi = guest_max.min(PROTOCOL_VERSION);
    let lo = guest_min.max(MIN_PROTOCOL_VERSION);
    (lo <= hi).then_some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges() {
        assert_eq!(negotiate_version(1, 1), Some(1));
        assert_eq!(negotiate_version(1, 9), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate_version(2, 9), None);
        assert_eq!(negotiate_version(0, 0), None);
        assert_eq!(negotiate_version(3, 2), None);
    }
}
