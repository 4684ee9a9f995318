//! A guest's vsock packets as the daemon's vsock device hands them to its
//! connection muxer: any sequence of headers (well-formed or refused by
//! the packet parser), payloads and receive buffers. Never panics, never
//! sends the guest more than its credit, never owes more resets than the
//! bound, never holds more connections than the limit; sessions behind
//! the connections run the stream code over executors that refuse
//! everything.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vcompute_protocol::session::FEATURE_OPENCL;
use vcompute_protocol::{Request, Response};
use vhost_device_compute::executor::{Bulk, ExecError, Executor, ExecutorError, ExecutorFactory};
use vhost_device_compute::limits::session_limits;
use vhost_device_compute::limits::SessionLimits;
use vhost_device_compute::vsock::{op, Hdr, Muxer, HOST_CID, MAX_OWED_RESETS, TYPE_STREAM};
use vmm_sys_util::eventfd::EventFd;

const GUEST: u64 = 3;
const PORT: u32 = 7000;
const MAX_CONNS: usize = 2;

struct Refuse;
impl Executor for Refuse {
    fn execute(&mut self, _: Request, _: &Bulk<'_>) -> Result<Response, ExecError> {
        Err(ExecError::Native(-30))
    }
}
struct Factory;
impl ExecutorFactory for Factory {
    fn name(&self) -> &'static str {
        "refuse"
    }
    fn features(&self) -> u64 {
        FEATURE_OPENCL
    }
    fn open(&self, _: SessionLimits) -> Result<Box<dyn Executor>, ExecutorError> {
        Ok(Box::new(Refuse))
    }
}

/// Reads little-endian integers off the input, zero when it runs out.
struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let n = N.min(self.0.len());
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        b
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(wake) = EventFd::new(libc::EFD_NONBLOCK) else {
        return;
    };
    let mut m = Muxer::new(
        GUEST,
        PORT,
        MAX_CONNS,
        Arc::new(Factory),
        session_limits(16, 1 << 20),
        Arc::new(wake),
    );
    let mut input = Input(data);
    let mut steps = 0;
    while !input.0.is_empty() && steps < 256 {
        steps += 1;
        let action = input.u8();
        // Mostly packets addressed as a guest would, some not.
        let mut h = Hdr {
            src_cid: GUEST,
            dst_cid: HOST_CID,
            src_port: u32::from(input.u8() % 4),
            dst_port: PORT,
            len: 0,
            type_: TYPE_STREAM,
            op: u16::from(input.u8() % 9),
            flags: 0,
            buf_alloc: input.u32(),
            fwd_cnt: input.u32(),
        };
        if action & 0x10 != 0 {
            h.src_cid = u64::from(input.u8());
            h.dst_port = input.u32();
            h.type_ = input.u16();
            h.op = input.u16();
        }
        match action % 4 {
            0 | 1 => {
                let n = usize::from(input.u16()) % 4096;
                let n = n.min(input.0.len());
                let (payload, rest) = input.0.split_at(n);
                input.0 = rest;
                h.len = if action & 0x20 != 0 {
                    input.u32()
                } else {
                    n as u32
                };
                if h.op == op::RW || action & 0x40 != 0 {
                    m.on_packet(&h, payload);
                } else {
                    m.on_packet(&h, &[]);
                }
            }
            2 => m.on_bad_packet(if action & 0x40 != 0 { Some(&h) } else { None }),
            _ => {
                let room = usize::from(input.u16());
                let mut resets = 0;
                while let Some((out, payload)) = m.next_rx(room) {
                    assert!(payload.len() <= room, "more than the buffer");
                    assert_eq!(out.len as usize, payload.len());
                    if out.op == op::RST {
                        resets += 1;
                        // Owed ones, plus one per connection closing now.
                        assert!(resets <= MAX_OWED_RESETS + MAX_CONNS + 1);
                    }
                }
            }
        }
        assert!(m.live() <= MAX_CONNS);
    }
    m.shutdown();
});
