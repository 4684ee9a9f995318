//! The C ABI edge of the shim: every `extern "C"` entry point and every
//! `unsafe` block of the crate lives below this module.
//!
//! | module | role |
//! |---|---|
//! | [`opencl`] | the OpenCL ICD (`clIcdGetPlatformIDsKHR` and the `cl*` API) |
//! | [`cuda`] | the CUDA driver API (`libcuda.so.1`'s `cu*` entry points) |
//!
//! Both API families share the process's one session with the daemon
//! ([`shared_client`]), so a program that uses both opens one connection.
//!
//! The helpers here are the only ways entry points touch caller memory:
//! they null-check, bound every length, and never panic on caller data.

pub(crate) mod cuda;
pub(crate) mod opencl;

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::client::{CallError, Client};
use crate::log::{Chain, CALLS, CONNECT};
use crate::transport::ENDPOINT_ENV;

static CLIENT: OnceLock<Option<Client>> = OnceLock::new();

/// The process's session with the daemon named by `VCOMPUTE_ENDPOINT`,
/// connecting on first use. `None` when the daemon cannot be reached
/// (said once on stderr; later calls do not retry).
pub(crate) fn shared_client() -> Option<&'static Client> {
    CLIENT
        .get_or_init(|| match catch_unwind(Client::connect_from_env) {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => {
                log_unreachable(&e);
                None
            }
            Err(_) => {
                CONNECT.log(format_args!(
                    "cannot reach daemon: the transport failed internally"
                ));
                None
            }
        })
        .as_ref()
}

/// Says why the session could not be opened, with the endpoint unless the
/// error names it already.
fn log_unreachable(e: &CallError) {
    if matches!(e, CallError::Transport(t) if t.names_endpoint()) {
        CONNECT.log(format_args!("cannot reach daemon: {}", Chain(e)));
    } else {
        let endpoint = std::env::var_os(ENDPOINT_ENV).unwrap_or_default();
        CONNECT.log(format_args!(
            "cannot reach daemon at {}: {}",
            endpoint.to_string_lossy(),
            Chain(e)
        ));
    }
}

/// Runs an entry point body, turning a panic into `on_panic` and a log line,
/// so that no unwind ever crosses the C ABI.
pub(crate) fn guard<R>(entry: &'static str, on_panic: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            CALLS.log(format_args!("internal error in {entry}; the call failed"));
            on_panic
        }
    }
}

/// Writes `value` through `out` when `out` is not NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of one `T`.
pub(crate) unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null, and the caller guarantees it is writable.
        unsafe { out.write_unaligned(value) };
    }
}

/// True when `n` elements of `T` could make up one object: at most
/// `isize::MAX` bytes. A larger length cannot describe the caller's
/// memory, and a slice over it would be undefined behaviour before any
/// byte is touched (and an abort in debug builds).
fn fits<T>(n: usize) -> bool {
    n.checked_mul(std::mem::size_of::<T>())
        .is_some_and(|b| b <= isize::MAX as usize)
}

/// True when `n` bytes at host address `p` can be a caller's buffer: not
/// NULL (unless empty), not past the address space.
pub(crate) fn host_range_ok(p: usize, n: usize) -> bool {
    n == 0 || (p != 0 && fits::<u8>(n) && p.checked_add(n).is_some())
}

/// Borrows `n` elements at `p`; an empty list may be NULL.
/// Returns `None` for a NULL pointer with `n > 0`, or for a length no
/// object can have.
///
/// # Safety
/// When non-null, `p` points to `n` readable, initialised elements that
/// stay alive and unmodified for `'a`.
pub(crate) unsafe fn slice_in<'a, T>(p: *const T, n: usize) -> Option<&'a [T]> {
    if n == 0 {
        return Some(&[]);
    }
    if p.is_null() || !fits::<T>(n) {
        return None;
    }
    // SAFETY: non-null with `n` elements, guaranteed by the caller.
    Some(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Borrows `n` writable bytes at `p` (NULL, `n == 0` or a length no
/// object can have gives `None`).
///
/// # Safety
/// When non-null, `p` points to `n` writable bytes not aliased for `'a`.
pub(crate) unsafe fn bytes_out<'a>(p: *mut u8, n: usize) -> Option<&'a mut [u8]> {
    if p.is_null() || n == 0 || !fits::<u8>(n) {
        return None;
    }
    // SAFETY: non-null with `n` writable bytes, guaranteed by the caller.
    Some(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// Reads a NUL-terminated string (lossily as UTF-8); NULL gives `None`.
///
/// # Safety
/// When non-null, `p` points to a NUL-terminated string.
pub(crate) unsafe fn c_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, guaranteed by the caller.
    let s = unsafe { CStr::from_ptr(p) };
    Some(s.to_string_lossy().into_owned())
}

/// Reads a zero-terminated property list of at most `max` pairs; NULL gives
/// an empty list. Returns `None` when no terminator appears in time.
///
/// # Safety
/// When non-null, `p` points to a zero-terminated list of `T`.
pub(crate) unsafe fn property_list<T: Copy + Default + PartialEq>(
    p: *const T,
    max: usize,
) -> Option<Vec<T>> {
    let mut out = Vec::new();
    if p.is_null() {
        return Some(out);
    }
    for i in 0..(2 * max + 1) {
        // SAFETY: the list is zero-terminated and we stop at the terminator
        // (or at a name position), so every read is within the list.
        let v = unsafe { p.add(i).read_unaligned() };
        out.push(v);
        if i % 2 == 0 && v == T::default() {
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_the_fallback() {
        let r = guard("test", -5, || -> i32 { panic!("boom") });
        assert_eq!(r, -5);
        assert_eq!(guard("test", -5, || 7), 7);
    }

    #[test]
    fn property_lists_stop_at_the_terminator_or_fail() {
        let l: [u64; 5] = [0x1084, 9, 0x1085, 1, 0];
        // SAFETY: `l` is a live zero-terminated list.
        let got = unsafe { property_list(l.as_ptr(), 8) };
        assert_eq!(got.as_deref(), Some(&l[..]));
        let unterminated: [u64; 4] = [1, 2, 3, 4];
        // SAFETY: with max 1 at most 3 elements are read.
        assert_eq!(unsafe { property_list(unterminated.as_ptr(), 1) }, None);
        // SAFETY: NULL is allowed.
        let empty = unsafe { property_list::<u64>(std::ptr::null(), 1) };
        assert_eq!(empty, Some(vec![]));
    }

    #[test]
    fn lengths_no_buffer_can_have_are_refused() {
        // A program passing a length past the address space gets an error
        // from the entry point (as from the native library, which checks
        // the other side of the copy first), never a slice over it.
        let b = [0u64; 4];
        // SAFETY: nothing is read: the lengths are refused first.
        unsafe {
            assert!(slice_in(b.as_ptr().cast::<u8>(), usize::MAX).is_none());
            assert!(slice_in(b.as_ptr(), usize::MAX / 4).is_none());
            assert!(slice_in(b.as_ptr(), isize::MAX as usize / 8 + 1).is_none());
            let mut m = [0u8; 4];
            assert!(bytes_out(m.as_mut_ptr(), usize::MAX).is_none());
            assert!(bytes_out(m.as_mut_ptr(), isize::MAX as usize + 1).is_none());
            assert_eq!(slice_in(b.as_ptr(), 4).map(<[u64]>::len), Some(4));
        }
    }

    #[test]
    fn null_lists_are_rejected_unless_empty() {
        // SAFETY: NULL pointers are allowed by the helper.
        unsafe {
            assert!(slice_in::<u8>(std::ptr::null(), 0).is_some());
            assert!(slice_in::<u8>(std::ptr::null(), 3).is_none());
            assert!(c_string(std::ptr::null()).is_none());
        }
    }
}
