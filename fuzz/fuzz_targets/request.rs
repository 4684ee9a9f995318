//! `Request::decode` for every opcode: never panics; an accepted body
//! re-encodes to a body that decodes to the same request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::Request;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let opcode = u16::from_le_bytes([data[0], data[1]]);
    if let Ok(req) = Request::decode(opcode, &data[2..]) {
        let mut body = Vec::new();
        req.encode_body(&mut body);
        assert_eq!(Request::decode(opcode, &body).ok(), Some(req));
    }
});
