//! include/zswap.h is cbindgen's rendering of this crate: this test fails
//! when the checked-in header is stale. `ZSWAP_BLESS=1` rewrites it.

use std::path::PathBuf;

#[test]
fn header_is_current() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../../include/zswap.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen renders the crate");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    if std::env::var_os("ZSWAP_BLESS").is_some() {
        std::fs::write(&header, &fresh).expect("write include/zswap.h");
        return;
    }
    let old = std::fs::read(&header).unwrap_or_default();
    assert!(
        old == fresh,
        "include/zswap.h is stale: regenerate it with \
         `ZSWAP_BLESS=1 cargo test -p zswap-capi --test header` and commit it"
    );
}
