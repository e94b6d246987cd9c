//! zpool benchmarks, the pool against its own previous version
//! (`zpool_v1`: zsmalloc's 16-byte size classes, loads under the class
//! lock) in the same process.
//!
//! - Density (printed, not timed): pool bytes / object bytes after filling a
//!   pool with the lz4-compressed size of every page of ../shared/corpus
//!   (same-filled pages skipped, incompressible pages stored raw), then after
//!   freeing a random half and letting the pool's shrinker (count/scan, as
//!   reclaim calls it, never a direct `compact()`) give pages back; then the
//!   worst case seen over ten rounds of churn (free a random 20 %, store as
//!   many new objects) with no compaction, and after the shrinker. Synthetic
//!   sizes when the corpus is absent. The same for this pool with 2 and 4
//!   class shards, objects allocated on 2 and 4 CPUs in turn (what shards
//!   cost in memory). Metadata bytes per object, by component.
//! - `cycle/<v>/<size>`: malloc + write + read + free of one object in a
//!   pool already holding the corpus; `read/<v>/<size>`: one `read_with`
//!   (the load path: find, pin, hand out the segments, unpin);
//!   `load/<v>/<size>`: zswap's load of each of a batch of objects stored
//!   just before, oldest first, per object (`read_with` then `free` on the
//!   old pool, `read_and_free` on this one).
//!
//! Run: `cargo bench --bench zpool -- --quick`.

mod common;
#[allow(dead_code, unused_imports, clippy::all)]
mod zpool_v1;

use std::cell::Cell;
use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use kbase::{Gfp, HeapPageAllocator, PAGE_SIZE, is_same_filled};
use zpool::{Handle, METADATA_BYTES_PER_OBJECT, ZsConfig, ZsPool};

use common::Rng;

/// Objects per batch of the `load` rows.
const LOAD_BATCH: usize = 512;

fn corpus_sizes() -> Option<(String, Vec<usize>)> {
    let files = common::corpus_files(Path::new(common::CORPUS_DIR))?;
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

fn sizes() -> (String, Vec<usize>) {
    corpus_sizes().unwrap_or_else(|| ("synthetic (corpus absent)".into(), synthetic_sizes(16_000)))
}

/// What the density runs need of a pool version.
trait Pool {
    fn malloc(&self, size: usize) -> u64;
    fn free(&self, h: u64);
    fn pages(&self) -> usize;
    fn bytes(&self) -> usize;
    /// Gives pages back the way the version can under memory pressure.
    fn reclaim(&self) -> usize;
}

impl Pool for ZsPool<&HeapPageAllocator> {
    fn malloc(&self, size: usize) -> u64 {
        ZsPool::malloc(self, size, Gfp::KERNEL)
            .expect("malloc")
            .to_raw()
    }
    fn free(&self, h: u64) {
        ZsPool::free(self, Handle::from_raw(h)).expect("free")
    }
    fn pages(&self) -> usize {
        self.total_pages()
    }
    fn bytes(&self) -> usize {
        self.stats().bytes_stored
    }
    /// The shrinker, in reclaim-sized batches, until it has nothing left.
    fn reclaim(&self) -> usize {
        let mut freed = 0;
        while self.shrinker_count() > 0 {
            let n = self.shrinker_scan(128);
            if n == 0 {
                break;
            }
            freed += n;
        }
        freed
    }
}

/// This pool with class shards, objects allocated on its CPUs in turn (as
/// zswap's stores on that many CPUs would place them).
struct OnCpus<'a> {
    pool: ZsPool<&'a HeapPageAllocator>,
    next: Cell<usize>,
}

impl<'a> OnCpus<'a> {
    fn new(a: &'a HeapPageAllocator, cpus: usize) -> Self {
        let cfg = ZsConfig {
            shards: cpus,
            ..ZsConfig::default()
        };
        OnCpus {
            pool: ZsPool::with_config(a, cfg).expect("pool"),
            next: Cell::new(0),
        }
    }
}

impl Pool for OnCpus<'_> {
    fn malloc(&self, size: usize) -> u64 {
        let cpu = self.next.get();
        self.next.set(cpu + 1);
        self.pool
            .malloc_on(cpu, size, Gfp::KERNEL)
            .expect("malloc")
            .to_raw()
    }
    fn free(&self, h: u64) {
        Pool::free(&self.pool, h)
    }
    fn pages(&self) -> usize {
        Pool::pages(&self.pool)
    }
    fn bytes(&self) -> usize {
        Pool::bytes(&self.pool)
    }
    fn reclaim(&self) -> usize {
        Pool::reclaim(&self.pool)
    }
}

impl Pool for zpool_v1::ZsPool<&HeapPageAllocator> {
    fn malloc(&self, size: usize) -> u64 {
        zpool_v1::ZsPool::malloc(self, size, Gfp::KERNEL)
            .expect("malloc")
            .to_raw()
    }
    fn free(&self, h: u64) {
        zpool_v1::ZsPool::free(self, zpool_v1::Handle::from_raw(h)).expect("free")
    }
    fn pages(&self) -> usize {
        self.total_pages()
    }
    fn bytes(&self) -> usize {
        self.stats().bytes_stored
    }
    /// The old pool had no shrinker: only a direct compact().
    fn reclaim(&self) -> usize {
        self.compact()
    }
}

fn ratio(p: &dyn Pool) -> f64 {
    (p.pages() * PAGE_SIZE) as f64 / p.bytes() as f64
}

/// Fill, free a random half, reclaim; then churn. Returns the printed row.
fn density_run(p: &dyn Pool, sizes: &[usize]) -> [f64; 5] {
    let mut hs: Vec<(u64, usize)> = sizes.iter().map(|&s| (p.malloc(s), s)).collect();
    let fill = ratio(p);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in (1..hs.len()).rev() {
        hs.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let keep = hs.split_off(hs.len() / 2);
    for (h, _) in hs {
        p.free(h);
    }
    let halved = ratio(p);
    p.reclaim();
    let after = ratio(p);
    // Churn: free a random 20 %, store as many objects of the corpus's
    // sizes, ten times, with no compaction; the worst density seen.
    let mut live = keep;
    let mut worst: f64 = 0.0;
    let mut next = 0;
    for _ in 0..10 {
        for _ in 0..live.len() / 5 {
            let i = rng.below(live.len() as u64) as usize;
            let (h, _) = live.swap_remove(i);
            p.free(h);
        }
        for _ in 0..live.len() / 4 {
            let s = sizes[next % sizes.len()];
            next += 7919;
            live.push((p.malloc(s), s));
        }
        worst = worst.max(ratio(p));
    }
    p.reclaim();
    let churned = ratio(p);
    for (h, _) in live {
        p.free(h);
    }
    [fill, halved, after, worst, churned]
}

fn density(_c: &mut Criterion) {
    let (name, sizes) = sizes();
    let total: usize = sizes.iter().sum();
    eprintln!(
        "zpool density, {name}: {} objects, {total} bytes (pool bytes / object bytes)",
        sizes.len()
    );
    eprintln!(
        "  {:<34} {:>7} {:>10} {:>10} {:>11} {:>10}",
        "", "fill", "half freed", "+shrinker", "churn worst", "+shrinker"
    );
    let a = HeapPageAllocator::new();
    let v1 = zpool_v1::ZsPool::new(&a).expect("pool");
    let r1 = density_run(&v1, &sizes);
    drop(v1);
    let b = HeapPageAllocator::new();
    let v2 = ZsPool::new(&b).expect("pool");
    let r2 = density_run(&v2, &sizes);
    // What class shards cost: the same with 2 and 4 shards, objects
    // allocated on 2 and 4 CPUs in turn.
    let c = HeapPageAllocator::new();
    let s2 = OnCpus::new(&c, 2);
    let r3 = density_run(&s2, &sizes);
    let classes2 = s2.pool.stats().metadata.classes;
    drop(s2);
    let s4 = OnCpus::new(&c, 4);
    let r4 = density_run(&s4, &sizes);
    let classes4 = s4.pool.stats().metadata.classes;
    drop(s4);
    assert_eq!(c.allocated_pages(), 0);
    for (label, r) in [
        ("before (16-byte classes, compact())", r1),
        ("now (byte-packed, shrinker scan)", r2),
        ("now, 2 shards (objects on 2 CPUs)", r3),
        ("now, 4 shards (objects on 4 CPUs)", r4),
    ] {
        eprintln!(
            "  {label:<34} {:>7.4} {:>10.4} {:>10.4} {:>11.4} {:>10.4}",
            r[0], r[1], r[2], r[3], r[4]
        );
    }
    eprintln!(
        "  targets (corpus): fill <= 1.012, half freed + shrinker <= 1.04: {} / {}",
        if r2[0] <= 1.012 { "met" } else { "MISSED" },
        if r2[2] <= 1.04 { "met" } else { "MISSED" }
    );
    eprintln!(
        "  class array: {} B with 1 shard, {classes2} B with 2, {classes4} B with 4",
        v2.stats().metadata.classes
    );
    assert_eq!(b.allocated_pages(), 0);

    // Metadata by component after the fill, and after the half is freed
    // and the shrinker ran.
    let hs: Vec<Handle> = sizes
        .iter()
        .map(|&s| v2.malloc(s, Gfp::KERNEL).expect("malloc"))
        .collect();
    let show = |when: &str, p: &ZsPool<&HeapPageAllocator>| {
        let st = p.stats();
        let n = st.objects as f64;
        let m = st.metadata;
        eprintln!(
            "  metadata {when}: {:.2} B/object = handles {:.2} + reverse maps {:.2} + descriptors {:.2} + page vectors {:.2} + classes {:.2} (layout minimum {METADATA_BYTES_PER_OBJECT})",
            m.total() as f64 / n,
            m.handles as f64 / n,
            m.reverse_maps as f64 / n,
            m.descriptors as f64 / n,
            m.page_vectors as f64 / n,
            m.classes as f64 / n,
        );
    };
    show("after fill", &v2);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut hs = hs;
    for i in (1..hs.len()).rev() {
        hs.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let keep = hs.split_off(hs.len() / 2);
    for h in hs {
        v2.free(h).expect("free");
    }
    Pool::reclaim(&v2);
    show("after half freed + shrinker", &v2);
    for h in keep {
        v2.free(h).expect("free");
    }
}

fn speed(c: &mut Criterion) {
    let (_, corpus) = sizes();
    let src: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 31) as u8).collect();
    let a = HeapPageAllocator::new();
    let b = HeapPageAllocator::new();
    let v1 = zpool_v1::ZsPool::new(&a).expect("pool");
    let v2 = ZsPool::new(&b).expect("pool");
    // Pools holding the corpus, so the cycle works among real neighbours.
    let f1: Vec<_> = corpus
        .iter()
        .map(|&s| v1.malloc(s, Gfp::KERNEL).expect("malloc"))
        .collect();
    let f2: Vec<_> = corpus
        .iter()
        .map(|&s| v2.malloc(s, Gfp::KERNEL).expect("malloc"))
        .collect();
    let mut dst = vec![0u8; PAGE_SIZE];
    let mut g = c.benchmark_group("cycle");
    for size in [64usize, 1300, 2000, PAGE_SIZE] {
        g.bench_with_input(BenchmarkId::new("before", size), &size, |bch, &size| {
            bch.iter(|| {
                let h = v1.malloc(size, Gfp::ZSWAP_POOL).expect("malloc");
                v1.write(h, &src[..size]).expect("write");
                let n = v1.read(h, &mut dst).expect("read");
                v1.free(h).expect("free");
                black_box(n)
            })
        });
        g.bench_with_input(BenchmarkId::new("now", size), &size, |bch, &size| {
            bch.iter(|| {
                let h = v2.malloc(size, Gfp::ZSWAP_POOL).expect("malloc");
                v2.write(h, &src[..size]).expect("write");
                let n = v2.read(h, &mut dst).expect("read");
                v2.free(h).expect("free");
                black_box(n)
            })
        });
    }
    g.finish();
    // zswap's load: objects stored earlier, each read and then freed
    // (`read_with` then `free` on the old pool, `read_and_free` on this
    // one), oldest first, so the freed object is anywhere in its
    // zspage's map (mostly low), not at its top.
    let mut g = c.benchmark_group("load");
    g.throughput(criterion::Throughput::Elements(LOAD_BATCH as u64));
    for size in [64usize, 1300] {
        g.bench_with_input(BenchmarkId::new("before", size), &size, |bch, &size| {
            bch.iter_batched(
                || {
                    (0..LOAD_BATCH)
                        .map(|_| {
                            let h = v1.malloc(size, Gfp::KERNEL).expect("malloc");
                            v1.write(h, &src[..size]).expect("write");
                            h
                        })
                        .collect::<Vec<_>>()
                },
                |hs| {
                    for h in hs {
                        black_box(v1.read_with(h, |x, y| x.len() + y.len()).expect("read"));
                        v1.free(h).expect("free");
                    }
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_with_input(BenchmarkId::new("now", size), &size, |bch, &size| {
            bch.iter_batched(
                || {
                    (0..LOAD_BATCH)
                        .map(|_| {
                            let h = v2.malloc(size, Gfp::KERNEL).expect("malloc");
                            v2.write(h, &src[..size]).expect("write");
                            h
                        })
                        .collect::<Vec<_>>()
                },
                |hs| {
                    // zswap's load on this pool: the read and the free in
                    // `read_and_free` (two class-lock holds in all).
                    for h in hs {
                        let n = v2.read_and_free(h, |x, y| Ok::<_, ()>(x.len() + y.len()));
                        black_box(n.expect("read").expect("reader"));
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    let mut g = c.benchmark_group("read");
    for size in [1300usize, 2000] {
        let h1 = v1.malloc(size, Gfp::KERNEL).expect("malloc");
        let h2 = v2.malloc(size, Gfp::KERNEL).expect("malloc");
        g.bench_with_input(BenchmarkId::new("before", size), &size, |bch, _| {
            bch.iter(|| black_box(v1.read_with(h1, |x, y| x.len() + y.len()).expect("read")))
        });
        g.bench_with_input(BenchmarkId::new("now", size), &size, |bch, _| {
            bch.iter(|| black_box(v2.read_with(h2, |x, y| x.len() + y.len()).expect("read")))
        });
        v1.free(h1).expect("free");
        v2.free(h2).expect("free");
    }
    g.finish();
    for h in f1 {
        v1.free(h).expect("free");
    }
    for h in f2 {
        v2.free(h).expect("free");
    }
}

criterion_group!(benches, density, speed);
criterion_main!(benches);
