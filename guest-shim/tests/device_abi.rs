//! The guest driver's C header (`guest-driver/vcompute_uapi.h`) against
//! the protocol crate's device spec and the shim's mirror of the ioctl
//! ABI (`transport::device`): parses the header and checks every constant
//! and every struct layout, so that the C and Rust sides cannot drift. A
//! constant or field added on one side only fails here.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use protocol::device::{
    DeviceConfig, DeviceOp, DeviceStatus, API_CUDA, API_OPENCL, CONFIG_LEN, DEVICE_HEADER_LEN,
    DEVICE_ID, DEVICE_MAGIC, F_CONFIG, MAX_TABLE_ENTRIES, STATUS_LEN,
};
use protocol::limits::{MAX_DESCRIPTORS_PER_CHAIN, MAX_REQUEST_AREA_LEN};
use protocol::{CONTROL_QUEUE, PROTOCOL_VERSION, REQUEST_QUEUE};
use vcompute_shim::transport::device::{
    ioc, Buf, Info, Submit, IOC_INFO, IOC_MAGIC, IOC_SUBMIT, MAX_BUFS, MAX_BULK_BYTES,
    MAX_RESPONSE_LEN, SUBMIT_POLL,
};

const HEADER: &str = include_str!("../../guest-driver/vcompute_uapi.h");

/// The header without comments.
fn code() -> String {
    let mut out = String::new();
    let mut rest = HEADER;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("*/").expect("unterminated comment");
        rest = &rest[i + end + 2..];
    }
    out.push_str(rest);
    out
}

/// A number as the header writes one: `56`, `0x5644`, `'V'`, `1u`, `(20u << 20)`.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        let (a, b) = inner.split_once("<<")?;
        return Some(number(a)? << number(b)?);
    }
    if let Some(c) = s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        let b = c.as_bytes();
        return (b.len() == 1).then(|| u64::from(b[0]));
    }
    let s = s.trim_end_matches('u');
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Every `#define NAME VALUE`, the value as text.
fn defines() -> BTreeMap<String, String> {
    code()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("#define "))
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(char::is_whitespace)?;
            Some((name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// `struct NAME`'s fields with their offsets (natural alignment), and its size.
fn layout(name: &str) -> (Vec<(String, usize)>, usize) {
    let code = code();
    let open = format!("struct {name} {{");
    let start = code.find(&open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let body = &code[start..start + code[start..].find("};").expect("unterminated struct")];
    let (mut fields, mut off, mut align) = (Vec::new(), 0usize, 1usize);
    for decl in body.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let (ty, field) = decl.split_once(char::is_whitespace).expect("field");
        let size = match ty {
            "__u32" | "__le32" => 4,
            "__u64" | "__le64" => 8,
            other => panic!("{name}.{field}: unexpected type {other}"),
        };
        off = off.next_multiple_of(size);
        fields.push((field.trim().to_owned(), off));
        off += size;
        align = align.max(size);
    }
    (fields, off.next_multiple_of(align))
}

fn owned(fields: &[(&str, usize)]) -> Vec<(String, usize)> {
    fields.iter().map(|&(n, o)| (n.to_owned(), o)).collect()
}

#[test]
fn every_constant_matches_the_protocol_and_the_mirror() {
    let want: BTreeMap<&str, u64> = [
        ("VCOMPUTE_DEVICE_ID", u64::from(DEVICE_ID)),
        ("VCOMPUTE_F_CONFIG", u64::from(F_CONFIG)),
        ("VCOMPUTE_CONFIG_LEN", CONFIG_LEN as u64),
        ("VCOMPUTE_API_OPENCL", u64::from(API_OPENCL)),
        ("VCOMPUTE_API_CUDA", u64::from(API_CUDA)),
        ("VCOMPUTE_PROTOCOL_VERSION", u64::from(PROTOCOL_VERSION)),
        ("VCOMPUTE_DEVICE_MAGIC", u64::from(DEVICE_MAGIC)),
        ("VCOMPUTE_DEVICE_HEADER_LEN", DEVICE_HEADER_LEN as u64),
        ("VCOMPUTE_STATUS_LEN", STATUS_LEN as u64),
        ("VCOMPUTE_OP_OPEN", DeviceOp::Open as u64),
        ("VCOMPUTE_OP_CLOSE", DeviceOp::Close as u64),
        ("VCOMPUTE_OP_SUBMIT", DeviceOp::Submit as u64),
        ("VCOMPUTE_CONTROL_QUEUE", CONTROL_QUEUE as u64),
        ("VCOMPUTE_REQUEST_QUEUE", REQUEST_QUEUE as u64),
        ("VCOMPUTE_STATUS_OK", DeviceStatus::Ok as u64),
        ("VCOMPUTE_STATUS_BAD_CHAIN", DeviceStatus::BadChain as u64),
        (
            "VCOMPUTE_STATUS_UNKNOWN_SESSION",
            DeviceStatus::UnknownSession as u64,
        ),
        (
            "VCOMPUTE_STATUS_TOO_MANY_SESSIONS",
            DeviceStatus::TooManySessions as u64,
        ),
        (
            "VCOMPUTE_STATUS_WRONG_QUEUE",
            DeviceStatus::WrongQueue as u64,
        ),
        (
            "VCOMPUTE_STATUS_UNAVAILABLE",
            DeviceStatus::Unavailable as u64,
        ),
        ("VCOMPUTE_MAX_REQUEST_AREA_LEN", MAX_REQUEST_AREA_LEN as u64),
        (
            "VCOMPUTE_MAX_DESCRIPTORS_PER_CHAIN",
            MAX_DESCRIPTORS_PER_CHAIN as u64,
        ),
        ("VCOMPUTE_MAX_TABLE_ENTRIES", MAX_TABLE_ENTRIES as u64),
        ("VCOMPUTE_MAX_BUFS", u64::from(MAX_BUFS)),
        ("VCOMPUTE_MAX_BULK_BYTES", u64::from(MAX_BULK_BYTES)),
        ("VCOMPUTE_MAX_RESPONSE_LEN", u64::from(MAX_RESPONSE_LEN)),
        ("VCOMPUTE_SUBMIT_POLL", u64::from(SUBMIT_POLL)),
        ("VCOMPUTE_IOC_MAGIC", u64::from(IOC_MAGIC)),
    ]
    .into_iter()
    .collect();
    // The magic spells "VCDV" as the protocol says.
    assert_eq!(DEVICE_MAGIC.to_le_bytes(), *b"VCDV");
    let mut seen = 0;
    for (name, value) in defines() {
        if name == "VCOMPUTE_UAPI_H"
            || name.starts_with("VCOMPUTE_IOC_") && name != "VCOMPUTE_IOC_MAGIC"
        {
            continue;
        }
        let got = number(&value).unwrap_or_else(|| panic!("{name}: cannot read {value:?}"));
        let want = want.get(name.as_str()).unwrap_or_else(|| {
            panic!("{name} is in the header but not mirrored in Rust (add it to this test)")
        });
        assert_eq!(got, *want, "{name}");
        seen += 1;
    }
    assert_eq!(
        seen,
        want.len(),
        "a mirrored constant is missing from the header"
    );
}

#[test]
fn driver_bounds_stay_within_the_device_s() {
    // What the driver lets one submit carry, the device must accept.
    assert!(u64::from(MAX_BULK_BYTES) <= protocol::device::MAX_COPIED_BULK_LEN);
    assert!(MAX_BUFS as usize <= MAX_TABLE_ENTRIES);
    assert!(MAX_BUFS as usize + 4 <= MAX_DESCRIPTORS_PER_CHAIN);
}

#[test]
fn ioctl_numbers_match() {
    let d = defines();
    for (name, nr, st, have) in [
        ("VCOMPUTE_IOC_SUBMIT", 1, "vcompute_submit", IOC_SUBMIT),
        ("VCOMPUTE_IOC_INFO", 2, "vcompute_info", IOC_INFO),
    ] {
        let v = &d[name];
        let (dir, args) = v.split_once('(').expect("an _IO* macro");
        let want_args = format!("VCOMPUTE_IOC_MAGIC, {nr}, struct {st})");
        assert_eq!(args, want_args, "{name}");
        let dir = match dir {
            "_IOWR" => 3,
            "_IOR" => 2,
            "_IOW" => 1,
            other => panic!("{name}: {other}"),
        };
        assert_eq!(ioc(dir, IOC_MAGIC, nr, layout(st).1), have, "{name}");
    }
}

#[test]
fn structs_match_the_mirror() {
    assert_eq!(
        layout("vcompute_buf"),
        (
            owned(&[
                ("addr", offset_of!(Buf, addr)),
                ("len", offset_of!(Buf, len))
            ]),
            size_of::<Buf>()
        )
    );
    assert_eq!(
        layout("vcompute_submit"),
        (
            owned(&[
                ("queue", offset_of!(Submit, queue)),
                ("flags", offset_of!(Submit, flags)),
                ("req_addr", offset_of!(Submit, req_addr)),
                ("req_len", offset_of!(Submit, req_len)),
                ("resp_addr", offset_of!(Submit, resp_addr)),
                ("resp_len", offset_of!(Submit, resp_len)),
                ("in_bufs", offset_of!(Submit, in_bufs)),
                ("out_bufs", offset_of!(Submit, out_bufs)),
                ("n_in", offset_of!(Submit, n_in)),
                ("n_out", offset_of!(Submit, n_out)),
                ("timeout_ms", offset_of!(Submit, timeout_ms)),
                ("status", offset_of!(Submit, status)),
                ("response_len", offset_of!(Submit, response_len)),
                ("reserved", offset_of!(Submit, reserved)),
            ]),
            size_of::<Submit>()
        )
    );
    assert_eq!(
        layout("vcompute_info"),
        (
            owned(&[
                ("num_request_queues", offset_of!(Info, num_request_queues)),
                ("max_sessions", offset_of!(Info, max_sessions)),
                ("api_families", offset_of!(Info, api_families)),
                ("protocol_version", offset_of!(Info, protocol_version)),
                ("session", offset_of!(Info, session)),
                ("from_config", offset_of!(Info, from_config)),
            ]),
            size_of::<Info>()
        )
    );
}

#[test]
fn config_struct_matches_the_config_space() {
    let (fields, size) = layout("vcompute_config");
    assert_eq!(size, CONFIG_LEN);
    let c = DeviceConfig {
        num_request_queues: 11,
        max_sessions: 22,
        api_families: 33,
        protocol_version: 44,
    };
    let bytes = c.encode();
    let at = |name: &str| {
        let off = fields.iter().find(|(n, _)| n == name).expect(name).1;
        u32::from_le_bytes(bytes[off..off + 4].try_into().expect("4 bytes"))
    };
    assert_eq!(fields.len(), 4);
    assert_eq!(at("num_request_queues"), c.num_request_queues);
    assert_eq!(at("max_sessions"), c.max_sessions);
    assert_eq!(at("api_families"), c.api_families);
    assert_eq!(at("protocol_version"), c.protocol_version);
}
