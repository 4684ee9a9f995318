//! Inputs and CPU references for every workload, shared by every API.
//! Inputs are deterministic (a fixed-seed generator), so both sides of a
//! comparison compute the same thing and a failure can be reproduced.

use std::collections::HashMap;
use std::rc::Rc;

/// References already computed in this process, by case name: the costly
/// ones (a 1024² matrix product) are computed once, not once per round.
#[derive(Debug, Default)]
pub struct Cache(HashMap<String, Rc<Vec<f32>>>);

impl Cache {
    /// The reference stored under `key`, computing it with `f` first.
    pub fn get_or(&mut self, key: &str, f: impl FnOnce() -> Vec<f32>) -> Rc<Vec<f32>> {
        Rc::clone(
            self.0
                .entry(key.to_string())
                .or_insert_with(|| Rc::new(f())),
        )
    }
}

/// SplitMix64: a small, fast, well-mixed deterministic generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

/// `n` floats uniform in `[lo, hi)` from `seed`.
pub fn floats(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(lo, hi)).collect()
}

/// `n` pseudo-random bytes from `seed`.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&r.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

/// `n` small ints from `seed` (small enough that sums never overflow).
pub fn ints(n: usize, seed: u64) -> Vec<i32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (r.next_u64() % 1000) as i32 - 500).collect()
}

pub fn vector_add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `n`×`n` row-major product, accumulated in f64.
pub fn matrix_mul(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut c = vec![0f32; n * n];
    let mut row = vec![0f64; n];
    for i in 0..n {
        row.fill(0.0);
        for k in 0..n {
            let aik = f64::from(a[i * n + k]);
            for (acc, &bkj) in row.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *acc += aik * f64::from(bkj);
            }
        }
        for (dst, &v) in c[i * n..(i + 1) * n].iter_mut().zip(&row) {
            *dst = v as f32;
        }
    }
    c
}

/// Black-Scholes parameters shared by the kernels and the reference.
pub const BS_RISK_FREE: f32 = 0.02;
pub const BS_VOLATILITY: f32 = 0.30;

/// Cumulative normal distribution, the Abramowitz-Stegun polynomial that
/// the kernels also use.
fn cnd(d: f64) -> f64 {
    const A: [f64; 5] = [
        0.319_381_53,
        -0.356_563_782,
        1.781_477_937,
        -1.821_255_978,
        1.330_274_429,
    ];
    let k = 1.0 / (1.0 + 0.231_641_9 * d.abs());
    let poly = k * (A[0] + k * (A[1] + k * (A[2] + k * (A[3] + k * A[4]))));
    let c = (-0.5 * d * d).exp() / (2.0 * std::f64::consts::PI).sqrt() * poly;
    if d > 0.0 {
        1.0 - c
    } else {
        c
    }
}

/// Call and put prices for spot `s`, strike `x`, years `t`.
pub fn black_scholes(s: &[f32], x: &[f32], t: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (r, v) = (f64::from(BS_RISK_FREE), f64::from(BS_VOLATILITY));
    let mut call = Vec::with_capacity(s.len());
    let mut put = Vec::with_capacity(s.len());
    for ((&s, &x), &t) in s.iter().zip(x).zip(t) {
        let (s, x, t) = (f64::from(s), f64::from(x), f64::from(t));
        let sqrt_t = t.sqrt();
        let d1 = ((s / x).ln() + (r + 0.5 * v * v) * t) / (v * sqrt_t);
        let d2 = d1 - v * sqrt_t;
        let exp_rt = (-r * t).exp();
        call.push((s * cnd(d1) - x * exp_rt * cnd(d2)) as f32);
        put.push((x * exp_rt * (1.0 - cnd(d2)) - s * (1.0 - cnd(d1))) as f32);
    }
    (call, put)
}

/// Dyadic convolution: `out[i] = Σ_j data[i ^ j] · kernel[j]`, computed
/// directly (no transform), in f64.
pub fn dyadic_convolution(data: &[f32], kernel: &[f32]) -> Vec<f32> {
    (0..data.len())
        .map(|i| {
            kernel
                .iter()
                .enumerate()
                .map(|(j, &k)| f64::from(data.get(i ^ j).copied().unwrap_or(0.0)) * f64::from(k))
                .sum::<f64>() as f32
        })
        .collect()
}

/// Radius of the separable convolution filter (17 taps).
pub const CONV_RADIUS: usize = 8;

/// The convolution filter: a normalized Gaussian-like bump.
pub fn conv_filter() -> Vec<f32> {
    let taps = 2 * CONV_RADIUS + 1;
    let raw: Vec<f32> = (0..taps)
        .map(|i| {
            let d = i as f32 - CONV_RADIUS as f32;
            (-d * d / 18.0).exp()
        })
        .collect();
    let sum: f32 = raw.iter().sum();
    raw.into_iter().map(|v| v / sum).collect()
}

/// One pass of the separable convolution along rows (`along_rows`) or
/// columns, zero outside the image; the same summation order as the
/// kernels.
pub fn convolve_pass(src: &[f32], w: usize, h: usize, k: &[f32], along_rows: bool) -> Vec<f32> {
    let r = CONV_RADIUS as isize;
    let mut dst = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0f32;
            for j in -r..=r {
                let (xx, yy) = if along_rows {
                    (x as isize + j, y as isize)
                } else {
                    (x as isize, y as isize + j)
                };
                if xx >= 0 && yy >= 0 && (xx as usize) < w && (yy as usize) < h {
                    sum += src[yy as usize * w + xx as usize] * k[(r - j) as usize];
                }
            }
            dst[y * w + x] = sum;
        }
    }
    dst
}

/// Sum of each consecutive group of `group` ints.
pub fn group_sums(input: &[i32], group: usize) -> Vec<i32> {
    input.chunks(group).map(|c| c.iter().sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In-place Walsh-Hadamard transform (natural order), the algorithm the
    /// kernels run.
    fn fwt(d: &mut [f64]) {
        let mut stride = 1;
        while stride < d.len() {
            for i in 0..d.len() / 2 {
                let lo = (i / stride) * 2 * stride + i % stride;
                let (a, b) = (d[lo], d[lo + stride]);
                d[lo] = a + b;
                d[lo + stride] = a - b;
            }
            stride *= 2;
        }
    }

    #[test]
    fn walsh_transform_computes_the_dyadic_convolution() {
        let n = 256;
        let data = floats(n, 1, -1.0, 1.0);
        let kernel = floats(16, 2, -1.0, 1.0);
        let mut a: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
        let mut b = vec![0f64; n];
        for (d, &k) in b.iter_mut().zip(&kernel) {
            *d = f64::from(k);
        }
        fwt(&mut a);
        fwt(&mut b);
        let mut c: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y / n as f64).collect();
        fwt(&mut c);
        let direct = dyadic_convolution(&data, &kernel);
        for (x, y) in c.iter().zip(&direct) {
            assert!((*x as f32 - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn black_scholes_matches_put_call_parity() {
        let s = floats(1000, 3, 5.0, 30.0);
        let x = floats(1000, 4, 1.0, 100.0);
        let t = floats(1000, 5, 0.25, 10.0);
        let (call, put) = black_scholes(&s, &x, &t);
        for i in 0..1000 {
            // C - P = S - X·e^(-rT), up to the CND approximation's error.
            let lhs = f64::from(call[i]) - f64::from(put[i]);
            let rhs = f64::from(s[i])
                - f64::from(x[i]) * (-f64::from(BS_RISK_FREE) * f64::from(t[i])).exp();
            assert!(
                (lhs - rhs).abs() < 1e-3 * (1.0 + rhs.abs()),
                "{lhs} vs {rhs}"
            );
            assert!(call[i] >= -1e-4 && put[i] >= -1e-4);
        }
    }

    #[test]
    fn matrix_mul_by_identity_and_known_product() {
        let n = 4;
        let a = floats(n * n, 6, -1.0, 1.0);
        let mut id = vec![0f32; n * n];
        for i in 0..n {
            id[i * n + i] = 1.0;
        }
        assert_eq!(matrix_mul(&a, &id, n), a);
        let c = matrix_mul(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn convolution_preserves_a_constant_interior() {
        let (w, h) = (40, 30);
        let k = conv_filter();
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let img = vec![2.0f32; w * h];
        let rows = convolve_pass(&img, w, h, &k, true);
        let both = convolve_pass(&rows, w, h, &k, false);
        assert!((both[15 * w + 20] - 2.0).abs() < 1e-5);
        // Zero padding darkens the corner.
        assert!(both[0] < 1.5);
    }

    #[test]
    fn generators_are_deterministic() {
        assert_eq!(bytes(33, 9), bytes(33, 9));
        assert_ne!(bytes(33, 9), bytes(33, 10));
        assert_eq!(group_sums(&[1, 2, 3, 4, 5], 2), [3, 7, 5]);
        assert!(floats(1000, 1, 2.0, 3.0)
            .iter()
            .all(|v| (2.0..3.0).contains(v)));
    }
}
