//! A build's guest header files, laid out for the compiler.
//!
//! The compiler runs in the daemon, so what a source `#include`s must be
//! the guest's own files (the shim finds and sends them, see
//! `protocol::opencl::GuestHeaders`) and never the host's. Only a
//! sandboxed worker process lays them out (it calls [`enable`] with its
//! private scratch directory): there the compiler can read nothing of the
//! host besides the runtime's own files, so a source naming
//! `/etc/passwd` gets a build error. A daemon serving in-process (no
//! sandbox) keeps refusing every `#include`.
//!
//! Each build gets a fresh directory mirroring the guest's paths; the
//! options point the compiler at the guest's working directory and `-I`
//! directories there; the directory is removed when the build returns.
//! Build logs show the guest's paths, not the directory's.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use cl3::error_codes::{CL_INVALID_BUILD_OPTIONS, CL_INVALID_VALUE, CL_OUT_OF_RESOURCES};
use protocol::opencl::GuestHeaders;

/// Longest guest path accepted (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// Longest path component (Linux's `NAME_MAX`).
const MAX_NAME: usize = 255;

static BASE: OnceLock<PathBuf> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Lets builds include the guest's headers, laid out below
/// `scratch/includes`. Called by a worker once it is sandboxed.
pub fn enable(scratch: &Path) -> bool {
    BASE.set(scratch.join("includes")).is_ok()
}

/// True in a sandboxed worker (see [`enable`]).
pub(super) fn enabled() -> bool {
    BASE.get().is_some()
}

/// A build's headers on disk; removed when dropped.
#[derive(Debug)]
pub(super) struct Laid {
    dir: PathBuf,
}

impl Drop for Laid {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `path` below `root`, if it is an absolute guest path of plain
/// components the compiler can be given.
fn below(root: &Path, path: &str) -> Option<PathBuf> {
    if path.len() > MAX_PATH || path.contains('\0') || !path.starts_with('/') {
        return None;
    }
    let mut out = root.to_path_buf();
    for c in Path::new(path).components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) if n.len() <= MAX_NAME => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

/// An include directory for the compiler's options: it cannot carry
/// blanks (options are split on them).
fn dir_option(root: &Path, dir: &str) -> Result<String, i32> {
    let d = below(root, dir).ok_or(CL_INVALID_BUILD_OPTIONS)?;
    let s = d.to_str().ok_or(CL_INVALID_BUILD_OPTIONS)?;
    if s.chars().any(char::is_whitespace) {
        return Err(CL_INVALID_BUILD_OPTIONS);
    }
    std::fs::create_dir_all(&d).map_err(|_| CL_OUT_OF_RESOURCES)?;
    Ok(format!("-I {s}"))
}

/// Lays `h` out for one build; returns its directory (to keep until the
/// build returns) and the include options, or the native error of a
/// guest value the compiler cannot be given.
pub(super) fn lay_out(h: &GuestHeaders) -> Result<(Option<Laid>, String), i32> {
    let nothing = h.files.is_empty() && h.dirs.is_empty();
    let Some(base) = BASE.get() else {
        // In-process: no guest headers, no include directories.
        return if nothing {
            Ok((None, String::new()))
        } else {
            Err(CL_INVALID_BUILD_OPTIONS)
        };
    };
    let dir = base.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&dir).map_err(|_| CL_OUT_OF_RESOURCES)?;
    let laid = Laid { dir };
    for (path, bytes) in &h.files {
        let to = below(&laid.dir, path).ok_or(CL_INVALID_VALUE)?;
        let write = || -> io::Result<()> {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&to, bytes)
        };
        // A path that is also another file's directory cannot be laid out.
        write().map_err(|_| CL_INVALID_VALUE)?;
    }
    // The working directory first, as POCL natively adds `-I.` before the
    // program's own options.
    let mut opts = Vec::with_capacity(h.dirs.len() + 1);
    if !h.cwd.is_empty() {
        opts.push(dir_option(&laid.dir, &h.cwd)?);
    }
    for d in &h.dirs {
        opts.push(dir_option(&laid.dir, d)?);
    }
    Ok((Some(laid), opts.join(" ")))
}

/// A build log as the guest sees it: paths below a build's directory
/// shown as the guest's own, the worker's scratch directory left out.
pub(super) fn guest_log(log: Vec<u8>) -> Vec<u8> {
    match BASE.get() {
        Some(base) => rewrite_log(log, base),
        None => log,
    }
}

fn rewrite_log(log: Vec<u8>, base: &Path) -> Vec<u8> {
    let Some(base_s) = base.to_str() else {
        return log;
    };
    let text = String::from_utf8_lossy(&log);
    let mut out = String::with_capacity(text.len());
    let mut rest = &*text;
    let prefix = format!("{base_s}/");
    while let Some(at) = rest.find(&prefix) {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        // Skip the build's number; what follows is the guest's path.
        rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    let out = hide_refusals(&out);
    let scratch = base.parent().and_then(Path::to_str).unwrap_or("");
    let out = if scratch.len() > 1 {
        out.replace(scratch, "")
    } else {
        out
    };
    out.into_bytes()
}

/// The compiler's "cannot open file 'X': Permission denied" (the sandbox
/// refused a host file) as "'X' file not found": whether a host path
/// exists is not the guest's to learn.
fn hide_refusals(log: &str) -> String {
    const HEAD: &str = "cannot open file '";
    const TAIL: &str = "': Permission denied";
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(at) = rest.find(HEAD) {
        let after = &rest[at + HEAD.len()..];
        match after.find(TAIL) {
            Some(end) if !after[..end].contains('\n') => {
                out.push_str(&rest[..at]);
                out.push('\'');
                out.push_str(&after[..end]);
                out.push_str("' file not found");
                rest = &after[end + TAIL.len()..];
            }
            _ => {
                out.push_str(&rest[..at + HEAD.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_paths_go_below_the_root() {
        let root = Path::new("/r");
        assert_eq!(below(root, "/a/b.h"), Some(PathBuf::from("/r/a/b.h")));
        assert_eq!(below(root, "/"), Some(PathBuf::from("/r")));
        for bad in ["a/b.h", "/a/../../etc/passwd", "/a\0b", ""] {
            assert_eq!(below(root, bad), None, "{bad:?}");
        }
        let long = format!("/{}", "x".repeat(MAX_NAME + 1));
        assert_eq!(below(root, &long), None);
        assert_eq!(
            dir_option(root, "/with space"),
            Err(CL_INVALID_BUILD_OPTIONS)
        );
    }

    #[test]
    fn refused_host_files_look_absent() {
        assert_eq!(
            hide_refusals("t.cl:1:10: cannot open file '/etc/passwd': Permission denied\nnext"),
            "t.cl:1:10: '/etc/passwd' file not found\nnext"
        );
        assert_eq!(hide_refusals("cannot open file 'x"), "cannot open file 'x");
    }

    #[test]
    fn logs_show_the_guests_paths() {
        let base = Path::new("/tmp/w/worker-3/includes");
        let log = concat!(
            "/tmp/w/worker-3/includes/12/home/u/k.h:3:1: error: x\n",
            "/tmp/w/worker-3/pocl/kcache/t.cl:1:10: note: here\n"
        )
        .as_bytes()
        .to_vec();
        let out = String::from_utf8(rewrite_log(log, base)).unwrap();
        assert_eq!(
            out,
            "/home/u/k.h:3:1: error: x\n/pocl/kcache/t.cl:1:10: note: here\n"
        );
    }
}
