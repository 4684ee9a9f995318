//! `Response::decode` for every opcode: never panics; accepted bodies round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::Response;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let opcode = u16::from_le_bytes([data[0], data[1]]);
    if let Ok(resp) = Response::decode(opcode, &data[2..]) {
        let mut body = Vec::new();
        resp.encode_body(&mut body);
        assert_eq!(Response::decode(opcode, &body).ok(), Some(resp));
    }
});
