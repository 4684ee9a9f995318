//! The pinned staging pool: how bytes move between guest memory and the GPU
//! without pinning guest memory.
//!
//! Each session has, per device, at most [`STAGING_BUFFERS`] pinned host
//! buffers of [`STAGING_CHUNK`] bytes, allocated when a copy first needs
//! them and used round robin. Every chunk of a copy goes through the next
//! buffer, with an event recorded after its DMA; a buffer is reused only
//! once its event has completed.
//!
//! - Host to device: a chunk is copied from guest memory into a buffer and
//!   its DMA queued on the guest's stream; the call returns when the last
//!   chunk is queued, so the guest's bytes are captured, stream order is
//!   kept, and consecutive copies (the shim sends large ones as a sequence
//!   of requests) overlap guest-memory copying with DMA.
//! - Device to host: chunk DMAs are queued ahead, and each is copied into
//!   guest memory as soon as its event completes while later ones are in
//!   flight; the call returns when all are in guest memory, because the
//!   guest's segments are lent only for the call.
//!
//! Every function here expects the device's context to be current.

use std::collections::VecDeque;
use std::ffi::c_void;

use cudarc::driver::sys;

use super::backend::CuResult;
use super::driver::check;
use crate::executor::GuestBuf;
use crate::limits::{STAGING_BUFFERS, STAGING_CHUNK};

/// Smallest chunk a device-to-host copy is split into: below this the
/// per-chunk driver overhead (an async copy and an event, a few µs) costs
/// more than the overlap gains.
const DTOH_MIN_CHUNK: usize = 256 << 10;

/// A cursor over concatenated guest segments.
struct Cursor<'a> {
    segs: &'a [GuestBuf],
    seg: usize,
    off: usize,
}

impl<'a> Cursor<'a> {
    fn new(segs: &'a [GuestBuf]) -> Self {
        Cursor {
            segs,
            seg: 0,
            off: 0,
        }
    }

    /// Fills `out` from the segments, in order.
    fn read(&mut self, mut out: &mut [u8]) -> CuResult<()> {
        while !out.is_empty() {
            let seg = self
                .segs
                .get(self.seg)
                .ok_or(sys::CUresult::CUDA_ERROR_INVALID_VALUE as i32)?;
            let n = (seg.len() - self.off).min(out.len());
            let (head, tail) = out.split_at_mut(n);
            if !seg.read_at(self.off, head) {
                return Err(sys::CUresult::CUDA_ERROR_INVALID_VALUE as i32);
            }
            self.advance(n);
            out = tail;
        }
        Ok(())
    }

    /// Writes `src` into the segments, in order.
    fn write(&mut self, mut src: &[u8]) -> CuResult<()> {
        while !src.is_empty() {
            let seg = self
                .segs
                .get(self.seg)
                .ok_or(sys::CUresult::CUDA_ERROR_INVALID_VALUE as i32)?;
            let n = (seg.len() - self.off).min(src.len());
            let (head, tail) = src.split_at(n);
            if !seg.write_at(self.off, head) {
                return Err(sys::CUresult::CUDA_ERROR_INVALID_VALUE as i32);
            }
            self.advance(n);
            src = tail;
        }
        Ok(())
    }

    fn advance(&mut self, n: usize) {
        self.off += n;
        while self.segs.get(self.seg).is_some_and(|s| self.off >= s.len()) {
            self.off -= self.segs.get(self.seg).map_or(0, GuestBuf::len);
            self.seg += 1;
        }
    }
}

/// One pinned buffer and the event after its last DMA.
struct Slot {
    host: *mut u8,
    event: sys::CUevent,
    /// An event was recorded after the buffer's last DMA and has not been
    /// waited for.
    busy: bool,
}

impl Slot {
    fn new() -> CuResult<Slot> {
        let mut host = std::ptr::null_mut::<c_void>();
        // SAFETY: plain allocation into a local out-pointer; the device's
        // context is current (module contract). PORTABLE: usable from any
        // context of the process.
        check(unsafe {
            sys::cuMemHostAlloc(&mut host, STAGING_CHUNK, sys::CU_MEMHOSTALLOC_PORTABLE)
        })?;
        let mut event = std::ptr::null_mut();
        // SAFETY: creates an event in the current context into a local.
        let made = check(unsafe {
            sys::cuEventCreate(
                &mut event,
                sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32,
            )
        });
        if let Err(e) = made {
            // SAFETY: `host` was allocated just above and is not in use.
            unsafe { sys::cuMemFreeHost(host) };
            return Err(e);
        }
        Ok(Slot {
            host: host.cast(),
            event,
            busy: false,
        })
    }

    /// Waits for the buffer's last DMA.
    fn wait(&mut self) -> CuResult<()> {
        if self.busy {
            // SAFETY: `event` is a live event of this context.
            check(unsafe { sys::cuEventSynchronize(self.event) })?;
            self.busy = false;
        }
        Ok(())
    }

    /// The first `len` bytes of the buffer.
    fn bytes(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(STAGING_CHUNK);
        // SAFETY: `host` is a live pinned allocation of STAGING_CHUNK bytes
        // owned by this slot, and no DMA is using it (callers `wait` first),
        // so no other reference to these bytes exists for the borrow.
        unsafe { std::slice::from_raw_parts_mut(self.host, len) }
    }
}

/// A session's staging buffers on one device.
#[derive(Default)]
pub struct Staging {
    slots: Vec<Slot>,
    next: usize,
}

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staging")
            .field("buffers", &self.slots.len())
            .finish()
    }
}

impl Staging {
    /// The next buffer in turn, allocated if the pool is not full yet.
    /// Does not wait for it.
    fn take(&mut self) -> CuResult<usize> {
        // `next` walks 0..STAGING_BUFFERS and the pool grows one buffer at
        // a time, so `next` is at most one past the last buffer.
        if self.next == self.slots.len() {
            self.slots.push(Slot::new()?);
        }
        let i = self.next;
        self.next = (i + 1) % STAGING_BUFFERS;
        Ok(i)
    }

    fn slot(&mut self, i: usize) -> CuResult<&mut Slot> {
        self.slots
            .get_mut(i)
            .ok_or(sys::CUresult::CUDA_ERROR_UNKNOWN as i32)
    }

    /// Copies the concatenated `src` segments to `dst`, ordered on `stream`.
    pub fn htod(&mut self, stream: sys::CUstream, dst: u64, src: &[GuestBuf]) -> CuResult<()> {
        let total: usize = src.iter().map(GuestBuf::len).sum();
        let mut cursor = Cursor::new(src);
        let mut done = 0usize;
        while done < total {
            let len = (total - done).min(STAGING_CHUNK);
            let i = self.take()?;
            let slot = self.slot(i)?;
            slot.wait()?;
            cursor.read(slot.bytes(len))?;
            // SAFETY: the context is current; `dst + done .. + len` lies in
            // an allocation the session layer checked; the pinned buffer
            // holds `len` bytes and is not reused before the event below
            // completes.
            check(unsafe {
                sys::cuMemcpyHtoDAsync_v2(dst + done as u64, slot.host.cast(), len, stream)
            })?;
            // SAFETY: live event and stream of this context.
            check(unsafe { sys::cuEventRecord(slot.event, stream) })?;
            slot.busy = true;
            done += len;
        }
        Ok(())
    }

    /// Copies from `src` into the concatenated `dst` segments, ordered on
    /// `stream`, and waits until every byte is in guest memory.
    pub fn dtoh(&mut self, stream: sys::CUstream, src: u64, dst: &[GuestBuf]) -> CuResult<()> {
        let total: usize = dst.iter().map(GuestBuf::len).sum();
        let mut cursor = Cursor::new(dst);
        let mut inflight: VecDeque<(usize, usize)> = VecDeque::new();
        let result = self.dtoh_chunks(stream, src, total, &mut cursor, &mut inflight);
        if result.is_err() {
            // Leave no DMA behind that could land in a reused buffer.
            for (i, _) in inflight {
                if let Ok(slot) = self.slot(i) {
                    let _ = slot.wait();
                }
            }
        }
        result
    }

    fn dtoh_chunks(
        &mut self,
        stream: sys::CUstream,
        src: u64,
        total: usize,
        cursor: &mut Cursor<'_>,
        inflight: &mut VecDeque<(usize, usize)>,
    ) -> CuResult<()> {
        // Smaller chunks than the buffers let the copy of one chunk into
        // guest memory overlap the DMA of the next within a single request.
        let chunk = (total / STAGING_BUFFERS).clamp(DTOH_MIN_CHUNK, STAGING_CHUNK);
        let mut done = 0usize;
        while done < total {
            let len = (total - done).min(chunk);
            let i = self.take()?;
            // Round robin hands out buffers in the order they were queued,
            // so a buffer still in flight for this copy is the oldest one.
            while inflight.iter().any(|(j, _)| *j == i) {
                self.drain_one(cursor, inflight)?;
            }
            let slot = self.slot(i)?;
            slot.wait()?;
            // SAFETY: the context is current; the device range was checked
            // by the session layer; the pinned buffer holds `len` bytes and
            // is not read before the event below completes.
            check(unsafe {
                sys::cuMemcpyDtoHAsync_v2(slot.host.cast(), src + done as u64, len, stream)
            })?;
            // SAFETY: live event and stream of this context.
            check(unsafe { sys::cuEventRecord(slot.event, stream) })?;
            slot.busy = true;
            inflight.push_back((i, len));
            done += len;
        }
        while !inflight.is_empty() {
            self.drain_one(cursor, inflight)?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk in flight and copies it to the guest.
    fn drain_one(
        &mut self,
        cursor: &mut Cursor<'_>,
        inflight: &mut VecDeque<(usize, usize)>,
    ) -> CuResult<()> {
        let Some((i, len)) = inflight.pop_front() else {
            return Ok(());
        };
        let slot = self.slot(i)?;
        slot.wait()?;
        cursor.write(slot.bytes(len))
    }

    /// Waits for every buffer's DMA and frees the pool. The context must be
    /// current and synchronized or about to be destroyed.
    pub fn release(&mut self) {
        for slot in self.slots.drain(..) {
            // SAFETY: the slot's event and pinned buffer are live objects
            // of the current context, released once here; waiting first
            // means no DMA still uses the buffer.
            unsafe {
                if slot.busy {
                    sys::cuEventSynchronize(slot.event);
                }
                sys::cuEventDestroy_v2(slot.event);
                sys::cuMemFreeHost(slot.host.cast());
            }
        }
        self.next = 0;
    }
}
