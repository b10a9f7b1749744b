//! Gives libchordsip.so a soname carrying the ABI major version, so that a
//! host linked against one ABI never loads an incompatible one.

fn main() {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libchordsip.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
