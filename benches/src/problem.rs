//! What each workload computes, whatever the API: its inputs, the CPU
//! reference of its result, and how a result is checked against it. Every
//! backend builds its runs from these, so both APIs compute the same
//! thing from the same inputs and are held to the same tolerances.

use std::rc::Rc;

use crate::check::{self, Mismatch, Tolerance};
use crate::reference::{self, Cache};

/// What asyncAPI adds to each element.
pub const ASYNC_INCREMENT: i32 = 26;

/// vectorAdd: `c = a + b` over `n` floats.
#[derive(Debug)]
pub struct VectorAdd {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    want: Vec<f32>,
}

impl VectorAdd {
    pub fn new(n: usize) -> VectorAdd {
        let a = reference::floats(n, 1, -1.0, 1.0);
        let b = reference::floats(n, 2, -1.0, 1.0);
        let want = reference::vector_add(&a, &b);
        VectorAdd { a, b, want }
    }

    pub fn check(&self, c: &[f32]) -> Result<(), Mismatch> {
        let tol = Tolerance {
            abs: 0.0,
            rel: 1e-6,
        };
        check::close("vectorAdd c", c, &self.want, tol)
    }
}

/// matrixMul: `C = A·B`, `n`×`n` row-major floats.
#[derive(Debug)]
pub struct MatrixMul {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    want: Rc<Vec<f32>>,
}

impl MatrixMul {
    /// The reference is computed once per `key` (it is the costly one).
    pub fn new(refs: &mut Cache, key: &str, n: usize) -> MatrixMul {
        let a = reference::floats(n * n, 3, -1.0, 1.0);
        let b = reference::floats(n * n, 4, -1.0, 1.0);
        let want = refs.get_or(key, || reference::matrix_mul(&a, &b, n));
        MatrixMul { a, b, want }
    }

    pub fn check(&self, c: &[f32]) -> Result<(), Mismatch> {
        // f32 accumulation over n terms against an f64 reference.
        let tol = Tolerance {
            abs: 1e-3,
            rel: 1e-4,
        };
        check::close("matrixMul C", c, &self.want, tol)
    }
}

/// BlackScholes: call and put prices of `n` options.
#[derive(Debug)]
pub struct BlackScholes {
    pub s: Vec<f32>,
    pub x: Vec<f32>,
    pub t: Vec<f32>,
    /// Calls, then puts.
    want: Rc<Vec<f32>>,
}

impl BlackScholes {
    pub fn new(refs: &mut Cache, key: &str, n: usize) -> BlackScholes {
        let s = reference::floats(n, 5, 5.0, 30.0);
        let x = reference::floats(n, 6, 1.0, 100.0);
        let t = reference::floats(n, 7, 0.25, 10.0);
        let want = refs.get_or(key, || {
            let (mut call, put) = reference::black_scholes(&s, &x, &t);
            call.extend(put);
            call
        });
        BlackScholes { s, x, t, want }
    }

    pub fn check(&self, call: &[f32], put: &[f32]) -> Result<(), Mismatch> {
        let (want_call, want_put) = self.want.split_at(self.s.len());
        // Single-precision exp/log (a few ulp) against an f64 reference.
        let tol = Tolerance {
            abs: 2e-3,
            rel: 1e-4,
        };
        check::close("BlackScholes call", call, want_call, tol)?;
        check::close("BlackScholes put", put, want_put, tol)
    }
}

/// fastWalshTransform: the dyadic convolution of `data` with a filter,
/// through forward transforms of both, a point-wise product scaled by
/// 1/n, and an inverse transform.
#[derive(Debug)]
pub struct Fwt {
    pub data: Vec<f32>,
    /// The filter, zero-padded to the data's length.
    pub filter: Vec<f32>,
    want: Rc<Vec<f32>>,
}

impl Fwt {
    /// `None` when the sizes are out of range (the filter longer than the
    /// data, or more than 2^28 elements).
    pub fn new(refs: &mut Cache, key: &str, log2_data: u32, log2_kernel: u32) -> Option<Fwt> {
        if log2_kernel > log2_data || log2_data > 28 {
            return None;
        }
        let n = 1usize << log2_data;
        let data = reference::floats(n, 8, -1.0, 1.0);
        let short = reference::floats(1 << log2_kernel, 9, -1.0, 1.0);
        let want = refs.get_or(key, || reference::dyadic_convolution(&data, &short));
        let mut filter = vec![0f32; n];
        filter[..short.len()].copy_from_slice(&short);
        Some(Fwt { data, filter, want })
    }

    pub fn check(&self, got: &[f32]) -> Result<(), Mismatch> {
        // Values pass through 2·log2(n) stages of f32 sums.
        let tol = Tolerance {
            abs: 1e-3,
            rel: 1e-3,
        };
        check::close("fastWalshTransform", got, &self.want, tol)
    }
}

/// convolutionSeparable: a 17-tap filter along rows, then along columns,
/// of a `w`×`h` image.
#[derive(Debug)]
pub struct Convolution {
    pub src: Vec<f32>,
    pub filter: Vec<f32>,
    want: Rc<Vec<f32>>,
}

impl Convolution {
    pub fn new(refs: &mut Cache, key: &str, w: usize, h: usize) -> Convolution {
        let src = reference::floats(w * h, 10, 0.0, 1.0);
        let filter = reference::conv_filter();
        let want = refs.get_or(key, || {
            let rows = reference::convolve_pass(&src, w, h, &filter, true);
            reference::convolve_pass(&rows, w, h, &filter, false)
        });
        Convolution { src, filter, want }
    }

    pub fn check(&self, got: &[f32]) -> Result<(), Mismatch> {
        // Same summation order as the reference; allow for fused multiply-add.
        let tol = Tolerance {
            abs: 1e-5,
            rel: 1e-4,
        };
        check::close("convolutionSeparable", got, &self.want, tol)
    }
}

/// The bytes a bandwidthTest transfer moves.
pub fn bandwidth_pattern(bytes: usize) -> Vec<u8> {
    reference::bytes(bytes, 11)
}

/// The bytes an alignedTypes kernel copies.
pub fn aligned_source(len: usize) -> Vec<u8> {
    reference::bytes(len, 12)
}

/// The payload of the `run`-th small H2D copy: a different one each run,
/// so that a stale buffer cannot pass.
pub fn small_upload(bytes: usize, run: u64) -> Vec<u8> {
    reference::bytes(bytes, 100 + run)
}

/// What a small D2H copy reads back.
pub fn small_download(bytes: usize) -> Vec<u8> {
    reference::bytes(bytes, 13)
}

/// asyncAPI: `n` ints, each to be increased by [`ASYNC_INCREMENT`].
#[derive(Debug)]
pub struct AsyncApi {
    pub data: Vec<i32>,
    want: Vec<i32>,
}

impl AsyncApi {
    pub fn new(n: usize) -> AsyncApi {
        let data = reference::ints(n, 14);
        let want = data.iter().map(|v| v + ASYNC_INCREMENT).collect();
        AsyncApi { data, want }
    }

    pub fn check(&self, got: &[i32]) -> Result<(), Mismatch> {
        check::exact("asyncAPI", got, &self.want)
    }
}

/// clock: the sum of each group of `group_size` ints.
#[derive(Debug)]
pub struct Clock {
    pub input: Vec<i32>,
    want: Vec<i32>,
}

impl Clock {
    pub fn new(groups: usize, group_size: usize) -> Clock {
        let input = reference::ints(groups * group_size, 15);
        let want = reference::group_sums(&input, group_size);
        Clock { input, want }
    }

    pub fn check(&self, sums: &[i32]) -> Result<(), Mismatch> {
        check::exact("clock group sums", sums, &self.want)
    }
}

/// Launch rate: the counter every launch increments must read `launches`.
pub fn check_launch_count(got: u32, launches: usize) -> Result<(), Mismatch> {
    let want = u32::try_from(launches).map_err(|_| Mismatch {
        what: "launch counter".into(),
        detail: format!("{launches} launches exceed u32"),
    })?;
    check::exact("launch counter", &[got], &[want])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_accept_the_reference_and_reject_a_wrong_element() {
        let mut refs = Cache::default();
        let v = VectorAdd::new(64);
        let good: Vec<f32> = v.a.iter().zip(&v.b).map(|(a, b)| a + b).collect();
        v.check(&good).unwrap();
        let mut bad = good.clone();
        bad[3] += 1.0;
        assert!(v.check(&bad).is_err());

        let c = Clock::new(4, 8);
        let sums: Vec<i32> = c.input.chunks(8).map(|g| g.iter().sum()).collect();
        c.check(&sums).unwrap();
        assert!(c.check(&sums[..3]).is_err());

        let a = AsyncApi::new(16);
        let inc: Vec<i32> = a.data.iter().map(|v| v + ASYNC_INCREMENT).collect();
        a.check(&inc).unwrap();
        assert!(a.check(&a.data).is_err(), "an increment that never ran");

        check_launch_count(1000, 1000).unwrap();
        assert!(check_launch_count(999, 1000).is_err());
        assert!(Fwt::new(&mut refs, "fwt", 4, 5).is_none());
        let f = Fwt::new(&mut refs, "fwt", 6, 2).unwrap();
        assert_eq!(f.filter.len(), 64);
        assert!(f.filter[4..].iter().all(|&v| v == 0.0));
    }
}
