//! The directory that makes the shim a process's `libcuda.so.1`: links
//! named `libcuda.so.1` and `libcuda.so` to the shim's cdylib (what
//! `scripts/libcuda.sh` makes), for the virtualized worker's
//! `LD_LIBRARY_PATH`. Made in a fresh temporary directory, removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tells apart the directories one process makes.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A directory of `libcuda` links to the shim; removed on drop.
#[derive(Debug)]
pub struct ShimLibDir {
    dir: PathBuf,
}

impl ShimLibDir {
    /// Makes the links to `shim` (made absolute) in a new directory.
    pub fn create(shim: &Path) -> Result<ShimLibDir, String> {
        let shim = shim
            .canonicalize()
            .map_err(|e| format!("the shim {}: {e}", shim.display()))?;
        let dir = std::env::temp_dir().join(format!(
            "vcompute-bench-libcuda-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let made = ShimLibDir { dir };
        for name in ["libcuda.so.1", "libcuda.so"] {
            let link = made.dir.join(name);
            std::os::unix::fs::symlink(&shim, &link)
                .map_err(|e| format!("{}: {e}", link.display()))?;
        }
        Ok(made)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `LD_LIBRARY_PATH` with this directory first, then `previous`.
    pub fn library_path(&self, previous: Option<&std::ffi::OsStr>) -> std::ffi::OsString {
        let mut v = self.dir.clone().into_os_string();
        if let Some(p) = previous.filter(|p| !p.is_empty()) {
            v.push(":");
            v.push(p);
        }
        v
    }
}

impl Drop for ShimLibDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_lead_to_the_shim_and_go_away() {
        let tmp = tempfile::tempdir().unwrap();
        let shim = tmp.path().join("libvcompute_shim.so");
        std::fs::write(&shim, b"not really").unwrap();
        let d = ShimLibDir::create(&shim).unwrap();
        let path = d.path().to_path_buf();
        for name in ["libcuda.so.1", "libcuda.so"] {
            assert_eq!(
                std::fs::read_link(path.join(name)).unwrap(),
                shim.canonicalize().unwrap()
            );
        }
        assert_eq!(
            d.library_path(Some("/opt/nvrtc".as_ref())),
            format!("{}:/opt/nvrtc", path.display()).as_str()
        );
        assert_eq!(d.library_path(Some("".as_ref())), path.as_os_str());
        drop(d);
        assert!(!path.exists());
        assert!(ShimLibDir::create(&tmp.path().join("missing.so")).is_err());
    }
}
