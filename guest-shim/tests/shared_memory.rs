//! Host allocations from the arena's host heap travel without a copy: a
//! posted call names them in place, so the daemon reads (or writes) them
//! when the batch goes, not when the call was made. Ordinary memory is
//! copied at once.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod backend;
use backend::*;

use protocol::opencl::EnqueueReadBuffer;
use protocol::Request;
use vcompute_shim::client::{Client, PostIn};

/// A host block as the FFI layer sees it.
fn block(client: &Client, len: usize) -> &'static mut [u8] {
    let p = client.host_alloc(len).expect("shared memory available");
    // SAFETY: a fresh block of `len` bytes of the arena, which stays mapped
    // while the client lives (longer than the test uses the slice).
    unsafe { std::slice::from_raw_parts_mut(p, len) }
}

fn read_back(client: &Client, buffer: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    client
        .call(read(buffer, 0, len), &[], &mut [&mut out])
        .expect("read");
    out
}

#[test]
fn host_blocks_are_shared_and_ordinary_memory_is_not() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let b = block(&client, 10_000);
    let addr = b.as_ptr() as usize;
    assert_eq!(addr % 4096, 0, "page-aligned");
    assert!(client.is_shared(addr, b.len()));
    assert_eq!(client.host_block(addr + 5), Some(addr..addr + 12_288));
    let v = [0u8; 64];
    assert!(!client.is_shared(v.as_ptr() as usize, v.len()));
    assert_eq!(client.host_free(addr), Some(12_288));
    assert_eq!(client.host_free(addr), None, "double free");
    assert_eq!(client.host_block(addr), None);
}

#[test]
fn posted_in_place_segments_are_read_when_the_batch_goes() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let b = block(&client, 4096);
    b.fill(0xaa);
    let (shared, copied): (&'static [u8], Vec<u8>) = (&b[..], vec![0xaa; 4096]);
    client
        .post_bulk(write(1, 0, 4096), &[PostIn::InPlace(shared)], Vec::new())
        .expect("post in place");
    client
        .post_bulk(write(2, 0, 4096), &[PostIn::Copy(&copied)], Vec::new())
        .expect("post copied");
    // SAFETY: the test owns the block; nothing reads it concurrently (the
    // batch has not been sent: it goes with the next synchronizing call).
    unsafe { std::ptr::write_bytes(b.as_ptr().cast_mut(), 0x55, 4096) };
    client.flush().expect("flush");
    assert!(
        read_back(&client, 1, 4096).iter().all(|&x| x == 0x55),
        "the shared block was read in place, when the batch went"
    );
    assert!(
        read_back(&client, 2, 4096).iter().all(|&x| x == 0xaa),
        "ordinary memory was captured when the call was made"
    );
}

#[test]
fn posted_writes_into_host_blocks_land_by_the_next_sync() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let data = pattern(3 << 20, 7);
    client
        .call(write(9, 0, data.len()), &[&data], &mut [])
        .expect("write");
    let out = block(&client, data.len());
    let req = Request::ClEnqueueReadBuffer(EnqueueReadBuffer {
        common: Default::default(),
        buffer: 9,
        offset: 0,
        size: data.len() as u64,
    });
    let ptr = out.as_ptr();
    client.post_bulk(req, &[], vec![out]).expect("post");
    client.ping().expect("sync");
    // SAFETY: the block is live and the daemon finished writing it (the
    // synchronizing call returned).
    let got = unsafe { std::slice::from_raw_parts(ptr, data.len()) };
    assert!(got == &data[..], "filled in place");
    // A plain synchronous call with a shared segment also goes in place,
    // and needs no staging even when larger than a batch.
    client
        .call(write(10, 0, data.len()), &[got], &mut [])
        .expect("write from the block");
    assert_eq!(read_back(&client, 10, data.len()), data);
}

#[test]
fn a_posted_writable_segment_must_be_shared() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let leaked: &'static mut [u8] = Box::leak(vec![0u8; 16].into_boxed_slice());
    assert!(client.post_bulk(read(1, 0, 16), &[], vec![leaked]).is_err());
}
