//! The C ABI from C: builds the staticlib as a C kernel links it (profile
//! `capi`, panic = abort, the `c-runtime` feature: no std, the kernel's
//! allocator and panic hooks), compiles tests/c/capi_test.c against
//! include/zswap.h with the system C compiler (through the cc crate), links
//! the two and runs the program. The program implements the platform in C
//! over malloc'd pages, stores and loads 400 pages of four kinds, writes
//! some back (also from inside its swap-in charge hook, re-entering
//! zswap), checks every byte and the stats, uses one instance from four
//! threads and a shrinker thread at once, and walks the bad-argument paths;
//! it exits non-zero on the first failed checks.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// Builds libzswap_capi.a the way the header says and returns its path.
fn build_staticlib(root: &Path, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", "zswap-capi", "--profile", "capi"])
        .args(["--features", "c-runtime", "--offline", "--target-dir"])
        .arg(target_dir)
        // Flags of an outer build (--cfg loom, coverage) are not the C
        // kernel's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    run(&mut cmd, "cargo build -p zswap-capi --profile capi");
    target_dir.join("capi").join("libzswap_capi.a")
}

#[test]
fn c_program_stores_loads_writes_back_and_rejects_bad_arguments() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.join("../..");
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let lib = build_staticlib(&root, &tmp.join("capi-target"));
    assert!(lib.exists(), "{} was not built", lib.display());

    let compiler = cc::Build::new()
        .target(env!("ZSWAP_CAPI_TARGET"))
        .host(env!("ZSWAP_CAPI_HOST"))
        .opt_level(1)
        .debug(true)
        .cargo_metadata(false)
        .warnings(true)
        .extra_warnings(true)
        .get_compiler();
    let exe = tmp.join("capi_test");
    let mut cmd = compiler.to_command();
    cmd.arg("-std=c11")
        .arg("-D_POSIX_C_SOURCE=200112L")
        .arg("-Werror")
        .arg("-I")
        .arg(root.join("include"))
        .arg(crate_dir.join("tests/c/capi_test.c"))
        .arg(&lib)
        .arg("-pthread")
        .arg("-o")
        .arg(&exe);
    run(&mut cmd, "cc tests/c/capi_test.c");

    let out = run(&mut Command::new(&exe), "capi_test");
    assert!(out.contains(": ok"), "unexpected output:\n{out}");
    eprint!("{out}");
}
