//! `Header::decode` on arbitrary bytes: never panics, and whatever it accepts
//! re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::{Header, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::decode(data) {
        assert_eq!(&h.encode()[..], &data[..HEADER_LEN]);
    }
});
