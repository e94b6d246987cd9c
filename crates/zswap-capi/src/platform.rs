//! The platform the C kernel supplies, and the Rust platform traits over it.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use kbase::{CpuInfo, Error, Gfp, KArc, PAGE_SIZE, PageAllocator, PageFrame, Result};
use memcg::{MemcgEvent, MemcgTree};
use swapcache::{Folio, SwapBackend, SwapEvent, SwapPlatform, SwapSpace, SwpEntry};
use zswap_core::ZswapPlatform;

use crate::api::zswap;

/// The services a C kernel provides to zswap: a struct of function pointers
/// with one context pointer handed back to each of them.
///
/// `zswap_create` copies the struct; the kernel may free its copy
/// afterwards. Hooks marked *required* must not be NULL (`-EINVAL` from
/// `zswap_create`); optional ones may be.
///
/// Rules for every hook: it may be called from any thread that is inside a
/// zswap call, concurrently with itself (so it must be thread-safe); it is
/// called with no zswap lock held unless its own documentation says
/// otherwise; it must not unwind (C has no exceptions; a C++ kernel must
/// catch them). The gfp argument carries `ZSWAP_GFP_*` bits: without
/// `ZSWAP_GFP_DIRECT_RECLAIM` the hook must not sleep.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct zswap_platform {
    /// Handed back as the first argument of every hook.
    pub ctx: *mut c_void,
    /// Required. Allocates one page of `ZSWAP_PAGE_SIZE` bytes, aligned to
    /// `ZSWAP_PAGE_SIZE`; NULL on failure. Zeroed when `gfp` has
    /// `ZSWAP_GFP_ZERO`. Called for pool pages (with no reclaim bit: must fail
    /// at once rather than sleep, and must not call back into zswap),
    /// swap-cache folios and tree metadata. May be called with a zswap
    /// spinlock held when `gfp` lacks `ZSWAP_GFP_DIRECT_RECLAIM`.
    pub alloc_page: Option<unsafe extern "C" fn(ctx: *mut c_void, gfp: u32) -> *mut c_void>,
    /// Required. Frees a page from `alloc_page`. Must not sleep and must not
    /// call back into zswap (it may run under a zswap lock).
    pub free_page: Option<unsafe extern "C" fn(ctx: *mut c_void, page: *mut c_void)>,
    /// Optional (NULL: always 0). The CPU the caller runs on, in
    /// `0..nr_cpus`; a stale answer is harmless (per-CPU state is locked).
    /// Must not sleep; may run under a zswap lock.
    pub current_cpu: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u32>,
    /// Optional (NULL: 1). The number of possible CPUs, read at creation and
    /// at a compressor change.
    pub nr_cpus: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u32>,
    /// Required. `totalram_pages()`: pages of RAM, the base of
    /// `max_pool_percent`. Called on every store; must not sleep.
    pub totalram_pages: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u64>,
    /// Required. Writes one page to slot `offset` of swap device `swp_type`
    /// (writeback). Returns 0 or a negative errno. May sleep (it is called
    /// from `zswap_shrinker_scan`, `zswap_shrink_worker`, `zswap_writeback`
    /// and from a store that hits `memory.zswap.max`, with no zswap lock
    /// held); must not call back into zswap for the same slot.
    pub swap_write: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            swp_type: u32,
            offset: u64,
            page: *const c_void,
        ) -> c_int,
    >,
    /// Optional (NULL: `-EIO`). Reads one page of the swap device. zswap
    /// itself never reads the device (on `-ENOENT` from `zswap_load` the
    /// kernel reads it); it is here for completeness of the backend.
    pub swap_read: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            swp_type: u32,
            offset: u64,
            page: *mut c_void,
        ) -> c_int,
    >,
    /// Optional. The slot is free (its last reference went, or a failed
    /// swap-in gave it back): the device copy may be discarded. Called after
    /// zswap dropped its own copy, with no zswap lock held, exactly once per
    /// freeing, before the slot can be allocated again.
    pub slot_freed: Option<unsafe extern "C" fn(ctx: *mut c_void, swp_type: u32, offset: u64)>,
    /// Optional (NULL: the worker is never queued; the kernel may call
    /// `zswap_shrink_worker` on its own schedule). `queue_work(shrink_wq)`:
    /// arrange for `zswap_shrink_worker` to run later from a context that
    /// holds no zswap lock. Called from inside `zswap_store` when the pool
    /// limit is hit: must not sleep and must not run the worker itself.
    pub queue_shrink_work: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
    /// Optional cgroup hook (NULL: no charge, always succeeds).
    /// `mem_cgroup_swapin_charge_folio()`: a page is being brought in for
    /// slot (`swp_type`, `offset`), recorded for cgroup `memcg_id` at swap-out (0:
    /// none); charge it. Returns 0 or a negative errno (the swap-in then fails
    /// with `-ENOMEM`). May sleep and may reclaim; reclaim may call
    /// `zswap_shrinker_scan` or `zswap_memcg_reclaim`, even for this slot
    /// (writeback skips a slot being swapped in: no deadlock). Called with
    /// no zswap lock held.
    pub charge_swapin: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            memcg_id: u32,
            swp_type: u32,
            offset: u64,
            gfp: u32,
        ) -> c_int,
    >,
    /// Optional cgroup hook. Writeback is done with a page it charged to
    /// `memcg_id` through `charge_swapin`: uncharge that one page (Linux
    /// uncharges the folio when it is freed after the write). Called once per
    /// such charge unless the device write failed (then the page stays in
    /// zswap's swap cache, charged, until the slot is loaded or freed). No
    /// zswap lock held.
    pub writeback_done: Option<unsafe extern "C" fn(ctx: *mut c_void, memcg_id: u32)>,
    /// Optional (NULL: a CPU relax, retry). One wait of the swap-in retry loop
    /// while another task is bringing the same slot in
    /// (`schedule_timeout_uninterruptible(1)`); `attempt` counts from 0.
    /// Return 0 to retry or a negative errno (`-EDEADLK`) to give up. May
    /// sleep. No zswap lock held.
    pub swapcache_wait: Option<
        unsafe extern "C" fn(ctx: *mut c_void, swp_type: u32, offset: u64, attempt: u32) -> c_int,
    >,
    /// Optional (NULL: 1). The number of NUMA nodes: zswap keeps one LRU
    /// list per cgroup and node. Read once, at creation.
    pub nr_nodes: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u32>,
    /// Optional (NULL: node 0). `page_to_nid()`: the node of the page frame
    /// at `page` (a page being stored, or a swap-in page); an entry goes on
    /// the LRU list of its page's node. Answers past `nr_nodes` are clamped.
    /// Called with a page lock (a spinlock) held: must not sleep and must
    /// not call into zswap.
    pub page_to_nid: Option<unsafe extern "C" fn(ctx: *mut c_void, page: *const c_void) -> u32>,
}

/// The checked copy of a [`zswap_platform`]: the required hooks are known
/// to be there.
#[derive(Clone, Copy)]
pub(crate) struct Ops {
    pub(crate) raw: zswap_platform,
    alloc_page: unsafe extern "C" fn(*mut c_void, u32) -> *mut c_void,
    free_page: unsafe extern "C" fn(*mut c_void, *mut c_void),
    totalram_pages: unsafe extern "C" fn(*mut c_void) -> u64,
    swap_write: unsafe extern "C" fn(*mut c_void, u32, u64, *const c_void) -> c_int,
}

// SAFETY: the C contract of `zswap_platform` (documented on the struct and
// in the header) is that every hook is thread-safe and `ctx` may be used from
// any thread; the struct holds nothing else.
unsafe impl Send for Ops {}
// SAFETY: as above: the hooks are callable concurrently from any thread.
unsafe impl Sync for Ops {}

/// A C errno result to ours: 0 is `Ok`, a known errno its error, anything
/// else `EIO`.
fn errno_result(rc: c_int) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    Err(Error::from_errno(rc).unwrap_or(Error::EIO))
}

impl Ops {
    /// Checks the required hooks. `EINVAL` if one is missing.
    pub(crate) fn new(raw: &zswap_platform) -> Result<Ops> {
        Ok(Ops {
            raw: *raw,
            alloc_page: raw.alloc_page.ok_or(Error::EINVAL)?,
            free_page: raw.free_page.ok_or(Error::EINVAL)?,
            totalram_pages: raw.totalram_pages.ok_or(Error::EINVAL)?,
            swap_write: raw.swap_write.ok_or(Error::EINVAL)?,
        })
    }

    fn ctx(&self) -> *mut c_void {
        self.raw.ctx
    }
}

// ---------------------------------------------------------------------------
// kbase: pages and CPUs
// ---------------------------------------------------------------------------

/// `kbase::PageAllocator` over `alloc_page` / `free_page`.
pub(crate) struct CPages {
    pub(crate) ops: Ops,
}

// SAFETY: frames are made only from non-NULL, PAGE_SIZE-aligned pointers the
// C allocator handed out (the header's contract: valid for PAGE_SIZE bytes,
// owned by the caller until freed); misaligned answers are given back and
// reported as ENOMEM.
unsafe impl PageAllocator for CPages {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        // SAFETY: a hook of the C platform, called as its contract says.
        let p = unsafe { (self.ops.alloc_page)(self.ops.ctx(), gfp.bits()) };
        let Some(nn) = NonNull::new(p.cast::<u8>()) else {
            return Err(Error::ENOMEM);
        };
        if !(nn.as_ptr() as usize).is_multiple_of(PAGE_SIZE) {
            // SAFETY: the page came from this allocator's alloc_page.
            unsafe { (self.ops.free_page)(self.ops.ctx(), p) };
            return Err(Error::ENOMEM);
        }
        // SAFETY: non-NULL, aligned, and by the C contract valid for
        // PAGE_SIZE bytes and ours until freed.
        let frame = unsafe { PageFrame::from_raw(nn) };
        Ok(frame)
    }

    unsafe fn free_page(&self, page: PageFrame) {
        // SAFETY: the caller guarantees the frame came from alloc_page above.
        unsafe { (self.ops.free_page)(self.ops.ctx(), page.into_raw().as_ptr().cast()) }
    }
}

/// `kbase::CpuInfo` over `current_cpu` / `nr_cpus`.
pub(crate) struct CCpus {
    pub(crate) ops: Ops,
}

impl CpuInfo for CCpus {
    fn current_cpu(&self) -> usize {
        match self.ops.raw.current_cpu {
            // SAFETY: an optional hook of the C platform, present.
            Some(f) => unsafe { f(self.ops.ctx()) as usize },
            None => 0,
        }
    }

    fn nr_cpus(&self) -> usize {
        match self.ops.raw.nr_cpus {
            // SAFETY: an optional hook of the C platform, present.
            Some(f) => (unsafe { f(self.ops.ctx()) } as usize).max(1),
            None => 1,
        }
    }
}

// ---------------------------------------------------------------------------
// swapcache: the swap platform and the backend
// ---------------------------------------------------------------------------

/// `swapcache::SwapPlatform` over the C hooks; reaches zswap through a
/// pointer to the instance, set once the instance exists.
pub(crate) struct CSwap {
    pub(crate) ops: Ops,
    pub(crate) pages: &'static CPages,
    /// The instance whose swap space this is (NULL until set, and again
    /// from the start of `zswap_destroy`).
    pub(crate) inst: AtomicPtr<zswap>,
}

impl SwapPlatform for CSwap {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.pages
    }

    fn charge_swapin(&self, folio: &Folio, entry: SwpEntry, gfp: Gfp) -> Result<()> {
        let id = self
            .with_inst(|z| z.swap().lookup_swap_cgroup_id(entry))
            .unwrap_or(0);
        if let Some(f) = self.ops.raw.charge_swapin {
            // SAFETY: an optional hook of the C platform, present; no lock
            // of ours is held (swapcache's contract for this call).
            let rc = unsafe {
                f(
                    self.ops.ctx(),
                    id,
                    entry.swp_type(),
                    entry.offset(),
                    gfp.bits(),
                )
            };
            errno_result(rc)?;
        }
        folio.set_memcg_id(id);
        Ok(())
    }

    /// The zeromap's events go to the folio's cgroup (`memory.stat`
    /// `swpin_zero` / `swpout_zero`), when the instance keeps cgroups.
    fn count_event(&self, folio: &Folio, ev: SwapEvent, nr: u64) {
        self.with_inst(|z| {
            let memcg = z.zswap.platform().memcg.as_ref()?.get(folio.memcg_id())?;
            let ev = match ev {
                SwapEvent::SwpinZero => MemcgEvent::SwpinZero,
                SwapEvent::SwpoutZero => MemcgEvent::SwpoutZero,
            };
            memcg.count_event(ev, nr);
            Some(())
        });
    }

    fn slot_freed(&self, entry: SwpEntry) {
        self.with_inst(|z| z.zswap.invalidate(entry));
        if let Some(f) = self.ops.raw.slot_freed {
            // SAFETY: an optional hook of the C platform, present.
            unsafe { f(self.ops.ctx(), entry.swp_type(), entry.offset()) }
        }
    }

    fn swapcache_wait(&self, entry: SwpEntry, attempt: u32) -> Result<()> {
        match self.ops.raw.swapcache_wait {
            Some(f) => {
                // SAFETY: an optional hook of the C platform, present.
                let rc = unsafe { f(self.ops.ctx(), entry.swp_type(), entry.offset(), attempt) };
                errno_result(rc)
            }
            None => {
                kbase::sync::cpu_relax();
                Ok(())
            }
        }
    }
}

impl CSwap {
    /// Runs `f` on the instance, if it is set.
    fn with_inst<R>(&self, f: impl FnOnce(&zswap) -> R) -> Option<R> {
        let p = self.inst.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: `inst` is set right after the instance is boxed and
        // cleared at the start of `zswap_destroy`, before anything of the
        // instance is dropped; the swap core calls this platform only from
        // inside a call on the live instance (the C contract: no call races
        // `zswap_destroy`).
        Some(f(unsafe { &*p }))
    }
}

/// `swapcache::SwapBackend` over `swap_write` / `swap_read`.
pub(crate) struct CBackend {
    pub(crate) ops: Ops,
}

impl SwapBackend for CBackend {
    fn write_page(&self, entry: SwpEntry, page: &[u8; PAGE_SIZE]) -> Result<()> {
        // SAFETY: a required hook; `page` is valid for PAGE_SIZE bytes for
        // the whole call.
        let rc = unsafe {
            (self.ops.swap_write)(
                self.ops.ctx(),
                entry.swp_type(),
                entry.offset(),
                page.as_ptr().cast(),
            )
        };
        errno_result(rc)
    }

    fn read_page(&self, entry: SwpEntry, page: &mut [u8; PAGE_SIZE]) -> Result<()> {
        let Some(f) = self.ops.raw.swap_read else {
            return Err(Error::EIO);
        };
        // SAFETY: an optional hook, present; `page` is valid for writes of
        // PAGE_SIZE bytes for the whole call.
        let rc = unsafe {
            f(
                self.ops.ctx(),
                entry.swp_type(),
                entry.offset(),
                page.as_mut_ptr().cast(),
            )
        };
        errno_result(rc)
    }
}

// ---------------------------------------------------------------------------
// zswap-core's platform
// ---------------------------------------------------------------------------

/// `zswap_core::ZswapPlatform` over the C hooks and the instance's swap
/// space and cgroup tree.
pub(crate) struct CZswap {
    pub(crate) ops: Ops,
    pub(crate) pages: &'static CPages,
    pub(crate) cpus: CCpus,
    pub(crate) backend: CBackend,
    pub(crate) swap: KArc<SwapSpace<CSwap>>,
    pub(crate) memcg: Option<KArc<MemcgTree>>,
}

impl ZswapPlatform for CZswap {
    type Swap = CSwap;

    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.pages
    }

    fn cpu(&self) -> &dyn CpuInfo {
        &self.cpus
    }

    fn totalram_pages(&self) -> u64 {
        // SAFETY: a required hook of the C platform.
        unsafe { (self.ops.totalram_pages)(self.ops.ctx()) }
    }

    fn swap_space(&self) -> &SwapSpace<CSwap> {
        &self.swap
    }

    fn backend(&self) -> &dyn SwapBackend {
        &self.backend
    }

    fn memcg_tree(&self) -> Option<&MemcgTree> {
        self.memcg.as_deref()
    }

    fn nr_nodes(&self) -> usize {
        match self.ops.raw.nr_nodes {
            // SAFETY: an optional hook of the C platform, present.
            Some(f) => (unsafe { f(self.ops.ctx()) } as usize).max(1),
            None => 1,
        }
    }

    fn page_to_nid(&self, page: &[u8; PAGE_SIZE]) -> usize {
        match self.ops.raw.page_to_nid {
            // SAFETY: an optional hook of the C platform, present; `page`
            // is valid for reads of PAGE_SIZE bytes during the call.
            Some(f) => unsafe { f(self.ops.ctx(), page.as_ptr().cast()) as usize },
            None => 0,
        }
    }

    fn queue_shrink_work(&self) {
        if let Some(f) = self.ops.raw.queue_shrink_work {
            // SAFETY: an optional hook of the C platform, present.
            unsafe { f(self.ops.ctx()) }
        }
    }

    fn writeback_folio_done(&self, folio: &Folio) {
        let Some(f) = self.ops.raw.writeback_done else {
            return;
        };
        // SAFETY: an optional hook of the C platform, present.
        unsafe { f(self.ops.ctx(), folio.memcg_id()) }
    }
}
