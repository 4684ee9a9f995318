//! Verification of results against the CPU references. A result that fails
//! here is reported as a failure of its workload, never as a time.

use std::fmt::Debug;

/// A result that differs from its reference.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct Mismatch {
    pub what: String,
    pub detail: String,
}

/// Element-wise tolerance: `|got - want| <= abs + rel * |want|`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f32,
    pub rel: f32,
}

/// Compares `got` with `want` element by element: the first element that
/// `bad` flags and how many it flags, or `None` when it flags none. A
/// length mismatch is an error of its own.
fn find_bad<T>(
    what: &str,
    got: &[T],
    want: &[T],
    bad: impl Fn(&T, &T) -> bool,
) -> Result<Option<(usize, usize)>, Mismatch> {
    if got.len() != want.len() {
        return Err(mismatch(
            what,
            format!("{} elements, expected {}", got.len(), want.len()),
        ));
    }
    let Some(first) = got.iter().zip(want).position(|(g, w)| bad(g, w)) else {
        return Ok(None);
    };
    let count = got.iter().zip(want).filter(|(g, w)| bad(g, w)).count();
    Ok(Some((first, count)))
}

fn mismatch(what: &str, detail: String) -> Mismatch {
    Mismatch {
        what: what.to_string(),
        detail,
    }
}

/// Checks `got` against `want` element by element: same length, no NaN,
/// every element within `tol`.
pub fn close(what: &str, got: &[f32], want: &[f32], tol: Tolerance) -> Result<(), Mismatch> {
    // NaN anywhere makes the comparison false, so it counts as bad.
    let good = |g: f32, w: f32| (g - w).abs() <= tol.abs + tol.rel * w.abs();
    let Some((first, count)) = find_bad(what, got, want, |&g, &w| !good(g, w))? else {
        return Ok(());
    };
    Err(mismatch(
        what,
        format!(
            "element {first} is {} but the CPU reference says {} (tolerance {} + {}·|ref|); \
             {count} of {} elements are off",
            got[first],
            want[first],
            tol.abs,
            tol.rel,
            got.len()
        ),
    ))
}

/// Checks that `got` equals `want` exactly.
pub fn exact<T: PartialEq + Debug>(what: &str, got: &[T], want: &[T]) -> Result<(), Mismatch> {
    let Some((i, count)) = find_bad(what, got, want, |g, w| g != w)? else {
        return Ok(());
    };
    Err(mismatch(
        what,
        format!(
            "element {i} is {:?}, expected {:?}; {count} of {} elements differ",
            got[i],
            want[i],
            got.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance {
        abs: 1e-3,
        rel: 1e-3,
    };

    #[test]
    fn close_accepts_rounding_and_rejects_one_wrong_element() {
        let want: Vec<f32> = (0..10_000).map(|i| i as f32 * 0.5).collect();
        let mut got: Vec<f32> = want.iter().map(|v| v * (1.0 + 1e-6)).collect();
        close("ok", &got, &want, TOL).unwrap();
        got[7777] += 100.0;
        let e = close("sum", &got, &want, TOL).unwrap_err().to_string();
        assert!(e.starts_with("sum: element 7777 is"), "{e}");
        assert!(e.contains("1 of 10000 elements are off"), "{e}");
    }

    #[test]
    fn close_rejects_nan_and_short_results() {
        assert!(close("nan", &[f32::NAN], &[1.0], TOL).is_err());
        assert!(close("short", &[1.0], &[1.0, 2.0], TOL).is_err());
    }

    #[test]
    fn exact_names_the_first_difference() {
        exact("same", &[1u8, 2, 3], &[1, 2, 3]).unwrap();
        let e = exact("bytes", &[1u8, 9, 3, 9], &[1, 2, 3, 4])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "bytes: element 1 is 9, expected 2; 2 of 4 elements differ"
        );
    }
}
