//! CUDA module images as a guest sends them (PTX, cubin, fat binary): the
//! extent check and the parser the daemon runs before the driver sees an
//! image. Never panics; every layout found lies within the driver's
//! parameter limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcompute_protocol::cuda::ImageKind;
use vcompute_protocol::limits::MAX_KERNEL_PARAM_BYTES;
use vhost_device_compute::executor::cuda::image::{extent_fits, parse, MAX_IMAGE_SYMBOLS};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, img)) = data.split_first() else {
        return;
    };
    let kind = match sel % 3 {
        0 => ImageKind::Ptx,
        1 => ImageKind::Cubin,
        _ => ImageKind::Fatbin,
    };
    let _ = extent_fits(kind, img);
    let info = parse(kind, img);
    assert!(info.kernels.len() <= MAX_IMAGE_SYMBOLS);
    assert!(info.globals.len() <= MAX_IMAGE_SYMBOLS);
    if kind == ImageKind::Ptx {
        for layout in info.kernels.values().flatten() {
            for p in layout {
                assert!(u64::from(p.offset) + u64::from(p.size) <= MAX_KERNEL_PARAM_BYTES as u64);
            }
        }
    }
});
