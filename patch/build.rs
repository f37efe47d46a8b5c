//! libgreenhub_patch.so carries its own SONAME (like libgreenhub.so.MAJOR), so programs
//! linked against it record the ABI they were built for; the libgreenhub_patch.so.MAJOR
//! link is made beside the library, as for libgreenhub.so (../build_soname.rs).

#[path = "../build_soname.rs"]
mod build_soname;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../build_soname.rs");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgreenhub_patch.so.{major}");
        build_soname::link("libgreenhub_patch.so", &major);
    }
}
