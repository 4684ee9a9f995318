//! Fat binaries as a guest hands them over (the shim checks them before
//! keeping or sending them, the daemon again before the driver sees
//! them): header, entries, LZ4 and Zstd payloads. Never panics; an entry
//! that decodes holds exactly the size it declared, within the bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::fatbin::{entries, image_len, validate, Compression, MAX_ENTRY_LEN};

fuzz_target!(|data: &[u8]| {
    let _ = image_len(data);
    let ok = validate(data).is_ok();
    for e in entries(data).unwrap_or_default() {
        match e.contents() {
            Ok(c) if e.compression != Compression::None => {
                assert_eq!(c.len() as u64, e.declared_len);
                assert!(c.len() as u64 <= MAX_ENTRY_LEN);
            }
            Ok(_) => {}
            Err(_) => assert!(!ok, "validate accepted an entry that does not decode"),
        }
    }
});
