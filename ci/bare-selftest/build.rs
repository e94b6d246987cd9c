//! Links the bare-metal images at the QEMU `virt` machines' RAM with this
//! package's linker scripts (riscv64 and aarch64; x86_64 runs as a Linux
//! process and keeps the default layout).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    let script = if target.starts_with("riscv64") {
        Some("link-riscv64.ld")
    } else if target.starts_with("aarch64") && target.ends_with("-none") {
        Some("link-aarch64.ld")
    } else {
        None
    };
    if let Some(script) = script {
        println!("cargo:rustc-link-arg-bins=-T{dir}/{script}");
    }
    println!("cargo:rerun-if-changed=link-riscv64.ld");
    println!("cargo:rerun-if-changed=link-aarch64.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
