//! zpool benchmarks.
//!
//! - Density (printed, not timed): pool bytes / object bytes after filling a
//!   pool with the LZ4-compressed size of every page of the corpus
//!   (same-filled pages skipped, incompressible pages stored raw), and after
//!   freeing a random half and compacting. Synthetic sizes when the corpus
//!   is absent. Also the metadata per object.
//! - `zpool_obj_cycle/<size>`: malloc + write + read + free of one object,
//!   next to `vec_cycle/<size>`: a `Vec<u8>` allocate + copy + copy out +
//!   free of the same size, measured in the same run.
//!
//! Run: `cargo bench --bench zpool -- --quick`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kbase::{Gfp, HeapPageAllocator, PAGE_SIZE, is_same_filled};
use zpool::{Handle, METADATA_BYTES_PER_OBJECT, ZsPool};

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn corpus_sizes() -> Option<(String, Vec<usize>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    let mut sizes = Vec::new();
    for f in &files {
        let data = std::fs::read(f).ok()?;
        for page in data.chunks_exact(PAGE_SIZE) {
            if is_same_filled(page).is_none() {
                sizes.push(lz4_flex::block::compress(page).len().min(PAGE_SIZE));
            }
        }
    }
    (!sizes.is_empty()).then(|| (format!("corpus ({} files)", files.len()), sizes))
}

fn synthetic_sizes(n: usize) -> Vec<usize> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    (0..n)
        .map(|_| match rng.below(100) {
            0..=1 => PAGE_SIZE,
            2..=6 => 16 + rng.below(300) as usize,
            _ => ((0..4).map(|_| rng.below(900)).sum::<u64>() as usize + 100).min(PAGE_SIZE),
        })
        .collect()
}

fn ratio(p: &ZsPool<&HeapPageAllocator>) -> f64 {
    let st = p.stats();
    (st.pages * PAGE_SIZE) as f64 / st.bytes_stored as f64
}

fn density(_c: &mut Criterion) {
    let (name, sizes) =
        corpus_sizes().unwrap_or_else(|| ("synthetic".into(), synthetic_sizes(16_000)));
    let a = HeapPageAllocator::new();
    let p = ZsPool::new(&a).expect("pool");
    let mut hs: Vec<Handle> = sizes
        .iter()
        .map(|&s| p.malloc(s, Gfp::KERNEL).expect("malloc"))
        .collect();
    let st = p.stats();
    let fill = ratio(&p);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in (1..hs.len()).rev() {
        hs.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let keep = hs.split_off(hs.len() / 2);
    for h in hs {
        p.free(h).expect("free");
    }
    let before = p.total_pages();
    let freed = p.compact();
    let half = ratio(&p);
    eprintln!(
        "zpool density, {name}: {} objects, {} bytes",
        sizes.len(),
        st.bytes_stored
    );
    eprintln!(
        "  after fill:               {} pages, pool bytes / object bytes = {fill:.4} (target <= 1.03)",
        st.pages
    );
    eprintln!(
        "  free half + compact:      {before} -> {} pages ({freed} freed), ratio = {half:.4} (target <= 1.05)",
        p.total_pages()
    );
    eprintln!(
        "  metadata per object:      {METADATA_BYTES_PER_OBJECT} bytes (handle entry 12 + reverse map 4); \
         measured heap metadata incl. descriptors and table slack: {:.1} bytes/object after fill",
        st.metadata_bytes as f64 / st.objects as f64
    );
    for h in keep {
        p.free(h).expect("free");
    }
}

fn obj_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("obj_cycle");
    for size in [64usize, 1300, 2000, PAGE_SIZE] {
        let src: Vec<u8> = (0..size).map(|i| (i * 31) as u8).collect();
        let mut dst = vec![0u8; PAGE_SIZE];
        let a = HeapPageAllocator::new();
        let p = ZsPool::new(&a).expect("pool");
        // Keep the class's zspage alive so the cycle measures the allocator,
        // not the page allocator.
        let anchor = p.malloc(size, Gfp::KERNEL).expect("malloc");
        g.bench_with_input(BenchmarkId::new("zpool", size), &size, |b, &size| {
            b.iter(|| {
                let h = p.malloc(size, Gfp::ZSWAP_POOL).expect("malloc");
                p.write(h, &src).expect("write");
                let n = p.read(h, &mut dst).expect("read");
                p.free(h).expect("free");
                black_box(n)
            })
        });
        g.bench_with_input(BenchmarkId::new("vec", size), &size, |b, &size| {
            b.iter(|| {
                let mut v: Vec<u8> = Vec::with_capacity(black_box(size));
                v.extend_from_slice(&src);
                let v = black_box(v);
                dst[..size].copy_from_slice(&v);
                drop(v);
                black_box(dst[0])
            })
        });
        p.free(anchor).expect("free");
    }
    g.finish();
}

criterion_group!(benches, density, obj_cycle);
criterion_main!(benches);
