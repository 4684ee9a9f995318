//! Staged writes: small posted writes finish in the runtime after the
//! executor returns, from the executor's own copy of the bytes.

use std::sync::mpsc;
use std::time::Duration;

use super::super::staging::{STAGED_WRITES_MAX, STAGE_MAX};
use super::*;
use crate::segment::InSeg;

/// Posts a write of `data`, then scribbles over `data` as a guest may
/// once the call has returned.
fn post_write(ex: &mut OpenClExecutor, buffer: Handle, offset: u64, data: &mut [u8]) {
    let req = Request::ClEnqueueWriteBuffer(EnqueueWriteBuffer {
        common: common(None),
        buffer,
        offset,
        size: data.len() as u64,
    });
    let seg = [InSeg::bytes(data)];
    let bulk = Bulk {
        input: &seg,
        output: &[],
    };
    ex.execute_posted(req, &bulk).unwrap();
    data.fill(0xEE);
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn posted_small_writes_land_from_the_executor_copy() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    // More writes than may be staged at once: the rest run blocking.
    let n = STAGED_WRITES_MAX + 44;
    let piece = 256;
    create_buffer(&mut ex, 10, (n * piece) as u64).unwrap();
    let mut want = Vec::new();
    let mut staged_at_once = 0;
    for i in 0..n {
        let mut data = pattern(piece, i as u8);
        want.extend_from_slice(&data);
        post_write(&mut ex, 10, (i * piece) as u64, &mut data);
        staged_at_once = staged_at_once.max(ex.staging.in_flight());
    }
    assert!(staged_at_once >= 1, "small posted writes are staged");
    assert!(staged_at_once <= STAGED_WRITES_MAX);
    assert_eq!(read(&mut ex, 10, 0, n * piece), want);
}

#[test]
fn blocking_and_large_writes_are_not_staged() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    let big = STAGE_MAX + 1;
    create_buffer(&mut ex, 10, big as u64).unwrap();
    let mut data = pattern(big, 7);
    let want = data.clone();
    post_write(&mut ex, 10, 0, &mut data);
    assert_eq!(ex.staging.in_flight(), 0);
    write(&mut ex, 10, 0, pattern(64, 9)).unwrap();
    assert_eq!(ex.staging.in_flight(), 0);
    let mut expect = pattern(64, 9);
    expect.extend_from_slice(&want[64..]);
    assert_eq!(read(&mut ex, 10, 0, big), expect);
}

#[test]
fn dropping_a_session_with_staged_writes_in_flight_waits_for_them() {
    let Some(mut ex) = session(LIMITS) else {
        return;
    };
    setup(&mut ex, vec![]);
    create_buffer(&mut ex, 10, 1 << 20).unwrap();
    let mut staged_at_once = 0;
    for i in 0..64u64 {
        let mut data = pattern(4096, i as u8);
        post_write(&mut ex, 10, i * 4096, &mut data);
        staged_at_once = staged_at_once.max(ex.staging.in_flight());
    }
    assert!(staged_at_once >= 1);
    // Teardown waits for the runtime before freeing the copies (a freed
    // copy read by the runtime would be a use after free).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(ex);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("dropping the session returned");
}
