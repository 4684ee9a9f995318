//! Bulk segments: the guest memory (or record bytes) a request's data is
//! read from and written to, lent to an executor for one request.
//!
//! A segment is a `vm-memory` [`VolatileSlice`] with the lifetime of the
//! borrow it came from: guest memory held by the chain being processed, or
//! a stream record's buffer. The type system keeps a segment from
//! outliving its request: nothing that outlives the borrow can hold one.
//!
//! The guest may change its memory at any time, also while the daemon
//! reads it (it only harms its own results). Segments are therefore only
//! ever copied (volatile accesses; never turned into Rust references), and
//! a value the daemon checks is copied out once and the checked copy is the
//! one used: a module image is gathered into daemon memory before it is
//! parsed and loaded ([`Cursor::gather`]); request bodies are copied out of
//! the chain before they decode. A runtime that reads or writes a segment
//! directly (a blocking OpenCL transfer) treats its bytes as data only.
//!
//! [`InSeg`] can only be read, [`OutSeg`] only written; [`Cursor`] walks a
//! request's segments as one concatenated range.

use vm_memory::volatile_memory::{PtrGuard, PtrGuardMut};
use vm_memory::VolatileSlice;

/// A readable segment, lent for one request.
#[derive(Clone, Copy, Debug)]
pub struct InSeg<'m>(VolatileSlice<'m>);

/// A writable segment, lent for one request.
#[derive(Clone, Copy, Debug)]
pub struct OutSeg<'m>(VolatileSlice<'m>);

impl<'m> InSeg<'m> {
    /// A segment of guest memory.
    pub fn guest(slice: VolatileSlice<'m>) -> Self {
        InSeg(slice)
    }

    /// A segment of daemon memory (a stream record's bytes).
    pub fn bytes(bytes: &'m [u8]) -> Self {
        // SAFETY: `bytes` is valid for reads of its length for 'm, which
        // the slice inherits. An `InSeg` offers reads only (no method of it
        // writes, and the slice is never handed out), so the memory behind a
        // shared reference is never written through it.
        InSeg(unsafe { VolatileSlice::new(bytes.as_ptr().cast_mut(), bytes.len()) })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Copies bytes from `offset` into `dst`; false (nothing copied) if the
    /// range does not lie inside the segment.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> bool {
        match self.0.subslice(offset, dst.len()) {
            Ok(s) => s.copy_to(dst) == dst.len(),
            Err(_) => false,
        }
    }

    /// Copies the whole segment into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len()];
        self.0.copy_to(&mut v);
        v
    }

    /// The segment's address for a runtime that copies from it before the
    /// request returns; the guard must outlive that use.
    pub fn ptr_guard(&self) -> PtrGuard {
        self.0.ptr_guard()
    }
}

impl<'m> OutSeg<'m> {
    /// A segment of guest memory.
    pub fn guest(slice: VolatileSlice<'m>) -> Self {
        OutSeg(slice)
    }

    /// A segment of daemon memory (a stream reply's buffer).
    pub fn bytes(bytes: &'m mut [u8]) -> Self {
        OutSeg(VolatileSlice::from(bytes))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Copies `src` into the segment at `offset`; false (nothing copied) if
    /// it does not fit.
    pub fn write_at(&self, offset: usize, src: &[u8]) -> bool {
        match self.0.subslice(offset, src.len()) {
            Ok(s) => {
                s.copy_from(src);
                true
            }
            Err(_) => false,
        }
    }

    /// The segment's address for a runtime that writes into it before the
    /// request returns; the guard must outlive that use.
    pub fn ptr_guard_mut(&self) -> PtrGuardMut {
        self.0.ptr_guard_mut()
    }
}

/// What [`Cursor`] needs of a segment.
pub trait Segment {
    /// Length in bytes.
    fn seg_len(&self) -> usize;
}

impl Segment for InSeg<'_> {
    fn seg_len(&self) -> usize {
        self.len()
    }
}

impl Segment for OutSeg<'_> {
    fn seg_len(&self) -> usize {
        self.len()
    }
}

/// Total length of some segments.
pub fn total_len<S: Segment>(segs: &[S]) -> u64 {
    segs.iter().map(|s| s.seg_len() as u64).sum()
}

/// A position in a request's segments taken as one concatenated range.
#[derive(Debug)]
pub struct Cursor<'s, S> {
    segs: &'s [S],
    seg: usize,
    off: usize,
}

impl<'s, S: Segment> Cursor<'s, S> {
    /// A cursor at the start of `segs`.
    pub fn new(segs: &'s [S]) -> Self {
        let mut c = Cursor {
            segs,
            seg: 0,
            off: 0,
        };
        c.advance(0);
        c
    }

    /// Moves `n` bytes on, skipping empty segments.
    fn advance(&mut self, n: usize) {
        self.off += n;
        while let Some(s) = self.segs.get(self.seg) {
            if self.off < s.seg_len() {
                break;
            }
            self.off -= s.seg_len();
            self.seg += 1;
        }
    }

    /// Runs `f(segment, offset, n)` over the pieces of the next `len`
    /// bytes; false if the segments end first (or `f` fails).
    fn walk(&mut self, len: usize, mut f: impl FnMut(&S, usize, usize, usize) -> bool) -> bool {
        let mut done = 0;
        while done < len {
            let Some(seg) = self.segs.get(self.seg) else {
                return false;
            };
            let n = (seg.seg_len() - self.off).min(len - done);
            if !f(seg, self.off, done, n) {
                return false;
            }
            self.advance(n);
            done += n;
        }
        true
    }
}

impl Cursor<'_, InSeg<'_>> {
    /// Fills `out` from the segments, in order; false if they end first.
    pub fn read(&mut self, out: &mut [u8]) -> bool {
        self.walk(out.len(), |seg, off, at, n| {
            out.get_mut(at..at + n)
                .is_some_and(|dst| seg.read_at(off, dst))
        })
    }

    /// Copies every remaining byte into daemon memory, reserving `extra`
    /// more bytes of capacity (for a terminator the caller adds).
    pub fn gather(mut self, extra: usize) -> Vec<u8> {
        let rest = self
            .segs
            .iter()
            .skip(self.seg)
            .map(InSeg::len)
            .sum::<usize>()
            - self.off;
        let mut v = Vec::with_capacity(rest.saturating_add(extra));
        v.resize(rest, 0);
        // The lengths were just summed, so the read cannot run out.
        let _ = self.read(&mut v);
        v
    }
}

impl Cursor<'_, OutSeg<'_>> {
    /// Writes `src` into the segments, in order; false if they end first.
    pub fn write(&mut self, src: &[u8]) -> bool {
        self.walk(src.len(), |seg, off, at, n| {
            src.get(at..at + n).is_some_and(|s| seg.write_at(off, s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_across_segments_and_skips_empty_ones() {
        let parts: [&[u8]; 4] = [b"abc", b"", b"defgh", b"ij"];
        let segs: Vec<InSeg<'_>> = parts.iter().map(|p| InSeg::bytes(p)).collect();
        let mut c = Cursor::new(&segs);
        let mut a = [0u8; 4];
        assert!(c.read(&mut a));
        assert_eq!(&a, b"abcd");
        assert_eq!(c.gather(1), b"efghij");
        let mut c = Cursor::new(&segs);
        let mut too_long = [0u8; 11];
        assert!(!c.read(&mut too_long));
        assert_eq!(total_len(&segs), 10);
    }

    #[test]
    fn a_cursor_writes_across_segments_and_stops_at_the_end() {
        let mut a = [0u8; 2];
        let mut b = [0u8; 0];
        let mut c = [0u8; 3];
        {
            let segs = [
                OutSeg::bytes(&mut a),
                OutSeg::bytes(&mut b),
                OutSeg::bytes(&mut c),
            ];
            let mut cur = Cursor::new(&segs);
            assert!(cur.write(b"xyz"));
            assert!(cur.write(b"w"));
            assert!(!cur.write(b"too much"));
        }
        assert_eq!(&a, b"xy");
        assert_eq!(&c[..2], b"zw");
    }

    #[test]
    fn ranges_outside_a_segment_copy_nothing() {
        let bytes = *b"0123";
        let s = InSeg::bytes(&bytes);
        let mut d = [9u8; 2];
        assert!(!s.read_at(3, &mut d));
        assert_eq!(d, [9, 9]);
        assert!(s.read_at(2, &mut d));
        assert_eq!(&d, b"23");
        let mut out = [0u8; 4];
        let o = OutSeg::bytes(&mut out);
        assert!(!o.write_at(usize::MAX, b"x"));
        assert!(!o.write_at(3, b"xy"));
        assert!(o.write_at(2, b"xy"));
        assert_eq!(&out, b"\0\0xy");
    }
}
