//! The header files an OpenCL build needs, found in the guest: the
//! compiler runs in the daemon and must see the program's own headers, and
//! nothing of the host. The shim finds every file a source can include, as
//! the compiler would search for it, and sends them with the build; the
//! daemon lays them out under a private directory and points the options
//! there.
//!
//! The search follows the daemon's compiler (clang under POCL): a quoted
//! include looks in the including file's directory, then in the working
//! directory (POCL adds `-I.`) and each `-I` directory in order; an angled
//! include in the working directory and the `-I` directories. An absolute
//! name is not sent: the compiler opens it on the host, where the sandbox
//! refuses it. Headers that include headers are followed. Every
//! directive is followed whether or not the preprocessor would take it
//! (sending a header too many is harmless); an include whose name is a
//! macro cannot be resolved here and is left to the compiler, which then
//! finds nothing. Names the guest does not have are not an error: the
//! compiler reports them as it would natively.
//!
//! Bounded: at most [`MAX_HEADERS`] files of [`MAX_HEADER_BYTES`] in all.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Component, Path, PathBuf};

pub use protocol::limits::{MAX_HEADER_BYTES, MAX_HEADER_FILES as MAX_HEADERS};

/// Why the headers of a build could not be gathered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IncludeError {
    /// More than [`MAX_HEADERS`] files.
    #[error("the build includes more than {MAX_HEADERS} header files")]
    TooMany,
    /// More than [`MAX_HEADER_BYTES`] bytes.
    #[error("the build's header files exceed {MAX_HEADER_BYTES} bytes")]
    TooLarge,
    /// An option names no directory (`-I` at the end).
    #[error("-I without a directory")]
    MissingDir,
}

/// What a build sends besides its source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Gathered {
    /// The `-I` directories, absolute, in order.
    pub dirs: Vec<PathBuf>,
    /// The build options without the `-I` options.
    pub options: String,
    /// Every header found, by absolute guest path.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

/// A path made absolute against `cwd`, with `.` and `..` folded (as the
/// compiler resolves it, without following links).
fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Splits `-I dir` and `-Idir` out of `options`.
fn split_dirs(options: &str, cwd: &Path) -> Result<(Vec<PathBuf>, String), IncludeError> {
    let mut dirs = Vec::new();
    let mut rest = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-I" {
            let d = words.next().ok_or(IncludeError::MissingDir)?;
            dirs.push(absolute(cwd, Path::new(d)));
        } else if let Some(d) = w.strip_prefix("-I") {
            dirs.push(absolute(cwd, Path::new(d)));
        } else {
            rest.push(w);
        }
    }
    Ok((dirs, rest.join(" ")))
}

/// The include directives of `text`: `(name, quoted)`.
fn directives(text: &str) -> Vec<(String, bool)> {
    // Line continuations join lines before directives are recognised.
    let joined = text.replace("\\\r\n", "").replace("\\\n", "");
    let mut out = Vec::new();
    for line in joined.lines() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(rest) = rest
            .strip_prefix("include_next")
            .or_else(|| rest.strip_prefix("include"))
            .or_else(|| rest.strip_prefix("import"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (open, close, quoted) = match rest.chars().next() {
            Some('"') => ('"', '"', true),
            Some('<') => ('<', '>', false),
            _ => continue,
        };
        if let Some(end) = rest[open.len_utf8()..].find(close) {
            let name = &rest[open.len_utf8()..open.len_utf8() + end];
            if !name.is_empty() {
                out.push((name.to_owned(), quoted));
            }
        }
    }
    out
}

/// Gathers the headers of a build of `source` with `options`, the
/// program running in `cwd`; `read` reads a guest file (`None` if it
/// cannot).
pub fn gather(
    source: &str,
    options: &str,
    cwd: &Path,
    read: impl Fn(&Path) -> Option<Vec<u8>>,
) -> Result<Gathered, IncludeError> {
    let (dirs, options) = split_dirs(options, cwd)?;
    let mut files = BTreeMap::new();
    let mut total = 0usize;
    // (directory of the including file, its text)
    let mut todo: VecDeque<(PathBuf, String)> = VecDeque::new();
    todo.push_back((cwd.to_path_buf(), source.to_owned()));
    while let Some((dir, text)) = todo.pop_front() {
        for (name, quoted) in directives(&text) {
            let name = Path::new(&name);
            if name.is_absolute() {
                // The daemon's compiler opens an absolute name as it is, on
                // the host, where the sandbox refuses it: the guest's file
                // would never be read, so it is not sent.
                continue;
            }
            // POCL searches the working directory first for both forms (it
            // adds `-I.`), then the `-I` directories; a quoted name is
            // looked for next to its includer before that.
            let candidates: Vec<PathBuf> = quoted
                .then(|| absolute(&dir, name))
                .into_iter()
                .chain(
                    std::iter::once(cwd.to_path_buf())
                        .chain(dirs.iter().cloned())
                        .map(|d| absolute(&d, name)),
                )
                .collect();
            for path in candidates {
                if files.contains_key(&path) {
                    break;
                }
                let Some(bytes) = read(&path) else { continue };
                if files.len() == MAX_HEADERS {
                    return Err(IncludeError::TooMany);
                }
                total = total.saturating_add(bytes.len());
                if total > MAX_HEADER_BYTES {
                    return Err(IncludeError::TooLarge);
                }
                let parent = path
                    .parent()
                    .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
                todo.push_back((parent, String::from_utf8_lossy(&bytes).into_owned()));
                files.insert(path, bytes);
                break;
            }
        }
    }
    Ok(Gathered {
        dirs,
        options,
        files,
    })
}

/// Reads a guest file for [`gather`]: regular files only.
pub fn read_file(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_HEADER_BYTES as u64 {
        return None;
    }
    std::fs::read(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs<'a>(files: &'a [(&'a str, &'a str)]) -> impl Fn(&Path) -> Option<Vec<u8>> + 'a {
        move |p: &Path| {
            files
                .iter()
                .find(|(n, _)| Path::new(n) == p)
                .map(|(_, t)| t.as_bytes().to_vec())
        }
    }

    #[test]
    fn quoted_and_angled_includes_follow_the_compilers_search() {
        let files = [
            ("/work/a.h", "#include \"sub/b.h\"\n"),
            ("/work/sub/b.h", "#include \"c.h\"\n#define B 1\n"),
            ("/work/sub/c.h", "#define C 1\n"),
            ("/inc/d.h", "#  include <e.h>\n"),
            ("/inc/e.h", "#define E 1\n"),
            ("/work/e.h", "#define E 2\n"),
            ("/etc/passwd", "root:x:0:0\n"),
        ];
        let src = "#include \"a.h\"\n#include <d.h>\n#include \"missing.h\"\n#include MACRO\n#include \"/etc/passwd\"\nkernel void k() {}";
        let g = gather(
            src,
            "-cl-std=CL2.0 -I /inc -DX=1",
            Path::new("/work"),
            fs(&files),
        )
        .unwrap();
        assert_eq!(g.dirs, vec![PathBuf::from("/inc")]);
        assert_eq!(g.options, "-cl-std=CL2.0 -DX=1");
        let names: Vec<_> = g.files.keys().map(|p| p.display().to_string()).collect();
        // b.h's "c.h" is next to b.h; d.h's <e.h> is found in the working
        // directory before -I, as POCL searches (it adds `-I.` first).
        assert_eq!(
            names,
            [
                "/inc/d.h",
                "/work/a.h",
                "/work/e.h",
                "/work/sub/b.h",
                "/work/sub/c.h"
            ]
        );
    }

    #[test]
    fn relative_dirs_dot_dot_and_cycles() {
        let files = [
            (
                "/p/include/x.h",
                "#include \"../include/x.h\"\n#include \"y.h\"\n",
            ),
            ("/p/include/y.h", "#include \"x.h\"\n"),
        ];
        let g = gather("#include <x.h>", "-Iinclude", Path::new("/p"), fs(&files)).unwrap();
        assert_eq!(g.dirs, vec![PathBuf::from("/p/include")]);
        assert_eq!(g.files.len(), 2);
        assert_eq!(
            gather("", "-I", Path::new("/"), fs(&files)),
            Err(IncludeError::MissingDir)
        );
    }

    #[test]
    fn bounds_hold() {
        let big = "x".repeat(MAX_HEADER_BYTES);
        let files = [("/a.h", big.as_str()), ("/b.h", "y")];
        let r = gather(
            "#include \"a.h\"\n#include \"b.h\"",
            "",
            Path::new("/"),
            fs(&files),
        );
        assert_eq!(r, Err(IncludeError::TooLarge));
        let many: Vec<(String, String)> = (0..=MAX_HEADERS)
            .map(|i| (format!("/h{i}.h"), format!("#include \"h{}.h\"\n", i + 1)))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let r = gather("#include \"h0.h\"", "", Path::new("/"), fs(&refs));
        assert_eq!(r, Err(IncludeError::TooMany));
    }

    #[test]
    fn continued_and_spaced_directives_are_seen() {
        let d = directives("  #  include \\\n \"a.h\"\n#include_next <b.h>\n// #include \"c.h\"\n");
        assert_eq!(
            d,
            vec![("a.h".to_string(), true), ("b.h".to_string(), false)]
        );
    }
}
