//! A whole request area as the daemon sees it: the frame walk plus request
//! and response decoding of every frame. Never panics, never runs past the
//! frame limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::limits::MAX_FRAMES_PER_CHAIN;
use vcompute_protocol::{decode_request, decode_response, FrameIter, PROTOCOL_VERSION};

fuzz_target!(|data: &[u8]| {
    let mut n = 0;
    for frame in FrameIter::new(data) {
        n += 1;
        assert!(n <= MAX_FRAMES_PER_CHAIN + 1);
        if let Ok(f) = frame {
            let _ = decode_request(&f, PROTOCOL_VERSION);
            let _ = decode_response(&f);
        }
    }
});
