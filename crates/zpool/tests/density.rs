//! Density targets: pool bytes / object bytes after a fill, and after freeing
//! a random half and letting the pool's shrinker (count/scan, as reclaim
//! calls it) give pages back. On the real page corpus (LZ4 sizes, when
//! present): <= 1.012 and <= 1.04. On the synthetic fallback distribution
//! (larger objects on average, 2 % of them whole pages): <= 1.02 and <= 1.05.
#![cfg(not(loom))]

use std::path::PathBuf;

use kbase::{Gfp, HeapPageAllocator, PAGE_SIZE, is_same_filled};
use zpool::{Handle, ZsPool};

const CORPUS_FILL_TARGET: f64 = 1.012;
const CORPUS_HALF_TARGET: f64 = 1.04;
const SYNTHETIC_FILL_TARGET: f64 = 1.02;
const SYNTHETIC_HALF_TARGET: f64 = 1.05;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ratio(p: &ZsPool<&HeapPageAllocator>) -> f64 {
    let st = p.stats();
    (st.pages * PAGE_SIZE) as f64 / st.bytes_stored as f64
}

/// Fills a pool with `sizes`, frees a random half, runs the shrinker until it
/// has nothing to give; returns the ratios after the fill and after the
/// shrinker.
fn fill_free_half_compact(sizes: &[usize]) -> (f64, f64) {
    let a = HeapPageAllocator::new();
    let p = ZsPool::new(&a).unwrap();
    let mut hs: Vec<Handle> = sizes
        .iter()
        .map(|&s| p.malloc(s, Gfp::KERNEL).unwrap())
        .collect();
    let fill = ratio(&p);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in (1..hs.len()).rev() {
        hs.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let keep = hs.split_off(hs.len() / 2);
    for h in hs {
        p.free(h).unwrap();
    }
    let mut scans = 0;
    while p.shrinker_count() > 0 && p.shrinker_scan(128) > 0 {
        scans += 1;
        assert!(scans < 10_000);
    }
    assert!(p.stats().pages_compacted > 0);
    let half = ratio(&p);
    for h in keep {
        p.free(h).unwrap();
    }
    assert_eq!(a.allocated_pages(), 0);
    (fill, half)
}

/// Sizes shaped like LZ4-compressed anonymous memory: mostly 300..2500
/// bytes around 1300, a tail of small objects, and 2% incompressible pages.
fn synthetic_sizes(n: usize) -> Vec<usize> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    (0..n)
        .map(|_| match rng.below(100) {
            0..=1 => PAGE_SIZE,
            2..=6 => 16 + rng.below(300) as usize,
            _ => {
                let s: u64 = (0..4).map(|_| rng.below(900)).sum();
                (s as usize + 100).min(PAGE_SIZE)
            }
        })
        .collect()
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// LZ4 block sizes of every page of the corpus (same-filled pages skipped,
/// incompressible ones stored raw), or None when the corpus is absent.
fn corpus_sizes() -> Option<Vec<usize>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    if files.is_empty() {
        return None;
    }
    let mut sizes = Vec::new();
    for f in files {
        let data = std::fs::read(&f).ok()?;
        for page in data.chunks_exact(PAGE_SIZE) {
            if is_same_filled(page).is_some() {
                continue;
            }
            let n = lz4_flex::block::compress(page).len();
            sizes.push(n.min(PAGE_SIZE));
        }
    }
    Some(sizes)
}

#[test]
#[cfg_attr(miri, ignore = "too slow under miri")]
fn synthetic_density_meets_targets() {
    let sizes = synthetic_sizes(16_000);
    let (fill, half) = fill_free_half_compact(&sizes);
    println!("synthetic: fill {fill:.4}, after free-half+shrinker {half:.4}");
    assert!(fill <= SYNTHETIC_FILL_TARGET, "fill ratio {fill:.4}");
    assert!(half <= SYNTHETIC_HALF_TARGET, "free-half ratio {half:.4}");
}

#[test]
#[cfg_attr(miri, ignore = "reads files; too slow under miri")]
fn corpus_density_meets_targets() {
    let sizes = corpus_sizes();
    if !kbase::testing::corpus_test("corpus_density_meets_targets", sizes.as_ref().map(Vec::len)) {
        return;
    }
    let Some(sizes) = sizes else { return };
    let (fill, half) = fill_free_half_compact(&sizes);
    println!(
        "corpus ({} objects): fill {fill:.4}, after free-half+shrinker {half:.4}",
        sizes.len()
    );
    assert!(fill <= CORPUS_FILL_TARGET, "fill ratio {fill:.4}");
    assert!(half <= CORPUS_HALF_TARGET, "free-half ratio {half:.4}");
}
