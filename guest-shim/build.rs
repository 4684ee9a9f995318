//! Link arguments for the shim's cdylib.
//!
//! * `-Bsymbolic`: the ICD loader (ocl-icd) exports the same `cl*` names as
//!   the shim. Without this flag the shim's own internal `cl*` references
//!   would bind to the loader's copies, recursing through the dispatch table.
//! * `--version-script=exports.map`: only the `cl*` and `cu*` entry points
//!   are exported, so nothing of the Rust runtime leaks into the guest
//!   program's namespace. The same flag keeps the shim's own `cu*` calls
//!   (e.g. through `cuGetProcAddress`) bound to itself when a program also
//!   loads another `libcuda`.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    let map = std::path::Path::new(&dir).join("exports.map");
    println!("cargo:rerun-if-changed={}", map.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-Bsymbolic");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
}
