//! What the benches share: pages (the corpus or synthetic ones), a
//! minimal platform with one or more CPUs, swap-cache folios, CPU time.
//!
//! The platform: memory cgroups disabled (`memcg_tree` is `None`), a pool
//! limit far above what a bench stores, slots that are never freed behind
//! zswap's back. Each bench thread says which CPU it is ([`set_cpu`]), so
//! per-CPU state (compression contexts) is per thread, as on a kernel where
//! each thread runs on its own CPU.

#![allow(dead_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};

use kbase::{CpuInfo, Gfp, HeapPageAllocator, PAGE_SIZE, PageAllocator, Result};
use memcg::MemcgTree;
use swapcache::{Folio, FolioRef, MemBackend, SwapBackend, SwapPlatform, SwapSpace, SwpEntry};
use zswap_core::{CompressorKind, Zswap, ZswapParams, ZswapPlatform};

pub type Page = Box<[u8; PAGE_SIZE]>;

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

/// This thread's CPU time: time spent preempted by other processes does not
/// count.
#[cfg(target_os = "linux")]
pub fn thread_cpu_ns() -> u64 {
    clock_ns(3) // CLOCK_THREAD_CPUTIME_ID
}

/// This process's CPU time (all threads).
#[cfg(target_os = "linux")]
pub fn process_cpu_ns() -> u64 {
    clock_ns(2) // CLOCK_PROCESS_CPUTIME_ID
}

#[cfg(target_os = "linux")]
fn clock_ns(clock: i32) -> u64 {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec with the C layout of 64-bit
    // Linux; clock_gettime only writes it.
    let rc = unsafe { clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Elsewhere: wall time since the first call.
#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// Elsewhere: wall time since the first call.
#[cfg(not(target_os = "linux"))]
pub fn process_cpu_ns() -> u64 {
    thread_cpu_ns()
}

/// Runs `f` and returns its thread CPU time in nanoseconds.
pub fn cpu_time(f: impl FnOnce()) -> f64 {
    let t = thread_cpu_ns();
    f();
    (thread_cpu_ns() - t) as f64
}

// ---------------------------------------------------------------------------
// A minimal platform
// ---------------------------------------------------------------------------

/// The page allocator of the benches that do not count memory.
pub fn heap_pages() -> &'static HeapPageAllocator {
    static ALLOC: std::sync::OnceLock<HeapPageAllocator> = std::sync::OnceLock::new();
    ALLOC.get_or_init(HeapPageAllocator::new)
}

/// A page allocator with per-CPU page lists in front of the heap one, as
/// the kernel's page allocator has (`per_cpu_pages`): a page freed on a CPU
/// is reused by that CPU's next allocation, with no lock another CPU takes.
/// Without it, pages a zswap frees on one thread go back to the C heap of
/// the thread that allocated them, under that heap's lock, and two threads
/// freeing pool pages wait on each other there, which is no part of zswap.
pub struct PcpPages {
    cpus: Vec<CpuPages>,
}

/// One CPU's page list, on cache lines of its own: a kernel's
/// `per_cpu_pages` live in per-CPU memory, so one CPU's list lock never
/// shares a line with another's (two `Mutex<Vec>` side by side would, and
/// every page free on one CPU would then pull the other CPU's lock line).
#[repr(align(128))]
struct CpuPages(std::sync::Mutex<Vec<kbase::PageFrame>>);

// SAFETY: every frame comes from `heap_pages()` and is handed out once:
// a frame is either on exactly one list or owned by the caller.
unsafe impl PageAllocator for PcpPages {
    fn alloc_page(&self, gfp: Gfp) -> Result<kbase::PageFrame> {
        let cpu = CPU.with(|c| c.get()) % self.cpus.len();
        match self.cpus[cpu].0.lock().unwrap().pop() {
            Some(mut p) => {
                if gfp.contains(Gfp::ZERO) {
                    p.as_mut_slice().fill(0);
                }
                Ok(p)
            }
            None => heap_pages().alloc_page(gfp),
        }
    }

    unsafe fn free_page(&self, page: kbase::PageFrame) {
        let cpu = CPU.with(|c| c.get()) % self.cpus.len();
        self.cpus[cpu].0.lock().unwrap().push(page);
    }
}

/// The per-CPU-list page allocator of the speed benches (up to 8 CPUs).
pub fn pcp_pages() -> &'static PcpPages {
    static P: std::sync::OnceLock<PcpPages> = std::sync::OnceLock::new();
    P.get_or_init(|| PcpPages {
        cpus: (0..8)
            .map(|_| CpuPages(std::sync::Mutex::new(Vec::new())))
            .collect(),
    })
}

pub struct BenchSwap {
    pages: &'static dyn PageAllocator,
}

impl SwapPlatform for BenchSwap {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.pages
    }
    fn charge_swapin(&self, _folio: &Folio, _entry: SwpEntry, _gfp: Gfp) -> Result<()> {
        Ok(())
    }
    fn slot_freed(&self, _entry: SwpEntry) {
        // The benches never free a slot that zswap still holds.
    }
    fn swapcache_wait(&self, _entry: SwpEntry, _attempt: u32) -> Result<()> {
        kbase::sync::cpu_relax();
        Ok(())
    }
}

thread_local! {
    static CPU: Cell<usize> = const { Cell::new(0) };
}

/// Says that the calling thread runs on CPU `cpu`.
pub fn set_cpu(cpu: usize) {
    CPU.with(|c| c.set(cpu));
}

/// `nr` CPUs; each thread is the CPU it said it is with [`set_cpu`].
pub struct BenchCpus {
    nr: usize,
}

impl CpuInfo for BenchCpus {
    fn current_cpu(&self) -> usize {
        // A kernel reads its CPU number from a per-CPU register; no
        // division on the common path (a CPU said to be `nr` or more is
        // folded into range).
        let c = CPU.with(|c| c.get());
        if c < self.nr { c } else { c % self.nr }
    }
    fn nr_cpus(&self) -> usize {
        self.nr
    }
}

pub struct BenchPlatform {
    cpu: BenchCpus,
    pages: &'static dyn PageAllocator,
    pub swap: SwapSpace<BenchSwap>,
    backend: MemBackend,
}

impl ZswapPlatform for BenchPlatform {
    type Swap = BenchSwap;
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.pages
    }
    fn cpu(&self) -> &dyn CpuInfo {
        &self.cpu
    }
    fn totalram_pages(&self) -> u64 {
        // 64 GiB: the 20 % pool limit is never reached here.
        1 << 24
    }
    fn swap_space(&self) -> &SwapSpace<BenchSwap> {
        &self.swap
    }
    fn backend(&self) -> &dyn SwapBackend {
        &self.backend
    }
    fn memcg_tree(&self) -> Option<&MemcgTree> {
        None
    }
    fn queue_shrink_work(&self) {}
}

/// A platform over `pages` with `nr_cpus` CPUs.
pub fn new_platform(pages: &'static dyn PageAllocator, nr_cpus: usize) -> BenchPlatform {
    BenchPlatform {
        cpu: BenchCpus { nr: nr_cpus.max(1) },
        pages,
        swap: SwapSpace::new(BenchSwap { pages }),
        backend: MemBackend::new(),
    }
}

/// zswap's parameters with compressor `kind`.
pub fn params(kind: CompressorKind) -> ZswapParams {
    ZswapParams {
        compressor: kind,
        ..ZswapParams::default()
    }
}

/// A zswap over `pages` with `nr_cpus` CPUs, compressor `kind` and one swap
/// device of `nr_slots` slots.
pub fn new_zswap_on(
    pages: &'static dyn PageAllocator,
    kind: CompressorKind,
    nr_cpus: usize,
    nr_slots: u64,
) -> Zswap<BenchPlatform> {
    let platform = new_platform(pages, nr_cpus);
    let zswap = Zswap::new(platform, params(kind), Gfp::KERNEL).expect("zswap");
    let ty = zswap
        .platform()
        .swap
        .swapon(nr_slots, Gfp::KERNEL)
        .expect("swapon");
    zswap.swapon(ty, nr_slots).expect("zswap swapon");
    zswap
}

/// [`new_zswap_on`] over the per-CPU-list page allocator ([`PcpPages`]).
pub fn new_zswap(kind: CompressorKind, nr_cpus: usize, nr_slots: u64) -> Zswap<BenchPlatform> {
    new_zswap_on(pcp_pages(), kind, nr_cpus, nr_slots)
}

/// A locked single-page folio holding `page`, in the swap cache (the state
/// `store` expects from reclaim).
pub fn swapcache_folio(zswap: &Zswap<BenchPlatform>, page: &[u8; PAGE_SIZE]) -> FolioRef {
    let folio = Folio::alloc(zswap.platform().page_allocator(), 1, Gfp::KERNEL).expect("folio");
    folio
        .with_page_mut(0, |p| p.copy_from_slice(page))
        .expect("page 0");
    zswap
        .platform()
        .swap
        .add_to_swap(&folio, Gfp::KERNEL)
        .expect("add_to_swap");
    folio.lock();
    folio
}

// ---------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------

/// The page corpus beside the repository (`../shared/corpus`).
pub const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

pub struct CorpusFile {
    pub name: String,
    pub pages: Vec<Page>,
    /// The corpus README's C lz4 ratio for the file, if it gives one.
    pub reference: Option<f64>,
}

pub struct Corpus {
    pub files: Vec<CorpusFile>,
    pub synthetic: bool,
}

impl Corpus {
    /// Every page of every file, in order.
    pub fn all(&self) -> Vec<&Page> {
        self.files.iter().flat_map(|f| f.pages.iter()).collect()
    }

    /// A one-line description of where the pages came from.
    pub fn source(&self) -> String {
        if self.synthetic {
            "synthetic pages (no corpus)".to_string()
        } else {
            format!("corpus of {} files", self.files.len())
        }
    }
}

/// Per-file lz4 ratios from the corpus README's table.
fn readme_ratios(dir: &Path) -> Vec<(String, f64)> {
    let Ok(text) = std::fs::read_to_string(dir.join("README.md")) else {
        return Vec::new();
    };
    let mut header: Option<usize> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let Some(col) = cells.iter().position(|c| *c == "lz4 ratio") {
            header = Some(col);
            continue;
        }
        let Some(col) = header else { continue };
        if let (Some(name), Some(Ok(v))) = (cells.get(1), cells.get(col).map(|v| v.parse::<f64>()))
        {
            out.push((name.to_string(), v));
        }
    }
    out
}

/// The `*.bin` files of the corpus directory `dir`, in name order; `None`
/// if the directory cannot be read.
pub fn corpus_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    Some(files)
}

/// `../shared/corpus/*.bin` (or `ZSWAP_CORPUS_DIR`), else synthetic pages.
pub fn load_corpus() -> Corpus {
    let dir = std::env::var_os("ZSWAP_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CORPUS_DIR));
    let ratios = readme_ratios(&dir);
    let mut files = Vec::new();
    if let Some(paths) = corpus_files(&dir) {
        for p in paths {
            let Ok(data) = std::fs::read(&p) else {
                continue;
            };
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let pages: Vec<Page> = data
                .chunks_exact(PAGE_SIZE)
                .map(|c| Box::new(<[u8; PAGE_SIZE]>::try_from(c).unwrap()))
                .collect();
            if pages.is_empty() {
                continue;
            }
            let reference = ratios.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
            files.push(CorpusFile {
                name,
                pages,
                reference,
            });
        }
    }
    if !files.is_empty() {
        return Corpus {
            files,
            synthetic: false,
        };
    }
    Corpus {
        files: vec![CorpusFile {
            name: "synthetic".to_string(),
            pages: synthetic_pages(4096),
            reference: None,
        }],
        synthetic: true,
    }
}

/// Heap-like words, text and some zero pages, when there is no corpus.
pub fn synthetic_pages(n: usize) -> Vec<Page> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let mut p: Page = Box::new([0u8; PAGE_SIZE]);
            match i % 8 {
                0 => {}
                1..=3 => {
                    let words = b"fn store load invalidate writeback pool entry tree lru ";
                    for (j, b) in p.iter_mut().enumerate() {
                        *b = words[(j + (rng.next() % 7) as usize) % words.len()];
                    }
                }
                _ => {
                    for w in p.chunks_exact_mut(8) {
                        let r = rng.next();
                        let v = match r % 4 {
                            0 => 0,
                            1 => 0x0000_5555_0000_0000 | ((r >> 40) << 4),
                            2 => r % 100,
                            _ => r,
                        };
                        w.copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            p
        })
        .collect()
}

/// `n` pages spread evenly over all files.
pub fn timed_subset(corpus: &Corpus, n: usize) -> Vec<Page> {
    let all = corpus.all();
    let step = (all.len() / n).max(1);
    all.iter()
        .step_by(step)
        .take(n)
        .map(|p| (*p).clone())
        .collect()
}

/// xorshift64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next number, reduced below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The `q` quantile (0..=1) of `v` (sorted in place).
pub fn quantile(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)] as f64
}
