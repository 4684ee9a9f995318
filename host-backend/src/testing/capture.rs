//! Stream capture on the emulated device: while a stream captures, the
//! memsets, device-to-device copies, launches, event records and value
//! writes posted
//! on it are kept as the operations of a graph instead of running; an
//! executable graph runs them, in order, each time it is launched (see
//! `EmulatedGpu::replay`).

use std::collections::HashMap;

use protocol::cuda::result::{STREAM_CAPTURE_UNMATCHED, STREAM_CAPTURE_UNSUPPORTED};
use protocol::cuda::MemsetWidth;

use crate::executor::cuda::backend::CuResult;

/// One captured operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Memset {
        dst: u64,
        width: MemsetWidth,
        value: u32,
        count: u64,
    },
    Copy {
        dst: u64,
        src: u64,
        size: u64,
    },
    Launch,
    EventRecord {
        event: u64,
    },
    Write {
        addr: u64,
        bytes: Vec<u8>,
    },
}

/// A graph the emulated device captured.
#[derive(Debug)]
pub struct EmuGraph {
    pub(super) ops: Vec<Op>,
}

/// An executable graph of the emulated device.
#[derive(Debug)]
pub struct EmuGraphExec {
    pub(super) ops: Vec<Op>,
}

impl EmuGraphExec {
    /// Kernel launches among its operations.
    pub fn launches(&self) -> usize {
        self.ops.iter().filter(|o| **o == Op::Launch).count()
    }
}

/// The streams that capture, by stream number, with what they captured.
#[derive(Debug, Default)]
pub(super) struct Captures(HashMap<u64, Vec<Op>>);

impl Captures {
    /// Keeps `op` if `stream` captures; returns whether it did (then the
    /// operation must not run now).
    pub fn keep(&mut self, stream: Option<u64>, op: impl FnOnce() -> Vec<Op>) -> bool {
        match stream.and_then(|s| self.0.get_mut(&s)) {
            Some(ops) => {
                ops.extend(op());
                true
            }
            None => false,
        }
    }

    pub fn begin(&mut self, stream: u64) -> CuResult<()> {
        if self.0.insert(stream, Vec::new()).is_some() {
            return Err(STREAM_CAPTURE_UNSUPPORTED);
        }
        Ok(())
    }

    pub fn end(&mut self, stream: u64) -> CuResult<EmuGraph> {
        let ops = self.0.remove(&stream).ok_or(STREAM_CAPTURE_UNMATCHED)?;
        Ok(EmuGraph { ops })
    }
}
