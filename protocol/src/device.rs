//! The virtio-compute device as a guest kernel driver sees it: device ID,
//! feature bits, config space, queue layout, and the per-chain device
//! header that carries a guest process's session.
//!
//! # Device
//!
//! - Device ID [`DEVICE_ID`] (56): provisional, not assigned by the virtio
//!   specification (which assigns up to 49), not one of crosvm's (61–63),
//!   and within Linux virtio-pci's limit of 63 (PCI device 0x1040 + ID).
//! - Queues: queue [`crate::CONTROL_QUEUE`] is the control queue, queues
//!   `1..=num_request_queues` are request queues (the config space says how
//!   many). Each holds [`crate::QUEUE_SIZE`] descriptors.
//! - Features: `VIRTIO_F_VERSION_1` (required), `VIRTIO_RING_F_EVENT_IDX`
//!   and `VIRTIO_RING_F_INDIRECT_DESC` (both offered; a driver pinning user
//!   pages needs indirect descriptors for chains longer than the ring), and
//!   the device bits below.
//!
//! # Sessions
//!
//! One device serves many guest processes, each with its own session. The
//! session travels in a *device header* that the driver, not the program,
//! writes at the start of every chain; the frames that follow are the same
//! frames every other transport carries. A program therefore cannot name
//! another program's session (it never writes the header), and the frame
//! format stays one format. A queue pair per session was the alternative;
//! it caps the number of processes at the number of queues the VMM created,
//! which is fixed when the VM starts.
//!
//! A chain in device mode:
//!
//! ```text
//! [R] device header     DEVICE_HEADER_LEN bytes + 2 bytes per entry of its
//!                       descriptor table, in one descriptor
//! [R] request area      req_descs descriptors (concatenated frames)
//! [R] in-bulk segments  one entry of the table each: how many descriptors
//! [W] status            exactly one descriptor of STATUS_LEN bytes
//! [W] response area     resp_descs descriptors
//! [W] out-bulk segments one entry of the table each
//! ```
//!
//! [`DeviceOp::Open`] and [`DeviceOp::Close`] chains carry only the header
//! and the status (no request, response or bulk). Open sessions end on
//! `Close`, on device reset, and when the device goes.
//!
//! A bulk segment may span several descriptors (the pages of a user buffer
//! that are not physically contiguous); the device joins them into one
//! segment, in place when there is one descriptor, through a copy
//! otherwise (at most [`MAX_COPIED_BULK_LEN`] bytes a chain).
//!
//! A chain that does not match its header (directions, counts, the status
//! descriptor's size, descriptors outside guest memory) gets
//! [`DeviceStatus::BadChain`] and runs nothing; when not even a status
//! descriptor can be found (the first device-writable descriptor, of
//! [`STATUS_LEN`] bytes), the chain is completed with used length 0. The
//! used length of a chain with a status is `STATUS_LEN` plus the response
//! bytes written.

use crate::error::DecodeError;
use crate::limits::{MAX_BULK_PER_FRAME, MAX_DESCRIPTORS_PER_CHAIN, MAX_FRAMES_PER_CHAIN};

/// The virtio device ID of virtio-compute (provisional; see the module docs).
pub const DEVICE_ID: u32 = 56;

/// Device feature bit: the device reports its configuration through the
/// config space ([`DeviceConfig`]). A driver under a carrier device whose
/// config space is someone else's (see `docs/operators.md`) sees this bit
/// cleared and uses [`DeviceConfig::CARRIER`].
pub const F_CONFIG: u32 = 0;

/// Config space `api_families` bit: OpenCL.
pub const API_OPENCL: u32 = 1 << 0;
/// Config space `api_families` bit: the CUDA driver API.
pub const API_CUDA: u32 = 1 << 1;

/// Size of the encoded [`DeviceConfig`].
pub const CONFIG_LEN: usize = 16;

/// The device's config space (all fields little-endian, read-only).
///
/// ```text
/// off  size  field
///  0    4    num_request_queues  request queues after the control queue
///  4    4    max_sessions        sessions the device serves at once
///  8    4    api_families        API_* bits the daemon executes
/// 12    4    protocol_version    crate::PROTOCOL_VERSION of the daemon
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Request queues after the control queue.
    pub num_request_queues: u32,
    /// Sessions the device serves at once.
    pub max_sessions: u32,
    /// `API_*` bits.
    pub api_families: u32,
    /// The daemon's protocol version.
    pub protocol_version: u32,
}

impl DeviceConfig {
    /// What a driver assumes when the config space is not the device's own
    /// (a carrier device): one request queue, sessions bounded only by the
    /// device's refusals, both API families.
    pub const CARRIER: DeviceConfig = DeviceConfig {
        num_request_queues: 1,
        max_sessions: 0,
        api_families: API_OPENCL | API_CUDA,
        protocol_version: crate::PROTOCOL_VERSION as u32,
    };

    /// The config space bytes.
    pub fn encode(&self) -> [u8; CONFIG_LEN] {
        let mut b = [0u8; CONFIG_LEN];
        for (i, v) in [
            self.num_request_queues,
            self.max_sessions,
            self.api_families,
            self.protocol_version,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Decodes config space bytes (at least [`CONFIG_LEN`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = bytes.get(..CONFIG_LEN).ok_or(DecodeError::Truncated)?;
        let at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(DeviceConfig {
            num_request_queues: at(0),
            max_sessions: at(4),
            api_families: at(8),
            protocol_version: at(12),
        })
    }
}

/// Magic of a device header, `"VCDV"` read as a little-endian u32.
pub const DEVICE_MAGIC: u32 = u32::from_le_bytes(*b"VCDV");

/// Size of the fixed part of a [`DeviceHeader`].
pub const DEVICE_HEADER_LEN: usize = 16;

/// Most bulk segments one chain can carry, so the most entries a device
/// header's table can hold.
pub const MAX_TABLE_ENTRIES: usize = MAX_FRAMES_PER_CHAIN * MAX_BULK_PER_FRAME;

/// Longest device header descriptor.
pub const MAX_DEVICE_HEADER_LEN: usize = DEVICE_HEADER_LEN + 2 * MAX_TABLE_ENTRIES;

/// Size of the status a device writes for every device-mode chain.
pub const STATUS_LEN: usize = 16;

/// Most bytes of bulk segments one chain may carry in segments of several
/// descriptors. Such a segment is copied through daemon memory (one
/// descriptor is lent in place), so this bounds what one chain makes the
/// daemon allocate; a larger transfer is split, as one longer than
/// `MAX_TRANSFER_LEN` is.
pub const MAX_COPIED_BULK_LEN: u64 = 256 << 20;

/// What a device-mode chain asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum DeviceOp {
    /// Open a session; the status carries its id. Control queue only.
    Open = 1,
    /// Close the header's session, ending whatever it still holds.
    /// Control queue only.
    Close = 2,
    /// Run the chain's frames in the header's session.
    Submit = 3,
}

impl DeviceOp {
    /// The op with this number.
    pub fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(DeviceOp::Open),
            2 => Some(DeviceOp::Close),
            3 => Some(DeviceOp::Submit),
            _ => None,
        }
    }
}

/// The driver-written header at the start of every device-mode chain.
///
/// ```text
/// off  size  field
///  0    4    magic        DEVICE_MAGIC
///  4    2    op           DeviceOp
///  6    2    flags        must be zero
///  8    4    session      the session (zero for Open)
/// 12    2    req_descs    descriptors of the request area
/// 14    2    resp_descs   descriptors of the response area
/// 16    2×n  table        descriptors of each bulk segment, in chain order
///                         (in-bulk then out-bulk); n = (len - 16) / 2
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceHeader {
    /// What the chain asks for.
    pub op: DeviceOp,
    /// The session it names (zero for [`DeviceOp::Open`]).
    pub session: u32,
    /// Descriptors of the request area.
    pub req_descs: u16,
    /// Descriptors of the response area.
    pub resp_descs: u16,
    /// Descriptors of each bulk segment, in-bulk first, then out-bulk.
    pub table: Vec<u16>,
}

impl DeviceHeader {
    /// Encodes the header and its table.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(DEVICE_HEADER_LEN + 2 * self.table.len());
        b.extend_from_slice(&DEVICE_MAGIC.to_le_bytes());
        b.extend_from_slice(&(self.op as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.session.to_le_bytes());
        b.extend_from_slice(&self.req_descs.to_le_bytes());
        b.extend_from_slice(&self.resp_descs.to_le_bytes());
        for n in &self.table {
            b.extend_from_slice(&n.to_le_bytes());
        }
        b
    }

    /// Decodes a device header descriptor's bytes, all of them.
    ///
    /// Checks the magic, the op, the flags, the length (the table's entries
    /// are whole and at most [`MAX_TABLE_ENTRIES`]), that every table entry
    /// names at least one descriptor, that the total stays within
    /// [`MAX_DESCRIPTORS_PER_CHAIN`], and that Open and Close carry no
    /// request, response or table.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < DEVICE_HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        if bytes.len() > MAX_DEVICE_HEADER_LEN
            || !(bytes.len() - DEVICE_HEADER_LEN).is_multiple_of(2)
        {
            return Err(DecodeError::BadDeviceHeader);
        }
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        if u32_at(0) != DEVICE_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let op = DeviceOp::from_u16(u16_at(4)).ok_or(DecodeError::BadDeviceHeader)?;
        if u16_at(6) != 0 {
            return Err(DecodeError::ReservedNonZero);
        }
        let table: Vec<u16> = bytes[DEVICE_HEADER_LEN..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let h = DeviceHeader {
            op,
            session: u32_at(8),
            req_descs: u16_at(12),
            resp_descs: u16_at(14),
            table,
        };
        let total = 1
            + usize::from(h.req_descs)
            + 1
            + usize::from(h.resp_descs)
            + h.table.iter().map(|&n| usize::from(n)).sum::<usize>();
        let bad = match h.op {
            DeviceOp::Open | DeviceOp::Close => {
                h.req_descs != 0 || h.resp_descs != 0 || !h.table.is_empty()
            }
            DeviceOp::Submit => {
                h.req_descs == 0
                    || h.resp_descs == 0
                    || h.table.contains(&0)
                    || total > MAX_DESCRIPTORS_PER_CHAIN
            }
        };
        if bad {
            return Err(DecodeError::BadDeviceHeader);
        }
        Ok(h)
    }
}

/// What the device says of a device-mode chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DeviceStatus {
    /// Done: for Submit, the response area holds `response_len` bytes of
    /// response frames; for Open, `session` is the new session.
    Ok = 0,
    /// The header did not decode, or the chain's descriptors do not match
    /// it (counts, directions, the status descriptor's size, memory).
    BadChain = 1,
    /// The header names no open session.
    UnknownSession = 2,
    /// The device already serves `max_sessions` sessions.
    TooManySessions = 3,
    /// Open or Close on a request queue.
    WrongQueue = 4,
    /// The daemon could not set the session up (its executor failed).
    Unavailable = 5,
}

impl DeviceStatus {
    /// The status with this number; unknown numbers read as `BadChain`.
    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => DeviceStatus::Ok,
            2 => DeviceStatus::UnknownSession,
            3 => DeviceStatus::TooManySessions,
            4 => DeviceStatus::WrongQueue,
            5 => DeviceStatus::Unavailable,
            _ => DeviceStatus::BadChain,
        }
    }
}

/// The status descriptor's contents.
///
/// ```text
/// off  size  field
///  0    4    status        DeviceStatus
///  4    4    session       the chain's session (the new one for Open)
///  8    4    response_len  bytes written to the response area
/// 12    4    reserved      zero
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRecord {
    /// The outcome.
    pub status: DeviceStatus,
    /// The session.
    pub session: u32,
    /// Bytes of response frames written.
    pub response_len: u32,
}

impl StatusRecord {
    /// The status descriptor's bytes.
    pub fn encode(&self) -> [u8; STATUS_LEN] {
        let mut b = [0u8; STATUS_LEN];
        b[0..4].copy_from_slice(&(self.status as u32).to_le_bytes());
        b[4..8].copy_from_slice(&self.session.to_le_bytes());
        b[8..12].copy_from_slice(&self.response_len.to_le_bytes());
        b
    }

    /// Decodes a status descriptor's bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = bytes.get(..STATUS_LEN).ok_or(DecodeError::Truncated)?;
        let at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(StatusRecord {
            status: DeviceStatus::from_u32(at(0)),
            session: at(4),
            response_len: at(8),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(table: Vec<u16>) -> DeviceHeader {
        DeviceHeader {
            op: DeviceOp::Submit,
            session: 7,
            req_descs: 1,
            resp_descs: 2,
            table,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = submit(vec![1, 3, 1]);
        let b = h.encode();
        assert_eq!(b.len(), DEVICE_HEADER_LEN + 6);
        assert_eq!(DeviceHeader::decode(&b).unwrap(), h);
    }

    #[test]
    fn header_rejects_what_a_driver_never_sends() {
        let good = submit(vec![1]).encode();
        let mut b = good.clone();
        b[0] ^= 1;
        assert_eq!(DeviceHeader::decode(&b), Err(DecodeError::BadMagic));
        let mut b = good.clone();
        b[4] = 9;
        assert_eq!(DeviceHeader::decode(&b), Err(DecodeError::BadDeviceHeader));
        let mut b = good.clone();
        b[6] = 1;
        assert_eq!(DeviceHeader::decode(&b), Err(DecodeError::ReservedNonZero));
        let mut b = good.clone();
        b.push(0);
        assert_eq!(DeviceHeader::decode(&b), Err(DecodeError::BadDeviceHeader));
        assert_eq!(
            DeviceHeader::decode(&good[..DEVICE_HEADER_LEN - 1]),
            Err(DecodeError::Truncated)
        );
        // A segment of no descriptors, a request of none, too many in all.
        for h in [
            submit(vec![0]),
            DeviceHeader {
                req_descs: 0,
                ..submit(vec![])
            },
            submit(vec![u16::MAX]),
        ] {
            assert_eq!(
                DeviceHeader::decode(&h.encode()),
                Err(DecodeError::BadDeviceHeader),
                "{h:?}"
            );
        }
        // Open and Close carry nothing but the header and the status.
        let open = DeviceHeader {
            op: DeviceOp::Open,
            session: 0,
            req_descs: 1,
            resp_descs: 0,
            table: vec![],
        };
        assert_eq!(
            DeviceHeader::decode(&open.encode()),
            Err(DecodeError::BadDeviceHeader)
        );
        let too_long = vec![0u8; MAX_DEVICE_HEADER_LEN + 2];
        assert_eq!(
            DeviceHeader::decode(&too_long),
            Err(DecodeError::BadDeviceHeader)
        );
    }

    #[test]
    fn config_and_status_round_trip() {
        let c = DeviceConfig {
            num_request_queues: 1,
            max_sessions: 64,
            api_families: API_OPENCL,
            protocol_version: 3,
        };
        assert_eq!(DeviceConfig::decode(&c.encode()).unwrap(), c);
        assert_eq!(DeviceConfig::decode(&[0; 15]), Err(DecodeError::Truncated));
        let s = StatusRecord {
            status: DeviceStatus::UnknownSession,
            session: 9,
            response_len: 0,
        };
        assert_eq!(StatusRecord::decode(&s.encode()).unwrap(), s);
        assert_eq!(DeviceStatus::from_u32(77), DeviceStatus::BadChain);
    }

    #[test]
    fn device_id_is_usable_by_linux_virtio_pci() {
        // PCI device 0x1040 + ID must stay <= 0x107f, and 61-63 are crosvm's.
        const { assert!(DEVICE_ID <= 60 && DEVICE_ID > 49) };
    }
}
