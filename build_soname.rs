//! The SONAME link beside a cargo-built shared library, shared by the build scripts of
//! both workspace crates (build.rs, patch/build.rs).

use std::env;
use std::path::{Path, PathBuf};

/// Makes `<lib>.<major>` -> `<lib>` in the directory cargo puts the library in
/// (target/<profile>, or target/<triple>/<profile>): three levels above OUT_DIR
/// (<that dir>/build/<package>-<hash>/out). The link may exist before the library
/// does; cargo writes the library after this script runs.
pub fn link(lib: &str, major: &str) {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let Some(dir) = out.ancestors().nth(3) else {
        return;
    };
    let link = dir.join(format!("{lib}.{major}"));
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new(lib)) {
        return;
    }
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink(lib, &link) {
        println!("cargo:warning=cannot make {}: {e}", link.display());
    }
}
