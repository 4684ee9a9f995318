//! The guest's vsock connections to the daemon's port: the connection
//! state machine, credit-based flow control and resets.
//!
//! The muxer knows nothing of virtqueues: the device feeds it every packet
//! the guest sends ([`Muxer::on_packet`], [`Muxer::on_bad_packet`]) and asks
//! it for the next packet to put in a receive buffer ([`Muxer::next_rx`]).
//! That keeps every rule testable on plain values.
//!
//! Rules:
//! - `REQUEST` to the daemon's port opens a connection (answered with
//!   `RESPONSE`) and starts its session thread; to any other port, or past
//!   the connection limit, it gets `RST`. Connections the daemon has closed
//!   whose sessions are still ending count against the limit, so a guest
//!   cannot hold more sessions than that by resetting busy connections.
//! - At most [`MAX_OWED_RESETS`] resets wait for a receive buffer; a guest
//!   that provokes more without taking them gets no more.
//! - Any packet but `REQUEST` for a connection that does not exist, a
//!   packet of another socket type, an unknown op, a packet that does not
//!   parse, and data beyond the credit the daemon granted all get `RST`;
//!   an existing connection they name is closed. An `RST` from the guest is
//!   never answered.
//! - The guest's credit (`buf_alloc`, `fwd_cnt` in every packet) bounds
//!   what the daemon sends; the daemon grants [`BUF_ALLOC`] and reports
//!   what its session consumed in every packet, sending `CREDIT_UPDATE`
//!   when a quarter of the buffer has been freed or the guest asks.
//! - `SHUTDOWN` ends the session's input; once the session has finished
//!   and its output is sent, the daemon resets the connection. A session
//!   that ends by itself (bad stream) is reset the same way.
//! - A connection that ends by the guest's hand (`SHUTDOWN`, `RST`) or the
//!   daemon's (a reset, the VM gone) abandons its session
//!   ([`crate::executor::Abandon`]): no request can follow, so a wait only
//!   the guest could have ended must end now for the session to finish.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::debug;
use vmm_sys_util::eventfd::EventFd;

use super::pipe::{Pipe, SessionEnd};
use crate::executor::{Abandon, ExecutorFactory};
use crate::limits::SessionLimits;
use crate::log::WarnLimiter;
use crate::session::Session;
use crate::{limited_info, limited_warn};

/// The host's context id.
pub const HOST_CID: u64 = 2;
/// `VIRTIO_VSOCK_TYPE_STREAM`.
pub const TYPE_STREAM: u16 = 1;
/// Receive buffer the daemon grants each connection (the guest may have
/// this many unread bytes outstanding).
pub const BUF_ALLOC: u32 = 256 << 10;

/// Resets owed to the guest and not yet sent. Each bad packet owes one,
/// and the guest decides when it takes them (by posting receive buffers),
/// so without a bound a guest flooding closed ports would grow the queue
/// without end; past it further resets are dropped (and counted): the
/// guest's connect times out, or its next packet on a dropped connection
/// is reset then.
pub const MAX_OWED_RESETS: usize = 1024;

/// Packet operations (virtio specification, 5.10.6).
pub mod op {
    /// Connect.
    pub const REQUEST: u16 = 1;
    /// Connection accepted.
    pub const RESPONSE: u16 = 2;
    /// Reset.
    pub const RST: u16 = 3;
    /// Shutdown (flags say which directions).
    pub const SHUTDOWN: u16 = 4;
    /// Data.
    pub const RW: u16 = 5;
    /// Credit report.
    pub const CREDIT_UPDATE: u16 = 6;
    /// Credit request.
    pub const CREDIT_REQUEST: u16 = 7;
}

/// The header fields of one vsock packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hdr {
    /// Source context id.
    pub src_cid: u64,
    /// Destination context id.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    /// Socket type.
    pub type_: u16,
    /// Operation.
    pub op: u16,
    /// Operation flags.
    pub flags: u32,
    /// Sender's receive buffer size.
    pub buf_alloc: u32,
    /// Bytes the sender has consumed.
    pub fwd_cnt: u32,
}

/// What the muxer has done, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MuxCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Resets sent.
    pub resets: u64,
    /// Credit violations seen.
    pub credit_violations: u64,
    /// Resets not sent because [`MAX_OWED_RESETS`] were already owed.
    pub resets_dropped: u64,
}

struct Conn {
    pipe: Arc<Pipe>,
    thread: Option<JoinHandle<()>>,
    /// The session's abandoner, usable while its thread is blocked.
    abandon: Arc<dyn Abandon>,
    /// The guest's receive buffer and consumption (its credit to us).
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes sent to the guest.
    tx_cnt: u32,
    /// `fwd_cnt` last reported to the guest.
    reported_fwd: u32,
    /// The RESPONSE to the guest's REQUEST is still to be sent.
    need_response: bool,
    /// A CREDIT_UPDATE is owed.
    need_credit: bool,
}

impl Conn {
    /// Closes the pipe both ways and abandons the session, so that its
    /// thread ends whatever it was doing.
    fn close(&self) {
        self.pipe.close_all();
        self.abandon.abandon();
    }

    /// Bytes the guest can take now.
    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc
            .saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }

    fn session_finished(&self) -> bool {
        self.thread.is_none() || self.pipe.session_done()
    }
}

/// Connections of one guest to the daemon's port.
pub struct Muxer {
    guest_cid: u64,
    port: u32,
    max_conns: usize,
    factory: Arc<dyn ExecutorFactory>,
    limits: SessionLimits,
    wake: Arc<EventFd>,
    conns: BTreeMap<u32, Conn>,
    /// Connections reset by the daemon whose session has still to end.
    closing: Vec<Conn>,
    /// Control packets (RESPONSE, RST, CREDIT_UPDATE) owed, oldest first.
    control: VecDeque<Hdr>,
    /// The guest port served last, for round-robin data.
    last: u32,
    counters: MuxCounters,
    warn: WarnLimiter,
    /// Connection lines, which the guest can repeat at will.
    lifecycle: WarnLimiter,
}

impl std::fmt::Debug for Muxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muxer")
            .field("guest_cid", &self.guest_cid)
            .field("port", &self.port)
            .field("conns", &self.conns.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Muxer {
    /// A muxer for guest `guest_cid` serving `port`, whose sessions wake
    /// the device through `wake`.
    pub fn new(
        guest_cid: u64,
        port: u32,
        max_conns: usize,
        factory: Arc<dyn ExecutorFactory>,
        limits: SessionLimits,
        wake: Arc<EventFd>,
    ) -> Self {
        Muxer {
            guest_cid,
            port,
            max_conns,
            factory,
            limits,
            wake,
            conns: BTreeMap::new(),
            closing: Vec::new(),
            control: VecDeque::new(),
            last: 0,
            counters: MuxCounters::default(),
            warn: WarnLimiter::new(),
            lifecycle: WarnLimiter::new(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> MuxCounters {
        self.counters
    }

    /// Open connections.
    pub fn live(&self) -> usize {
        self.conns.len()
    }

    /// A packet from the daemon to the guest port `peer`.
    fn to_guest(&self, peer: u32, op: u16, flags: u32) -> Hdr {
        Hdr {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.port,
            dst_port: peer,
            len: 0,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: BUF_ALLOC,
            fwd_cnt: 0,
        }
    }

    /// Queues a reset for the guest, unless [`MAX_OWED_RESETS`] are owed.
    fn owe_reset(&mut self, h: Hdr) {
        if self.control.len() >= MAX_OWED_RESETS {
            self.counters.resets_dropped += 1;
            limited_warn!(
                self.warn,
                owed = self.control.len(),
                "the guest takes no resets; dropping one"
            );
            return;
        }
        self.counters.resets += 1;
        self.control.push_back(h);
    }

    /// Queues a reset answering `h` (never for a reset).
    fn reset_reply(&mut self, h: &Hdr) {
        if h.op == op::RST {
            return;
        }
        self.owe_reset(Hdr {
            src_cid: h.dst_cid,
            dst_cid: h.src_cid,
            src_port: h.dst_port,
            dst_port: h.src_port,
            len: 0,
            type_: TYPE_STREAM,
            op: op::RST,
            flags: 0,
            buf_alloc: 0,
            fwd_cnt: 0,
        });
    }

    /// Drops connection `peer` (if open) and resets it toward the guest.
    fn reset_conn(&mut self, peer: u32) {
        if let Some(c) = self.conns.remove(&peer) {
            c.close();
            self.closing.push(c);
            self.owe_reset(self.to_guest(peer, op::RST, 0));
            debug!(peer, "vsock connection reset");
        }
    }

    /// Handles one packet the guest sent; `data` is its payload.
    pub fn on_packet(&mut self, h: &Hdr, data: &[u8]) {
        if h.src_cid != self.guest_cid || h.dst_cid != HOST_CID {
            limited_warn!(
                self.warn,
                src_cid = h.src_cid,
                dst_cid = h.dst_cid,
                "vsock packet with wrong addresses dropped"
            );
            return;
        }
        let known = h.dst_port == self.port && self.conns.contains_key(&h.src_port);
        if h.type_ != TYPE_STREAM {
            if known {
                self.reset_conn(h.src_port);
            } else {
                self.reset_reply(h);
            }
            return;
        }
        if !known {
            match h.op {
                op::REQUEST if h.dst_port == self.port => self.open(h),
                op::RST => {}
                _ => self.reset_reply(h),
            }
            return;
        }
        let peer = h.src_port;
        let Some(c) = self.conns.get_mut(&peer) else {
            return;
        };
        c.peer_buf_alloc = h.buf_alloc;
        c.peer_fwd_cnt = h.fwd_cnt;
        match h.op {
            op::RW => {
                let unread = c.pipe.inbound_len();
                if data.len() != h.len as usize || unread + data.len() > BUF_ALLOC as usize {
                    self.counters.credit_violations += 1;
                    limited_warn!(
                        self.warn,
                        peer,
                        len = data.len(),
                        unread,
                        "vsock credit violation; resetting"
                    );
                    self.reset_conn(peer);
                    return;
                }
                c.pipe.push_inbound(data);
            }
            op::SHUTDOWN => {
                // The guest sends no more; its session finishes what it
                // has, and nothing it waits on can be ended by the guest.
                c.pipe.close_inbound();
                c.abandon.abandon();
            }
            op::RST => {
                if let Some(c) = self.conns.remove(&peer) {
                    c.close();
                    self.closing.push(c);
                    debug!(peer, "vsock connection reset by the guest");
                }
            }
            op::CREDIT_REQUEST => c.need_credit = true,
            op::CREDIT_UPDATE => {}
            // A second REQUEST on an open connection, a RESPONSE, or an op
            // this version does not know.
            _ => {
                limited_warn!(self.warn, peer, op = h.op, "unexpected vsock op; resetting");
                self.reset_conn(peer);
            }
        }
    }

    /// A packet that did not parse; `h` is its header when that much was
    /// readable. The connection it names, if any, is reset.
    pub fn on_bad_packet(&mut self, h: Option<&Hdr>) {
        limited_warn!(self.warn, "malformed vsock packet");
        let Some(h) = h else { return };
        if h.dst_port == self.port && self.conns.contains_key(&h.src_port) {
            self.reset_conn(h.src_port);
        } else if h.src_cid == self.guest_cid {
            self.reset_reply(h);
        }
    }

    fn open(&mut self, h: &Hdr) {
        // Sessions of closed connections still hold their resources.
        self.retire();
        if self.conns.len() + self.closing.len() >= self.max_conns {
            limited_warn!(
                self.warn,
                max = self.max_conns,
                "vsock connection limit reached; resetting"
            );
            self.reset_reply(h);
            return;
        }
        let peer = h.src_port;
        let pipe = Pipe::new(self.wake.clone());
        let end = SessionEnd(pipe.clone());
        let session = Session::new(self.factory.clone(), self.limits);
        let abandon = session.abandoner();
        let spawned = std::thread::Builder::new()
            .name(format!("vcompute-vsock-{peer}"))
            .spawn(move || serve_session(end, session, peer));
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                limited_warn!(self.warn, error = %e, "cannot start a vsock session thread");
                self.reset_reply(h);
                return;
            }
        };
        self.counters.accepted += 1;
        self.conns.insert(
            peer,
            Conn {
                pipe,
                thread: Some(thread),
                abandon,
                peer_buf_alloc: h.buf_alloc,
                peer_fwd_cnt: h.fwd_cnt,
                tx_cnt: 0,
                reported_fwd: 0,
                need_response: true,
                need_credit: false,
            },
        );
        limited_info!(
            self.lifecycle,
            peer,
            live = self.conns.len(),
            "guest vsock connection opened"
        );
    }

    /// The next packet for the guest, with its payload, if any is owed and
    /// allowed: control packets first, then data round-robin over
    /// connections within the guest's credit. `room` is the payload space of
    /// the receive buffer at hand.
    pub fn next_rx(&mut self, room: usize) -> Option<(Hdr, Vec<u8>)> {
        self.retire();
        if let Some(h) = self.control.pop_front() {
            return Some((h, Vec::new()));
        }
        // Round-robin: ports after the last one served, then the rest.
        let order: Vec<u32> = self
            .conns
            .range(self.last.saturating_add(1)..)
            .chain(self.conns.range(..=self.last))
            .map(|(&p, _)| p)
            .collect();
        for peer in order {
            if let Some(pkt) = self.conn_rx(peer, room) {
                self.last = peer;
                return Some(pkt);
            }
        }
        None
    }

    fn conn_rx(&mut self, peer: u32, room: usize) -> Option<(Hdr, Vec<u8>)> {
        let mut hdr = self.to_guest(peer, 0, 0);
        let c = self.conns.get_mut(&peer)?;
        let fwd = c.pipe.consumed();
        hdr.fwd_cnt = fwd;
        if c.need_response {
            c.need_response = false;
            c.reported_fwd = fwd;
            hdr.op = op::RESPONSE;
            return Some((hdr, Vec::new()));
        }
        let credit = c.peer_credit() as usize;
        if credit > 0 && room > 0 {
            let data = c.pipe.take_outbound(credit.min(room));
            if !data.is_empty() {
                c.tx_cnt = c.tx_cnt.wrapping_add(data.len() as u32);
                c.reported_fwd = fwd;
                c.need_credit = false;
                hdr.op = op::RW;
                hdr.len = data.len() as u32;
                return Some((hdr, data));
            }
        }
        if c.need_credit || fwd.wrapping_sub(c.reported_fwd) >= BUF_ALLOC / 4 {
            c.need_credit = false;
            c.reported_fwd = fwd;
            hdr.op = op::CREDIT_UPDATE;
            return Some((hdr, Vec::new()));
        }
        if c.session_finished() && c.pipe.outbound_len() == 0 {
            // The session ended and everything it said was sent.
            self.reset_conn(peer);
            return self.control.pop_front().map(|h| (h, Vec::new()));
        }
        None
    }

    /// Joins the session threads of closed connections that have ended.
    fn retire(&mut self) {
        self.closing.retain_mut(|c| {
            if !c.session_finished() {
                return true;
            }
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
            false
        });
    }

    /// Closes every connection and waits for every session to end (the
    /// guest is gone). Sessions are abandoned first; one busy in the
    /// runtime on its own work finishes that call.
    pub fn shutdown(&mut self) {
        let conns = std::mem::take(&mut self.conns);
        self.closing.extend(conns.into_values());
        for c in &self.closing {
            c.close();
        }
        for mut c in self.closing.drain(..) {
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
        }
        self.control.clear();
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve_session(mut end: SessionEnd, mut session: Session, peer: u32) {
    match crate::stream::serve(&mut end, &mut session) {
        Ok(()) => debug!(peer, "vsock session ended"),
        Err(e) => debug!(peer, error = %e, "vsock session ended with an error"),
    }
    // Everything the guest made is freed before the device hears of it.
    drop(session);
    debug!(peer, "guest vsock connection closed");
    end.0.finish_session();
}

#[cfg(test)]
#[path = "muxer_tests.rs"]
pub(super) mod tests;
