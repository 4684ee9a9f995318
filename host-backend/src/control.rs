//! The control channel between the supervisor and one worker process: a
//! `SOCK_SEQPACKET` socket pair, one message per packet, file descriptors
//! passed alongside with `SCM_RIGHTS`.
//!
//! The worker is not trusted once it has read guest input (its runtime may
//! have been exploited), so the supervisor decodes what a worker sends under
//! a small size bound and never acts on it beyond bookkeeping: a worker can
//! lie about itself, never about another.
//!
//! This channel never leaves the host: its format is internal to the
//! daemon (both ends are the same binary), unlike the guest protocol.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bincode::{Decode, Encode};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Largest control message. Client names are cut to far less; the rest
/// are a few bytes.
pub const MAX_MESSAGE: usize = 1024;

/// What the supervisor tells a worker.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ToWorker {
    /// The daemon's key for tagging the OpenCL program binaries its workers
    /// hand out, so that a binary from one connection loads in another.
    Key([u8; 16]),
    /// Accept one frontend on the vhost-user listening socket attached, and
    /// serve it. The worker answers [`FromWorker::Accepted`] or
    /// [`FromWorker::NothingToAccept`], and closes the listener either way.
    AcceptVhost,
    /// Serve the stream connection attached.
    ServeStream,
}

/// What a worker tells the supervisor.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum FromWorker {
    /// Sandboxed, runtime initialised, waiting for a connection. `landlock`
    /// says how far the kernel enforces the file-system rules.
    Ready {
        /// `"full"`, `"partial"` or `"none"`.
        landlock: String,
        /// The executor it serves with (`"opencl"`, ...).
        executor: String,
    },
    /// The worker could not get ready; it exits.
    Failed {
        /// Why, for the supervisor's log.
        reason: String,
    },
    /// A frontend was accepted from the listener, which is now closed.
    Accepted,
    /// No frontend was waiting after all; the listener is closed and the
    /// worker waits for the next connection.
    NothingToAccept,
    /// A session opened, by the client named.
    Session {
        /// The client name the guest gave (untrusted).
        client: String,
    },
    /// A device-mode connection has this many sessions open now.
    OpenSessions {
        /// Sessions open.
        open: u32,
    },
    /// A call ran past the watchdog's limit; the worker exits at once.
    Watchdog {
        /// The limit, in seconds.
        seconds: u64,
        /// The opcode of the call that ran over.
        opcode: u16,
    },
}

/// Why a control message could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket failed.
    #[error("control socket I/O failed")]
    Io(#[from] io::Error),
    /// The peer closed the channel.
    #[error("the peer closed the control channel")]
    Closed,
    /// No message arrived in time.
    #[error("no control message within {0:?}")]
    Timeout(Duration),
    /// A message did not decode.
    #[error("malformed control message")]
    Malformed,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

/// One end of a control channel.
#[derive(Debug)]
pub struct Control(UnixStream);

impl Control {
    /// A connected pair: (supervisor's end, worker's end). Both are
    /// close-on-exec; the spawner hands the worker's end to the child.
    pub fn pair() -> io::Result<(Control, OwnedFd)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socketpair succeeded, so both are fresh descriptors that
        // nothing else owns.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Control(UnixStream::from(a)), b))
    }

    /// The worker's end, from the descriptor it was started with.
    pub fn from_fd(fd: OwnedFd) -> Control {
        Control(UnixStream::from(fd))
    }

    /// A second handle on the same channel (for another thread).
    pub fn try_clone(&self) -> io::Result<Control> {
        Ok(Control(self.0.try_clone()?))
    }

    /// The channel's descriptor, for polling.
    pub fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn send_raw<T: Encode>(&self, msg: &T, fd: Option<RawFd>) -> Result<(), ControlError> {
        let bytes = bincode::encode_to_vec(msg, config()).map_err(|_| ControlError::Malformed)?;
        // The limit binds decoding only; a longer packet would arrive cut.
        if bytes.len() > MAX_MESSAGE {
            return Err(ControlError::Malformed);
        }
        let fds: Vec<RawFd> = fd.into_iter().collect();
        self.0
            .send_with_fds(&[&bytes[..]], &fds)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        Ok(())
    }

    fn recv_raw<T: Decode<()>>(
        &self,
        timeout: Option<Duration>,
    ) -> Result<(T, Option<OwnedFd>), ControlError> {
        self.0.set_read_timeout(timeout)?;
        let mut buf = [0u8; MAX_MESSAGE];
        let (n, file) = loop {
            match self.0.recv_with_fd(&mut buf) {
                Ok(r) => break r,
                Err(e) => {
                    let e = io::Error::from_raw_os_error(e.errno());
                    return Err(match e.kind() {
                        // A signal handled meanwhile (the runtime's own) is
                        // not the end of the channel.
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                            ControlError::Timeout(timeout.unwrap_or_default())
                        }
                        _ => ControlError::Io(e),
                    });
                }
            }
        };
        let fd = file.map(OwnedFd::from);
        if n == 0 {
            return Err(ControlError::Closed);
        }
        let bytes = buf.get(..n).ok_or(ControlError::Malformed)?;
        let (msg, used) =
            bincode::decode_from_slice(bytes, config()).map_err(|_| ControlError::Malformed)?;
        if used != n {
            return Err(ControlError::Malformed);
        }
        Ok((msg, fd))
    }

    /// Supervisor: sends `msg`, with `fd` attached when given.
    pub fn send_to_worker(&self, msg: &ToWorker, fd: Option<RawFd>) -> Result<(), ControlError> {
        self.send_raw(msg, fd)
    }

    /// Supervisor: the next message of the worker, waiting at most
    /// `timeout` (for ever when `None`).
    pub fn recv_from_worker(&self, timeout: Option<Duration>) -> Result<FromWorker, ControlError> {
        // A worker has no business passing descriptors; any is dropped.
        self.recv_raw(timeout).map(|(m, _)| m)
    }

    /// Worker: sends `msg`.
    pub fn send_to_supervisor(&self, msg: &FromWorker) -> Result<(), ControlError> {
        self.send_raw(msg, None)
    }

    /// Worker: the next instruction, with its descriptor.
    pub fn recv_from_supervisor(&self) -> Result<(ToWorker, Option<OwnedFd>), ControlError> {
        self.recv_raw(None)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn messages_and_descriptors_cross() {
        let (sup, worker_fd) = Control::pair().unwrap();
        let worker = Control::from_fd(worker_fd);
        let (a, _b) = UnixStream::pair().unwrap();
        sup.send_to_worker(&ToWorker::ServeStream, Some(a.as_fd().as_raw_fd()))
            .unwrap();
        let (msg, fd) = worker.recv_from_supervisor().unwrap();
        assert_eq!(msg, ToWorker::ServeStream);
        assert!(fd.is_some());
        let session = FromWorker::Session {
            client: "clinfo".into(),
        };
        worker.send_to_supervisor(&session).unwrap();
        assert_eq!(sup.recv_from_worker(None).unwrap(), session);
    }

    #[test]
    fn garbage_timeouts_and_hangups_are_errors() {
        let (sup, worker_fd) = Control::pair().unwrap();
        let raw = UnixStream::from(worker_fd);
        assert!(matches!(
            sup.recv_from_worker(Some(Duration::from_millis(20))),
            Err(ControlError::Timeout(_))
        ));
        raw.send_with_fds(&[&[0xffu8, 0xff, 0xff][..]], &[])
            .unwrap();
        assert!(matches!(
            sup.recv_from_worker(None),
            Err(ControlError::Malformed)
        ));
        // A name longer than a message can carry does not decode.
        let long = FromWorker::Session {
            client: "x".repeat(MAX_MESSAGE * 2),
        };
        assert!(Control::from_fd(OwnedFd::from(raw.try_clone().unwrap()))
            .send_to_supervisor(&long)
            .is_err());
        drop(raw);
        assert!(matches!(
            sup.recv_from_worker(None),
            Err(ControlError::Closed)
        ));
    }
}
