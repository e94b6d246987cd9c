//! Hands the target triple to the C test (tests/c_abi.rs), which compiles
//! its C program for the same target through the cc crate.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    println!("cargo::rustc-env=ZSWAP_CAPI_TARGET={target}");
    println!("cargo::rustc-env=ZSWAP_CAPI_HOST={host}");
    println!("cargo::rerun-if-changed=build.rs");
}
