//! Direct-mode transport and client pipeline against a minimal in-process
//! vhost-user backend built on `vhost-user-backend` (the real daemon has
//! its own tests; this one proves the driver side of the rings).
//!
//! The test backend answers on both queues: `SessionOpen`, `SessionClose`,
//! `Ping`; `ClEnqueueWriteBuffer`/`ClEnqueueReadBuffer` store and return
//! bytes per buffer handle (in-bulk in, out-bulk out); `ClRelease` of an
//! unknown handle fails with `CL_INVALID_MEM_OBJECT`; `ClFinish` never
//! completes (to test a daemon that dies mid-wait).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod backend;
use backend::*;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use protocol::opencl::{Empty, QueueOp};
use protocol::session::{FEATURE_BATCH, FEATURE_OPENCL};
use protocol::{ProtocolError, Request, PROTOCOL_VERSION};
use vcompute_shim::client::{CallError, Client, Piece};
use vcompute_shim::transport::vhost_user::{Options, VhostUserTransport, PIPELINE_DEPTH};
use vcompute_shim::transport::{ChainError, LinkError, TransportError};

#[test]
fn session_open_negotiates_and_drop_closes() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    assert_eq!(client.session().version, PROTOCOL_VERSION);
    assert_eq!(client.session().features, FEATURE_OPENCL | FEATURE_BATCH);
    let first = server.chains();
    assert_eq!(
        first,
        vec![SeenChain {
            queue: 0,
            frames: 1,
            async_frames: 0
        }],
        "SessionOpen on queue 0"
    );
    drop(client);
    assert_eq!(
        server.state().closes.load(Ordering::Relaxed),
        1,
        "drop sends SessionClose"
    );
    assert_eq!(server.chains().last().map(|c| c.queue), Some(0));
}

#[test]
fn version_refusal_is_reported() {
    let backend = TestBackend::default();
    backend.0.refuse_version.store(true, Ordering::Relaxed);
    let server = Server::start_with(backend);
    let err = Client::connect(&server.endpoint()).expect_err("must refuse");
    assert!(
        matches!(err, CallError::Protocol(ProtocolError::VersionMismatch)),
        "got {err:?}"
    );
    // The message says what failed; the cause is its source.
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("protocol version mismatch"), "{err}");
}

#[test]
fn ping_round_trips_on_request_queue() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    for _ in 0..1000 {
        client.ping().expect("ping");
    }
    let chains = server.chains();
    assert_eq!(chains.iter().filter(|c| c.queue == 1).count(), 1000);
    assert!(chains
        .iter()
        .filter(|c| c.queue == 1)
        .all(|c| c.frames == 1));
}

#[test]
fn handles_are_nonzero_and_increasing() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let a = client.new_handle();
    let b = client.new_handle();
    assert!(a != 0 && b > a);
}

#[test]
fn posted_frames_travel_in_one_chain_with_one_kick() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    client.ping().expect("ping");
    let kicks = server.state().kicks[1].load(Ordering::Relaxed);
    let before = server.chains().len();
    const N: u64 = 100;
    for i in 0..N {
        let data = pattern(64, i as u8);
        client
            .post(write(1000 + i, 0, data.len()), &[&data])
            .expect("post");
    }
    assert_eq!(
        server.chains().len(),
        before,
        "posts must not be sent before a sync point"
    );
    client.ping().expect("ping after batch");
    let chains = server.chains();
    assert_eq!(chains.len(), before + 1, "one chain for the whole batch");
    assert_eq!(
        chains.last(),
        Some(&SeenChain {
            queue: 1,
            frames: N as usize + 1,
            async_frames: N as usize
        })
    );
    assert_eq!(
        server.state().kicks[1].load(Ordering::Relaxed) - kicks,
        1,
        "one kick"
    );
    let bufs = server.state().buffers.lock().unwrap();
    for i in 0..N {
        assert_eq!(bufs.get(&(1000 + i)), Some(&pattern(64, i as u8)));
    }
}

#[test]
fn batch_flushes_itself_at_threshold() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let before = server.chains().len();
    for _ in 0..vcompute_shim::client::BATCH_MAX_FRAMES {
        client.post(Request::Ping(Empty {}), &[]).expect("post");
    }
    // The full batch goes without the program waiting for it: the server
    // sees it soon, with no sync call.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.chains().len() == before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let chains = server.chains();
    assert_eq!(
        chains.len(),
        before + 1,
        "a full batch is sent without a sync call"
    );
    assert_eq!(
        chains.last().map(|c| c.async_frames),
        Some(vcompute_shim::client::BATCH_MAX_FRAMES)
    );
    client.flush().expect("nothing pending, no error");
    assert_eq!(
        server.chains().len(),
        before + 1,
        "empty flush sends nothing"
    );
}

#[test]
fn batch_splits_before_running_out_of_descriptors() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let before = server.chains().len();
    for i in 0..600u64 {
        let d = [i as u8, (i >> 8) as u8];
        client.post(write(i + 1, 0, 2), &[&d]).expect("post");
    }
    client.flush().expect("flush");
    let chains = server.chains();
    let sent = &chains[before..];
    assert!(
        sent.len() >= 3,
        "600 bulk segments need at least three chains of 256 descriptors"
    );
    assert_eq!(sent.iter().map(|c| c.async_frames).sum::<usize>(), 600);
    let bufs = server.state().buffers.lock().unwrap();
    assert!((0..600u64).all(|i| bufs.get(&(i + 1)) == Some(&vec![i as u8, (i >> 8) as u8])));
}

#[test]
fn async_failure_is_sticky_until_next_sync_call() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    client
        .post(release(424242), &[])
        .expect("post never fails at once");
    client.post(Request::Ping(Empty {}), &[]).expect("post");
    let err = client.ping().expect_err("sticky error first");
    assert!(
        matches!(err, CallError::Native(CL_INVALID_MEM_OBJECT)),
        "got {err:?}"
    );
    client
        .ping()
        .expect("sticky error is cleared once returned");

    client.post(release(7), &[]).expect("post");
    let err = client.flush().expect_err("flush returns the sticky error");
    assert!(
        matches!(err, CallError::Native(CL_INVALID_MEM_OBJECT)),
        "got {err:?}"
    );
    client.flush().expect("and clears it");
}

#[test]
fn sync_failure_maps_to_native_and_protocol_errors() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let err = client
        .call(release(99), &[], &mut [])
        .expect_err("unknown handle");
    assert!(
        matches!(err, CallError::Native(CL_INVALID_MEM_OBJECT)),
        "got {err:?}"
    );
    let err = client
        .call(Request::ClGetPlatformIds(Empty {}), &[], &mut [])
        .expect_err("unsupported by the test backend");
    assert!(
        matches!(err, CallError::Protocol(ProtocolError::UnsupportedOpcode)),
        "got {err:?}"
    );
}

#[test]
fn large_bulk_in_and_out_arrive_intact() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let len = 8 << 20;
    let data = pattern(len, 3);
    client
        .call(write(5, 0, len), &[&data], &mut [])
        .expect("write");
    let mut back = vec![0u8; len];
    client
        .call(read(5, 0, len), &[], &mut [&mut back])
        .expect("read");
    assert!(back == data, "8 MiB round trip differs");

    // Posted bulk is copied at post time: the caller may reuse its buffer.
    let mut scratch = pattern(len, 9);
    client.post(write(6, 0, len), &[&scratch]).expect("post");
    scratch.fill(0);
    let mut half = vec![0u8; len / 2];
    client
        .call(read(6, len as u64 / 2, len / 2), &[], &mut [&mut half])
        .expect("read");
    assert!(
        half[..] == pattern(len, 9)[len / 2..],
        "posted bulk differs"
    );
}

#[test]
fn oversized_bulk_is_too_large_and_chunking_works() {
    let server = Server::start();
    let path = server.path.clone();
    let opts = Options {
        arena_len: 32 << 20,
        ..Options::default()
    };
    let transport = VhostUserTransport::connect(&path, &opts).expect("transport");
    let client = Client::with_transport(Box::new(transport)).expect("session");
    let chunk = client.max_chunk();
    assert!(
        chunk > 0 && chunk < 16 << 20,
        "32 MiB arena leaves less than 16 MiB staging: {chunk}"
    );
    let data = pattern(16 << 20, 1);
    let err = client
        .call(write(8, 0, data.len()), &[&data], &mut [])
        .expect_err("too large");
    assert!(
        matches!(
            err,
            CallError::Transport(TransportError::Chain(ChainError::BulkTooLarge { .. }))
        ),
        "got {err:?}"
    );
    for (i, piece) in data.chunks(chunk).enumerate() {
        client
            .call(write(8, (i * chunk) as u64, piece.len()), &[piece], &mut [])
            .expect("chunk");
    }
    assert!(server.state().buffers.lock().unwrap().get(&8) == Some(&data));
}

#[test]
fn client_is_shared_across_threads() {
    let server = Server::start();
    let client = Arc::new(Client::connect(&server.endpoint()).expect("connect"));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let c = client.clone();
            thread::spawn(move || {
                for i in 0..200u64 {
                    let d = [t as u8, i as u8];
                    c.post(write(10_000 + t * 1000 + i, 0, 2), &[&d])
                        .expect("post");
                    if i % 10 == 0 {
                        c.ping().expect("ping");
                    }
                }
                c.flush().expect("flush");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(server.state().buffers.lock().unwrap().len(), 800);
}

#[test]
fn missing_socket_fails_fast() {
    let start = Instant::now();
    let err =
        Client::connect(&format!("vhost-user:{}", socket_path().display())).expect_err("no daemon");
    assert!(
        matches!(err, CallError::Transport(TransportError::Connect { .. })),
        "got {err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn bad_endpoint_is_rejected() {
    for ep in ["", "vhost-user:", "tcp:1.2.3.4:5", "/tmp/x.sock"] {
        let err = Client::connect(ep).expect_err("bad endpoint");
        assert!(
            matches!(
                err,
                CallError::Transport(TransportError::BadEndpoint { .. })
            ),
            "{ep}: {err:?}"
        );
    }
}

#[test]
fn daemon_dying_mid_wait_gives_disconnected() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    client.ping().expect("ping");
    let start = Instant::now();
    let err = thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(200));
            server.kill();
        });
        client
            .call(Request::ClFinish(QueueOp { queue: 1 }), &[], &mut [])
            .expect_err("daemon died")
    });
    let first = lost(&err).unwrap_or_else(|| panic!("got {err:?}"));
    assert!(matches!(*first, LinkError::Closed), "got {err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let err = client.ping().expect_err("still disconnected");
    assert!(
        lost(&err).is_some_and(|c| Arc::ptr_eq(&c, &first)),
        "the first cause stays: {err:?}"
    );
}

#[test]
fn stuck_daemon_times_out() {
    let server = Server::start();
    let opts = Options {
        timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let transport = VhostUserTransport::connect(&server.path, &opts).expect("transport");
    let client = Client::with_transport(Box::new(transport)).expect("session");
    let start = Instant::now();
    let err = client
        .call(Request::ClFinish(QueueOp { queue: 1 }), &[], &mut [])
        .expect_err("no answer");
    assert!(
        lost(&err).is_some_and(
            |c| matches!(*c, LinkError::NoAnswer { waited } if waited >= Duration::from_millis(300))
        ),
        "got {err:?}"
    );
    let t = start.elapsed();
    assert!(
        t >= Duration::from_millis(300) && t < Duration::from_secs(3),
        "took {t:?}"
    );
}

/// Why the connection was lost, if `err` says it was.
fn lost(err: &CallError) -> Option<Arc<LinkError>> {
    match err {
        CallError::Transport(TransportError::Disconnected(cause)) => Some(Arc::clone(cause)),
        _ => None,
    }
}

/// Splits `len` bytes at `offset` into pieces of `chunk` bytes: (offset, len).
fn spans(len: usize, chunk: usize) -> Vec<(usize, usize)> {
    (0..len)
        .step_by(chunk)
        .map(|at| (at, chunk.min(len - at)))
        .collect()
}

#[test]
fn pipelined_transfer_round_trips_bit_exact() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let chunk = client.pipeline_chunk().expect("direct mode pipelines");
    assert!(chunk >= 64 << 10, "pipeline chunk {chunk}");
    // Not a multiple of anything: odd total, odd piece size.
    let len = (40 << 20) + 12_345;
    let piece = chunk - 4097;
    let data = pattern(len, 11);
    let before = server.chains().len();
    let writes = spans(len, piece).into_iter().map(|(at, n)| Piece {
        req: write(21, at as u64, n),
        bulk_in: Some(&data[at..at + n]),
        bulk_out: None,
    });
    client.call_pipelined(writes).expect("pipelined write");
    let pieces = len.div_ceil(piece);
    let chains = server.chains();
    assert_eq!(chains.len() - before, pieces, "one chain per piece");
    assert!(chains[before..]
        .iter()
        .all(|c| c.queue == 1 && c.frames == 1 && c.async_frames == 0));
    assert!(
        server.state().buffers.lock().unwrap().get(&21) == Some(&data),
        "written bytes differ"
    );

    let mut back = vec![0u8; len];
    let reads = back.chunks_mut(piece).enumerate().map(|(i, out)| Piece {
        req: read(21, (i * piece) as u64, out.len()),
        bulk_in: None,
        bulk_out: Some(out),
    });
    client.call_pipelined(reads).expect("pipelined read");
    assert!(back == data, "read back bytes differ");
    client.ping().expect("a lone call after a pipeline");
}

#[test]
fn pipelined_pieces_execute_in_order_after_pending_posts() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    // A posted write must reach the daemon before the pipeline reads it.
    let posted = pattern(4096, 1);
    client.post(write(31, 0, 4096), &[&posted]).expect("post");
    // Every piece overwrites the same bytes: only the last may survive.
    let versions: Vec<Vec<u8>> = (0..3 * PIPELINE_DEPTH as u8)
        .map(|v| pattern(300_001, v))
        .collect();
    let mut first = vec![0u8; 4096];
    let mut pieces = vec![Piece {
        req: read(31, 0, 4096),
        bulk_in: None,
        bulk_out: Some(&mut first),
    }];
    pieces.extend(versions.iter().map(|v| Piece {
        req: write(32, 0, v.len()),
        bulk_in: Some(v),
        bulk_out: None,
    }));
    client.call_pipelined(pieces).expect("pipeline");
    assert!(first == posted, "posted write not flushed first");
    assert!(
        server.state().buffers.lock().unwrap().get(&32) == versions.last(),
        "pieces ran out of order"
    );
}

#[test]
fn pipelined_pieces_too_large_for_a_slot_go_as_plain_calls() {
    let server = Server::start();
    let opts = Options {
        arena_len: 32 << 20,
        ..Options::default()
    };
    let transport = VhostUserTransport::connect(&server.path, &opts).expect("transport");
    let client = Client::with_transport(Box::new(transport)).expect("session");
    let chunk = client.pipeline_chunk().expect("pipelines");
    let big = client.max_chunk().min(6 << 20);
    assert!(big > 2 * chunk, "slot {chunk}, lone chain {big}");
    let sizes = [chunk, big, chunk / 3, big, 1, chunk];
    let total: usize = sizes.iter().sum();
    let data = pattern(total, 4);
    let mut at = 0;
    let pieces: Vec<Piece> = sizes
        .iter()
        .map(|&n| {
            let p = Piece {
                req: write(41, at as u64, n),
                bulk_in: Some(&data[at..at + n]),
                bulk_out: None,
            };
            at += n;
            p
        })
        .collect();
    client.call_pipelined(pieces).expect("mixed pipeline");
    assert!(server.state().buffers.lock().unwrap().get(&41) == Some(&data));
}

#[test]
fn pipelined_error_in_a_middle_piece_is_reported() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let piece = 64 << 10;
    let n = 6 * PIPELINE_DEPTH;
    let bad = 2;
    let data = pattern(n * piece, 7);
    client
        .call(write(51, 0, data.len()), &[&data], &mut [])
        .expect("fill");
    let before = server.chains().len();
    let mut back = vec![0u8; data.len()];
    let reads = back.chunks_mut(piece).enumerate().map(|(i, out)| Piece {
        // Buffer 52 does not exist: that read fails natively.
        req: read(if i == bad { 52 } else { 51 }, (i * piece) as u64, piece),
        bulk_in: None,
        bulk_out: Some(out),
    });
    let err = client.call_pipelined(reads).expect_err("piece 2 fails");
    assert!(
        matches!(err, CallError::Native(CL_INVALID_MEM_OBJECT)),
        "got {err:?}"
    );
    let sent = server.chains().len() - before;
    assert!(
        sent > bad && sent <= bad + PIPELINE_DEPTH,
        "sending stops at the failure: {sent} of {n} pieces sent"
    );
    assert!(
        back[..bad * piece] == data[..bad * piece],
        "pieces before the failure were delivered"
    );
    client.ping().expect("the session survives a failed piece");

    // A sticky error from posted calls takes precedence, and the pipeline
    // still runs.
    client.post(release(424_242), &[]).expect("post");
    let again = pattern(piece, 8);
    let err = client
        .call_pipelined([Piece {
            req: write(53, 0, piece),
            bulk_in: Some(&again),
            bulk_out: None,
        }])
        .expect_err("sticky error");
    assert!(
        matches!(err, CallError::Native(CL_INVALID_MEM_OBJECT)),
        "got {err:?}"
    );
    assert!(server.state().buffers.lock().unwrap().get(&53) == Some(&again));
    client.ping().expect("sticky error cleared");
}

#[test]
fn daemon_dying_mid_pipeline_gives_disconnected() {
    let server = Server::start();
    let client = Client::connect(&server.endpoint()).expect("connect");
    let piece = 256 << 10;
    let data = pattern(8 * piece, 9);
    let pieces: Vec<Piece> = data
        .chunks(piece)
        .enumerate()
        .map(|(i, d)| match i {
            // The test backend never answers ClFinish: the pipeline stalls
            // with chains in flight until the daemon dies.
            3 => Piece {
                req: Request::ClFinish(QueueOp { queue: 1 }),
                bulk_in: None,
                bulk_out: None,
            },
            _ => Piece {
                req: write(61, (i * piece) as u64, d.len()),
                bulk_in: Some(d),
                bulk_out: None,
            },
        })
        .collect();
    let start = Instant::now();
    let err = thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(200));
            server.kill();
        });
        client.call_pipelined(pieces).expect_err("daemon died")
    });
    let first = lost(&err).unwrap_or_else(|| panic!("got {err:?}"));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let err = client.ping().expect_err("still disconnected");
    assert!(
        lost(&err).is_some_and(|c| Arc::ptr_eq(&c, &first)),
        "the first cause stays: {err:?}"
    );
    let err = client
        .call_pipelined([Piece {
            req: write(61, 0, piece),
            bulk_in: Some(&data[..piece]),
            bulk_out: None,
        }])
        .expect_err("no pipeline on a dead connection");
    assert!(
        lost(&err).is_some_and(|c| Arc::ptr_eq(&c, &first)),
        "got {err:?}"
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Round-trip latency and write bandwidth; numbers are printed. Run with
/// `cargo test --release -p vcompute-shim --test transport -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn bench_round_trip_and_bandwidth() {
    let backend = TestBackend::default();
    backend.0.poll.store(true, Ordering::Relaxed);
    backend.0.sink.store(true, Ordering::Relaxed);
    let server = Server::start_with(backend);
    let client = Client::connect(&server.endpoint()).expect("connect");
    for _ in 0..2000 {
        client.ping().expect("warm-up ping");
    }
    let mut lat: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            client.ping().expect("ping");
            t.elapsed()
        })
        .collect();
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!("ping round trip (polling backend): p50 {p50:?} p99 {p99:?}");
    assert!(p50 < Duration::from_millis(1), "p50 {p50:?}");

    let len = 64 << 20;
    let data = pattern(len, 5);
    let mut dst = vec![0u8; len];
    let reps = 10;
    for _ in 0..2 {
        client
            .call(write(1, 0, len), &[&data], &mut [])
            .expect("warm-up write");
        dst.copy_from_slice(&data);
    }
    let t = Instant::now();
    for _ in 0..reps {
        client
            .call(write(1, 0, len), &[&data], &mut [])
            .expect("write");
    }
    let shim = (reps * len) as f64 / t.elapsed().as_secs_f64() / 1e9;
    let t = Instant::now();
    for i in 0..reps {
        dst.copy_from_slice(&data);
        std::hint::black_box(&mut dst[i]);
    }
    let native = (reps * len) as f64 / t.elapsed().as_secs_f64() / 1e9;
    println!(
        "64 MiB writes: {shim:.2} GB/s through the shim, {native:.2} GB/s native memcpy, ratio {:.2}",
        shim / native
    );
    assert!(shim > 0.0 && native > 0.0);
}
