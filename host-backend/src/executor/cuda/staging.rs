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
//! The driver calls sit behind the small [`Dma`] trait (`driver::DriverDma`
//! is the real one), so that the pipeline is tested without a GPU against a
//! driver whose copies land late. Every call expects the device's context
//! to be current.

use std::collections::VecDeque;

use cudarc::driver::sys;

use super::backend::CuResult;
use crate::limits::{STAGING_BUFFERS, STAGING_CHUNK};
use crate::segment::{total_len, Cursor, InSeg, OutSeg};
use protocol::cuda::result::INVALID_VALUE;

/// Smallest chunk a device-to-host copy is split into: below this the
/// per-chunk driver overhead (an async copy and an event, a few µs) costs
/// more than the overlap gains.
const DTOH_MIN_CHUNK: usize = 256 << 10;

/// The driver calls the pool makes, so that the pipeline can be tested
/// without a GPU. `driver::DriverDma` is the real one; every call expects the
/// device's context to be current.
pub(super) trait Dma {
    /// Allocates a pinned host buffer of [`STAGING_CHUNK`] bytes.
    fn alloc_host(&mut self) -> CuResult<*mut u8>;
    /// Frees a buffer from [`Dma::alloc_host`] that no DMA uses.
    fn free_host(&mut self, host: *mut u8);
    /// Creates an event.
    fn event_create(&mut self) -> CuResult<sys::CUevent>;
    /// Destroys an event nothing waits for.
    fn event_destroy(&mut self, event: sys::CUevent);
    /// Records `event` on `stream`, after everything queued on it so far.
    fn event_record(&mut self, event: sys::CUevent, stream: sys::CUstream) -> CuResult<()>;
    /// Waits until the work before `event`'s last record has completed.
    fn event_wait(&mut self, event: sys::CUevent) -> CuResult<()>;
    /// Queues a copy of `len` bytes from a pinned buffer to the device.
    fn htod_async(
        &mut self,
        dst: u64,
        src: *const u8,
        len: usize,
        stream: sys::CUstream,
    ) -> CuResult<()>;
    /// Queues a copy of `len` bytes from the device into a pinned buffer.
    fn dtoh_async(
        &mut self,
        dst: *mut u8,
        src: u64,
        len: usize,
        stream: sys::CUstream,
    ) -> CuResult<()>;
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
    fn new(dma: &mut impl Dma) -> CuResult<Slot> {
        let host = dma.alloc_host()?;
        match dma.event_create() {
            Ok(event) => Ok(Slot {
                host,
                event,
                busy: false,
            }),
            Err(e) => {
                dma.free_host(host);
                Err(e)
            }
        }
    }

    /// Waits for the buffer's last DMA.
    fn wait(&mut self, dma: &mut impl Dma) -> CuResult<()> {
        if self.busy {
            dma.event_wait(self.event)?;
            self.busy = false;
        }
        Ok(())
    }

    /// The first `len` bytes of the buffer.
    fn bytes(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(STAGING_CHUNK);
        // SAFETY: `host` is a live allocation of STAGING_CHUNK bytes owned
        // by this slot, and no DMA is using it (callers `wait` first), so
        // no other reference to these bytes exists for the borrow.
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
    fn take(&mut self, dma: &mut impl Dma) -> CuResult<usize> {
        // `next` walks 0..STAGING_BUFFERS and the pool grows one buffer at
        // a time, so `next` is at most one past the last buffer.
        if self.next == self.slots.len() {
            self.slots.push(Slot::new(dma)?);
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

    /// Buffers allocated so far.
    #[cfg(test)]
    fn buffers(&self) -> usize {
        self.slots.len()
    }

    /// Copies the concatenated `src` segments to `dst`, ordered on `stream`.
    pub(super) fn htod(
        &mut self,
        dma: &mut impl Dma,
        stream: sys::CUstream,
        dst: u64,
        src: &[InSeg<'_>],
    ) -> CuResult<()> {
        let total = usize::try_from(total_len(src)).map_err(|_| INVALID_VALUE)?;
        let mut cursor = Cursor::new(src);
        let mut done = 0usize;
        while done < total {
            let len = (total - done).min(STAGING_CHUNK);
            let i = self.take(dma)?;
            let slot = self.slot(i)?;
            slot.wait(dma)?;
            if !cursor.read(slot.bytes(len)) {
                return Err(INVALID_VALUE);
            }
            dma.htod_async(dst + done as u64, slot.host, len, stream)?;
            dma.event_record(slot.event, stream)?;
            slot.busy = true;
            done += len;
        }
        Ok(())
    }

    /// Copies from `src` into the concatenated `dst` segments, ordered on
    /// `stream`, and waits until every byte is in guest memory.
    pub(super) fn dtoh(
        &mut self,
        dma: &mut impl Dma,
        stream: sys::CUstream,
        src: u64,
        dst: &[OutSeg<'_>],
    ) -> CuResult<()> {
        let total = usize::try_from(total_len(dst)).map_err(|_| INVALID_VALUE)?;
        let mut cursor = Cursor::new(dst);
        let mut inflight: VecDeque<(usize, usize)> = VecDeque::new();
        let result = self.dtoh_chunks(dma, stream, src, total, &mut cursor, &mut inflight);
        if result.is_err() {
            // Leave no DMA behind that could land in a reused buffer.
            for (i, _) in inflight {
                if let Ok(slot) = self.slot(i) {
                    let _ = slot.wait(dma);
                }
            }
        }
        result
    }

    fn dtoh_chunks(
        &mut self,
        dma: &mut impl Dma,
        stream: sys::CUstream,
        src: u64,
        total: usize,
        cursor: &mut Cursor<'_, OutSeg<'_>>,
        inflight: &mut VecDeque<(usize, usize)>,
    ) -> CuResult<()> {
        // Smaller chunks than the buffers let the copy of one chunk into
        // guest memory overlap the DMA of the next within a single request.
        let chunk = (total / STAGING_BUFFERS).clamp(DTOH_MIN_CHUNK, STAGING_CHUNK);
        let mut done = 0usize;
        while done < total {
            let len = (total - done).min(chunk);
            let i = self.take(dma)?;
            // Round robin hands out buffers in the order they were queued,
            // so a buffer still in flight for this copy is the oldest one.
            while inflight.iter().any(|(j, _)| *j == i) {
                self.drain_one(dma, cursor, inflight)?;
            }
            let slot = self.slot(i)?;
            slot.wait(dma)?;
            dma.dtoh_async(slot.host, src + done as u64, len, stream)?;
            dma.event_record(slot.event, stream)?;
            slot.busy = true;
            inflight.push_back((i, len));
            done += len;
        }
        while !inflight.is_empty() {
            self.drain_one(dma, cursor, inflight)?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk in flight and copies it to the guest.
    fn drain_one(
        &mut self,
        dma: &mut impl Dma,
        cursor: &mut Cursor<'_, OutSeg<'_>>,
        inflight: &mut VecDeque<(usize, usize)>,
    ) -> CuResult<()> {
        let Some((i, len)) = inflight.pop_front() else {
            return Ok(());
        };
        let slot = self.slot(i)?;
        slot.wait(dma)?;
        if cursor.write(slot.bytes(len)) {
            Ok(())
        } else {
            Err(INVALID_VALUE)
        }
    }

    /// Waits for every buffer's DMA and frees the pool. The context must be
    /// current.
    pub(super) fn release(&mut self, dma: &mut impl Dma) {
        for mut slot in self.slots.drain(..) {
            let _ = slot.wait(dma);
            dma.event_destroy(slot.event);
            dma.free_host(slot.host);
        }
        self.next = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ins(v: &[Vec<u8>]) -> Vec<InSeg<'_>> {
        v.iter().map(|b| InSeg::bytes(b)).collect()
    }

    fn outs(v: &mut [Vec<u8>]) -> Vec<OutSeg<'_>> {
        v.iter_mut().map(|b| OutSeg::bytes(b)).collect()
    }

    /// One queued operation of [`LateDma`]'s single stream.
    enum Op {
        HtoD {
            dst: u64,
            src: *const u8,
            len: usize,
        },
        DtoH {
            dst: *mut u8,
            src: u64,
            len: usize,
        },
        Record(usize),
    }

    /// A driver whose DMA happens late: queued copies run only when an
    /// event recorded after them is waited for (or at `flush`). A pool that
    /// refilled a buffer before its copy ran, or read one before its copy
    /// landed, would move the wrong bytes.
    #[derive(Default)]
    struct LateDma {
        device: Vec<u8>,
        hosts: Vec<Vec<u8>>,
        freed: usize,
        events: usize,
        destroyed: usize,
        queue: VecDeque<Op>,
        fail_dtoh_at: Option<usize>,
        dtoh_calls: usize,
    }

    const BASE: u64 = 0x10_0000;

    impl LateDma {
        fn with_device(len: usize) -> Self {
            LateDma {
                device: vec![0; len],
                ..Default::default()
            }
        }

        fn host(&mut self, p: *const u8) -> &mut Vec<u8> {
            self.hosts.iter_mut().find(|h| h.as_ptr() == p).unwrap()
        }

        fn run(&mut self, op: Op) {
            match op {
                Op::HtoD { dst, src, len } => {
                    let bytes = self.host(src)[..len].to_vec();
                    let at = (dst - BASE) as usize;
                    self.device[at..at + len].copy_from_slice(&bytes);
                }
                Op::DtoH { dst, src, len } => {
                    let at = (src - BASE) as usize;
                    let bytes = self.device[at..at + len].to_vec();
                    self.host(dst)[..len].copy_from_slice(&bytes);
                }
                Op::Record(_) => {}
            }
        }

        fn flush(&mut self) {
            while let Some(op) = self.queue.pop_front() {
                self.run(op);
            }
        }

        fn pending_copies(&self) -> usize {
            self.queue
                .iter()
                .filter(|o| !matches!(o, Op::Record(_)))
                .count()
        }
    }

    fn event_id(e: sys::CUevent) -> usize {
        e as usize
    }

    impl Dma for LateDma {
        fn alloc_host(&mut self) -> CuResult<*mut u8> {
            let mut h = vec![0u8; STAGING_CHUNK];
            let p = h.as_mut_ptr();
            self.hosts.push(h);
            Ok(p)
        }
        fn free_host(&mut self, host: *mut u8) {
            self.hosts.retain(|h| h.as_ptr() != host.cast_const());
            self.freed += 1;
        }
        fn event_create(&mut self) -> CuResult<sys::CUevent> {
            self.events += 1;
            Ok(std::ptr::without_provenance_mut(self.events))
        }
        fn event_destroy(&mut self, _event: sys::CUevent) {
            self.destroyed += 1;
        }
        fn event_record(&mut self, event: sys::CUevent, _stream: sys::CUstream) -> CuResult<()> {
            self.queue.push_back(Op::Record(event_id(event)));
            Ok(())
        }
        fn event_wait(&mut self, event: sys::CUevent) -> CuResult<()> {
            let id = event_id(event);
            if let Some(last) = self
                .queue
                .iter()
                .rposition(|o| matches!(o, Op::Record(e) if *e == id))
            {
                for op in self.queue.drain(..=last).collect::<Vec<_>>() {
                    self.run(op);
                }
            }
            Ok(())
        }
        fn htod_async(
            &mut self,
            dst: u64,
            src: *const u8,
            len: usize,
            _: sys::CUstream,
        ) -> CuResult<()> {
            self.queue.push_back(Op::HtoD { dst, src, len });
            Ok(())
        }
        fn dtoh_async(
            &mut self,
            dst: *mut u8,
            src: u64,
            len: usize,
            _: sys::CUstream,
        ) -> CuResult<()> {
            self.dtoh_calls += 1;
            if self.fail_dtoh_at == Some(self.dtoh_calls) {
                return Err(sys::CUresult::CUDA_ERROR_ILLEGAL_ADDRESS as i32);
            }
            self.queue.push_back(Op::DtoH { dst, src, len });
            Ok(())
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(13) ^ seed ^ (i >> 12) as u8)
            .collect()
    }

    fn stream() -> sys::CUstream {
        std::ptr::null_mut()
    }

    #[test]
    fn host_to_device_moves_every_byte_though_buffers_are_reused() {
        let n = 9 * STAGING_CHUNK + 5;
        let mut dma = LateDma::with_device(n + 64);
        let mut pool = Staging::default();
        let segs: Vec<Vec<u8>> = pattern(n, 1)
            .chunks(n / 3 + 1)
            .map(<[u8]>::to_vec)
            .collect();
        let bufs = ins(&segs);
        pool.htod(&mut dma, stream(), BASE + 7, &bufs).unwrap();
        // The call returned with DMA still queued: it does not wait for the
        // last chunks, only for buffers it reuses.
        assert!(dma.pending_copies() > 0 && dma.pending_copies() <= STAGING_BUFFERS);
        assert_eq!(pool.buffers(), STAGING_BUFFERS);
        dma.flush();
        drop(bufs);
        assert!(
            dma.device[7..7 + n] == segs.concat()[..],
            "device bytes differ"
        );
    }

    #[test]
    fn device_to_host_lands_every_byte_before_returning() {
        let n = 13 * STAGING_CHUNK + 3;
        let mut dma = LateDma::with_device(n);
        dma.device = pattern(n, 9);
        let mut pool = Staging::default();
        let mut segs = vec![vec![0u8; n / 2], vec![0u8; n - n / 2]];
        let bufs = outs(&mut segs);
        pool.dtoh(&mut dma, stream(), BASE, &bufs).unwrap();
        assert_eq!(dma.pending_copies(), 0);
        drop(bufs);
        assert!(segs.concat() == dma.device, "guest bytes differ");
    }

    #[test]
    fn a_read_after_a_write_sees_the_write_in_stream_order() {
        let n = 3 * STAGING_CHUNK;
        let mut dma = LateDma::with_device(n);
        let mut pool = Staging::default();
        let src = vec![pattern(n, 5)];
        let mut dst = vec![vec![0u8; n]];
        let (s, d) = (ins(&src), outs(&mut dst));
        pool.htod(&mut dma, stream(), BASE, &s).unwrap();
        pool.dtoh(&mut dma, stream(), BASE, &d).unwrap();
        drop((s, d));
        assert!(dst[0] == src[0]);
    }

    #[test]
    fn a_failed_read_leaves_no_copy_in_flight_and_the_pool_works_on() {
        let n = 6 * STAGING_CHUNK;
        let mut dma = LateDma::with_device(n);
        dma.device = pattern(n, 2);
        dma.fail_dtoh_at = Some(3);
        let mut pool = Staging::default();
        let mut dst = vec![vec![0u8; n]];
        let d = outs(&mut dst);
        assert!(pool.dtoh(&mut dma, stream(), BASE, &d).is_err());
        assert_eq!(dma.pending_copies(), 0);
        pool.dtoh(&mut dma, stream(), BASE, &d).unwrap();
        drop(d);
        assert!(dst[0] == dma.device);
        pool.release(&mut dma);
        assert_eq!(
            (dma.freed, dma.destroyed),
            (STAGING_BUFFERS, STAGING_BUFFERS)
        );
        assert!(dma.hosts.is_empty());
    }
}
