//! Page files (`fill = "pages:FILE"`) of any size and content, through the
//! same reader as a scenario's: fewer than 4096 bytes is an error; otherwise
//! every generated page is one of the file's whole pages and verifies.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use zswap_sim::fill::{Fill, PageFile};

const PAGE: usize = 4096;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        std::env::temp_dir().join(format!("zswap-fuzz-pages-{}.bin", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("write the scratch page file");
    let loaded = PageFile::load(path);
    let from_bytes = PageFile::from_bytes(path, data.to_vec());
    if data.len() < PAGE {
        assert!(loaded.is_err() && from_bytes.is_err());
        return;
    }
    let f = loaded.expect("a regular file with a whole page loads");
    let whole = data.len() / PAGE;
    assert_eq!(f.nr_pages(), whole);
    assert_eq!(from_bytes.expect("same bytes").nr_pages(), whole);
    let fill = Fill::Pages(Arc::new(f));
    let mut out = [0u8; PAGE];
    // A few pages, versions and regions, including wrapping arithmetic.
    for (region, index, version) in [
        (0u32, 0u64, 0u32),
        (1, 1, 0),
        (2, whole as u64, 1),
        (u32::MAX, u64::MAX, u32::MAX),
        (7, data[0] as u64 * 977, data[data.len() - 1] as u32),
    ] {
        fill.generate(1, region, index, version, &mut out);
        assert!(
            data.chunks_exact(PAGE).any(|p| p == out),
            "a generated page is a page of the file"
        );
        assert!(fill.verify(1, region, index, version, &out));
    }
});
