//! The page corpus beside the repository (`../shared/corpus/*.bin`, 4 KiB
//! pages of real memory) for the compressors' tests. Without it every read
//! gives no pages, and the tests that need it skip
//! (`kbase::testing::corpus_test`).

extern crate std;

use alloc::boxed::Box;
use alloc::vec::Vec;

use kbase::PAGE_SIZE;

/// How many pages [`corpus_pages`] reads, spread evenly over each file.
#[derive(Clone, Copy)]
pub(in crate::compress) enum Take {
    /// Up to this many from each file.
    PerFile(usize),
    /// Up to this many in all, the same share from each file.
    Total(usize),
}

/// Reads pages spread over the corpus files (in name order), as `take`
/// says; none if the corpus is absent.
pub(in crate::compress) fn corpus_pages(take: Take) -> Vec<Box<[u8; PAGE_SIZE]>> {
    let mut pages = Vec::new();
    let Ok(dir) = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus"
    )) else {
        return pages;
    };
    let mut files: Vec<_> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    let per_file = match take {
        Take::PerFile(n) => n,
        Take::Total(n) => n / files.len().max(1),
    };
    for f in files {
        let Ok(data) = std::fs::read(&f) else {
            continue;
        };
        let n = data.len() / PAGE_SIZE;
        let step = (n / per_file.max(1)).max(1);
        for chunk in data.chunks_exact(PAGE_SIZE).step_by(step).take(per_file) {
            let mut p = Box::new([0u8; PAGE_SIZE]);
            p.copy_from_slice(chunk);
            pages.push(p);
        }
    }
    pages
}
