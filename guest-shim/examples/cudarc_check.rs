//! GPU validation: a cudarc program (its safe API over the driver API),
//! run natively and through the shim; the two outputs must be identical.
//!
//! Compiles a vector add and a matrix multiply with NVRTC (which needs
//! `libnvrtc.so` from a CUDA toolkit or the `nvidia-cuda-nvrtc` wheel),
//! loads the PTX through `cuModuleLoadData`, runs both, checks them
//! against the CPU and prints checksums. `scripts/gpu-validate.sh` runs it
//! twice, the second time with `LD_LIBRARY_PATH` at the shim's
//! `libcuda.so.1`. Without an NVIDIA driver (or daemon) it prints
//! `SKIPPED:` and exits successfully.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};

const SRC: &str = r#"
extern "C" __global__ void vadd(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void matmul(const float *a, const float *b, float *c, int n) {
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (row < n && col < n) {
        float acc = 0.0f;
        for (int k = 0; k < n; k++) acc += a[row * n + k] * b[k * n + col];
        c[row * n + col] = acc;
    }
}
"#;

fn checksum(v: &[f32]) -> u64 {
    v.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() {
    // cudarc panics when it cannot load a library; that is a skip here.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ctx = match std::panic::catch_unwind(|| CudaContext::new(0)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            println!("SKIPPED: no usable CUDA device ({e:?})");
            return;
        }
        Err(_) => {
            println!("SKIPPED: no NVIDIA driver (libcuda could not be loaded)");
            return;
        }
    };
    let ptx = match std::panic::catch_unwind(|| cudarc::nvrtc::compile_ptx(SRC)) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => panic!("NVRTC failed: {e:?}"),
        Err(_) => {
            println!("SKIPPED: libnvrtc not found (install a CUDA toolkit or nvidia-cuda-nvrtc)");
            return;
        }
    };
    std::panic::set_hook(hook);
    let stream = ctx.default_stream();
    let module = ctx.load_module(ptx).expect("load the PTX");

    // Vector add.
    let n = 1 << 20;
    let a: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 * 0.25).collect();
    let b: Vec<f32> = (0..n).map(|i| (i % 777) as f32 * 0.5).collect();
    let (da, db) = (
        stream.clone_htod(&a).unwrap(),
        stream.clone_htod(&b).unwrap(),
    );
    let mut dc = stream.alloc_zeros::<f32>(n).unwrap();
    let f = module.load_function("vadd").unwrap();
    let n_i32 = n as i32;
    let mut launch = stream.launch_builder(&f);
    launch.arg(&da).arg(&db).arg(&mut dc).arg(&n_i32);
    // SAFETY: the kernel's parameters are the four pushed above.
    unsafe { launch.launch(LaunchConfig::for_num_elems(n as u32)) }.unwrap();
    let c = stream.clone_dtoh(&dc).unwrap();
    let err = c
        .iter()
        .zip(a.iter().zip(&b))
        .map(|(c, (a, b))| (c - (a + b)).abs())
        .fold(0f32, f32::max);
    assert!(err == 0.0, "vadd differs from the CPU by {err}");
    println!(
        "vadd n={n} max_abs_err={err} checksum={:016x}",
        checksum(&c)
    );

    // Matrix multiply.
    let m = 256usize;
    let x: Vec<f32> = (0..m * m).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
    let y: Vec<f32> = (0..m * m).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
    let (dx, dy) = (
        stream.clone_htod(&x).unwrap(),
        stream.clone_htod(&y).unwrap(),
    );
    let mut dz = stream.alloc_zeros::<f32>(m * m).unwrap();
    let g = module.load_function("matmul").unwrap();
    let m_i32 = m as i32;
    let mut launch = stream.launch_builder(&g);
    launch.arg(&dx).arg(&dy).arg(&mut dz).arg(&m_i32);
    let cfg = LaunchConfig {
        grid_dim: ((m / 16) as u32, (m / 16) as u32, 1),
        block_dim: (16, 16, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the kernel's parameters are the four pushed above.
    unsafe { launch.launch(cfg) }.unwrap();
    let z = stream.clone_dtoh(&dz).unwrap();
    let mut err = 0f32;
    for r in 0..m {
        for col in 0..m {
            let want: f32 = (0..m).map(|k| x[r * m + k] * y[k * m + col]).sum();
            err = err.max((z[r * m + col] - want).abs());
        }
    }
    assert!(err < 1e-2, "matmul differs from the CPU by {err}");
    println!(
        "matmul n={m} max_abs_err={err} checksum={:016x}",
        checksum(&z)
    );
    println!("PASS");
}
