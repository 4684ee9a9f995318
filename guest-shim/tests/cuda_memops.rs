//! Stream memory operations through the shim (the unsuffixed names, as
//! libraries find them with `dlsym`), against the recording double: a
//! written value is read back, a batch's operations arrive in order, and
//! a misaligned address or an unsupported batch operation is refused
//! before anything is sent.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "cuda/mod.rs"]
mod cuda;

use std::ptr::null_mut;

use cuda::{ok, Cu, Daemon};
use protocol::cuda::MemOpKind;
use protocol::{Opcode, Request};

#[test]
fn stream_memory_operations_reach_the_stream() {
    let daemon = Daemon::start("memops");
    daemon.run_scenario("scenario_memops");
    let kinds: Vec<(MemOpKind, u64)> = daemon
        .recorder
        .requests(Opcode::CuStreamMemOp)
        .into_iter()
        .filter_map(|r| match r {
            Request::CuStreamMemOp(m) => Some((m.kind, m.value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (MemOpKind::Write32, 0xfeed),
            (MemOpKind::Wait32, 0xfeed),
            (MemOpKind::Write64, 0x1122_3344_5566_7788),
            (MemOpKind::Wait32, 0xfeed),
        ]
    );
}

/// One `CUstreamBatchMemOpParams` (48 bytes): operation, address, value,
/// flags.
fn param(op: u32, addr: u64, value: u64) -> [u64; 6] {
    [u64::from(op), addr, value, 0, 0, 0]
}

#[test]
#[ignore = "a scenario, run in a child process by the test above"]
fn scenario_memops() {
    let Some(cu) = Cu::load() else { return };
    // SAFETY: the driver API, used as documented.
    unsafe {
        ok((cu.cuInit)(0));
        let mut ctx = null_mut();
        ok((cu.cuCtxCreate_v2)(&mut ctx, 0, 0));
        let mut d = 0;
        ok((cu.cuMemAlloc_v2)(&mut d, 64));
        let s = null_mut();
        ok((cu.cuStreamWriteValue32)(s, d, 0xfeed, 0));
        ok((cu.cuStreamWaitValue32)(s, d, 0xfeed, 1));
        assert_eq!((cu.cuStreamWriteValue32)(s, d + 2, 1, 0), 1, "misaligned");
        assert_eq!((cu.cuStreamWriteValue32)(s, d + 64, 1, 0), 1, "outside");
        let mut ops = [param(5, d + 8, 0x1122_3344_5566_7788), param(1, d, 0xfeed)];
        ok((cu.cuStreamBatchMemOp)(s, 2, ops.as_mut_ptr().cast(), 0));
        let mut barrier = [param(6, 0, 0)];
        assert_eq!(
            (cu.cuStreamBatchMemOp)(s, 1, barrier.as_mut_ptr().cast(), 0),
            801,
            "memory barriers are not forwarded"
        );
        let mut back = [0u8; 16];
        ok((cu.cuMemcpyDtoH_v2)(back.as_mut_ptr().cast(), d, 16));
        assert_eq!(&back[..4], &0xfeedu32.to_le_bytes());
        assert_eq!(&back[8..], &0x1122_3344_5566_7788u64.to_le_bytes());
    }
    println!("SCENARIO OK");
}
