//! libgreenhub_patch.so carries its own SONAME (like libgreenhub.so.MAJOR), so programs
//! linked against it record the ABI they were built for.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgreenhub_patch.so.{major}");
    }
}
