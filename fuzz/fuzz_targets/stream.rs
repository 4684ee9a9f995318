//! Stream records as the daemon and the shim see them: the record header,
//! then the request or response record body. Never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::stream::{
    decode_request_record, decode_response_record, Direction, RecordHeader, RECORD_HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    let body = data.get(RECORD_HEADER_LEN..).unwrap_or_default();
    for dir in [Direction::Request, Direction::Response] {
        if let Ok(h) = RecordHeader::decode(data, dir) {
            let body = body.get(..h.len as usize).unwrap_or(body);
            let _ = decode_request_record(&h, body);
            let _ = decode_response_record(&h, body);
        }
    }
});
