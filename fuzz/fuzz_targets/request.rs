//! `Request::decode` for every opcode: never panics; an accepted body
//! re-encodes to a body that decodes to the same request.
//!
//! The first byte picks the opcode: below 0x80 it indexes
//! `Opcode::ALL`, so that every message type of every API family is reached
//! from the first run; otherwise the next two bytes are a raw wire number
//! (unknown ones included).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::{Opcode, Request};

fn split(data: &[u8]) -> Option<(u16, &[u8])> {
    let (&sel, rest) = data.split_first()?;
    if sel < 0x80 {
        let op = Opcode::ALL[usize::from(sel) % Opcode::ALL.len()];
        Some((op as u16, rest))
    } else {
        let (num, body) = rest.split_first_chunk::<2>()?;
        Some((u16::from_le_bytes(*num), body))
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((opcode, body)) = split(data) else {
        return;
    };
    if let Ok(req) = Request::decode(opcode, body) {
        assert_eq!(req.opcode() as u16, opcode);
        let mut again = Vec::new();
        req.encode_body(&mut again);
        assert_eq!(Request::decode(opcode, &again).ok(), Some(req));
    }
});
