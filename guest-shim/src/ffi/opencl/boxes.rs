//! Rectangular host transfers (buffer rectangles and images) cut into
//! pieces that each fit one call, and run as one command.
//!
//! A piece is a sub-box of the region: whole slices, whole rows of one
//! slice, or a part of one row. Its host bytes are the span of that
//! sub-box with the program's pitches, from its first byte; consecutive
//! pieces' spans follow one another and never overlap. A read whose rows
//! leave gaps in host memory lands in a copy first and only the rows are
//! copied out, so the bytes between them stay the program's.

use std::ops::Range;

use opencl_sys::{cl_int, CL_INVALID_VALUE};
use protocol::opencl::layout::ByteBox;
use protocol::opencl::{EnqueueCommon, EnqueueMarker, Handle};
use protocol::Request;

use super::enqueue::{plan, split};
use super::event::settle;
use super::objects::{Data, Record};
use super::{call, cl_error, client};
use crate::client::Piece;

/// One piece of a rectangular transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BoxPiece {
    /// Where the piece starts in the region: byte, row, slice.
    pub at: [u64; 3],
    /// The piece's box.
    pub size: ByteBox,
    /// Its host bytes, relative to the region's first byte.
    pub host: Range<usize>,
}

/// Cuts `b`, laid out in host memory with pitches `row` and `slice`
/// (explicit, as `ByteBox::pitches` gives them), into pieces whose host
/// bytes span at most `limit` (at least one element of `unit` bytes per
/// piece). `None` when a span does not fit in memory.
pub(crate) fn cut(
    b: ByteBox,
    row: u64,
    slice: u64,
    unit: u64,
    limit: u64,
) -> Option<Vec<BoxPiece>> {
    let unit = unit.max(1);
    let limit = limit.max(unit);
    let span = |s: ByteBox| s.span(row, slice);
    let piece = |at: [u64; 3], size: ByteBox| -> Option<BoxPiece> {
        let start = at[2]
            .checked_mul(slice)?
            .checked_add(at[1].checked_mul(row)?)?
            .checked_add(at[0])?;
        let end = start.checked_add(span(size)?)?;
        Some(BoxPiece {
            at,
            size,
            host: usize::try_from(start).ok()?..usize::try_from(end).ok()?,
        })
    };
    let mut out = Vec::new();
    let one_slice = ByteBox::new(b.row_bytes, b.rows, 1)?;
    if span(one_slice)? <= limit {
        // Whole slices, as many per piece as fit.
        let extra = (limit - span(one_slice)?) / slice.max(1);
        let per = extra.saturating_add(1).min(b.slices);
        let mut z = 0;
        while z < b.slices {
            let n = per.min(b.slices - z);
            out.push(piece([0, 0, z], ByteBox::new(b.row_bytes, b.rows, n)?)?);
            z += n;
        }
        return Some(out);
    }
    let per_rows = if b.row_bytes <= limit {
        ((limit - b.row_bytes) / row.max(1))
            .saturating_add(1)
            .min(b.rows)
    } else {
        0
    };
    for z in 0..b.slices {
        if per_rows > 0 {
            // Rows of one slice.
            let mut y = 0;
            while y < b.rows {
                let n = per_rows.min(b.rows - y);
                out.push(piece([0, y, z], ByteBox::new(b.row_bytes, n, 1)?)?);
                y += n;
            }
        } else {
            // Parts of one row.
            let per_bytes = limit / unit * unit;
            for y in 0..b.rows {
                let mut x = 0;
                while x < b.row_bytes {
                    let n = per_bytes.min(b.row_bytes - x);
                    out.push(piece([x, y, z], ByteBox::new(n, 1, 1)?)?);
                    x += n;
                }
            }
        }
    }
    Some(out)
}

/// The host side of a transfer: memory to read into, or to write from.
#[derive(Debug)]
pub(crate) enum Host<'a> {
    /// A read lands here.
    Read(&'a mut [u8]),
    /// A write comes from here.
    Write(&'a [u8]),
}

impl Host<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Host::Read(b) => b,
            Host::Write(b) => b,
        }
    }
}

/// A queue's handle, and whether it runs commands out of order.
pub(crate) fn queue_of(q: &Record) -> (Handle, bool) {
    let ooo = matches!(
        &q.data,
        Data::Queue {
            out_of_order: true,
            ..
        }
    );
    (q.handle, ooo)
}

/// Copies the rows of `b` (pitches `row`, `slice`) from `from` to `to`,
/// both laid out the same way from the box's first byte.
fn copy_rows(b: ByteBox, row: u64, slice: u64, from: &[u8], to: &mut [u8]) -> Result<(), cl_int> {
    let n = usize::try_from(b.row_bytes).map_err(|_| CL_INVALID_VALUE)?;
    for z in 0..b.slices {
        for y in 0..b.rows {
            let at = usize::try_from(z * slice + y * row).map_err(|_| CL_INVALID_VALUE)?;
            let (src, dst) = (from.get(at..at + n), to.get_mut(at..at + n));
            match (src, dst) {
                (Some(s), Some(d)) => d.copy_from_slice(s),
                _ => return Err(CL_INVALID_VALUE),
            }
        }
    }
    Ok(())
}

/// Runs a rectangular transfer of box `b` (host pitches `row`, `slice`)
/// as one command: one synchronous call per piece, built by `make`, the
/// first waiting on `wait` and the last (or a trailing barrier, on an
/// out-of-order queue) signalling `event`. `unit` is the finest cut of a
/// row. `host` spans exactly the box's bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn transfer(
    (queue, out_of_order): (Handle, bool),
    b: ByteBox,
    (row, slice): (u64, u64),
    unit: u64,
    host: Host<'_>,
    wait: &[Handle],
    event: Option<Handle>,
    make: impl Fn(&BoxPiece, EnqueueCommon) -> Request,
) -> Result<(), cl_int> {
    let (limit, pipelined) = split(host.bytes());
    let pieces = cut(b, row, slice, unit, limit as u64).ok_or(CL_INVALID_VALUE)?;
    let wait = settle(queue, wait.to_vec())?;
    let (commons, tail) = plan(queue, out_of_order, pieces.len(), &wait, event);
    let reqs: Vec<Request> = pieces
        .iter()
        .zip(commons)
        .map(|(p, c)| make(p, c))
        .collect();
    let gaps = row > b.row_bytes || (b.slices > 1 && slice > row * b.rows);
    match host {
        Host::Write(data) => {
            let ins: Vec<&[u8]> = pieces
                .iter()
                .map(|p| data.get(p.host.clone()).ok_or(CL_INVALID_VALUE))
                .collect::<Result<_, _>>()?;
            send(reqs, ins.into_iter().map(Some).collect(), vec![], pipelined)?;
        }
        Host::Read(out) if gaps => {
            // Land in a copy, then take only the rows.
            let mut shadow = vec![0u8; out.len()];
            read_into(&pieces, reqs, &mut shadow, pipelined)?;
            copy_rows(b, row, slice, &shadow, out)?;
        }
        Host::Read(out) => read_into(&pieces, reqs, out, pipelined)?,
    }
    match tail {
        Some(common) => call(
            Request::ClEnqueueMarker(EnqueueMarker {
                common,
                barrier: true,
            }),
            &[],
            &mut [],
        )
        .map(|_| ()),
        None => Ok(()),
    }
}

/// Reads each piece into its own part of `out`.
fn read_into(
    pieces: &[BoxPiece],
    reqs: Vec<Request>,
    out: &mut [u8],
    pipelined: bool,
) -> Result<(), cl_int> {
    let mut outs = Vec::with_capacity(pieces.len());
    let mut rest = out;
    let mut consumed = 0;
    for p in pieces {
        let skip = p.host.start.checked_sub(consumed).ok_or(CL_INVALID_VALUE)?;
        let len = p.host.len();
        if rest.len() < skip + len {
            return Err(CL_INVALID_VALUE);
        }
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(skip);
        let (mine, after) = tail.split_at_mut(len);
        outs.push(Some(mine));
        rest = after;
        consumed = p.host.end;
    }
    send(reqs, vec![], outs, pipelined)
}

/// Sends the calls, pipelined or one by one, with at most one readable
/// and one writable segment each.
fn send(
    reqs: Vec<Request>,
    ins: Vec<Option<&[u8]>>,
    outs: Vec<Option<&mut [u8]>>,
    pipelined: bool,
) -> Result<(), cl_int> {
    let n = reqs.len();
    let mut ins = ins.into_iter().chain(std::iter::repeat_with(|| None));
    let mut outs = outs.into_iter().chain(std::iter::repeat_with(|| None));
    let pieces = reqs.into_iter().map(|req| Piece {
        req,
        bulk_in: ins.next().flatten(),
        bulk_out: outs.next().flatten(),
    });
    if pipelined && n > 1 {
        return client()?.call_pipelined(pieces).map_err(|e| cl_error(&e));
    }
    for p in pieces {
        let bulk_in: Vec<&[u8]> = p.bulk_in.into_iter().collect();
        let mut bulk_out: Vec<&mut [u8]> = p.bulk_out.into_iter().collect();
        call(p.req, &bulk_in, &mut bulk_out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(r: u64, n: u64, s: u64) -> ByteBox {
        ByteBox::new(r, n, s).unwrap()
    }

    /// Every byte of every row of `b` is in exactly one piece, and the
    /// pieces' host ranges follow one another.
    fn covers(b: ByteBox, row: u64, slice: u64, pieces: &[BoxPiece], limit: u64) {
        let mut seen = std::collections::HashSet::new();
        let mut last_end = 0;
        for p in pieces {
            assert!(p.host.start >= last_end, "{pieces:?}");
            assert!(p.host.len() as u64 <= limit, "{p:?} over {limit}");
            last_end = p.host.end;
            for z in 0..p.size.slices {
                for y in 0..p.size.rows {
                    for x in 0..p.size.row_bytes {
                        let at = (p.at[2] + z) * slice + (p.at[1] + y) * row + p.at[0] + x;
                        assert!(seen.insert(at), "byte {at} twice");
                        assert!(p.host.contains(&(at as usize)));
                    }
                }
            }
        }
        assert_eq!(seen.len() as u64, b.row_bytes * b.rows * b.slices);
    }

    #[test]
    fn pieces_cover_the_box_once() {
        for (b, row, slice, limit) in [
            (bx(16, 4, 3), 16, 64, 1 << 20),
            (bx(16, 4, 3), 20, 100, 150),
            (bx(16, 4, 3), 20, 100, 40),
            (bx(16, 4, 3), 20, 100, 8),
            (bx(64, 1, 1), 64, 64, 12),
        ] {
            let pieces = cut(b, row, slice, 4, limit).unwrap();
            covers(b, row, slice, &pieces, limit);
        }
        // One piece when it all fits.
        assert_eq!(cut(bx(16, 4, 3), 16, 64, 4, 1 << 20).unwrap().len(), 1);
        // Cuts within a row fall on elements.
        let p = cut(bx(64, 1, 1), 64, 64, 4, 10).unwrap();
        assert!(p
            .iter()
            .all(|p| p.size.row_bytes % 4 == 0 && p.at[0] % 4 == 0));
    }

    #[test]
    fn rows_are_copied_without_the_gaps() {
        let b = bx(2, 2, 1);
        let from = [1u8, 2, 9, 3, 4];
        let mut to = [7u8; 5];
        copy_rows(b, 3, 6, &from, &mut to).unwrap();
        assert_eq!(to, [1, 2, 7, 3, 4]);
    }
}
