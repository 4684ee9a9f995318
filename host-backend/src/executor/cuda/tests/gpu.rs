//! The real executor end to end on a GPU: a PTX vector add through the
//! executor, checked element by element against the CPU, and two sessions
//! that cannot reach each other's memory even with a raw pointer in kernel
//! parameters. Without a driver and device each test says it was skipped.

use protocol::cuda::*;
use protocol::Request;

use super::*;

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// Loads `VADD_PTX`, sets its `bias`, and returns (module, vadd).
fn vadd_module(g: &mut Guest<'_>, bias: f32) -> (Handle, Handle) {
    let (m, loaded) = g.load_ptx(VADD_PTX);
    assert_eq!(
        loaded.result,
        0,
        "PTX load failed: {}",
        String::from_utf8_lossy(&loaded.error_log)
    );
    let Response::CuModuleGetGlobal(global) = g.ok(Request::CuModuleGetGlobal(GetGlobal {
        module: m,
        name: "bias".into(),
    })) else {
        panic!()
    };
    g.htod(global.ptr, &bias.to_le_bytes(), 1).unwrap();
    let (f, _) = g.function(m, "vadd");
    (m, f)
}

fn launch_vadd(g: &mut Guest<'_>, f: Handle, a: u64, b: u64, c: u64, n: u32) -> Request {
    Request::CuLaunchKernel(LaunchKernel {
        function: f,
        grid: [n.div_ceil(256), 1, 1],
        block: [256, 1, 1],
        shared_mem_bytes: 0,
        stream: g.legacy(),
        params: vadd_params(a, b, c, n),
    })
}

#[test]
fn ptx_vector_add_on_the_real_executor() {
    let Some(f) = real_factory("the PTX vector add") else {
        return;
    };
    let mut ex = f.open_cuda(LIMITS);
    let mut g = Guest::new(&mut ex);
    let (_, vadd) = vadd_module(&mut g, 0.5);
    let n = 1_000_003u32;
    let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
    let b: Vec<f32> = (0..n).map(|i| 1.0 / (1.0 + i as f32)).collect();
    let len = n as u64 * 4;
    let (da, db, dc) = (g.alloc(len), g.alloc(len), g.alloc(len));
    g.htod(da, &bytes(&a), 3).unwrap();
    g.htod(db, &bytes(&b), 1).unwrap();
    let req = launch_vadd(&mut g, vadd, da, db, dc, n);
    g.ok(req);
    g.ok(Request::CuCtxSynchronize(CtxSynchronize { ctx: g.ctx() }));
    let c = floats(&g.dtoh(dc, len as usize, 2).unwrap());
    let wrong = (0..n as usize)
        .filter(|&i| c[i] != (a[i] + b[i]) + 0.5)
        .count();
    assert_eq!(wrong, 0, "{wrong} of {n} elements differ from the CPU");
    println!("vector add of {n} floats on the GPU matches the CPU exactly");
}

#[test]
fn a_raw_pointer_of_another_session_faults_only_its_user() {
    let Some(f) = real_factory("the cross-session isolation check") else {
        return;
    };
    let mut ex_a = f.open_cuda(LIMITS);
    let mut ex_b = f.open_cuda(LIMITS);
    let mut a = Guest::new(&mut ex_a);
    let mut b = Guest::new(&mut ex_b);
    let n = 4096u32;
    let len = n as u64 * 4;
    let secret = a.alloc(len);
    let original = bytes(&vec![42.0; n as usize]);
    a.htod(secret, &original, 1).unwrap();
    a.ok(Request::CuCtxSynchronize(CtxSynchronize { ctx: a.ctx() }));
    // Session B passes A's raw pointer as the output of its own kernel.
    let (_, vadd) = vadd_module(&mut b, 1.0);
    let mine = b.alloc(len);
    let req = launch_vadd(&mut b, vadd, mine, mine, secret, n);
    let launched = b.call(req);
    let synced = b.call(Request::CuCtxSynchronize(CtxSynchronize { ctx: b.ctx() }));
    assert!(
        launched.is_err() || synced.is_err(),
        "a kernel wrote through another session's pointer without a fault"
    );
    // A's memory is untouched and A carries on.
    assert_eq!(a.dtoh(secret, len as usize, 1).unwrap(), original);
    let fresh = a.alloc(16);
    a.htod(fresh, b"A is unaffected!", 1).unwrap();
    println!("session B got {launched:?} / {synced:?}; session A unaffected");
}

#[test]
fn a_dropped_session_gives_its_gpu_memory_back() {
    let Some(f) = real_factory("the GPU memory release check") else {
        return;
    };
    let free_now = |f: &CudaFactory| {
        let mut ex = f.open_cuda(LIMITS);
        let mut g = Guest::new(&mut ex);
        match g.ok(Request::CuMemGetInfo(MemGetInfo { ctx: g.ctx() })) {
            Response::CuMemGetInfo(m) => m.free,
            r => panic!("{r:?}"),
        }
    };
    let before = free_now(&f);
    const BIG: u64 = 1 << 30;
    {
        let mut ex = f.open_cuda(LIMITS);
        let mut g = Guest::new(&mut ex);
        let p = g.alloc(BIG);
        let (_, vadd) = vadd_module(&mut g, 0.0);
        // Leave a launch and a copy in flight, as a guest that dies would.
        let req = launch_vadd(&mut g, vadd, p, p, p, (BIG / 4) as u32);
        g.ok(req);
        g.htod(p, &[1; 4096], 1).unwrap();
    }
    let after = free_now(&f);
    // Other processes may allocate meanwhile; a leak would be the whole GiB.
    assert!(
        after + BIG / 2 > before,
        "free memory {before} before, {after} after the session was dropped"
    );
}
