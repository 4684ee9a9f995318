//! An OpenCL program that exercises the API surface and prints a transcript
//! of everything observable: result hashes, error codes, info values. Run it
//! natively and through virtio-compute; the transcripts must be identical.
//!
//! Timing-dependent values (profiling timestamps) are reduced to the
//! relations the specification guarantees.

use std::ffi::{c_void, CString};
use std::ptr;

use cl3::command_queue as cq;
use cl3::context;
use cl3::device;
use cl3::event;
use cl3::ext::*;
use cl3::kernel;
use cl3::memory;
use cl3::platform;
use cl3::program;

const VADD: &str = r#"
__kernel void vadd(__global const float *a, __global const float *b, __global float *c, uint n) {
    size_t i = get_global_id(0);
    if (i < n) c[i] = a[i] + b[i];
}
"#;

const MATMUL: &str = r#"
#define TILE 16
__kernel void matmul(__global const float *A, __global const float *B, __global float *C,
                     uint n, __local float *As, __local float *Bs) {
    int tx = get_local_id(0), ty = get_local_id(1);
    int col = get_global_id(0), row = get_global_id(1);
    float acc = 0.0f;
    for (uint t = 0; t < n / TILE; t++) {
        As[ty * TILE + tx] = A[row * n + t * TILE + tx];
        Bs[ty * TILE + tx] = B[(t * TILE + ty) * n + col];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TILE; k++) acc += As[ty * TILE + k] * Bs[k * TILE + tx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    C[row * n + col] = acc;
}
"#;

const BROKEN: &str = "__kernel void broken(__global float *x) { x[0] = undefined_symbol; }";

/// FNV-1a over bytes: a stable digest to compare results across runs.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn as_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

struct Env {
    ctx: cl_context,
    queue: cl_command_queue,
    device: cl_device_id,
}

fn build(env: &Env, src: &str) -> Result<cl_program, cl_int> {
    let p = program::create_program_with_source(env.ctx, &[src])?;
    let opts = CString::default();
    program::build_program(p, &[env.device], &opts, None, ptr::null_mut())?;
    Ok(p)
}

fn buffer(env: &Env, flags: cl_mem_flags, data: &mut [f32]) -> Result<cl_mem, cl_int> {
    // SAFETY: `data` is valid for its byte length; COPY_HOST_PTR copies it now.
    unsafe {
        memory::create_buffer(
            env.ctx,
            flags | CL_MEM_COPY_HOST_PTR,
            std::mem::size_of_val(data),
            data.as_mut_ptr().cast(),
        )
    }
}

fn set_arg<T>(k: cl_kernel, i: cl_uint, v: &T) -> Result<(), cl_int> {
    // SAFETY: `v` points to a live value of exactly size_of::<T>() bytes.
    unsafe { kernel::set_kernel_arg(k, i, std::mem::size_of::<T>(), (v as *const T).cast()) }
}

fn read(env: &Env, mem: cl_mem, out: &mut [f32]) -> Result<(), cl_int> {
    // SAFETY: `out` is valid for its byte length for the blocking read.
    unsafe {
        cq::enqueue_read_buffer(
            env.queue,
            mem,
            CL_BLOCKING,
            0,
            std::mem::size_of_val(out),
            out.as_mut_ptr().cast(),
            0,
            ptr::null(),
        )
    }
    .map(|_| ())
}

fn vector_add(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let n = 1u32 << 16;
    let mut a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let mut b: Vec<f32> = (0..n).map(|i| 1.0 / (1.0 + i as f32)).collect();
    let p = build(env, VADD)?;
    let k = kernel::create_kernel(p, c"vadd")?;
    let ma = buffer(env, CL_MEM_READ_ONLY, &mut a)?;
    let mb = buffer(env, CL_MEM_READ_ONLY, &mut b)?;
    // SAFETY: no host pointer.
    let mc = unsafe {
        memory::create_buffer(env.ctx, CL_MEM_WRITE_ONLY, n as usize * 4, ptr::null_mut())?
    };
    set_arg(k, 0, &ma)?;
    set_arg(k, 1, &mb)?;
    set_arg(k, 2, &mc)?;
    set_arg(k, 3, &n)?;
    let global = [n as usize];
    // SAFETY: the work size array outlives the call.
    let ev = unsafe {
        cq::enqueue_nd_range_kernel(
            env.queue,
            k,
            1,
            ptr::null(),
            global.as_ptr(),
            ptr::null(),
            0,
            ptr::null(),
        )?
    };
    let mut c = vec![0f32; n as usize];
    read(env, mc, &mut c)?;
    let exact = c.iter().enumerate().all(|(i, v)| *v == a[i] + b[i]);
    out.push(format!(
        "vadd n={n} exact={exact} hash={:016x}",
        fnv(as_bytes(&c))
    ));
    let status = event::get_event_info(ev, CL_EVENT_COMMAND_EXECUTION_STATUS)?;
    out.push(format!("vadd event status={}", cl_int::from(status)));
    // SAFETY: each object is released once and not used afterwards.
    unsafe {
        event::release_event(ev)?;
        memory::release_mem_object(ma)?;
        memory::release_mem_object(mb)?;
        memory::release_mem_object(mc)?;
        kernel::release_kernel(k)?;
        program::release_program(p)?;
    }
    Ok(())
}

fn matmul(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let n = 128u32;
    let len = (n * n) as usize;
    let mut a: Vec<f32> = (0..len).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
    let mut b: Vec<f32> = (0..len).map(|i| ((i * 5) % 11) as f32 * 0.25).collect();
    let p = build(env, MATMUL)?;
    let k = kernel::create_kernel(p, c"matmul")?;
    let ma = buffer(env, CL_MEM_READ_ONLY, &mut a)?;
    let mb = buffer(env, CL_MEM_READ_ONLY, &mut b)?;
    // SAFETY: no host pointer.
    let mc =
        unsafe { memory::create_buffer(env.ctx, CL_MEM_WRITE_ONLY, len * 4, ptr::null_mut())? };
    set_arg(k, 0, &ma)?;
    set_arg(k, 1, &mb)?;
    set_arg(k, 2, &mc)?;
    set_arg(k, 3, &n)?;
    // SAFETY: NULL value with a size declares __local memory.
    unsafe {
        kernel::set_kernel_arg(k, 4, 16 * 16 * 4, ptr::null())?;
        kernel::set_kernel_arg(k, 5, 16 * 16 * 4, ptr::null())?;
    }
    let global = [n as usize, n as usize];
    let local = [16usize, 16];
    // SAFETY: the work size arrays outlive the call.
    unsafe {
        cq::enqueue_nd_range_kernel(
            env.queue,
            k,
            2,
            ptr::null(),
            global.as_ptr(),
            local.as_ptr(),
            0,
            ptr::null(),
        )
        .map(|e| event::release_event(e))??;
    }
    cq::finish(env.queue)?;
    let mut c = vec![0f32; len];
    read(env, mc, &mut c)?;
    let mut max_err = 0f32;
    for r in 0..n as usize {
        for col in 0..n as usize {
            let want: f32 = (0..n as usize)
                .map(|i| a[r * n as usize + i] * b[i * n as usize + col])
                .sum();
            max_err = max_err.max((want - c[r * n as usize + col]).abs());
        }
    }
    out.push(format!(
        "matmul n={n} close={} hash={:016x}",
        max_err < 1e-2,
        fnv(as_bytes(&c))
    ));
    // SAFETY: released once each.
    unsafe {
        memory::release_mem_object(ma)?;
        memory::release_mem_object(mb)?;
        memory::release_mem_object(mc)?;
        kernel::release_kernel(k)?;
        program::release_program(p)?;
    }
    Ok(())
}

fn error_paths(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    // A build failure returns CL_BUILD_PROGRAM_FAILURE and a log naming the error.
    let p = program::create_program_with_source(env.ctx, &[BROKEN])?;
    let opts = CString::default();
    let status = program::build_program(p, &[env.device], &opts, None, ptr::null_mut())
        .err()
        .unwrap_or(0);
    let log = program::get_program_build_info(p, env.device, CL_PROGRAM_BUILD_LOG)
        .map(String::from)
        .unwrap_or_default();
    out.push(format!(
        "broken build status={status} log_names_symbol={}",
        log.contains("undefined_symbol")
    ));
    let kstatus = kernel::create_kernel(p, c"broken").err().unwrap_or(0);
    out.push(format!("kernel from failed build status={kstatus}"));
    // SAFETY: released once.
    unsafe { program::release_program(p)? };

    // Bad kernel arguments: the error may surface at the call or at the next
    // synchronizing call; either way it is the native code.
    let p = build(env, VADD)?;
    let k = kernel::create_kernel(p, c"vadd")?;
    let first_error = |r: Result<(), cl_int>| -> cl_int {
        match r {
            Err(e) => e,
            Ok(()) => cq::finish(env.queue).err().unwrap_or(0),
        }
    };
    let n = 4u32;
    out.push(format!(
        "set_arg bad index={}",
        first_error(set_arg(k, 9, &n))
    ));
    out.push(format!(
        "set_arg bad size={}",
        first_error(set_arg(k, 3, &0u64))
    ));
    let missing = kernel::create_kernel(p, c"no_such_kernel")
        .err()
        .unwrap_or(0);
    out.push(format!("create_kernel unknown name={missing}"));
    // Launching with unset arguments fails with CL_INVALID_KERNEL_ARGS.
    let global = [4usize];
    // SAFETY: the work size array outlives the call.
    let launch = unsafe {
        cq::enqueue_nd_range_kernel(
            env.queue,
            k,
            1,
            ptr::null(),
            global.as_ptr(),
            ptr::null(),
            0,
            ptr::null(),
        )
    };
    let launch_err = match launch {
        Err(e) => e,
        Ok(e) => {
            // SAFETY: released once.
            unsafe { event::release_event(e)? };
            cq::finish(env.queue).err().unwrap_or(0)
        }
    };
    out.push(format!("launch with unset args={launch_err}"));
    // Out-of-range read.
    // SAFETY: no host pointer.
    let m = unsafe { memory::create_buffer(env.ctx, CL_MEM_READ_WRITE, 64, ptr::null_mut())? };
    let mut big = vec![0f32; 32];
    out.push(format!(
        "read past end={}",
        read(env, m, &mut big).err().unwrap_or(0)
    ));
    // SAFETY: released once each.
    unsafe {
        memory::release_mem_object(m)?;
        kernel::release_kernel(k)?;
        program::release_program(p)?;
    }
    Ok(())
}

fn buffers_and_events(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let n = 4096usize;
    let mut src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let ma = buffer(env, CL_MEM_READ_WRITE, &mut src)?;
    // SAFETY: no host pointer.
    let mb = unsafe { memory::create_buffer(env.ctx, CL_MEM_READ_WRITE, n * 4, ptr::null_mut())? };
    let pattern = 2.5f32;
    // SAFETY: the pattern outlives the call (fills are queued; finish follows).
    unsafe {
        let e = cq::enqueue_fill_buffer(
            env.queue,
            mb,
            (&pattern as *const f32).cast(),
            4,
            0,
            n * 4,
            0,
            ptr::null(),
        )?;
        event::release_event(e)?;
        let e = cq::enqueue_copy_buffer(env.queue, ma, mb, 0, 1024 * 4, 1024 * 4, 0, ptr::null())?;
        event::release_event(e)?;
    }
    cq::finish(env.queue)?;
    let mut back = vec![0f32; n];
    read(env, mb, &mut back)?;
    let ok = back[..1024].iter().all(|v| *v == 2.5)
        && back[1024..2048]
            .iter()
            .enumerate()
            .all(|(i, v)| *v == i as f32)
        && back[2048..].iter().all(|v| *v == 2.5);
    out.push(format!(
        "fill+copy ok={ok} hash={:016x}",
        fnv(as_bytes(&back))
    ));

    // Sub-buffer over the second KiB of floats.
    let region = cl_buffer_region {
        origin: 1024 * 4,
        size: 1024 * 4,
    };
    // SAFETY: `region` outlives the call.
    let sub = unsafe {
        memory::create_sub_buffer(
            ma,
            CL_MEM_READ_WRITE,
            CL_BUFFER_CREATE_TYPE_REGION,
            (&region as *const cl_buffer_region).cast(),
        )?
    };
    let mut part = vec![0f32; 1024];
    read(env, sub, &mut part)?;
    out.push(format!("sub-buffer first={} last={}", part[0], part[1023]));
    let size = memory::get_mem_object_info(sub, CL_MEM_SIZE).map(usize::from)?;
    let offset = memory::get_mem_object_info(sub, CL_MEM_OFFSET).map(usize::from)?;
    out.push(format!("sub-buffer size={size} offset={offset}"));

    // Map for writing, change, unmap, read back.
    // SAFETY: the mapping is used only between map and unmap, within its size.
    unsafe {
        let mut mapped: cl_mem = ptr::null_mut();
        let mev = cq::enqueue_map_buffer(
            env.queue,
            mb,
            CL_BLOCKING,
            CL_MAP_WRITE | CL_MAP_READ,
            0,
            16,
            &mut mapped,
            0,
            ptr::null(),
        )?;
        let floats = mapped.cast::<f32>();
        let before = *floats;
        *floats = 42.0;
        event::release_event(mev)?;
        let e = cq::enqueue_unmap_mem_object(env.queue, mb, mapped.cast(), 0, ptr::null())?;
        event::release_event(e)?;
        out.push(format!("map read before={before}"));
    }
    cq::finish(env.queue)?;
    read(env, mb, &mut back)?;
    out.push(format!("after unmap first={}", back[0]));

    // Profiling: the four timestamps are ordered.
    let props: [cl_queue_properties; 3] = [
        CL_QUEUE_PROPERTIES as cl_queue_properties,
        CL_QUEUE_PROFILING_ENABLE as cl_queue_properties,
        0,
    ];
    // SAFETY: `props` is zero-terminated and outlives the call.
    let pq =
        unsafe { cq::create_command_queue_with_properties(env.ctx, env.device, props.as_ptr())? };
    // SAFETY: `src` outlives the blocking write.
    let ev = unsafe {
        cq::enqueue_write_buffer(
            pq,
            ma,
            CL_BLOCKING,
            0,
            n * 4,
            src.as_ptr().cast::<c_void>(),
            0,
            ptr::null(),
        )?
    };
    event::wait_for_events(&[ev])?;
    let t = |p| event::get_event_profiling_info(ev, p).map(u64::from);
    let (q, s, st, en) = (
        t(CL_PROFILING_COMMAND_QUEUED)?,
        t(CL_PROFILING_COMMAND_SUBMIT)?,
        t(CL_PROFILING_COMMAND_START)?,
        t(CL_PROFILING_COMMAND_END)?,
    );
    out.push(format!(
        "profiling ordered={}",
        q <= s && s <= st && st <= en
    ));
    let cmd = event::get_event_info(ev, CL_EVENT_COMMAND_TYPE).map(cl_uint::from)?;
    out.push(format!("event command type={cmd:#x}"));
    // Profiling info on a queue without profiling is an error.
    // SAFETY: `src` outlives the blocking write.
    let ev2 = unsafe {
        cq::enqueue_write_buffer(
            env.queue,
            ma,
            CL_BLOCKING,
            0,
            4,
            src.as_ptr().cast::<c_void>(),
            0,
            ptr::null(),
        )?
    };
    let no_prof = event::get_event_profiling_info(ev2, CL_PROFILING_COMMAND_END)
        .err()
        .unwrap_or(0);
    out.push(format!("profiling without flag={no_prof}"));
    // SAFETY: released once each.
    unsafe {
        event::release_event(ev)?;
        event::release_event(ev2)?;
        cq::release_command_queue(pq)?;
        memory::release_mem_object(sub)?;
        memory::release_mem_object(ma)?;
        memory::release_mem_object(mb)?;
    }
    Ok(())
}

/// Runs every scenario and returns the transcript.
pub fn run() -> Result<Vec<String>, cl_int> {
    let mut out = Vec::new();
    let platforms = platform::get_platform_ids()?;
    out.push(format!("platforms={}", platforms.len()));
    let p = platforms[0];
    let devices = device::get_device_ids(p, CL_DEVICE_TYPE_ALL)?;
    let d = devices[0];
    out.push(format!("devices={}", devices.len()));
    for (name, param) in [("name", CL_DEVICE_NAME), ("version", CL_DEVICE_VERSION)] {
        out.push(format!(
            "device {name}={}",
            String::from(device::get_device_info(d, param)?)
        ));
    }
    let cu = device::get_device_info(d, CL_DEVICE_MAX_COMPUTE_UNITS).map(cl_uint::from)?;
    let mem = device::get_device_info(d, CL_DEVICE_GLOBAL_MEM_SIZE).map(cl_ulong::from)?;
    out.push(format!("device units={cu} global_mem={mem}"));
    let ctx = context::create_context(&[d], ptr::null(), None, ptr::null_mut())?;
    // SAFETY: NULL properties are allowed.
    let queue = unsafe { cq::create_command_queue_with_properties(ctx, d, ptr::null())? };
    let env = Env {
        ctx,
        queue,
        device: d,
    };
    vector_add(&env, &mut out)?;
    matmul(&env, &mut out)?;
    error_paths(&env, &mut out)?;
    buffers_and_events(&env, &mut out)?;
    // SAFETY: released once each.
    unsafe {
        cq::release_command_queue(queue)?;
        context::release_context(ctx)?;
    }
    Ok(out)
}
