//! Links the kernel at the QEMU `virt` machine's RAM with
//! `link-riscv64.ld` or `link-aarch64.ld`.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("riscv64") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link-riscv64.ld");
    } else if target.starts_with("aarch64") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link-aarch64.ld");
    }
    println!("cargo:rerun-if-changed=link-riscv64.ld");
    println!("cargo:rerun-if-changed=link-aarch64.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
