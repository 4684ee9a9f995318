//! Platform and device info says only what a session can use.
//!
//! A program reads the device's capabilities to choose its path, so a
//! capability the daemon does not forward must not be advertised: the
//! program then takes its fallback instead of failing. Removed here:
//! shared virtual memory, native kernels (host function pointers),
//! device-side queues and pipes, and every extension whose host API the
//! shim does not carry (only extensions of the kernel language, and ones
//! that are info queries alone, pass). Queries that belong to a removed
//! extension fail as on a device without it.

use cl3::error_codes::CL_INVALID_VALUE;
use protocol::opencl::InfoKind;

use super::handles::native;
use crate::executor::ExecError;

/// Extensions a session can use: kernel-language features, and the ICD
/// extension the shim itself provides.
const CARRIED_EXTENSIONS: &[&str] = &[
    "cl_khr_icd",
    "cl_khr_byte_addressable_store",
    "cl_khr_global_int32_base_atomics",
    "cl_khr_global_int32_extended_atomics",
    "cl_khr_local_int32_base_atomics",
    "cl_khr_local_int32_extended_atomics",
    "cl_khr_int64_base_atomics",
    "cl_khr_int64_extended_atomics",
    "cl_khr_3d_image_writes",
    "cl_khr_depth_images",
    "cl_khr_fp16",
    "cl_khr_fp64",
    "cl_khr_extended_versioning",
    "cl_khr_device_uuid",
    "cl_khr_pci_bus_info",
    "cl_khr_integer_dot_product",
    "cl_khr_expect_assume",
    "cl_khr_extended_bit_ops",
    "cl_khr_subgroup_ballot",
    "cl_khr_subgroup_clustered_reduce",
    "cl_khr_subgroup_extended_types",
    "cl_khr_subgroup_non_uniform_arithmetic",
    "cl_khr_subgroup_non_uniform_vote",
    "cl_khr_subgroup_rotate",
    "cl_khr_subgroup_shuffle",
    "cl_khr_subgroup_shuffle_relative",
    "cl_khr_work_group_uniform_arithmetic",
    "cl_ext_float_atomics",
];

/// OpenCL C features that need what a session cannot have.
const DROPPED_FEATURES: &[&str] = &["__opencl_c_device_enqueue", "__opencl_c_pipes"];

const CL_PLATFORM_EXTENSIONS: u32 = 0x0904;
const CL_PLATFORM_EXTENSIONS_WITH_VERSION: u32 = 0x0907;
const CL_DEVICE_EXECUTION_CAPABILITIES: u32 = 0x1029;
const CL_DEVICE_EXTENSIONS: u32 = 0x1030;
const CL_DEVICE_EXTENSIONS_WITH_VERSION: u32 = 0x1060;
const CL_DEVICE_OPENCL_C_FEATURES: u32 = 0x106F;
const CL_EXEC_NATIVE_KERNEL: u64 = 1 << 1;

/// Device queries whose value is "none" here whatever the runtime says:
/// device-side queues, SVM, pipes.
const ZEROED: &[u32] = &[
    0x104E, // CL_DEVICE_QUEUE_ON_DEVICE_PROPERTIES
    0x104F, // CL_DEVICE_QUEUE_ON_DEVICE_PREFERRED_SIZE
    0x1050, // CL_DEVICE_QUEUE_ON_DEVICE_MAX_SIZE
    0x1051, // CL_DEVICE_MAX_ON_DEVICE_QUEUES
    0x1052, // CL_DEVICE_MAX_ON_DEVICE_EVENTS
    0x1053, // CL_DEVICE_SVM_CAPABILITIES
    0x1055, // CL_DEVICE_MAX_PIPE_ARGS
    0x1056, // CL_DEVICE_PIPE_MAX_ACTIVE_RESERVATIONS
    0x1057, // CL_DEVICE_PIPE_MAX_PACKET_SIZE
    0x1070, // CL_DEVICE_DEVICE_ENQUEUE_CAPABILITIES
    0x1071, // CL_DEVICE_PIPE_SUPPORT
];

/// Device queries of extensions removed here (`cl_khr_command_buffer`
/// and its mutable dispatch).
const OF_REMOVED_EXTENSIONS: &[u32] = &[0x12A9, 0x12AA, 0x12B0];

/// Bytes of one `cl_name_version`: a `cl_version` and a 64-byte name.
const NAME_VERSION_LEN: usize = 4 + 64;

fn carried(name: &str) -> bool {
    CARRIED_EXTENSIONS.contains(&name)
}

/// A space-separated, NUL-terminated extension string with only `keep`;
/// unchanged, spacing and all, when `keep` accepts every name.
fn filter_names(raw: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw);
    let names: Vec<&str> = text
        .trim_end_matches('\0')
        .split_ascii_whitespace()
        .collect();
    if names.iter().all(|n| keep(n)) {
        return raw.to_vec();
    }
    let mut out = names
        .into_iter()
        .filter(|n| keep(n))
        .collect::<Vec<_>>()
        .join(" ")
        .into_bytes();
    out.push(0);
    out
}

/// An array of `cl_name_version` with only the entries `keep` accepts.
fn filter_name_versions(raw: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    raw.chunks(NAME_VERSION_LEN)
        .filter(|e| {
            let name = e.get(4..).unwrap_or_default();
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            keep(&String::from_utf8_lossy(&name[..end]))
        })
        .flatten()
        .copied()
        .collect()
}

/// The value of a platform or device query as the guest may see it.
pub(super) fn filter(kind: InfoKind, param: u32, value: Vec<u8>) -> Result<Vec<u8>, ExecError> {
    Ok(match (kind, param) {
        (InfoKind::Platform, CL_PLATFORM_EXTENSIONS) | (InfoKind::Device, CL_DEVICE_EXTENSIONS) => {
            filter_names(&value, carried)
        }
        (InfoKind::Platform, CL_PLATFORM_EXTENSIONS_WITH_VERSION)
        | (InfoKind::Device, CL_DEVICE_EXTENSIONS_WITH_VERSION) => {
            filter_name_versions(&value, carried)
        }
        (InfoKind::Device, CL_DEVICE_OPENCL_C_FEATURES) => {
            filter_name_versions(&value, |n| !DROPPED_FEATURES.contains(&n))
        }
        (InfoKind::Device, CL_DEVICE_EXECUTION_CAPABILITIES) => {
            match <[u8; 8]>::try_from(&*value) {
                Ok(b) => (u64::from_ne_bytes(b) & !CL_EXEC_NATIVE_KERNEL)
                    .to_ne_bytes()
                    .to_vec(),
                Err(_) => value,
            }
        }
        (InfoKind::Device, p) if ZEROED.contains(&p) => vec![0; value.len()],
        (InfoKind::Device, p) if OF_REMOVED_EXTENSIONS.contains(&p) => {
            return Err(native(CL_INVALID_VALUE))
        }
        _ => value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_version(name: &str) -> Vec<u8> {
        let mut v = 0x40_0000u32.to_ne_bytes().to_vec();
        let mut n = name.as_bytes().to_vec();
        n.resize(64, 0);
        v.extend(n);
        v
    }

    #[test]
    fn extensions_without_a_carried_host_api_are_dropped() {
        let raw = b"cl_khr_byte_addressable_store cl_khr_command_buffer cl_khr_spir cl_khr_fp64 \0";
        let got = filter(InfoKind::Device, CL_DEVICE_EXTENSIONS, raw.to_vec());
        assert_eq!(
            got,
            Ok(b"cl_khr_byte_addressable_store cl_khr_fp64\0".to_vec())
        );
        // A list with nothing to drop reads exactly as the runtime's.
        let kept = b"cl_khr_fp64   cl_khr_3d_image_writes \0".to_vec();
        assert_eq!(
            filter(InfoKind::Device, CL_DEVICE_EXTENSIONS, kept.clone()),
            Ok(kept)
        );
        let got = filter(
            InfoKind::Platform,
            CL_PLATFORM_EXTENSIONS,
            b"cl_khr_icd cl_pocl_content_size\0".to_vec(),
        );
        assert_eq!(got, Ok(b"cl_khr_icd\0".to_vec()));
        let raw = [
            name_version("cl_khr_fp64"),
            name_version("cl_khr_command_buffer"),
        ]
        .concat();
        let got = filter(InfoKind::Device, CL_DEVICE_EXTENSIONS_WITH_VERSION, raw);
        assert_eq!(got, Ok(name_version("cl_khr_fp64")));
    }

    #[test]
    fn uncarried_capabilities_read_as_absent() {
        let caps = (1u64 | CL_EXEC_NATIVE_KERNEL).to_ne_bytes().to_vec();
        let got = filter(InfoKind::Device, CL_DEVICE_EXECUTION_CAPABILITIES, caps);
        assert_eq!(got, Ok(1u64.to_ne_bytes().to_vec()));
        let svm = 0xfu64.to_ne_bytes().to_vec();
        assert_eq!(filter(InfoKind::Device, 0x1053, svm), Ok(vec![0; 8]));
        assert_eq!(
            filter(InfoKind::Device, 0x12A9, vec![1; 8]),
            Err(native(CL_INVALID_VALUE))
        );
        let features = [
            name_version("__opencl_c_images"),
            name_version("__opencl_c_device_enqueue"),
        ]
        .concat();
        let got = filter(InfoKind::Device, CL_DEVICE_OPENCL_C_FEATURES, features);
        assert_eq!(got, Ok(name_version("__opencl_c_images")));
        // Everything else passes untouched, and platform params are not
        // device params.
        assert_eq!(
            filter(InfoKind::Device, 0x102B, b"x\0".to_vec()),
            Ok(b"x\0".to_vec())
        );
        assert_eq!(filter(InfoKind::Platform, 0x1053, vec![1]), Ok(vec![1]));
    }
}
