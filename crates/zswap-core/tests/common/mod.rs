//! A tiny simulated kernel for zswap's tests: it owns the swap space, the
//! cgroup tree, an in-memory swap device and zswap, and wires the platform
//! hooks the way a kernel does:
//!
//! - the swap platform's `slot_freed` reaches `Zswap::invalidate` through a
//!   `Weak<Kernel>` set once the kernel exists (no reference cycle: the
//!   kernel owns the swap space, the swap space's platform only a `Weak`);
//! - its `charge_swapin` sets the folio's cgroup from the swap-cgroup record
//!   and, when asked, runs reclaim (`Zswap::shrink_memcg`) the way a charge
//!   over `memory.max` does: the fault-plus-reclaim recursion;
//! - zswap's platform holds `Arc`s of the swap space, the cgroup tree and
//!   the device, and records queued shrink work.
//!
//! The "mm" side (swap-out, swap-in, process exit) is written here with the
//! swapcache crate's real calls, in the order Linux's reclaim and fault paths
//! use them.
#![allow(dead_code)]

use std::boxed::Box;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::vec::Vec;

use kbase::{
    CpuInfo, Error, FaultInjector, Gfp, HeapPageAllocator, PAGE_SIZE, PageAllocator, Result,
};
use memcg::{MemcgRef, MemcgTree};
use swapcache::{
    Folio, FolioRef, MemBackend, SwapBackend, SwapEvent, SwapPlatform, SwapSpace, SwpEntry,
};
use zswap_core::{Zswap, ZswapEvent, ZswapParams, ZswapPlatform};

/// A trace hook: runs at zswap's trace points.
pub type Hook = Arc<dyn Fn(&Kernel, ZswapEvent) + Send + Sync>;
/// A hook on a swap slot.
pub type SlotHook = Arc<dyn Fn(&Kernel, SwpEntry) + Send + Sync>;
/// The node of a page frame (`page_to_nid`), by its contents or address.
pub type NodeOf = Arc<dyn Fn(&[u8; PAGE_SIZE]) -> usize + Send + Sync>;

/// The swap core's platform.
pub struct SwapPlat {
    alloc: &'static dyn PageAllocator,
    kernel: OnceLock<Weak<Kernel>>,
    /// Run `shrink_memcg` on the faulting cgroup from the next this many
    /// charges (reclaim inside reclaim does not recurse further, as
    /// PF_MEMALLOC ensures in Linux).
    pub reclaim_on_charge: AtomicUsize,
    /// Results of those reclaim runs.
    pub reclaim_results: Mutex<Vec<Result<()>>>,
    /// `swapcache_wait` gives up with EDEADLK after this many waits (a
    /// simulator's recursion detector; 0 = wait forever). Past the first
    /// few, each wait yields the thread.
    pub wait_limit: AtomicU32,
    /// Number of `slot_freed` calls.
    pub slots_freed: AtomicUsize,
    /// Runs at the start of `slot_freed`, before zswap hears of it: the
    /// window in which another CPU may already reuse the slot.
    pub on_slot_freed: Mutex<Option<SlotHook>>,
    /// Addresses of the folios `charge_swapin` charged, in order.
    pub charged: Mutex<Vec<usize>>,
    /// Runs once in `Kernel::swap_in` when it found a folio already in the
    /// swap cache, before it locks it: the window in which that folio may
    /// leave the cache and another fault cache a new one.
    pub on_swapin_cached: Mutex<Option<SlotHook>>,
}

impl SwapPlat {
    fn kernel(&self) -> Option<Arc<Kernel>> {
        self.kernel.get()?.upgrade()
    }
}

impl SwapPlatform for SwapPlat {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.alloc
    }

    fn charge_swapin(&self, folio: &Folio, entry: SwpEntry, _gfp: Gfp) -> Result<()> {
        let Some(k) = self.kernel() else {
            return Ok(());
        };
        let id = k.swap.lookup_swap_cgroup_id(entry);
        folio.set_memcg_id(id);
        self.charged
            .lock()
            .unwrap()
            .push(folio as *const Folio as usize);
        if self
            .reclaim_on_charge
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
            && let Some(m) = k.memcg.as_ref().and_then(|t| t.get(id))
        {
            let r = k.zswap.shrink_memcg(&m);
            self.reclaim_results.lock().unwrap().push(r);
        }
        Ok(())
    }

    fn slot_freed(&self, entry: SwpEntry) {
        self.slots_freed.fetch_add(1, Ordering::Relaxed);
        let hook = self.on_slot_freed.lock().unwrap().take();
        if let (Some(h), Some(k)) = (hook, self.kernel()) {
            h(&k, entry);
        }
        if let Some(k) = self.kernel() {
            k.zswap.invalidate(entry);
            k.backend.discard(entry);
        }
    }

    fn count_event(&self, folio: &Folio, ev: SwapEvent, nr: u64) {
        let Some(k) = self.kernel() else {
            return;
        };
        if let Some(m) = k.memcg.as_ref().and_then(|t| t.get(folio.memcg_id())) {
            let ev = match ev {
                SwapEvent::SwpinZero => memcg::MemcgEvent::SwpinZero,
                SwapEvent::SwpoutZero => memcg::MemcgEvent::SwpoutZero,
            };
            m.count_event(ev, nr);
        }
    }

    fn swapcache_wait(&self, _entry: SwpEntry, attempt: u32) -> Result<()> {
        let limit = self.wait_limit.load(Ordering::Relaxed);
        if limit != 0 && attempt >= limit {
            return Err(Error::EDEADLK);
        }
        // The slot's owner is another thread between prepare and insert.
        // On a loaded machine it may be off CPU for a whole time slice, so
        // give the CPU away instead of spinning through the limit in
        // microseconds (a spurious EDEADLK).
        // (Under loom every wait is loom's own yield.)
        if cfg!(loom) || attempt < 16 {
            kbase::sync::cpu_relax();
        } else {
            std::thread::yield_now();
        }
        Ok(())
    }
}

/// zswap's platform.
pub struct ZPlat {
    alloc: &'static dyn PageAllocator,
    /// The CPUs (one unless configured; switchable current CPU, hotplug).
    pub cpus: TestCpus,
    totalram: u64,
    swap: Arc<SwapSpace<SwapPlat>>,
    backend: Arc<MemBackend>,
    memcg: Option<Arc<MemcgTree>>,
    kernel: OnceLock<Weak<Kernel>>,
    /// Times the shrink worker was queued.
    pub queued: AtomicUsize,
    hook: Mutex<Option<Hook>>,
    /// `writeback_folio_done` calls: (folio address, folio still locked,
    /// folio still in the swap cache).
    pub wb_done: Mutex<Vec<WbDone>>,
    nr_nodes: usize,
    /// `page_to_nid`; node 0 for every page when unset.
    pub node_of: Mutex<Option<NodeOf>>,
}

/// One `writeback_folio_done` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WbDone {
    pub addr: usize,
    pub locked: bool,
    pub cached: bool,
}

impl ZswapPlatform for ZPlat {
    type Swap = SwapPlat;

    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.alloc
    }
    fn cpu(&self) -> &dyn CpuInfo {
        &self.cpus
    }
    fn totalram_pages(&self) -> u64 {
        self.totalram
    }
    fn swap_space(&self) -> &SwapSpace<SwapPlat> {
        &self.swap
    }
    fn backend(&self) -> &dyn SwapBackend {
        &*self.backend
    }
    fn memcg_tree(&self) -> Option<&MemcgTree> {
        self.memcg.as_deref()
    }
    fn queue_shrink_work(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }
    fn nr_nodes(&self) -> usize {
        self.nr_nodes
    }
    fn page_to_nid(&self, page: &[u8; PAGE_SIZE]) -> usize {
        let f = self.node_of.lock().unwrap().clone();
        f.map_or(0, |f| f(page))
    }
    fn writeback_folio_done(&self, folio: &Folio) {
        let locked = !folio.trylock();
        if !locked {
            folio.unlock();
        }
        self.wb_done.lock().unwrap().push(WbDone {
            addr: folio as *const Folio as usize,
            locked,
            cached: folio.swap().is_some(),
        });
    }
    fn trace(&self, ev: ZswapEvent) {
        let hook = self.hook.lock().unwrap().clone();
        if let (Some(h), Some(k)) = (hook, self.kernel.get().and_then(Weak::upgrade)) {
            // A hook acts out another CPU: the traced code's locks are not
            // its locks.
            kbase::sync::as_another_cpu(|| h(&k, ev));
        }
    }
}

/// The simulated kernel.
pub struct Kernel {
    pub alloc: &'static FaultInjector<HeapPageAllocator>,
    pub swap: Arc<SwapSpace<SwapPlat>>,
    pub memcg: Option<Arc<MemcgTree>>,
    pub backend: Arc<MemBackend>,
    pub zswap: Zswap<ZPlat>,
    pub swp_type: u32,
}

/// Configuration of a test kernel.
pub struct Config {
    pub totalram: u64,
    pub swap_pages: u64,
    pub memcg: bool,
    pub params: ZswapParams,
    /// NUMA nodes (LRU lists per cgroup).
    pub nr_nodes: usize,
    /// Possible CPUs, and how many of them (from CPU 0) are online at boot.
    pub nr_cpus: usize,
    pub online_cpus: usize,
}

/// The test platform's CPUs: the current CPU and which CPUs are online are
/// set by the test.
pub struct TestCpus {
    nr: usize,
    pub current: AtomicUsize,
    online: Vec<std::sync::atomic::AtomicBool>,
}

impl TestCpus {
    fn new(nr: usize, online: usize) -> TestCpus {
        TestCpus {
            nr: nr.max(1),
            current: AtomicUsize::new(0),
            online: (0..nr.max(1))
                .map(|c| std::sync::atomic::AtomicBool::new(c < online.max(1)))
                .collect(),
        }
    }

    /// Marks `cpu` online or offline (the kernel's hotplug state; zswap's
    /// hooks are called by the test).
    pub fn set_online(&self, cpu: usize, on: bool) {
        if let Some(o) = self.online.get(cpu) {
            o.store(on, Ordering::SeqCst);
        }
    }
}

impl CpuInfo for TestCpus {
    fn current_cpu(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }
    fn nr_cpus(&self) -> usize {
        self.nr
    }
    fn is_online(&self, cpu: usize) -> bool {
        self.online
            .get(cpu)
            .is_some_and(|o| o.load(Ordering::SeqCst))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            totalram: 1 << 16,
            swap_pages: 1024,
            memcg: true,
            nr_nodes: 1,
            nr_cpus: 1,
            online_cpus: 1,
            params: ZswapParams {
                shrinker_enabled: true,
                ..ZswapParams::default()
            },
        }
    }
}

impl Kernel {
    /// A kernel with one swap device switched on.
    pub fn new(cfg: Config) -> Arc<Kernel> {
        let alloc: &'static FaultInjector<HeapPageAllocator> =
            Box::leak(Box::new(FaultInjector::new(HeapPageAllocator::new())));
        let swap = Arc::new(SwapSpace::new(SwapPlat {
            alloc,
            kernel: OnceLock::new(),
            reclaim_on_charge: AtomicUsize::new(0),
            reclaim_results: Mutex::new(Vec::new()),
            wait_limit: AtomicU32::new(1000),
            slots_freed: AtomicUsize::new(0),
            on_slot_freed: Mutex::new(None),
            charged: Mutex::new(Vec::new()),
            on_swapin_cached: Mutex::new(None),
        }));
        let memcg = cfg
            .memcg
            .then(|| Arc::new(MemcgTree::new(Gfp::KERNEL).unwrap()));
        let backend = Arc::new(MemBackend::new());
        let zswap = Zswap::new(
            ZPlat {
                alloc,
                cpus: TestCpus::new(cfg.nr_cpus, cfg.online_cpus),
                totalram: cfg.totalram,
                swap: swap.clone(),
                backend: backend.clone(),
                memcg: memcg.clone(),
                kernel: OnceLock::new(),
                queued: AtomicUsize::new(0),
                hook: Mutex::new(None),
                wb_done: Mutex::new(Vec::new()),
                nr_nodes: cfg.nr_nodes,
                node_of: Mutex::new(None),
            },
            cfg.params,
            Gfp::KERNEL,
        )
        .unwrap();
        let swp_type = swap.swapon(cfg.swap_pages, Gfp::KERNEL).unwrap();
        zswap.swapon(swp_type, cfg.swap_pages).unwrap();
        let k = Arc::new(Kernel {
            alloc,
            swap,
            memcg,
            backend,
            zswap,
            swp_type,
        });
        let _ = k.swap.platform().kernel.set(Arc::downgrade(&k));
        let _ = k.zswap.platform().kernel.set(Arc::downgrade(&k));
        k
    }

    /// A default kernel.
    pub fn default_kernel() -> Arc<Kernel> {
        Kernel::new(Config::default())
    }

    pub fn sp(&self) -> &SwapPlat {
        self.swap.platform()
    }

    /// Installs a trace hook.
    pub fn set_hook(&self, h: Option<Hook>) {
        *self.zswap.platform().hook.lock().unwrap() = h;
    }

    /// The root cgroup, or a child created at `path`.
    pub fn cgroup(&self, path: &str) -> MemcgRef {
        let t = self.memcg.as_ref().expect("memcg enabled");
        t.lookup(path)
            .unwrap_or_else(|_| t.create(path, Gfp::KERNEL).unwrap())
    }

    /// Allocates a one-page folio holding `data`.
    pub fn page_folio(&self, data: &[u8; PAGE_SIZE]) -> FolioRef {
        let f = Folio::alloc(self.alloc, 1, Gfp::KERNEL).unwrap();
        f.with_page_mut(0, |p| p.copy_from_slice(data)).unwrap();
        f
    }

    /// Reclaim's swap-out of a folio (`swap_writeout`): slots + swap cache,
    /// cgroup record, the swap core's zeromap for a zero-filled folio (then
    /// zswap never sees it; `Err(ENOENT)` is returned as "not in zswap"),
    /// else `zswap_store`, else a device write; then the folio leaves the
    /// swap cache. The slots keep count 1 (the page-table reference).
    /// Returns the first slot and whether zswap took it.
    pub fn swap_out_folio(
        &self,
        folio: &FolioRef,
        memcg: Option<&MemcgRef>,
    ) -> (SwpEntry, Result<()>) {
        let id = memcg.map_or(0, |m| m.id());
        folio.set_memcg_id(id);
        folio.lock();
        let swp = self.swap.add_to_swap(folio, Gfp::KERNEL).unwrap();
        self.swap
            .swap_cgroup_record(swp, folio.nr_pages(), id)
            .unwrap();
        if self.swap.zeromap_folio_store(folio).unwrap() {
            self.swap.delete_from_swap_cache(folio);
            folio.unlock();
            return (swp, Err(Error::ENOENT));
        }
        let r = self.zswap.store(folio);
        if r.is_err() {
            for i in 0..folio.nr_pages() {
                folio
                    .with_page(i, |p| {
                        self.backend
                            .write_page(swp.checked_add(i as u64).unwrap(), p)
                    })
                    .unwrap()
                    .unwrap();
            }
        }
        self.swap.delete_from_swap_cache(folio);
        folio.unlock();
        (swp, r)
    }

    /// Swaps out one page of `data` charged to `memcg`.
    pub fn swap_out(
        &self,
        data: &[u8; PAGE_SIZE],
        memcg: Option<&MemcgRef>,
    ) -> (SwpEntry, Result<()>) {
        let f = self.page_folio(data);
        self.swap_out_folio(&f, memcg)
    }

    /// Swaps out one page of `data` charged to `memcg`, which zswap must
    /// store (the test fails where it does not); the page's slot.
    #[track_caller]
    pub fn swap_out_stored(&self, data: &[u8; PAGE_SIZE], memcg: Option<&MemcgRef>) -> SwpEntry {
        let (swp, r) = self.swap_out(data, memcg);
        r.unwrap();
        swp
    }

    /// A fault on `swp`: brings the page into the swap cache (from zswap or
    /// the device), then maps it: drops the slot's count and, if that was the
    /// last reference, the swap-cache folio too (which frees the slot). With
    /// references left the folio stays in the swap cache, dirty, holding the
    /// only copy (exclusive load). Returns the page, or the error.
    pub fn swap_in(&self, swp: SwpEntry) -> Result<Box<[u8; PAGE_SIZE]>> {
        // do_swap_page: the folio we map must still be the swap cache's
        // folio for `swp` once we hold its lock; retried otherwise (bounded
        // here, the kernel retries the fault).
        let mut folio = None;
        for _ in 0..10_000 {
            let (f, new) = self.swap.read_swap_cache_async(swp, Gfp::KERNEL, false)?;
            if new {
                self.fill_new_folio(&f, swp)?;
                folio = Some(f);
                break;
            }
            // Found in the swap cache: someone else brought it in (a
            // fault, or writeback). Between the lookup and our lock it may
            // have left the cache (writeback done) and another fault may
            // have cached a new folio for the slot.
            let hook = self.sp().on_swapin_cached.lock().unwrap().take();
            if let Some(h) = hook {
                h(self, swp);
            }
            f.lock();
            if !f.test_swapcache() || f.swap() != Some(swp) {
                f.unlock();
                kbase::sync::cpu_relax();
                continue;
            }
            if !f.test_uptodate() {
                f.unlock();
                return Err(Error::EIO);
            }
            folio = Some(f);
            break;
        }
        let folio = folio.ok_or(Error::EAGAIN)?;
        // Locked, uptodate, and the swap cache's folio for `swp`.
        let mut out = Box::new([0u8; PAGE_SIZE]);
        folio.with_page(0, |p| out.copy_from_slice(p)).unwrap();
        // Map it: the page table takes the page; the slot's reference goes,
        // and with the last one the folio leaves the swap cache
        // (folio_free_swap), all under the folio lock.
        let r = self.swap.swap_free(swp);
        if r.is_ok() && self.swap.swap_count(swp) == Ok(0) {
            self.swap.delete_from_swap_cache(&folio);
        }
        folio.unlock();
        r.map(|()| out)
    }

    /// `swap_read_folio` into a new swap-cache folio (locked): the zeromap,
    /// then zswap, then the device. On failure the folio leaves the swap
    /// cache and is unlocked; on success it stays locked.
    fn fill_new_folio(&self, folio: &Folio, swp: SwpEntry) -> Result<()> {
        let r = match self.swap.zeromap_folio_read(folio) {
            Ok(true) => Ok(()),
            Ok(false) => match self.zswap.load(folio) {
                Err(Error::ENOENT) => {
                    let r = folio
                        .with_page_mut(0, |p| self.backend.read_page(swp, p))
                        .unwrap_or(Err(Error::EIO));
                    if r.is_ok() {
                        folio.set_uptodate();
                        self.zswap.folio_swapin(folio);
                    }
                    r
                }
                r => r,
            },
            Err(e) => Err(e),
        };
        if r.is_err() {
            self.swap.delete_from_swap_cache(folio);
            folio.unlock();
        }
        r
    }

    /// Takes the second chance of the `n` entries at the head of `memcg`'s
    /// list away: `n` calls of `shrink_memcg`, each examining one referenced
    /// entry and only rotating it to the tail (Linux's `nr_to_walk = 1`:
    /// `EAGAIN`). With `n` the list length (fresh entries are all
    /// referenced), the next call writes the oldest entry back.
    pub fn age(&self, memcg: &MemcgRef, n: usize) {
        for _ in 0..n {
            assert_eq!(self.zswap.shrink_memcg(memcg), Err(Error::EAGAIN));
        }
    }

    /// Process exit: the page-table reference to `swp` goes.
    pub fn release(&self, swp: SwpEntry) {
        self.swap.free_swap_and_cache(swp).unwrap();
    }

    /// Pages currently allocated from the page allocator.
    pub fn pages_allocated(&self) -> usize {
        self.alloc.inner().allocated_pages()
    }
}

/// A page that compresses well and is not same-filled.
pub fn compressible(seed: u8) -> Box<[u8; PAGE_SIZE]> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    for (i, b) in p.iter_mut().enumerate() {
        *b = if i % 64 < 8 {
            seed.wrapping_add((i / 64) as u8)
        } else {
            0
        };
    }
    p
}

/// A page that does not compress (xorshift noise).
pub fn incompressible(seed: u64) -> Box<[u8; PAGE_SIZE]> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in p.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_ne_bytes());
    }
    p
}

/// A page of one repeated byte (zero: a zero page, caught by the zeromap).
pub fn same_filled(byte: u8) -> Box<[u8; PAGE_SIZE]> {
    Box::new([byte; PAGE_SIZE])
}
