//! Stream transport: the same chains as records on a byte stream, over
//! `AF_VSOCK` (a guest talking to the host) or `AF_UNIX` (a host-local
//! client, or a VMM that bridges guest vsock to a unix socket).
//!
//! Each chain becomes one request record (see [`protocol::stream`]) with its
//! bulk bytes inline; the daemon answers each record with one response
//! record, in order. Pipelining is plain: [`Transport::start`] writes a
//! record without waiting, [`Transport::finish`] reads the oldest answer.
//! A stream that fails or times out is out of step for good: the transport
//! then refuses every further chain.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protocol::limits::{MAX_REQUEST_AREA_LEN, MAX_STREAM_BULK, MAX_TRANSFER_LEN};
use protocol::stream::{
    decode_response_record, encode_request_record, Direction, RecordHeader, RECORD_HEADER_LEN,
};
use protocol::QueueClass;

use super::vhost_user::{Options, PIPELINE_DEPTH};
use super::{
    Chain, ChainError, Limits, LinkError, PipeChain, PipeLimits, Transport, TransportError,
};

/// Bulk segments one record may carry: far more than a batch uses, few
/// enough to keep the per-record bookkeeping small.
const MAX_SEGMENTS: usize = 1024;

/// A connected byte stream.
trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// The stream transport.
pub struct StreamTransport {
    conn: Box<dyn Conn>,
    peer: String,
    timeout: Duration,
    /// Out-bulk lengths of each pipelined record in flight, oldest first.
    in_flight: VecDeque<usize>,
    /// Encoding and receive buffers, reused.
    send: Vec<u8>,
    recv: Vec<u8>,
    /// Set once the stream failed; no further record is sent.
    broken: Option<Arc<LinkError>>,
}

impl std::fmt::Debug for StreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTransport")
            .field("peer", &self.peer)
            .field("in_flight", &self.in_flight.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn connect_err(peer: &str) -> impl FnOnce(io::Error) -> TransportError + '_ {
    move |source| TransportError::Connect {
        peer: peer.to_owned(),
        source,
    }
}

impl StreamTransport {
    /// Connects to a unix socket.
    pub fn connect_unix(path: &Path, opts: &Options) -> Result<Self, TransportError> {
        let peer = format!("unix:{}", path.display());
        let s = UnixStream::connect(path).map_err(connect_err(&peer))?;
        s.set_read_timeout(Some(opts.timeout))
            .map_err(connect_err(&peer))?;
        s.set_write_timeout(Some(opts.timeout))
            .map_err(connect_err(&peer))?;
        Ok(Self::new(Box::new(s), peer, opts.timeout))
    }

    /// Connects to `port` on vsock context `cid` (2 is the host).
    pub fn connect_vsock(cid: u32, port: u32, opts: &Options) -> Result<Self, TransportError> {
        let peer = format!("vsock:{cid}:{port}");
        let s = vsock::VsockStream::connect_with_cid_port(cid, port).map_err(connect_err(&peer))?;
        s.set_read_timeout(Some(opts.timeout))
            .map_err(connect_err(&peer))?;
        s.set_write_timeout(Some(opts.timeout))
            .map_err(connect_err(&peer))?;
        Ok(Self::new(Box::new(s), peer, opts.timeout))
    }

    fn new(conn: Box<dyn Conn>, peer: String, timeout: Duration) -> Self {
        StreamTransport {
            conn,
            peer,
            timeout,
            in_flight: VecDeque::with_capacity(PIPELINE_DEPTH),
            send: Vec::new(),
            recv: Vec::new(),
            broken: None,
        }
    }

    fn check_usable(&self) -> Result<(), TransportError> {
        match &self.broken {
            Some(why) => Err(TransportError::Disconnected(Arc::clone(why))),
            None => Ok(()),
        }
    }

    /// Marks the stream broken (it is out of step) and returns the error.
    fn fail(&mut self, why: LinkError) -> TransportError {
        let why = Arc::new(why);
        self.broken = Some(Arc::clone(&why));
        self.in_flight.clear();
        TransportError::Disconnected(why)
    }

    /// Marks the stream broken after a failed read or write: a timeout and
    /// the peer's hangup have causes of their own, any other error is
    /// wrapped by `other`.
    fn fail_io(&mut self, e: io::Error, other: fn(io::Error) -> LinkError) -> TransportError {
        let why = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => LinkError::NoAnswer {
                waited: self.timeout,
            },
            io::ErrorKind::UnexpectedEof => LinkError::Closed,
            _ => other(e),
        };
        self.fail(why)
    }

    /// Encodes and writes one request record.
    fn send_record(
        &mut self,
        queue: QueueClass,
        frames: &[u8],
        bulk_in: &[&[u8]],
        out_lens: &[usize],
        max_bulk: usize,
    ) -> Result<(), TransportError> {
        let bulk: usize =
            bulk_in.iter().map(|b| b.len()).sum::<usize>() + out_lens.iter().sum::<usize>();
        if bulk > max_bulk {
            return Err(ChainError::BulkTooLarge {
                len: bulk,
                max: max_bulk,
            }
            .into());
        }
        let segments = bulk_in.len() + out_lens.len();
        if segments > MAX_SEGMENTS {
            return Err(ChainError::TooManySegments {
                count: segments,
                max: MAX_SEGMENTS,
            }
            .into());
        }
        self.send.clear();
        encode_request_record(&mut self.send, queue, frames, bulk_in, out_lens)
            .map_err(ChainError::Encode)?;
        if let Err(e) = self
            .conn
            .write_all(&self.send)
            .and_then(|()| self.conn.flush())
        {
            return Err(self.fail_io(e, LinkError::Send));
        }
        Ok(())
    }

    /// Reads one response record; copies its segments into `bulk_out` in
    /// order and returns its response frames.
    fn recv_record(&mut self, bulk_out: &mut [&mut [u8]]) -> Result<Vec<u8>, TransportError> {
        let mut head = [0u8; RECORD_HEADER_LEN];
        if let Err(e) = self.conn.read_exact(&mut head) {
            return Err(self.fail_io(e, LinkError::Receive));
        }
        let header = match RecordHeader::decode(&head, Direction::Response) {
            Ok(h) => h,
            Err(e) => return Err(self.fail(LinkError::BadRecord(e))),
        };
        self.recv.clear();
        let got = Read::take(&mut self.conn, u64::from(header.len)).read_to_end(&mut self.recv);
        match got {
            Ok(n) if n == header.len as usize => {}
            Ok(_) => return Err(self.fail(LinkError::Closed)),
            Err(e) => return Err(self.fail_io(e, LinkError::Receive)),
        }
        let decoded = match decode_response_record(&header, &self.recv) {
            Ok(d) => d,
            Err(e) => return Err(self.fail(LinkError::BadRecord(e))),
        };
        for (dst, src) in bulk_out.iter_mut().zip(&decoded.segments) {
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
        }
        Ok(decoded.frames)
    }

    /// Completes every pipelined record still in flight, discarding results.
    fn drain(&mut self) -> Result<(), TransportError> {
        while !self.in_flight.is_empty() {
            self.finish(&mut [])?;
        }
        Ok(())
    }
}

impl Transport for StreamTransport {
    fn limits(&self) -> Limits {
        Limits {
            max_frames_len: MAX_REQUEST_AREA_LEN,
            max_segments: MAX_SEGMENTS,
            max_bulk: MAX_STREAM_BULK.min(MAX_TRANSFER_LEN as usize),
        }
    }

    fn pipe_limits(&self) -> Option<PipeLimits> {
        Some(PipeLimits {
            depth: PIPELINE_DEPTH,
            max_frames_len: MAX_REQUEST_AREA_LEN,
            max_segments: MAX_SEGMENTS,
            max_bulk: MAX_STREAM_BULK,
        })
    }

    fn submit_on(
        &mut self,
        queue: QueueClass,
        chain: Chain<'_>,
    ) -> Result<Vec<u8>, TransportError> {
        self.check_usable()?;
        self.drain()?;
        let out_lens: Vec<usize> = chain.bulk_out.iter().map(|b| b.len()).collect();
        let max = self.limits().max_bulk;
        self.send_record(queue, chain.frames, chain.bulk_in, &out_lens, max)?;
        self.recv_record(chain.bulk_out)
    }

    fn start(&mut self, chain: PipeChain<'_>) -> Result<(), TransportError> {
        self.check_usable()?;
        if self.in_flight.len() >= PIPELINE_DEPTH {
            return Err(ChainError::PipelineFull {
                depth: self.in_flight.len(),
            }
            .into());
        }
        self.send_record(
            QueueClass::Request,
            chain.frames,
            chain.bulk_in,
            chain.out_lens,
            MAX_STREAM_BULK,
        )?;
        self.in_flight.push_back(chain.out_lens.len());
        Ok(())
    }

    fn finish(&mut self, bulk_out: &mut [&mut [u8]]) -> Result<Vec<u8>, TransportError> {
        self.check_usable()?;
        if self.in_flight.pop_front().is_none() {
            return Err(ChainError::NothingInFlight.into());
        }
        self.recv_record(bulk_out)
    }
}
