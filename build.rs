//! Generates include/greenhub.h from the Rust sources with cbindgen.
//! The header is committed; CI fails when it drifts from the source.

use std::env;
use std::path::PathBuf;

mod build_soname;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build_soname.rs");

    // For gh_build_info().
    println!(
        "cargo:rustc-env=GH_BUILD_TARGET={}",
        env::var("TARGET").unwrap()
    );

    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let patch = env::var("CARGO_PKG_VERSION_PATCH").unwrap();

    // The shared library's SONAME is libgreenhub.so.<major> whoever builds it (plain
    // cargo or CMake), so programs linked against it record the ABI they were built
    // for. Cargo names the file libgreenhub.so; the libgreenhub.so.<major> link the
    // loader looks for is made here, beside it, so a plain `cargo build` is usable as
    // it is (`cc -Ltarget/release -lgreenhub`, `LD_LIBRARY_PATH=target/release`).
    // CMake's install makes the installed links. Exports need no version script:
    // rustc's own exports only the #[no_mangle] items, all gh_* (scripts/check_exports.sh).
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgreenhub.so.{major}");
        build_soname::link("libgreenhub.so", &major);
    }

    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(format!(
        r#"
/* Declared here too, so the header is self-contained in strict ISO C modes
   (-std=c99 without _POSIX_C_SOURCE hides them in <netdb.h>). */
struct sockaddr;
struct addrinfo;
/** Major version of this header (the shared library's SONAME is libgreenhub.so.MAJOR). */
#define GH_VERSION_MAJOR {major}
/** Minor version of this header. */
#define GH_VERSION_MINOR {minor}
/** Patch version of this header. */
#define GH_VERSION_PATCH {patch}
/** Version of this header, (major << 16) | (minor << 8) | patch; compare with gh_version() at run time. */
#define GH_VERSION_HEX ((GH_VERSION_MAJOR << 16) | (GH_VERSION_MINOR << 8) | GH_VERSION_PATCH)

/** A timeout that never expires. */
#define GH_FOREVER (-1.0)

/** gh_spawn recording the spawn site (__FILE__, __LINE__) for diagnostics. */
#define GH_SPAWN(out, fn, arg) gh_spawn_at((out), (fn), (arg), NULL, __FILE__, __LINE__)
/** gh_spawn_ex recording the spawn site (__FILE__, __LINE__) for diagnostics. */
#define GH_SPAWN_EX(out, fn, arg, opts) gh_spawn_at((out), (fn), (arg), (opts), __FILE__, __LINE__)
"#
    ));
    generate_header(&dir, config);
}

fn generate_header(dir: &std::path::Path, config: cbindgen::Config) {
    match cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
    {
        Ok(b) => {
            b.write_to_file(dir.join("include/greenhub.h"));
        }
        Err(e) => panic!("cbindgen failed: {e}"),
    }
}
