//! Device transport: the guest kernel's virtio-compute driver
//! (`guest-driver/`) moves each chain, through `/dev/vcomputeN`.
//!
//! Opening the node opens a device session (the driver sends `Open` on
//! the control queue); each chain is one `VCOMPUTE_IOC_SUBMIT` ioctl, which
//! pins the frames, the response area and every bulk segment in place,
//! writes the device header (the session comes from the open file, never
//! from here), and waits for the device. Closing the file closes the
//! session.
//!
//! [`DeviceTransport::limits`] keep every chain within the driver's and
//! the protocol's descriptor cap ([`MAX_DESCRIPTORS_PER_CHAIN`]) even when
//! no two pages of a buffer are physically contiguous: a buffer of `len`
//! bytes spans at most `len / 4096 + 2` pages.
//!
//! The types below mirror `guest-driver/vcompute_uapi.h`;
//! `tests/device_abi.rs` parses that header and checks that they agree.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protocol::device::{DeviceStatus, MAX_TABLE_ENTRIES};
use protocol::limits::{MAX_DESCRIPTORS_PER_CHAIN, MAX_REQUEST_AREA_LEN, RESPONSE_AREA_LEN};
use protocol::QueueClass;

use super::vhost_user::Options;
use super::{Chain, ChainError, Limits, LinkError, Transport, TransportError};

/// The node [`super::Endpoint::from_env`] picks when `VCOMPUTE_ENDPOINT`
/// is unset and it exists.
pub const DEFAULT_NODE: &str = "/dev/vcompute0";

/// Most bulk bytes (in and out together) one chain carries.
pub const MAX_BULK: usize = 8 << 20;
/// Most bulk segments one chain carries.
pub const MAX_SEGMENTS: usize = 256;

/// Pages a buffer of `len` bytes may span, wherever it starts.
const fn worst_pages(len: usize) -> usize {
    len / 4096 + 2
}

// Header and status, the request area, the response area, the bulk.
const _: () = assert!(
    2 + worst_pages(MAX_REQUEST_AREA_LEN)
        + worst_pages(RESPONSE_AREA_LEN)
        + MAX_BULK / 4096
        + 2 * MAX_SEGMENTS
        <= MAX_DESCRIPTORS_PER_CHAIN
);
const _: () = assert!(MAX_SEGMENTS <= MAX_BUFS as usize && MAX_SEGMENTS <= MAX_TABLE_ENTRIES);
const _: () = assert!(MAX_BULK <= MAX_BULK_BYTES as usize);
// The device copies a segment of several descriptors through its own
// memory, at most MAX_COPIED_BULK_LEN bytes a chain.
const _: () = assert!(MAX_BULK as u64 <= protocol::device::MAX_COPIED_BULK_LEN);
const _: () = assert!(RESPONSE_AREA_LEN <= MAX_RESPONSE_LEN as usize);

/// `VCOMPUTE_MAX_BUFS`: the driver's cap on bulk buffers per submit.
pub const MAX_BUFS: u32 = 1024;
/// `VCOMPUTE_MAX_BULK_BYTES`: the driver's cap on bulk bytes per submit.
pub const MAX_BULK_BYTES: u32 = 64 << 20;
/// `VCOMPUTE_MAX_RESPONSE_LEN`: the driver's cap on the response area.
pub const MAX_RESPONSE_LEN: u32 = 4 << 20;
/// `VCOMPUTE_SUBMIT_POLL`: busy-poll before sleeping.
pub const SUBMIT_POLL: u32 = 1;
/// `VCOMPUTE_IOC_MAGIC`.
pub const IOC_MAGIC: u8 = b'V';

/// `struct vcompute_buf`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Buf {
    /// `addr`.
    pub addr: u64,
    /// `len`.
    pub len: u64,
}

/// `struct vcompute_submit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Submit {
    /// `queue`: 0 control, 1 request.
    pub queue: u32,
    /// `flags`: [`SUBMIT_POLL`].
    pub flags: u32,
    /// `req_addr`.
    pub req_addr: u64,
    /// `req_len`.
    pub req_len: u64,
    /// `resp_addr`.
    pub resp_addr: u64,
    /// `resp_len`.
    pub resp_len: u64,
    /// `in_bufs`: `*const Buf`.
    pub in_bufs: u64,
    /// `out_bufs`: `*const Buf`.
    pub out_bufs: u64,
    /// `n_in`.
    pub n_in: u32,
    /// `n_out`.
    pub n_out: u32,
    /// `timeout_ms`: 0 waits until done.
    pub timeout_ms: u32,
    /// `status` (out).
    pub status: u32,
    /// `response_len` (out).
    pub response_len: u32,
    /// `reserved`: zero.
    pub reserved: u32,
}

/// `struct vcompute_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// `num_request_queues`.
    pub num_request_queues: u32,
    /// `max_sessions`.
    pub max_sessions: u32,
    /// `api_families`.
    pub api_families: u32,
    /// `protocol_version`.
    pub protocol_version: u32,
    /// `session`: this file's session.
    pub session: u32,
    /// `from_config`: 1 if read from the device's config space.
    pub from_config: u32,
}

/// Linux's `_IOC(dir, type, nr, size)`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;
/// `VCOMPUTE_IOC_SUBMIT`: `_IOWR('V', 1, struct vcompute_submit)`.
pub const IOC_SUBMIT: u32 = ioc(
    IOC_READ | IOC_WRITE,
    IOC_MAGIC,
    1,
    std::mem::size_of::<Submit>(),
);
/// `VCOMPUTE_IOC_INFO`: `_IOR('V', 2, struct vcompute_info)`.
pub const IOC_INFO: u32 = ioc(IOC_READ, IOC_MAGIC, 2, std::mem::size_of::<Info>());

/// What a chain's outcome means to the caller.
#[derive(Debug)]
enum Outcome {
    /// The response area holds this many bytes.
    Done(usize),
    /// The chain failed ([`TransportError::Disconnected`]: no later chain
    /// can succeed either).
    Failed(TransportError),
}

/// Maps a completed ioctl's device status.
fn status_outcome(status: u32, response_len: u32, resp_cap: usize) -> Outcome {
    match DeviceStatus::from_u32(status) {
        DeviceStatus::Ok => match usize::try_from(response_len) {
            Ok(n) if n <= resp_cap => Outcome::Done(n),
            _ => Outcome::Failed(TransportError::Disconnected(Arc::new(
                LinkError::DeviceRefused {
                    status: DeviceStatus::BadChain,
                },
            ))),
        },
        // The session is gone, or was never set up: nothing more will run.
        s @ (DeviceStatus::UnknownSession | DeviceStatus::Unavailable) => Outcome::Failed(
            TransportError::Disconnected(Arc::new(LinkError::DeviceRefused { status: s })),
        ),
        // This chain only.
        s @ (DeviceStatus::BadChain | DeviceStatus::TooManySessions | DeviceStatus::WrongQueue) => {
            Outcome::Failed(ChainError::DeviceRefused { status: s }.into())
        }
    }
}

/// Maps a failed ioctl's errno (see `vcompute_uapi.h`).
fn errno_outcome(e: io::Error, timeout: Duration) -> Outcome {
    Outcome::Failed(match e.raw_os_error() {
        Some(libc::ETIMEDOUT) => {
            TransportError::Disconnected(Arc::new(LinkError::NoAnswer { waited: timeout }))
        }
        // What the caller sent was refused; the file stays usable.
        Some(libc::EINVAL | libc::E2BIG | libc::EFAULT | libc::ENOMEM) => {
            ChainError::Driver(e).into()
        }
        // ENODEV (the device went), EIO (a bad status record), EINTR
        // (killed) and anything unexpected.
        _ => TransportError::Disconnected(Arc::new(LinkError::Device(e))),
    })
}

/// The device transport.
#[derive(Debug)]
pub struct DeviceTransport {
    file: File,
    /// The response area, reused.
    resp: Vec<u8>,
    timeout: Duration,
    poll: bool,
    /// Set once the session is unusable; no further chain is submitted.
    broken: Option<Arc<LinkError>>,
}

impl DeviceTransport {
    /// Opens `node` (which opens a device session).
    pub fn open(node: &Path, opts: &Options) -> Result<Self, TransportError> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(node)
            .map_err(|source| TransportError::Connect {
                peer: format!("device:{}", node.display()),
                source,
            })?;
        Ok(DeviceTransport {
            file,
            resp: vec![0; RESPONSE_AREA_LEN],
            timeout: opts.timeout,
            poll: !opts.poll.is_zero(),
            broken: None,
        })
    }

    /// What the driver says of the device and this file's session.
    pub fn info(&self) -> io::Result<Info> {
        let mut info = Info::default();
        // SAFETY: IOC_INFO writes one `struct vcompute_info`, which `Info`
        // mirrors (tests/device_abi.rs), into memory we own for the call.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                IOC_INFO as _,
                std::ptr::from_mut(&mut info),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(info)
    }

    fn check(&self, chain: &Chain<'_>) -> Result<(), TransportError> {
        if let Some(why) = &self.broken {
            return Err(TransportError::Disconnected(Arc::clone(why)));
        }
        if chain.frames.is_empty() {
            return Err(ChainError::Empty.into());
        }
        let l = self.limits();
        if chain.frames.len() > l.max_frames_len {
            return Err(ChainError::FramesTooLong {
                len: chain.frames.len(),
                max: l.max_frames_len,
            }
            .into());
        }
        let count = chain.bulk_in.len() + chain.bulk_out.len();
        if count > l.max_segments {
            return Err(ChainError::TooManySegments {
                count,
                max: l.max_segments,
            }
            .into());
        }
        let len = chain.bulk_in.iter().map(|b| b.len()).sum::<usize>()
            + chain.bulk_out.iter().map(|b| b.len()).sum::<usize>();
        if len > l.max_bulk {
            return Err(ChainError::BulkTooLarge {
                len,
                max: l.max_bulk,
            }
            .into());
        }
        Ok(())
    }
}

fn buf(addr: *const u8, len: usize) -> Buf {
    Buf {
        addr: addr as u64,
        len: len as u64,
    }
}

impl Transport for DeviceTransport {
    fn limits(&self) -> Limits {
        Limits {
            max_frames_len: MAX_REQUEST_AREA_LEN,
            max_segments: MAX_SEGMENTS,
            max_bulk: MAX_BULK,
        }
    }

    fn submit_on(
        &mut self,
        queue: QueueClass,
        chain: Chain<'_>,
    ) -> Result<Vec<u8>, TransportError> {
        self.check(&chain)?;
        let ins: Vec<Buf> = chain
            .bulk_in
            .iter()
            .map(|b| buf(b.as_ptr(), b.len()))
            .collect();
        let outs: Vec<Buf> = chain
            .bulk_out
            .iter_mut()
            .map(|b| buf(b.as_mut_ptr(), b.len()))
            .collect();
        let mut arg = Submit {
            queue: match queue {
                QueueClass::Control => 0,
                QueueClass::Request => 1,
            },
            flags: if self.poll { SUBMIT_POLL } else { 0 },
            req_addr: chain.frames.as_ptr() as u64,
            req_len: chain.frames.len() as u64,
            resp_addr: self.resp.as_mut_ptr() as u64,
            resp_len: self.resp.len() as u64,
            in_bufs: ins.as_ptr() as u64,
            out_bufs: outs.as_ptr() as u64,
            n_in: ins.len() as u32,
            n_out: outs.len() as u32,
            timeout_ms: u32::try_from(self.timeout.as_millis()).unwrap_or(u32::MAX),
            ..Submit::default()
        };
        // SAFETY: `arg` mirrors `struct vcompute_submit` and every address
        // in it names memory that stays valid and unaliased for the whole
        // call: the frames and in-bulk (read by the device), the response
        // area and out-bulk (written by it; exclusively borrowed here), and
        // the two descriptor arrays. The driver pins those pages and
        // returns only once the device is done with them; if the call is
        // interrupted or times out, the driver keeps them pinned until the
        // device completes, and this process is then exiting (a fatal
        // signal) or the transport refuses further chains (a timeout)
        // while the pages stay mapped.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                IOC_SUBMIT as _,
                std::ptr::from_mut(&mut arg),
            )
        };
        let outcome = if rc < 0 {
            errno_outcome(io::Error::last_os_error(), self.timeout)
        } else {
            status_outcome(arg.status, arg.response_len, self.resp.len())
        };
        match outcome {
            Outcome::Done(n) => Ok(self.resp[..n].to_vec()),
            Outcome::Failed(TransportError::Disconnected(why)) => {
                self.broken = Some(Arc::clone(&why));
                Err(TransportError::Disconnected(why))
            }
            Outcome::Failed(e) => Err(e),
        }
    }
}

/// Whether `path` is a character device (a driver's node), for
/// [`super::Endpoint::from_env`].
pub fn node_present(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(o: Outcome) -> TransportError {
        match o {
            Outcome::Failed(e) => e,
            Outcome::Done(n) => panic!("expected a failure, got Done({n})"),
        }
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(matches!(status_outcome(0, 32, 64), Outcome::Done(32)));
        // A response longer than the area is the device's fault: give up.
        assert!(matches!(
            failed(status_outcome(0, 65, 64)),
            TransportError::Disconnected(w) if matches!(*w, LinkError::DeviceRefused { status: DeviceStatus::BadChain })
        ));
        for (s, want) in [
            (2, DeviceStatus::UnknownSession),
            (5, DeviceStatus::Unavailable),
        ] {
            assert!(matches!(
                failed(status_outcome(s, 0, 64)),
                TransportError::Disconnected(w) if matches!(*w, LinkError::DeviceRefused { status } if status == want)
            ));
        }
        for (s, want) in [
            (1, DeviceStatus::BadChain),
            (3, DeviceStatus::TooManySessions),
            (4, DeviceStatus::WrongQueue),
            (99, DeviceStatus::BadChain),
        ] {
            assert!(matches!(
                failed(status_outcome(s, 0, 64)),
                TransportError::Chain(ChainError::DeviceRefused { status }) if status == want
            ));
        }
    }

    #[test]
    fn errnos_map_to_typed_errors() {
        let t = Duration::from_secs(3);
        let e = |n| failed(errno_outcome(io::Error::from_raw_os_error(n), t));
        assert!(matches!(
            e(libc::ETIMEDOUT),
            TransportError::Disconnected(w) if matches!(*w, LinkError::NoAnswer { waited } if waited == t)
        ));
        for n in [libc::EINVAL, libc::E2BIG, libc::EFAULT, libc::ENOMEM] {
            assert!(
                matches!(e(n), TransportError::Chain(ChainError::Driver(ref io)) if io.raw_os_error() == Some(n)),
                "errno {n}"
            );
        }
        for n in [libc::ENODEV, libc::EIO, libc::EINTR] {
            assert!(
                matches!(e(n), TransportError::Disconnected(ref w) if matches!(**w, LinkError::Device(ref io) if io.raw_os_error() == Some(n))),
                "errno {n}"
            );
        }
    }

    #[test]
    fn ioctl_numbers_are_linux_ones() {
        // _IOWR('V', 1, 80 bytes) and _IOR('V', 2, 24 bytes), as the
        // kernel's <asm-generic/ioctl.h> computes them.
        assert_eq!(IOC_SUBMIT, 0xc050_5601);
        assert_eq!(IOC_INFO, 0x8018_5602);
    }

    #[test]
    fn opening_a_missing_node_names_it() {
        let e = DeviceTransport::open(Path::new("/nonexistent/vcompute0"), &Options::default())
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&e, TransportError::Connect { peer, .. } if peer == "device:/nonexistent/vcompute0"),
            "{e:?}"
        );
        assert!(!node_present(Path::new("/nonexistent/vcompute0")));
        // A regular file is not a device node; /dev/null is one.
        assert!(!node_present(Path::new("/proc/self/status")));
        assert!(node_present(Path::new("/dev/null")));
    }
}
