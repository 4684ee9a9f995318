//! The answer to the runtime's integrity check (slot 1 of the
//! `INTEGRITY_CHECK` export table).
//!
//! `libcudart` asks the driver for a 16-byte value and compares it with
//! its own computation: an HMAC over MD2 (RFC 1319; HMAC as RFC 2104 with
//! MD2's 16-byte block) under a fixed key, of a record of facts about the
//! calling process and the devices the driver reports. A wrong answer
//! makes every runtime call fail with error 103. Every fact is the guest
//! process's own (its pid and thread, the shim's table addresses) or one
//! the shim itself reports (driver version, device UUIDs and PCI ids), so
//! the shim computes the answer; the daemon is never asked.

use hmac::{Hmac, Mac};
use md2::Md2;

/// The key (the runtime's, derived by it from constants).
const KEY: [u8; 16] = [
    0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7, 0x52, 0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f,
];

/// The answers for requested versions ending in 0 and 1, which the
/// runtime checks against fixed values rather than a hash.
const FIXED: [[u8; 16]; 2] = [
    [
        0x5c, 0x67, 0xcb, 0x03, 0x1c, 0x18, 0x41, 0x33, 0xe8, 0xd1, 0x4c, 0x1f, 0xaa, 0x83, 0xd3,
        0x8e,
    ],
    [
        0x5c, 0x67, 0xcb, 0x03, 0x1c, 0x18, 0x41, 0x18, 0xe8, 0xd1, 0x4c, 0x1f, 0xaa, 0x83, 0xd3,
        0x8e,
    ],
];

/// What identifies a device in the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceId {
    /// `cuDeviceGetUuid_v2`
    pub uuid: [u8; 16],
    /// `CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID`
    pub pci_domain: i32,
    /// `CU_DEVICE_ATTRIBUTE_PCI_BUS_ID`
    pub pci_bus: i32,
    /// `CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID`
    pub pci_device: i32,
}

/// The facts the answer covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// What `cuDriverGetVersion` reports.
    pub driver_version: u32,
    /// The version the runtime asked with (its own, e.g. 12092).
    pub version: u32,
    /// `getpid()`
    pub pid: u32,
    /// `pthread_self()`, truncated to 32 bits.
    pub thread: u32,
    /// Address of the `CUDART_INTERFACE` table.
    pub cudart_table: u64,
    /// Address of the `INTEGRITY_CHECK` table.
    pub integrity_table: u64,
    /// Address of the integrity function itself.
    pub function: u64,
    /// The unix time the runtime passed.
    pub unix_seconds: u64,
    /// Every device, in ordinal order.
    pub devices: Vec<DeviceId>,
}

impl Record {
    /// The record as the runtime lays it out (a C struct of four `u32`,
    /// three pointers and a `u64`, then one `{uuid, int, int, int}` per
    /// device), little-endian.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(48 + 28 * self.devices.len());
        for v in [self.driver_version, self.version, self.pid, self.thread] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            self.cudart_table,
            self.integrity_table,
            self.function,
            self.unix_seconds,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for d in &self.devices {
            b.extend_from_slice(&d.uuid);
            for v in [d.pci_domain, d.pci_bus, d.pci_device] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        b
    }
}

/// The 16 bytes the runtime expects for `record`.
pub(crate) fn answer(record: &Record) -> [u8; 16] {
    match record.version % 10 {
        0 => return FIXED[0],
        1 => return FIXED[1],
        _ => {}
    }
    hmac_md2(&KEY, &record.bytes())
}

/// HMAC-MD2 of `msg` under `key`.
fn hmac_md2(key: &[u8], msg: &[u8]) -> [u8; 16] {
    let Ok(mut mac) = <Hmac<Md2> as Mac>::new_from_slice(key) else {
        // HMAC takes keys of any length; this cannot fail.
        return [0; 16];
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MD2 written from RFC 1319 section 3, independently of the crate.
    fn md2_reference(msg: &[u8]) -> [u8; 16] {
        // RFC 1319's S table: a permutation of 0..=255 built from the
        // digits of pi. The RFC lists it; here it is checked to be one.
        const S: [u8; 256] = [
            41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19, 98, 167, 5, 243,
            192, 199, 115, 140, 152, 147, 43, 217, 188, 76, 130, 202, 30, 155, 87, 60, 253, 212,
            224, 22, 103, 66, 111, 24, 138, 23, 229, 18, 190, 78, 196, 214, 218, 158, 222, 73, 160,
            251, 245, 142, 187, 47, 238, 122, 169, 104, 121, 145, 21, 178, 7, 63, 148, 194, 16,
            137, 11, 34, 95, 33, 128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191, 247,
            151, 3, 255, 25, 48, 179, 72, 165, 181, 209, 215, 94, 146, 42, 172, 86, 170, 198, 79,
            184, 56, 210, 150, 164, 125, 182, 118, 252, 107, 226, 156, 116, 4, 241, 69, 157, 112,
            89, 100, 113, 135, 32, 134, 91, 207, 101, 230, 45, 168, 2, 27, 96, 37, 173, 174, 176,
            185, 246, 28, 70, 97, 105, 52, 64, 126, 15, 85, 71, 163, 35, 221, 81, 175, 58, 195, 92,
            249, 206, 186, 197, 234, 38, 44, 83, 13, 110, 133, 40, 132, 9, 211, 223, 205, 244, 65,
            129, 77, 82, 106, 220, 55, 200, 108, 193, 171, 250, 36, 225, 123, 8, 12, 189, 177, 74,
            120, 136, 149, 139, 227, 99, 232, 109, 233, 203, 213, 254, 59, 0, 29, 57, 242, 239,
            183, 14, 102, 88, 208, 228, 166, 119, 114, 248, 235, 117, 75, 10, 49, 68, 80, 180, 143,
            237, 31, 26, 219, 153, 141, 51, 159, 17, 131, 20,
        ];
        let mut seen = [false; 256];
        S.iter().for_each(|&v| seen[v as usize] = true);
        assert!(seen.iter().all(|&s| s), "S is a permutation");
        // 3.1 padding, 3.2 checksum.
        let pad = 16 - msg.len() % 16;
        let mut m = msg.to_vec();
        m.extend(std::iter::repeat_n(pad as u8, pad));
        let mut c = [0u8; 16];
        let mut l = 0u8;
        for block in m.chunks(16) {
            for j in 0..16 {
                c[j] ^= S[(block[j] ^ l) as usize];
                l = c[j];
            }
        }
        m.extend_from_slice(&c);
        // 3.3, 3.4: the 48-byte buffer, 18 rounds per block.
        let mut x = [0u8; 48];
        for block in m.chunks(16) {
            for j in 0..16 {
                x[16 + j] = block[j];
                x[32 + j] = x[16 + j] ^ x[j];
            }
            let mut t = 0u8;
            for j in 0..18u8 {
                for k in x.iter_mut() {
                    *k ^= S[t as usize];
                    t = *k;
                }
                t = t.wrapping_add(j);
            }
        }
        x[..16].try_into().unwrap_or_default()
    }

    /// HMAC (RFC 2104) over the reference MD2, with its 16-byte block.
    fn hmac_reference(key: &[u8; 16], msg: &[u8]) -> [u8; 16] {
        let pad = |b: u8| key.iter().map(|k| k ^ b).collect::<Vec<u8>>();
        let mut inner = pad(0x36);
        inner.extend_from_slice(msg);
        let mut outer = pad(0x5c);
        outer.extend_from_slice(&md2_reference(&inner));
        md2_reference(&outer)
    }

    fn hex(d: [u8; 16]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn md2_matches_the_rfc_1319_test_suite() {
        let suite: [(&str, &str); 7] = [
            ("", "8350e5a3e24c153df2275c9f80692773"),
            ("a", "32ec01ec4a6dac72c0ab96fb34c0b5d1"),
            ("abc", "da853b0d3f88d99b30283a69e6ded6bb"),
            ("message digest", "ab4f496bfb2a530b219ff33031fe06b0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "4e8ddff3650292ab5a4108c3aa47940b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "da33def2a42df13975352846c30338cd",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "d5976f79d83d3a0dc9806c3c66f3efd8",
            ),
        ];
        for (msg, want) in suite {
            assert_eq!(hex(md2_reference(msg.as_bytes())), want, "reference: {msg}");
            let mut d = <Md2 as md2::Digest>::new();
            md2::Digest::update(&mut d, msg.as_bytes());
            let got: [u8; 16] = md2::Digest::finalize(d).into();
            assert_eq!(hex(got), want, "crate: {msg}");
        }
    }

    fn record(version: u32, devices: usize) -> Record {
        Record {
            driver_version: 12040,
            version,
            pid: 0x002f_a423,
            thread: 0xf79c_1000,
            cudart_table: 0x7fff_f695_8240,
            integrity_table: 0x7fff_f695_8220,
            function: 0x7fff_f2aa_f4a0,
            unix_seconds: 0x682b_9cee,
            devices: (0..devices)
                .map(|i| DeviceId {
                    uuid: [i as u8 + 1; 16],
                    pci_domain: 0,
                    pci_bus: 2 + i as i32,
                    pci_device: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn the_record_is_laid_out_as_the_runtime_hashes_it() {
        let r = record(12092, 2);
        let b = r.bytes();
        assert_eq!(b.len(), 48 + 2 * 28);
        assert_eq!(&b[0..4], &12040u32.to_le_bytes());
        assert_eq!(&b[4..8], &12092u32.to_le_bytes());
        assert_eq!(
            &b[16..24],
            &0x7fff_f695_8240u64.to_le_bytes(),
            "CUDART_INTERFACE"
        );
        assert_eq!(
            &b[24..32],
            &0x7fff_f695_8220u64.to_le_bytes(),
            "INTEGRITY_CHECK"
        );
        assert_eq!(&b[40..48], &0x682b_9ceeu64.to_le_bytes(), "time last");
        assert_eq!(&b[48..64], &[1; 16], "first device's UUID");
        assert_eq!(&b[68..72], &2i32.to_le_bytes(), "its PCI bus");
        assert_eq!(&b[76..92], &[2; 16], "second device's UUID");
    }

    #[test]
    fn the_answer_is_hmac_md2_of_the_record_under_the_key() {
        for devices in [0, 1, 3] {
            for version in [12092, 12083, 13005] {
                let r = record(version, devices);
                let want = hmac_reference(&KEY, &r.bytes());
                assert_eq!(answer(&r), want, "{devices} devices, version {version}");
            }
        }
        // Every fact changes the answer.
        let base = answer(&record(12092, 1));
        let mut r = record(12092, 1);
        r.thread ^= 1;
        assert_ne!(answer(&r), base);
        let mut r = record(12092, 1);
        r.devices[0].uuid[15] ^= 1;
        assert_ne!(answer(&r), base);
    }

    #[test]
    fn versions_ending_in_0_and_1_get_the_fixed_answers() {
        assert_eq!(answer(&record(12090, 1)), FIXED[0]);
        assert_eq!(answer(&record(12091, 1)), FIXED[1]);
        assert_eq!(
            u64::from_le_bytes(FIXED[0][..8].try_into().unwrap_or_default()),
            0x3341_181c_03cb_675c
        );
        assert_eq!(
            u64::from_le_bytes(FIXED[1][8..].try_into().unwrap_or_default()),
            0x8ed3_83aa_1f4c_d1e8
        );
    }
}
