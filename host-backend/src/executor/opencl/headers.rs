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
//! A build's headers go in a directory mirroring the guest's paths, named
//! by a hash of the headers (their paths, bytes, the working directory and
//! the `-I` directories); the options point the compiler at the guest's
//! working directory and `-I` directories there, relative to the worker's
//! working directory (its scratch directory) where it can. The same headers
//! therefore give the same options in every worker, so a kernel cache
//! shared by workers (`--kernel-cache`) still hits, and different headers
//! give different options, so it never serves a build made with other
//! headers. A build without header files adds no options at all. The
//! directory is removed when the last build using it returns. Build logs
//! show the guest's paths, not the directory's.

use std::collections::HashMap;
use std::hash::Hasher;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cl3::error_codes::{CL_INVALID_BUILD_OPTIONS, CL_INVALID_VALUE, CL_OUT_OF_RESOURCES};
use protocol::opencl::GuestHeaders;

/// Longest guest path accepted (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// Longest path component (Linux's `NAME_MAX`).
const MAX_NAME: usize = 255;

/// Name of the directory below the scratch directory that holds the
/// builds' headers.
const DIR_NAME: &str = ".vcompute-includes";

/// Hex digits of a build directory's name (a 128-bit hash).
const HASH_DIGITS: usize = 32;

/// Where builds' headers go: `abs` to write them, `opt` to name them in
/// the compiler's options (relative when the process runs in scratch).
#[derive(Debug)]
struct Base {
    abs: PathBuf,
    opt: PathBuf,
}

static BASE: OnceLock<Base> = OnceLock::new();

/// Build directories in use, by name, with their number of users.
static IN_USE: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// Lets builds include the guest's headers, laid out below `scratch`.
/// Called by a worker once it is sandboxed.
pub fn enable(scratch: &Path) -> bool {
    let abs = scratch.join(DIR_NAME);
    let in_scratch = std::env::current_dir()
        .ok()
        .zip(scratch.canonicalize().ok())
        .is_some_and(|(cwd, s)| cwd == s);
    let opt = if in_scratch {
        PathBuf::from(DIR_NAME)
    } else {
        abs.clone()
    };
    BASE.set(Base { abs, opt }).is_ok()
}

/// True in a sandboxed worker (see [`enable`]).
pub(super) fn enabled() -> bool {
    BASE.get().is_some()
}

/// A build's headers on disk; removed when the last build using them
/// drops its `Laid`.
#[derive(Debug)]
pub(super) struct Laid {
    dir: PathBuf,
    name: String,
}

impl Laid {
    /// Takes a use of the directory `name` below `base`, laying it out with
    /// `lay` if no build is using it (under the lock, so that a second
    /// build with the same headers never sees it half written).
    fn take(
        base: &Path,
        name: String,
        lay: impl FnOnce(&Path) -> Result<(), i32>,
    ) -> Result<Self, i32> {
        let mut guard = IN_USE.lock().unwrap_or_else(PoisonError::into_inner);
        let map = guard.get_or_insert_with(HashMap::new);
        let dir = base.join(&name);
        if let Some(users) = map.get_mut(&name) {
            *users += 1;
            return Ok(Laid { dir, name });
        }
        // A directory left by a build that did not finish is rebuilt.
        let _ = std::fs::remove_dir_all(&dir);
        let laid = std::fs::create_dir_all(&dir)
            .map_err(|_| CL_OUT_OF_RESOURCES)
            .and_then(|()| lay(&dir));
        if let Err(e) = laid {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        map.insert(name.clone(), 1);
        Ok(Laid { dir, name })
    }
}

impl Drop for Laid {
    fn drop(&mut self) {
        let mut guard = IN_USE.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(map) = guard.as_mut() else { return };
        let last = match map.get_mut(&self.name) {
            Some(users) if *users > 1 => {
                *users -= 1;
                false
            }
            _ => true,
        };
        if last {
            map.remove(&self.name);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The build directory's name: a hash of everything that decides what the
/// compiler sees.
fn dir_name(h: &GuestHeaders) -> String {
    let mut hasher = siphasher::sip128::SipHasher::new();
    let mut put = |b: &[u8]| {
        hasher.write_u64(b.len() as u64);
        hasher.write(b);
    };
    put(h.cwd.as_bytes());
    for d in &h.dirs {
        put(d.as_bytes());
    }
    put(b"");
    for (path, bytes) in &h.files {
        put(path.as_bytes());
        put(bytes);
    }
    format!(
        "{:032x}",
        siphasher::sip128::Hasher128::finish128(&hasher).as_u128()
    )
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
fn dir_option(root: &Path, opt_root: &Path, dir: &str) -> Result<String, i32> {
    let d = below(root, dir).ok_or(CL_INVALID_BUILD_OPTIONS)?;
    let named = below(opt_root, dir).ok_or(CL_INVALID_BUILD_OPTIONS)?;
    let s = named.to_str().ok_or(CL_INVALID_BUILD_OPTIONS)?;
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
    if h.files.is_empty() {
        // Nothing to include: the options stay the program's own.
        return Ok((None, String::new()));
    }
    let name = dir_name(h);
    let laid = Laid::take(&base.abs, name, |dir| {
        for (path, bytes) in &h.files {
            let to = below(dir, path).ok_or(CL_INVALID_VALUE)?;
            let write = || -> io::Result<()> {
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&to, bytes)
            };
            // A path that is also another file's directory cannot be laid out.
            write().map_err(|_| CL_INVALID_VALUE)?;
        }
        Ok(())
    })?;
    let opt_dir = base.opt.join(&laid.name);
    // The working directory first, as POCL natively adds `-I.` before the
    // program's own options.
    let mut opts = Vec::with_capacity(h.dirs.len() + 1);
    if !h.cwd.is_empty() {
        opts.push(dir_option(&laid.dir, &opt_dir, &h.cwd)?);
    }
    for d in &h.dirs {
        opts.push(dir_option(&laid.dir, &opt_dir, d)?);
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

fn rewrite_log(log: Vec<u8>, base: &Base) -> Vec<u8> {
    let mut out = String::from_utf8_lossy(&log).into_owned();
    for prefix in [&base.abs, &base.opt] {
        if let Some(p) = prefix.to_str() {
            out = strip_build_dirs(&out, &format!("{p}/"));
        }
    }
    let out = hide_refusals(&out);
    let scratch = base.abs.parent().and_then(Path::to_str).unwrap_or("");
    let out = if scratch.len() > 1 {
        out.replace(scratch, "")
    } else {
        out
    };
    out.into_bytes()
}

/// `text` with every `prefix` followed by a build directory's name taken
/// out: what follows is the guest's own absolute path.
fn strip_build_dirs(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        let hash = after
            .get(..HASH_DIGITS)
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
        match hash {
            Some(_) => {
                out.push_str(&rest[..at]);
                rest = &after[HASH_DIGITS..];
            }
            None => {
                out.push_str(&rest[..at + prefix.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
            dir_option(root, root, "/with space"),
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
        let base = Base {
            abs: PathBuf::from("/tmp/w/worker-3/.vcompute-includes"),
            opt: PathBuf::from(".vcompute-includes"),
        };
        let hash = "0123456789abcdef0123456789abcdef";
        let log = format!(
            "/tmp/w/worker-3/.vcompute-includes/{hash}/home/u/k.h:3:1: error: x\n\
             .vcompute-includes/{hash}/home/u/j.h:1:1: note: from\n\
             /tmp/w/worker-3/pocl/kcache/t.cl:1:10: note: here\n"
        );
        let out = String::from_utf8(rewrite_log(log.into_bytes(), &base)).unwrap();
        assert_eq!(
            out,
            "/home/u/k.h:3:1: error: x\n/home/u/j.h:1:1: note: from\n/pocl/kcache/t.cl:1:10: note: here\n"
        );
    }

    #[test]
    fn the_same_headers_name_the_same_directory_and_others_another() {
        let h = |bytes: &[u8]| GuestHeaders {
            cwd: "/home/u".into(),
            dirs: vec!["/home/u/inc".into()],
            files: vec![("/home/u/inc/k.h".into(), bytes.to_vec())],
        };
        assert_eq!(dir_name(&h(b"#define N 1")), dir_name(&h(b"#define N 1")));
        assert_ne!(dir_name(&h(b"#define N 1")), dir_name(&h(b"#define N 2")));
        assert_eq!(dir_name(&h(b"")).len(), HASH_DIGITS);
    }
}
