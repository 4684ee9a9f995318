//! The second half of the `forwarded` transcript: separate compilation
//! and linking, build options, argument info, kernel clones, built-in and
//! IL programs, sub-devices, timers, destructor callbacks, and a user
//! event set by one thread while others wait on it.

use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::Mutex;

use cl3::command_queue as cq;
use cl3::context;
use cl3::device;
use cl3::event;
use cl3::ext::*;
use cl3::kernel;
use cl3::memory;
use cl3::program;

use super::forwarded::{build, code, done, release, run_1d, set_arg, Env};

const LIB: &str = "int twice(int x) { return 2 * x; }";
const USER: &str = "int twice(int x);
__kernel void k(__global int *out, int v) { out[0] = twice(v) + SHIFT; }";

fn compile(p: cl_program, d: cl_device_id, options: &str) -> cl_int {
    let opts = CString::new(options).unwrap_or_default();
    code(program::compile_program(
        p,
        &[d],
        &opts,
        &[],
        &[],
        None,
        ptr::null_mut(),
    ))
}

fn run_k(env: &Env, k: cl_kernel, buf: cl_mem, v: cl_int) -> Result<cl_int, cl_int> {
    set_arg(k, 0, &buf)?;
    set_arg(k, 1, &v)?;
    launch(env, k, buf)
}

/// Runs `k` on one work-item and reads the `int` it wrote to `buf`.
fn launch(env: &Env, k: cl_kernel, buf: cl_mem) -> Result<cl_int, cl_int> {
    run_1d(env, k, 1)?;
    let mut r = 0 as cl_int;
    // SAFETY: `r` holds 4 bytes for the blocking read.
    let e = unsafe {
        cq::enqueue_read_buffer(
            env.queue,
            buf,
            CL_BLOCKING,
            0,
            4,
            (&raw mut r).cast(),
            0,
            ptr::null(),
        )
    }?;
    release(e)?;
    Ok(r)
}

/// `clLinkProgram` of no programs (which `cl3` does not pass on).
fn link_none(env: &Env) -> cl_int {
    let Ok(runtime) = cl3::load_library().as_ref() else {
        return -1;
    };
    let mut status = 0;
    let p = runtime.clLinkProgram(
        env.ctx,
        1,
        &env.device,
        c"".as_ptr(),
        0,
        ptr::null(),
        None,
        ptr::null_mut(),
        &raw mut status,
    );
    if let Some(p) = p.filter(|p| !p.is_null()) {
        // SAFETY: the program the call made, released once.
        let _ = unsafe { program::release_program(p) };
    }
    status
}

fn arg_name(k: cl_kernel, i: cl_uint) -> String {
    match kernel::get_kernel_arg_info(k, i, CL_KERNEL_ARG_NAME) {
        Ok(v) => String::from(v),
        Err(e) => format!("error {e}"),
    }
}

fn programs(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let d = env.device;
    // SAFETY: no host pointer.
    let buf = unsafe { memory::create_buffer(env.ctx, CL_MEM_READ_WRITE, 4, ptr::null_mut())? };
    let lib = program::create_program_with_source(env.ctx, &[LIB])?;
    let user = program::create_program_with_source(env.ctx, &[USER])?;
    out.push(format!(
        "compile lib={} user={} bad_option={}",
        compile(lib, d, "-cl-std=CL1.2 -w"),
        compile(user, d, "-D SHIFT=1 -cl-fast-relaxed-math"),
        compile(user, d, "-not-an-option"),
    ));
    compile(user, d, "-DSHIFT=1");
    let inputs = [lib, user];
    let link = |options: &str, ins: &[cl_program]| {
        let opts = CString::new(options).unwrap_or_default();
        // SAFETY: the devices are the context's; the inputs are live.
        unsafe { program::link_program(env.ctx, &[d], &opts, ins, None, ptr::null_mut()) }
    };
    let library = link("-create-library", &inputs[..1]);
    let ty = library.as_ref().ok().map(|p| {
        program::get_program_build_info(*p, d, CL_PROGRAM_BINARY_TYPE)
            .map(cl_uint::from)
            .unwrap_or(0)
    });
    out.push(format!(
        "link library rc={} binary_type={ty:?}",
        code(library.as_ref().map(|_| ()).map_err(|e| *e))
    ));
    let exe = link("-cl-kernel-arg-info", &inputs)?;
    let k = kernel::create_kernel(exe, c"k")?;
    out.push(format!(
        "linked kernel k(20)={:?} arg1={}",
        run_k(env, k, buf, 20),
        arg_name(k, 1)
    ));
    out.push(format!(
        "link errors bad_option={} none={}",
        code(link("-not-a-link-option", &inputs)),
        link_none(env),
    ));
    let undefined = program::create_program_with_source(env.ctx, &[USER])?;
    compile(undefined, d, "-DSHIFT=0");
    out.push(format!(
        "link undefined symbol={}",
        code(link("", &[undefined]))
    ));
    // Clones keep the arguments set so far.
    set_arg(k, 1, &5i32)?;
    let clone = kernel::clone_kernel(k)?;
    let r = launch(env, clone, buf)?;
    out.push(format!("clone runs with the source's arguments: {r}"));

    // Options that read no files build as natively; argument info is there
    // only when asked for.
    let src = USER.replace("twice(v)", "v");
    for opts in [
        "",
        "-cl-kernel-arg-info",
        "-DSHIFT=2 -cl-std=CL1.2 -cl-fast-relaxed-math -w",
        "-Werror -DSHIFT=3",
    ] {
        let src = if opts.contains("SHIFT") {
            src.clone()
        } else {
            format!("#define SHIFT 0\n{src}")
        };
        let (p, status) = build(env, &src, opts)?;
        let info = match kernel::create_kernel(p, c"k") {
            Ok(kk) => {
                let s = format!("k(1)={:?} arg0={}", run_k(env, kk, buf, 1), arg_name(kk, 0));
                // SAFETY: released once.
                unsafe { kernel::release_kernel(kk)? };
                s
            }
            Err(e) => format!("kernel error {e}"),
        };
        out.push(format!("build {opts:?} status={status} {info}"));
        // SAFETY: released once.
        unsafe { program::release_program(p)? };
    }
    let (p, status) = build(env, "__kernel void w() { int unused; }", "-Werror")?;
    out.push(format!("build -Werror with a warning status={status}"));
    // SAFETY: released once.
    unsafe { program::release_program(p)? };

    // Built-in kernels and IL, as the device reports them.
    let names = String::from(device::get_device_info(d, CL_DEVICE_BUILT_IN_KERNELS)?);
    let first = CString::new(names.split(';').next().unwrap_or_default()).unwrap_or_default();
    // SAFETY: the device is the context's.
    let bk = unsafe { program::create_program_with_builtin_kernels(env.ctx, &[d], &first) };
    out.push(format!(
        "built-in program rc={}",
        code(bk.as_ref().map(|_| ()).map_err(|e| *e))
    ));
    out.push(format!(
        "il program garbage={}",
        code(program::create_program_with_il(env.ctx, b"not spir-v"))
    ));
    // SAFETY: released once each.
    unsafe {
        if let Ok(bk) = bk {
            program::release_program(bk)?;
        }
        kernel::release_kernel(clone)?;
        kernel::release_kernel(k)?;
        for p in [exe, undefined, user, lib] {
            program::release_program(p)?;
        }
        if let Ok(l) = library {
            program::release_program(l)?;
        }
        memory::release_mem_object(buf)?;
    }
    Ok(())
}

fn sub_devices(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let props: [cl_device_partition_property; 3] = [CL_DEVICE_PARTITION_EQUALLY as _, 1, 0];
    let subs = match device::create_sub_devices(env.device, &props) {
        Ok(s) => s,
        Err(e) => {
            out.push(format!("sub-devices rc={e}"));
            return Ok(());
        }
    };
    let parent =
        device::get_device_info(subs[0], CL_DEVICE_PARENT_DEVICE).map(|v| isize::from(v) as usize);
    let refs = |s| {
        device::get_device_info(s, CL_DEVICE_REFERENCE_COUNT)
            .map(cl_uint::from)
            .unwrap_or(0)
    };
    let before = refs(subs[0]);
    // SAFETY: a sub-device made above.
    unsafe { device::retain_device(subs[0])? };
    let after = refs(subs[0]);
    // SAFETY: gives back the reference just taken.
    unsafe { device::release_device(subs[0])? };
    let ctx = context::create_context(&subs[..1], ptr::null(), None, ptr::null_mut())?;
    let units = device::get_device_info(subs[0], CL_DEVICE_MAX_COMPUTE_UNITS).map(cl_uint::from)?;
    out.push(format!(
        "sub-devices count={} parent_is_root={} refs={before}->{after} units={units}",
        subs.len(),
        parent == Ok(env.device as usize),
    ));
    // SAFETY: released once each.
    unsafe {
        context::release_context(ctx)?;
        for s in subs {
            device::release_device(s)?;
        }
    }
    Ok(())
}

static CALLED: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn note_mem(_: cl_mem, data: *mut c_void) {
    CALLED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("mem{}", data as usize));
}

unsafe extern "C" fn note_ctx(_: cl_context, data: *mut c_void) {
    CALLED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("ctx{}", data as usize));
}

fn take_called() -> Vec<String> {
    std::mem::take(&mut *CALLED.lock().unwrap_or_else(|e| e.into_inner()))
}

fn callbacks_and_timers(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let ctx = context::create_context(&[env.device], ptr::null(), None, ptr::null_mut())?;
    // SAFETY: no host pointer.
    let buf = unsafe { memory::create_buffer(ctx, CL_MEM_READ_WRITE, 64, ptr::null_mut())? };
    let region = cl_buffer_region {
        origin: 0,
        size: 16,
    };
    // SAFETY: `region` outlives the call.
    let sub = unsafe {
        memory::create_sub_buffer(
            buf,
            0,
            CL_BUFFER_CREATE_TYPE_REGION,
            (&raw const region).cast(),
        )?
    };
    // SAFETY: the callbacks ignore the object and read their data as a number.
    unsafe {
        memory::set_mem_object_destructor_callback(
            buf,
            note_mem,
            std::ptr::without_provenance_mut::<c_void>(1),
        )?;
        memory::set_mem_object_destructor_callback(
            buf,
            note_mem,
            std::ptr::without_provenance_mut::<c_void>(2),
        )?;
        memory::set_mem_object_destructor_callback(
            sub,
            note_mem,
            std::ptr::without_provenance_mut::<c_void>(3),
        )?;
    }
    let ctx_cb = code(context::set_context_destructor_callback(
        ctx,
        Some(note_ctx),
        std::ptr::without_provenance_mut::<c_void>(9),
    ));
    // SAFETY: released once; the sub-buffer keeps the buffer.
    unsafe { memory::release_mem_object(buf)? };
    let after_buf = take_called();
    // SAFETY: released once.
    unsafe { memory::release_mem_object(sub)? };
    let after_sub = take_called();
    // SAFETY: released once.
    unsafe { context::release_context(ctx)? };
    let after_ctx = take_called();
    out.push(format!(
        "destructors ctx_set={ctx_cb} buffer={after_buf:?} sub={after_sub:?} context={after_ctx:?}"
    ));
    let (p, _) = build(env, "__kernel void n() {}", "")?;
    let runtime = cl3::load_library().as_ref().map_err(|_| -1)?;
    let prog_cb = runtime
        .clSetProgramReleaseCallback(p, Some(note_prog), ptr::null_mut())
        .unwrap_or(-1);
    out.push(format!("program release callback rc={prog_cb}"));
    // SAFETY: released once.
    unsafe { program::release_program(p)? };
    out.push(format!(
        "timers device_and_host={} host={}",
        code(device::get_device_and_host_timer(env.device)),
        code(device::get_host_timer(env.device))
    ));
    Ok(())
}

unsafe extern "C" fn note_prog(_: cl_program, _: *mut c_void) {}

/// A user event one thread sets while another waits on it, directly,
/// behind `clFinish`, and behind a blocking read.
fn threads(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    let user = event::create_user_event(env.ctx)?;
    // SAFETY: no host pointer.
    let buf = unsafe { memory::create_buffer(env.ctx, CL_MEM_READ_WRITE, 4, ptr::null_mut())? };
    let pattern = 7u32;
    let wait = [user];
    // SAFETY: the pattern and the wait list outlive the call.
    let fill = unsafe {
        cq::enqueue_fill_buffer(
            env.queue,
            buf,
            (&raw const pattern).cast(),
            4,
            0,
            4,
            1,
            wait.as_ptr(),
        )
    }?;
    // Plain numbers cross to the threads: the handles are thread-safe.
    let (q, u, f, b) = (
        env.queue as usize,
        user as usize,
        fill as usize,
        buf as usize,
    );
    let results = std::thread::scope(|s| {
        let waiter = s.spawn(move || code(event::wait_for_events(&[f as cl_event])));
        let finisher = s.spawn(move || code(cq::finish(q as cl_command_queue)));
        let reader = s.spawn(move || {
            let mut v = 0u32;
            // SAFETY: `v` holds 4 bytes for the blocking read.
            let r = unsafe {
                cq::enqueue_read_buffer(
                    q as cl_command_queue,
                    b as cl_mem,
                    CL_BLOCKING,
                    0,
                    4,
                    (&raw mut v).cast(),
                    0,
                    ptr::null(),
                )
            };
            (done(r), v)
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let set = code(event::set_user_event_status(u as cl_event, CL_COMPLETE));
        (
            set,
            waiter.join().unwrap_or(-1),
            finisher.join().unwrap_or(-1),
            reader.join().unwrap_or((-1, 0)),
        )
    });
    out.push(format!(
        "user event set by another thread (set, wait, finish, read)={results:?}"
    ));
    // SAFETY: released once each.
    unsafe {
        release(fill)?;
        release(user)?;
        memory::release_mem_object(buf)?;
    }
    Ok(())
}

/// Runs this half of the transcript.
pub fn run(env: &Env, out: &mut Vec<String>) -> Result<(), cl_int> {
    programs(env, out)?;
    sub_devices(env, out)?;
    callbacks_and_timers(env, out)?;
    threads(env, out)
}
