//! `Response::decode` for every opcode: never panics; accepted bodies
//! round-trip. The opcode is picked as in the `request` target.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::{Opcode, Response};

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
    if let Ok(resp) = Response::decode(opcode, body) {
        assert_eq!(resp.opcode() as u16, opcode);
        let mut again = Vec::new();
        resp.encode_body(&mut again);
        assert_eq!(Response::decode(opcode, &again).ok(), Some(resp));
    }
});
