//! Percentiles over timing samples.

/// Summary of one workload's samples on one side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub min: f64,
}

/// Nearest-rank percentile of sorted samples; `q` in 0..=1.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarizes samples (any order).
pub fn summarize(samples: &[f64]) -> Summary {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    Summary {
        n: s.len(),
        p50: percentile(&s, 0.5),
        p99: percentile(&s, 0.99),
        min: s.first().copied().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = summarize(&v);
        assert_eq!((s.n, s.p50, s.p99, s.min), (100, 50.0, 99.0, 1.0));
        assert!(summarize(&[]).p50.is_nan());
        assert_eq!(summarize(&[7.0]).p99, 7.0);
    }
}
