//! Generates `include/chordsip.h` from the C-ABI module with the cbindgen
//! version pinned in Cargo.toml. `--verify` fails when the checked-in header
//! differs (CI runs it). Run through `scripts/gen-header.sh`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let verify = std::env::args().any(|a| a == "--verify");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = root.join("include/chordsip.h");
    let version = env!("CARGO_PKG_VERSION");
    let (major, minor, patch) = (
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    );
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .with_after_include(format!(
            "\n#define CHORDSIP_VERSION \"{version}\"\n\
             #define CHORDSIP_VERSION_MAJOR {major}\n\
             #define CHORDSIP_VERSION_MINOR {minor}\n\
             #define CHORDSIP_VERSION_PATCH {patch}\n"
        ))
        .generate()
        .expect("cbindgen failed");
    let mut out = Vec::new();
    bindings.write(&mut out);
    // Every macro of the ABI is CHORDSIP_-prefixed: cbindgen exports each
    // `pub const` of the crate, so an internal one must go on the exclude
    // list of cbindgen.toml (or get a CHORDSIP_ twin in src/ffi).
    let stray: Vec<&str> = std::str::from_utf8(&out)
        .expect("header is UTF-8")
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("#define "))
        .filter_map(|d| d.split_whitespace().next())
        .filter(|name| !name.starts_with("CHORDSIP_"))
        .collect();
    if !stray.is_empty() {
        eprintln!(
            "include/chordsip.h would define unprefixed macros {stray:?}: \
             exclude them in cbindgen.toml or prefix them with CHORDSIP_"
        );
        return ExitCode::FAILURE;
    }
    if verify {
        let current = std::fs::read(&header).unwrap_or_default();
        if current != out {
            eprintln!(
                "include/chordsip.h is out of date with src/ffi: run scripts/gen-header.sh and commit it"
            );
            return ExitCode::FAILURE;
        }
        println!("include/chordsip.h is current");
    } else {
        std::fs::write(&header, out).expect("write header");
        println!("wrote {}", header.display());
    }
    ExitCode::SUCCESS
}
