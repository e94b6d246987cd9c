//! The `extern "C"` entry points.
//!
//! Each one checks its arguments (NULL, a handle that is not live, bad swap
//! type or offset, strings that are not UTF-8, short buffers: `-EINVAL`)
//! before it touches anything, then calls the crates, which never panic.

use core::ffi::{CStr, c_char, c_int, c_void};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use kbase::{Error, Gfp, KArc, PAGE_SIZE, Result, try_box};
use memcg::{MemcgRef, MemcgTree};
use swapcache::{Folio, FolioRef, SwapSpace, SwpEntry};
use zswap_core::{ShrinkControl, ShrinkResult, Zswap, ZswapParams, ZswapStats};

use crate::platform::{CBackend, CCpus, CPages, CSwap, CZswap, Ops, zswap_platform};

/// The page size every page argument has (bytes).
pub const ZSWAP_PAGE_SIZE: usize = 4096;

/// `zswap_create` flag: keep a memory cgroup tree (`memory.zswap.max`,
/// `memory.zswap.writeback`, per-cgroup LRUs and charges). Without it every
/// page belongs to no cgroup and `memcg_id` arguments must be 0.
pub const ZSWAP_CREATE_MEMCG: u32 = 1;

/// How many instances may be live at once.
pub const ZSWAP_MAX_INSTANCES: usize = 64;

/// `zswap_shrinker_scan`'s `*freed` when there is nothing more to do now
/// (Linux's `SHRINK_STOP`).
pub const ZSWAP_SHRINK_STOP: u64 = 0xffff_ffff_ffff_ffff;

/// The errno values returned (negated), as in Linux's `errno.h`.
pub const ZSWAP_ENOENT: c_int = 2;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_EIO: c_int = 5;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_EAGAIN: c_int = 11;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_ENOMEM: c_int = 12;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_EBUSY: c_int = 16;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_EEXIST: c_int = 17;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_EINVAL: c_int = 22;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_ENOSPC: c_int = 28;
/// See `ZSWAP_ENOENT`.
pub const ZSWAP_EDEADLK: c_int = 35;

/// gfp bit: the caller may enter direct reclaim, and so sleep.
pub const ZSWAP_GFP_DIRECT_RECLAIM: u32 = 1 << 0;
/// gfp bit: the caller may wake the background reclaimer.
pub const ZSWAP_GFP_KSWAPD_RECLAIM: u32 = 1 << 1;
/// gfp bit: reclaim may start I/O.
pub const ZSWAP_GFP_IO: u32 = 1 << 2;
/// gfp bit: reclaim may call into filesystems.
pub const ZSWAP_GFP_FS: u32 = 1 << 3;
/// gfp bit: fail rather than retry hard.
pub const ZSWAP_GFP_NORETRY: u32 = 1 << 4;
/// gfp bit: do not log the failure.
pub const ZSWAP_GFP_NOWARN: u32 = 1 << 5;
/// gfp bit: the memory may be moved by compaction.
pub const ZSWAP_GFP_MOVABLE: u32 = 1 << 6;
/// gfp bit: return zeroed memory.
pub const ZSWAP_GFP_ZERO: u32 = 1 << 7;
/// gfp bit: highmem is acceptable.
pub const ZSWAP_GFP_HIGHMEM: u32 = 1 << 8;
/// gfp bit: the caller cannot handle failure.
pub const ZSWAP_GFP_NOFAIL: u32 = 1 << 9;
/// `GFP_KERNEL`: may sleep, reclaim, do I/O.
pub const ZSWAP_GFP_KERNEL: u32 = 0xf;

/// zswap's counters, with Linux's names (debugfs `/sys/kernel/debug/zswap/*`
/// and the `zswpin` / `zswpout` / `zswpwb` vmstat events). Filled by
/// [`zswap_get_stats`]; every field is documented on zswap-core's
/// `ZswapStats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct zswap_stats {
    /// Entries in zswap (compressed and raw).
    pub stored_pages: u64,
    /// Entries stored raw because they did not compress.
    pub stored_incompressible_pages: u64,
    /// Bytes of pool memory (pool pages times the page size).
    pub pool_total_size: u64,
    /// Times the global limit check found the pool full.
    pub pool_limit_hit: u64,
    /// Pages written back to the swap device.
    pub written_back_pages: u64,
    /// Writeback attempts from an LRU walk that failed.
    pub reject_reclaim_fail: u64,
    /// Store failures: an allocation failed.
    pub reject_alloc_fail: u64,
    /// Store failures: the entry could not be allocated.
    pub reject_kmemcache_fail: u64,
    /// Store failures: the compressor failed, or an incompressible page could
    /// not be stored raw.
    pub reject_compress_fail: u64,
    /// Store failures: the object was too large.
    pub reject_compress_poor: u64,
    /// Loads and writebacks whose object did not decompress.
    pub decompress_fail: u64,
    /// Store failures: zswap disabled or no trees for the swap type.
    pub reject_disabled: u64,
    /// Store failures: the cgroup is at `memory.zswap.max`.
    pub reject_memcg_limit: u64,
    /// Store failures: the global pool limit refused the store.
    pub reject_pool_limit: u64,
    /// Successful loads (vmstat `zswpin`).
    pub zswpin: u64,
    /// Successful stores (vmstat `zswpout`).
    pub zswpout: u64,
    /// Successful writebacks (vmstat `zswpwb`).
    pub zswpwb: u64,
    /// Writebacks skipped because the slot was already in the swap cache.
    pub writeback_skip_exists: u64,
    /// Pool pages given back by compaction (zsmalloc's `pages_compacted`).
    pub pages_compacted: u64,
}

/// One shrinker call (Linux's `struct shrink_control`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct zswap_shrink_control {
    /// The allocation context reclaim runs for (`ZSWAP_GFP_*`); without
    /// `ZSWAP_GFP_IO | ZSWAP_GFP_FS` the count is 0.
    pub gfp: u32,
    /// The NUMA node being reclaimed (clamped to the nodes zswap keeps).
    pub nid: u32,
    /// The cgroup being reclaimed; 0 for none (memcg disabled).
    pub memcg_id: u32,
    /// How many entries scan may examine.
    pub nr_to_scan: u64,
    /// Out (scan): how many entries scan examined.
    pub nr_scanned: u64,
}

/// A zswap instance: the swap core, the optional cgroup tree and zswap, over
/// one C platform. Opaque to C.
pub struct zswap {
    pub(crate) zswap: Zswap<CZswap>,
    /// The page allocator every folio and pool holds a `'static` reference
    /// to; freed by `zswap_destroy` after everything else.
    pages: NonNull<CPages>,
}

impl zswap {
    pub(crate) fn swap(&self) -> &SwapSpace<CSwap> {
        &self.zswap.platform().swap
    }

    fn memcg(&self) -> Option<&MemcgTree> {
        self.zswap.platform().memcg.as_deref()
    }

    /// The cgroup of `id`: `Ok(None)` for 0, `EINVAL` for an id the tree
    /// does not know (or any id but 0 without a tree).
    fn memcg_of(&self, id: u32) -> Result<Option<MemcgRef>> {
        if id == 0 {
            return Ok(None);
        }
        self.memcg()
            .and_then(|t| t.get(id))
            .map(Some)
            .ok_or(Error::EINVAL)
    }
}

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

/// The live instances. A plain table of addresses shared by every thread of
/// the process (not a protocol between crates, so core atomics, not the
/// sync shim): a pointer is dereferenced only after it is found here.
static LIVE: [AtomicUsize; ZSWAP_MAX_INSTANCES] =
    [const { AtomicUsize::new(0) }; ZSWAP_MAX_INSTANCES];

fn register(p: *mut zswap) -> Result<()> {
    let addr = p as usize;
    for slot in LIVE.iter() {
        if slot
            .compare_exchange(0, addr, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(Error::ENOMEM)
}

fn unregister(p: *const zswap) -> Result<()> {
    let addr = p as usize;
    for slot in LIVE.iter() {
        if slot
            .compare_exchange(addr, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(Error::EINVAL)
}

/// The instance behind `z`, if it is a live handle. `EINVAL` otherwise.
fn inst<'a>(z: *const zswap) -> Result<&'a zswap> {
    if z.is_null() {
        return Err(Error::EINVAL);
    }
    let addr = z as usize;
    if !LIVE.iter().any(|s| s.load(Ordering::Acquire) == addr) {
        return Err(Error::EINVAL);
    }
    // SAFETY: registered addresses are boxed instances that stay alive until
    // `zswap_destroy` unregisters them; the C contract forbids a call on an
    // instance racing its `zswap_destroy`.
    Ok(unsafe { &*z })
}

fn rc(r: Result<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => -e.to_errno(),
    }
}

fn entry(t: u32, offset: u64) -> Result<SwpEntry> {
    SwpEntry::new(t, offset)
}

/// A NUL-terminated UTF-8 string argument. `EINVAL` for NULL or non-UTF-8.
///
/// # Safety
///
/// `s`, if non-NULL, points to a NUL-terminated string valid for the call.
unsafe fn c_str<'a>(s: *const c_char) -> Result<&'a str> {
    if s.is_null() {
        return Err(Error::EINVAL);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str().map_err(|_| Error::EINVAL)
}

/// Writes `v` through `out`. `EINVAL` for NULL.
///
/// # Safety
///
/// `out`, if non-NULL, is valid for a write of `T`.
unsafe fn put<T>(out: *mut T, v: T) -> Result<()> {
    if out.is_null() {
        return Err(Error::EINVAL);
    }
    // SAFETY: non-NULL and valid for a write by the caller's contract;
    // `write` does not read or drop the old value.
    unsafe { out.write(v) };
    Ok(())
}

/// `EINVAL` for a NULL pointer argument: checked before the call changes
/// anything, where [`put`] or a read would come too late.
fn non_null<T>(p: *const T) -> Result<()> {
    if p.is_null() {
        Err(Error::EINVAL)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// create / destroy
// ---------------------------------------------------------------------------

/// Creates an instance over `platform` (copied; the caller's struct may be
/// freed afterwards) with Linux's default parameters (enabled, lz4,
/// `max_pool_percent` 20, `accept_threshold_percent` 90, shrinker off) and
/// stores the handle in `*out`. `flags`: `ZSWAP_CREATE_MEMCG` or 0.
///
/// May sleep (allocates with `ZSWAP_GFP_KERNEL`). Returns 0, `-EINVAL` (NULL
/// argument, a required hook missing, unknown flags), `-ENOMEM` (also when
/// `ZSWAP_MAX_INSTANCES` instances are live).
///
/// # Safety
///
/// `platform` is NULL or points to a valid `struct zswap_platform` whose
/// hooks follow the contract documented on it; `out` is NULL or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_create(
    platform: *const zswap_platform,
    flags: u32,
    out: *mut *mut zswap,
) -> c_int {
    if platform.is_null() || out.is_null() || flags & !ZSWAP_CREATE_MEMCG != 0 {
        return -ZSWAP_EINVAL;
    }
    // SAFETY: non-NULL and valid for a read by the caller's contract.
    let raw = unsafe { platform.read() };
    match create(&raw, flags) {
        Ok(p) => {
            // SAFETY: `out` is non-NULL and valid for a write (contract).
            unsafe { out.write(p) };
            0
        }
        Err(e) => -e.to_errno(),
    }
}

fn create(raw: &zswap_platform, flags: u32) -> Result<*mut zswap> {
    let ops = Ops::new(raw)?;
    let pages = alloc::boxed::Box::into_raw(try_box(CPages { ops }, Gfp::KERNEL)?);
    // SAFETY: just leaked from a box; freed only by `free_pages` below or by
    // `zswap_destroy`, after every user is gone.
    let pages_ref: &'static CPages = unsafe { &*pages };
    let free_pages = || {
        // SAFETY: `pages` came from Box::into_raw and nothing refers to it
        // any more: everything built on it was dropped before this runs.
        drop(unsafe { alloc::boxed::Box::from_raw(pages) });
    };
    let built = (|| -> Result<alloc::boxed::Box<zswap>> {
        let swap = KArc::try_new(
            SwapSpace::new(CSwap {
                ops,
                pages: pages_ref,
                inst: AtomicPtr::new(core::ptr::null_mut()),
            }),
            Gfp::KERNEL,
        )?;
        let memcg = if flags & ZSWAP_CREATE_MEMCG != 0 {
            Some(KArc::try_new(MemcgTree::new(Gfp::KERNEL)?, Gfp::KERNEL)?)
        } else {
            None
        };
        let plat = CZswap {
            ops,
            pages: pages_ref,
            cpus: CCpus { ops },
            backend: CBackend { ops },
            swap,
            memcg,
        };
        let z = Zswap::new(plat, ZswapParams::default(), Gfp::KERNEL)?;
        try_box(
            zswap {
                zswap: z,
                pages: NonNull::from(pages_ref),
            },
            Gfp::KERNEL,
        )
    })();
    let b = match built {
        Ok(b) => b,
        Err(e) => {
            free_pages();
            return Err(e);
        }
    };
    let p = alloc::boxed::Box::into_raw(b);
    // SAFETY: `p` was just leaked from a box and is not shared yet.
    let z = unsafe { &*p };
    z.swap().platform().inst.store(p, Ordering::Release);
    if let Err(e) = register(p) {
        // SAFETY: `p` is ours alone (never registered).
        unsafe { destroy(p) };
        return Err(e);
    }
    Ok(p)
}

/// Drops the instance and its page allocator.
///
/// # Safety
///
/// `p` came from `Box::into_raw` in `create`, is no longer registered, and
/// no call on it runs.
unsafe fn destroy(p: *mut zswap) {
    // SAFETY: live until dropped below (contract).
    let z = unsafe { &*p };
    z.swap()
        .platform()
        .inst
        .store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: from Box::into_raw, not shared (contract).
    let b = unsafe { alloc::boxed::Box::from_raw(p) };
    let zswap {
        zswap: inner,
        pages,
    } = *b;
    // Entries, pools, trees, the swap space and its folios give their pages
    // back here, through the allocator, which must outlive them.
    drop(inner);
    // SAFETY: leaked from a box in `create`; everything that referred to it
    // was dropped just above.
    drop(unsafe { alloc::boxed::Box::from_raw(pages.as_ptr()) });
}

/// Destroys an instance: frees every entry (their pool pages go back to
/// `free_page`), the swap devices and the cgroup tree. The handle is invalid
/// afterwards. `-EINVAL` for a handle that is not live.
///
/// Must not run concurrently with any other call on the same instance.
///
/// # Safety
///
/// `z` is NULL or any pointer; only live handles are dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_destroy(z: *mut zswap) -> c_int {
    if let Err(e) = inst(z) {
        return -e.to_errno();
    }
    if let Err(e) = unregister(z) {
        return -e.to_errno();
    }
    // SAFETY: a live handle (just checked and unregistered): it came from
    // `create`, and by the contract no other call on it runs.
    unsafe { destroy(z) };
    0
}

// ---------------------------------------------------------------------------
// swapon / swapoff, slots
// ---------------------------------------------------------------------------

/// `swapon`: registers a swap device of `nr_pages` slots with the swap core
/// and zswap; its type (0..32) goes to `*type_out`. May sleep. `-EINVAL`
/// (NULL, 0 pages), `-ENOSPC` (32 devices), `-ENOMEM`.
///
/// # Safety
///
/// `type_out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_swapon(z: *mut zswap, nr_pages: u64, type_out: *mut u32) -> c_int {
    rc((|| {
        let z = inst(z)?;
        non_null(type_out)?;
        let t = z.swap().swapon(nr_pages, Gfp::KERNEL)?;
        if let Err(e) = z.zswap.swapon(t, nr_pages) {
            let _ = z.swap().swapoff(t);
            return Err(e);
        }
        // SAFETY: checked non-NULL; valid for a write (contract).
        unsafe { put(type_out, t) }
    })())
}

/// `swapoff`: removes swap device `swp_type`. `-EBUSY` (nothing changes) while a
/// slot of it is in use: first swap every page in and free its slots
/// (`zswap_try_to_unuse` walks them for you). `-EINVAL` for an unknown type.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_swapoff(z: *mut zswap, swp_type: u32) -> c_int {
    rc((|| {
        let z = inst(z)?;
        if z.swap().inuse_pages(swp_type)? != 0 {
            return Err(Error::EBUSY);
        }
        z.zswap.swapoff(swp_type)?;
        z.swap().swapoff(swp_type)
    })())
}

/// `try_to_unuse`, the heart of swapoff: empties swap device `swp_type`.
///
/// Stops new allocations on the device, then calls `unuse(arg, swp_type,
/// offset)` for every slot still referenced: the kernel brings the page back
/// into each owner (`zswap_load`, or its device read on `-ENOENT`, as a
/// fault does), points the page-table entries at it and drops their
/// references (`zswap_swap_free`). `unuse` runs with no zswap lock held and
/// may call any function of this header on the instance; it returns 0 or a
/// negative errno, which stops the walk and is returned. Once this returns
/// 0, zswap holds nothing for the device and `zswap_swapoff` succeeds.
/// `-EBUSY` if slots are still in use after a few passes (a reference
/// `unuse` did not drop), `-EINVAL` (unknown type, NULL `unuse`). On any
/// error the device takes allocations again and nothing stored is lost. May
/// sleep.
///
/// # Safety
///
/// `unuse` is NULL or a function that is safe to call with `arg` for the
/// duration of the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_try_to_unuse(
    z: *mut zswap,
    swp_type: u32,
    unuse: Option<unsafe extern "C" fn(arg: *mut c_void, swp_type: u32, offset: u64) -> c_int>,
    arg: *mut c_void,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let f = unuse.ok_or(Error::EINVAL)?;
        z.swap().try_to_unuse(swp_type, &mut |e: SwpEntry| {
            // SAFETY: the caller's function, called with its argument as
            // the contract above allows; no lock of ours is held.
            let r = unsafe { f(arg, e.swp_type(), e.offset()) };
            if r == 0 {
                Ok(())
            } else {
                Err(Error::from_errno(r).unwrap_or(Error::EIO))
            }
        })
    })())
}

/// `get_swap_pages(1)`: allocates a free slot with one reference (the
/// page-table entry that will point at it) and returns it through
/// `*type_out`, `*offset_out`. `-ENOSPC` when every device is full, `-EINVAL`
/// for NULL.
///
/// # Safety
///
/// `type_out` and `offset_out` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_swap_alloc(
    z: *mut zswap,
    type_out: *mut u32,
    offset_out: *mut u64,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        non_null(type_out)?;
        non_null(offset_out)?;
        let e = z.swap().get_swap_pages(1, Gfp::KERNEL)?;
        // SAFETY: both checked non-NULL; valid for writes (contract).
        unsafe {
            put(type_out, e.swp_type())?;
            put(offset_out, e.offset())
        }
    })())
}

/// `swap_duplicate`: one more reference to an allocated slot (a copied
/// page-table entry). `-ENOENT` for a free slot, `-EINVAL` for a bad type or
/// offset, `-ENOMEM` at the reference limit.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_swap_duplicate(z: *mut zswap, swp_type: u32, offset: u64) -> c_int {
    rc((|| {
        inst(z)?.swap().swap_duplicate(entry(swp_type, offset)?)
    })())
}

/// `free_swap_and_cache`: drops one reference to the slot. The last one
/// frees it: zswap's copy is invalidated and `slot_freed` is called.
/// `-ENOENT` if the slot has no reference left (a double free changes
/// nothing), `-EINVAL` for a bad type or offset.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_swap_free(z: *mut zswap, swp_type: u32, offset: u64) -> c_int {
    rc((|| {
        inst(z)?
            .swap()
            .free_swap_and_cache(entry(swp_type, offset)?)
    })())
}

// ---------------------------------------------------------------------------
// store / load / invalidate / writeback
// ---------------------------------------------------------------------------

/// `zswap_store`: compresses the page into zswap for the slot, charged to
/// cgroup `memcg_id` (0: none). A zero-filled page is recorded in the swap
/// core's zeromap instead (Linux 6.12+ `swap_writeout`: no zswap entry, no
/// I/O; `swpout_zero` counts it).
///
/// Call from swap-out, after `zswap_swap_alloc` (or for a slot the page
/// already owns), with the page locked against other stores and loads of the
/// same slot (Linux: the folio lock) and no spinlock held: the call may
/// sleep, and when the cgroup is at `memory.zswap.max` it writes older
/// entries back (`swap_write`) before it stores.
///
/// Returns 0: zswap (or the zeromap) holds the page; do not write it to the
/// device. On any
/// error zswap holds nothing for the slot (an older copy was invalidated):
/// write the page to the device, unless the cgroup has
/// `memory.zswap.writeback = 0` (then Linux keeps the page in memory).
/// `-ENOENT` zswap disabled, `-ENOSPC` a limit refused it or the page did not
/// compress enough, `-ENOMEM`, `-EIO` compressor failure, `-EEXIST` the slot
/// is busy in the swap cache (being loaded or written back), `-EINVAL` (NULL
/// page, bad slot, unknown cgroup, a free slot is `-ENOENT`).
///
/// # Safety
///
/// `page` is NULL or valid for reads of `ZSWAP_PAGE_SIZE` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_store(
    z: *mut zswap,
    swp_type: u32,
    offset: u64,
    page: *const c_void,
    memcg_id: u32,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let swp = entry(swp_type, offset)?;
        non_null(page)?;
        // SAFETY: non-NULL, and valid for reads of PAGE_SIZE bytes by the
        // caller's contract; u8 has no alignment.
        let src = unsafe { &*page.cast::<[u8; PAGE_SIZE]>() };
        store(z, swp, src, memcg_id)
    })())
}

fn store(z: &zswap, swp: SwpEntry, src: &[u8; PAGE_SIZE], memcg_id: u32) -> Result<()> {
    z.memcg_of(memcg_id)?;
    let swap = z.swap();
    // The folio is allocated before SWAP_HAS_CACHE is taken, as the swap core
    // does, so the bit is never held across an allocation that may reclaim.
    let folio = Folio::alloc(swap.platform().pages, 1, Gfp::KERNEL)?;
    folio.with_page_mut(0, |p| p.copy_from_slice(src))?;
    folio.set_uptodate();
    folio.set_memcg_id(memcg_id);
    // A folio a load kept in the swap cache for the slot's other references
    // (or one a failed writeback left) holds older data: this page
    // supersedes it. Its lock waits for a writeback in flight.
    if let Some(old) = swap.lookup(swp) {
        old.lock();
        if old.swap() == Some(swp) && !old.test_writeback() {
            swap.delete_from_swap_cache(&old);
        }
        old.unlock();
    }
    swap.swapcache_prepare(swp)?;
    folio.lock();
    if let Err(e) = swap.add_to_swap_cache(&folio, swp, Gfp::KERNEL) {
        folio.unlock();
        swap.swapcache_clear(swp);
        return Err(e);
    }
    // swap_writeout: a zero-filled page goes to the swap core's zeromap and
    // is done (Linux 6.12+: zswap never sees it); any other page to zswap.
    let r = swap
        .swap_cgroup_record(swp, 1, memcg_id)
        .and_then(|()| swap.zeromap_folio_store(&folio))
        .and_then(|zero| if zero { Ok(()) } else { z.zswap.store(&folio) });
    if r.is_err() {
        // The kernel writes the page to the device: nothing of zswap's may
        // survive for the slot (store already invalidated it on its own
        // failures; a failed record never reached store).
        z.zswap.invalidate(swp);
    }
    swap.delete_from_swap_cache(&folio);
    folio.unlock();
    r
}

/// `zswap_load`: fills `page` with the slot's data if zswap holds it (or
/// with zeros if the slot is in the swap core's zeromap: `swpin_zero`).
///
/// Call from the fault path, for a slot the faulting page-table entry holds
/// a reference to, with no spinlock held (it may sleep: `charge_swapin` runs
/// for the new page). Returns 0: `page` holds the data and zswap's copy is
/// gone (exclusive load, as Linux). With one reference to the slot, the
/// page you got is the only copy: keep it until you store it again. With
/// several (`zswap_swap_duplicate`: a shared page), the page also stays in
/// zswap's swap cache, so the other references' faults get it from
/// `zswap_load` too, until the last reference goes (`zswap_swap_free`) or a
/// `zswap_store` of the slot supersedes it. `-ENOENT`: zswap
/// holds nothing for the slot; read the device. `-EIO`: the object did not
/// decompress (zswap keeps it; `decompress_fail` counts it). `-ENOMEM`: the
/// charge or an allocation failed. `-EINVAL`: NULL page, bad slot; a free
/// slot is `-ENOENT`.
///
/// If writeback is writing the slot at the same time, the call waits for it
/// (`swapcache_wait`) and returns the page from writeback's copy: the data is
/// then on the device too, which is fine.
///
/// # Safety
///
/// `page` is NULL or valid for writes of `ZSWAP_PAGE_SIZE` bytes, and not
/// read or written by anyone else during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_load(
    z: *mut zswap,
    swp_type: u32,
    offset: u64,
    page: *mut c_void,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let swp = entry(swp_type, offset)?;
        non_null(page)?;
        // SAFETY: non-NULL, valid for writes of PAGE_SIZE bytes and not
        // aliased during the call (contract); u8 has no alignment.
        let dst = unsafe { &mut *page.cast::<[u8; PAGE_SIZE]>() };
        load(z, swp, dst)
    })())
}

/// How often a load retries when the swap-cache folio it found left the
/// cache before it could lock it.
const LOAD_RETRIES: u32 = 16;

fn load(z: &zswap, swp: SwpEntry, dst: &mut [u8; PAGE_SIZE]) -> Result<()> {
    let swap = z.swap();
    for _ in 0..LOAD_RETRIES {
        let (folio, new) = swap.read_swap_cache_async(swp, Gfp::KERNEL, false)?;
        if new {
            // Ours: locked, charged, in the swap cache, not uptodate.
            // swap_read_folio: the zeromap first, then zswap.
            let r = match swap.zeromap_folio_read(&folio) {
                Ok(true) => Ok(()),
                Ok(false) => z.zswap.load(&folio),
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => folio.with_page(0, |p| dst.copy_from_slice(p))?,
                // The kernel reads the device: the shrinker backs off a
                // little (a disk swap-in means it wrote back too much).
                Err(Error::ENOENT) => z.zswap.folio_swapin(&folio),
                Err(_) => {}
            }
            // The load was exclusive: with other references to the slot
            // (a shared page), the folio stays in the swap cache holding
            // the only copy, as Linux keeps it, until the last reference
            // goes (`zswap_swap_free`) or a store supersedes it.
            if r.is_err() || !shared(swap, swp) {
                swap.delete_from_swap_cache(&folio);
            }
            folio.unlock();
            return r;
        }
        // Someone else's folio: writeback's (in flight, or left after a
        // failed device write). Lock it, then re-check that it is still the
        // swap cache's folio for the slot (Linux's do_swap_page does the
        // same): it may have been written and deleted meanwhile.
        folio.lock();
        let still = folio.swap() == Some(swp)
            && swap
                .lookup(swp)
                .is_some_and(|f| core::ptr::eq::<Folio>(&*f, &*folio));
        if !still {
            folio.unlock();
            continue;
        }
        let r = copy_cached(swap, &folio, dst);
        folio.unlock();
        return r;
    }
    Err(Error::EAGAIN)
}

/// Copies a locked swap-cache folio's page out and drops it from the cache
/// unless other references to the slot remain (the kernel holds the only
/// copy from now on, as after a load).
fn copy_cached(swap: &SwapSpace<CSwap>, folio: &FolioRef, dst: &mut [u8; PAGE_SIZE]) -> Result<()> {
    if !folio.test_uptodate() {
        return Err(Error::EIO);
    }
    folio.with_page(0, |p| dst.copy_from_slice(p))?;
    if !folio.test_writeback() && !shared(swap, folio.swap().ok_or(Error::EIO)?) {
        swap.delete_from_swap_cache(folio);
    }
    Ok(())
}

/// Has the slot more than one reference (a page shared by several page-table
/// entries)?
fn shared(swap: &SwapSpace<CSwap>, swp: SwpEntry) -> bool {
    swap.swap_count(swp).is_ok_and(|c| c > 1)
}

/// `zswap_invalidate`: drops zswap's copy of the slot, if any (the slot-free
/// path does this by itself through `zswap_swap_free`; call it directly only
/// when the kernel frees slots some other way). Never sleeps. `-EINVAL` for a
/// bad type or offset.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_invalidate(z: *mut zswap, swp_type: u32, offset: u64) -> c_int {
    rc((|| {
        let z = inst(z)?;
        z.zswap.invalidate(entry(swp_type, offset)?);
        Ok(())
    })())
}

/// Writes the slot's zswap entry back to the device now (`swap_write`), as
/// the shrinker would after picking it. May sleep. `-ENOENT` zswap holds
/// nothing, `-EINVAL` a same-filled entry (never written back) or a bad
/// slot, `-EEXIST` the slot is busy in the swap cache, `-EIO` the device
/// write failed (the page stays in zswap's swap cache for `zswap_load`).
#[unsafe(no_mangle)]
pub extern "C" fn zswap_writeback(z: *mut zswap, swp_type: u32, offset: u64) -> c_int {
    rc((|| inst(z)?.zswap.writeback(entry(swp_type, offset)?))())
}

/// 1 if zswap holds the slot, 0 if not, `-EINVAL` for a bad handle or slot.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_is_present(z: *mut zswap, swp_type: u32, offset: u64) -> c_int {
    match (|| Ok::<_, Error>(inst(z)?.zswap.is_present(entry(swp_type, offset)?)))() {
        Ok(b) => c_int::from(b),
        Err(e) => -e.to_errno(),
    }
}

// ---------------------------------------------------------------------------
// shrinking
// ---------------------------------------------------------------------------

fn shrink_control(z: &zswap, sc: &zswap_shrink_control) -> Result<ShrinkControl> {
    let mut c = ShrinkControl::new(
        z.memcg_of(sc.memcg_id)?,
        usize::try_from(sc.nr_to_scan).unwrap_or(usize::MAX),
    );
    c.gfp = Gfp::from_bits(sc.gfp).ok_or(Error::EINVAL)?;
    c.nid = sc.nid as usize;
    Ok(c)
}

/// The count half of a shrinker (`zswap_shrinker_count`,
/// `zswap_pool_shrinker_count`): checks the arguments, runs `count_fn` on
/// the control and writes its result to `*count`.
///
/// # Safety
///
/// `sc` is NULL or valid for a read; `count` NULL or valid for a write.
unsafe fn shrinker_count(
    z: *mut zswap,
    sc: *const zswap_shrink_control,
    count: *mut u64,
    count_fn: impl FnOnce(&Zswap<CZswap>, &ShrinkControl) -> u64,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        non_null(sc)?;
        non_null(count)?;
        // SAFETY: non-NULL and valid for a read (contract).
        let c = shrink_control(z, unsafe { &*sc })?;
        let n = count_fn(&z.zswap, &c);
        // SAFETY: non-NULL and valid for a write (contract).
        unsafe { put(count, n) }
    })())
}

/// The scan half of a shrinker (`zswap_shrinker_scan`,
/// `zswap_pool_shrinker_scan`): checks the arguments, runs `scan_fn` on the
/// control, and writes back `sc->nr_scanned` and `*freed` (its count, or
/// `ZSWAP_SHRINK_STOP`).
///
/// # Safety
///
/// `sc` is NULL or valid for reads and writes, with no other reference to
/// it during the call; `freed` NULL or valid for a write.
unsafe fn shrinker_scan(
    z: *mut zswap,
    sc: *mut zswap_shrink_control,
    freed: *mut u64,
    scan_fn: impl FnOnce(&Zswap<CZswap>, &mut ShrinkControl) -> ShrinkResult,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        non_null(sc)?;
        non_null(freed)?;
        // SAFETY: non-NULL and valid for reads and writes (contract); no
        // other reference to it exists during the call.
        let sc = unsafe { &mut *sc };
        let mut c = shrink_control(z, sc)?;
        let r = scan_fn(&z.zswap, &mut c);
        sc.nr_scanned = c.nr_scanned as u64;
        let n = match r {
            ShrinkResult::Freed(n) => n as u64,
            ShrinkResult::Stop => ZSWAP_SHRINK_STOP,
        };
        // SAFETY: non-NULL and valid for a write (contract).
        unsafe { put(freed, n) }
    })())
}

/// `zswap_shrinker_count`: how many entries the memory-pressure shrinker
/// offers for (`memcg_id`, `nid`), scaled by the compression ratio, into
/// `*count`. 0 with the shrinker disabled (`shrinker_enabled`), writeback
/// disabled for the cgroup, or `gfp` without IO and FS. Never sleeps.
/// `-EINVAL` for NULL, unknown gfp bits or an unknown cgroup.
///
/// # Safety
///
/// `sc` is NULL or valid for a read; `count` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_shrinker_count(
    z: *mut zswap,
    sc: *const zswap_shrink_control,
    count: *mut u64,
) -> c_int {
    // SAFETY: `sc` and `count` are NULL or valid as `shrinker_count` needs
    // (this function's contract).
    unsafe { shrinker_count(z, sc, count, Zswap::shrinker_count) }
}

/// `zswap_shrinker_scan`: writes back up to `sc->nr_to_scan` entries of the
/// (`memcg_id`, `nid`) list; sets `sc->nr_scanned` and `*freed` (entries
/// written back, or `ZSWAP_SHRINK_STOP`). Call from the kernel's shrinker
/// with no spinlock held: it sleeps on device writes and allocates
/// swap-cache pages (`charge_swapin`, which may reclaim recursively; a slot
/// being swapped in is skipped, never waited on). `-EINVAL` as for count.
///
/// # Safety
///
/// `sc` is NULL or valid for reads and writes; `freed` NULL or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_shrinker_scan(
    z: *mut zswap,
    sc: *mut zswap_shrink_control,
    freed: *mut u64,
) -> c_int {
    // SAFETY: `sc` and `freed` are NULL or valid (and `sc` not aliased) as
    // `shrinker_scan` needs (this function's contract).
    unsafe { shrinker_scan(z, sc, freed, Zswap::shrinker_scan) }
}

/// `shrink_worker`: the work item `queue_shrink_work` asked for. Shrinks
/// cgroups round-robin until the pool is at or below the accept threshold.
/// Call from a worker context with no zswap call of this thread in progress
/// and no spinlock held (it sleeps on device writes). Returns 0.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_shrink_worker(z: *mut zswap) -> c_int {
    rc((|| {
        inst(z)?.zswap.shrink_worker();
        Ok(())
    })())
}

/// `shrink_memcg`: writes back a batch of the cgroup's oldest entries (the
/// zswap part of the kernel's cgroup reclaim; 0 for the root / no-memcg
/// lists). 0 if something was written back, `-ENOENT` nothing to write back
/// (or writeback disabled), `-EAGAIN` entries examined but none written,
/// `-EINVAL` unknown cgroup. Same context as `zswap_shrinker_scan`.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_shrink_memcg(z: *mut zswap, memcg_id: u32) -> c_int {
    rc((|| {
        let z = inst(z)?;
        match z.memcg_of(memcg_id)? {
            Some(m) => z.zswap.shrink_memcg(&m),
            None => z.zswap.shrink_root(),
        }
    })())
}

/// The pool's compaction shrinker, count half (`zs_shrinker_count`): how
/// many pages compacting zswap's pools could give back, into `*count`.
/// Register it as a second shrinker next to zswap's LRU shrinker, as Linux
/// has one per zsmalloc pool. Not memcg aware (`memcg_id` and `nid` are only
/// checked), independent of `shrinker_enabled`, never sleeps and does no
/// I/O (so it also serves callers without IO and FS). `-EINVAL` as for
/// `zswap_shrinker_count`.
///
/// # Safety
///
/// `sc` is NULL or valid for a read; `count` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_pool_shrinker_count(
    z: *mut zswap,
    sc: *const zswap_shrink_control,
    count: *mut u64,
) -> c_int {
    // SAFETY: `sc` and `count` are NULL or valid as `shrinker_count` needs
    // (this function's contract).
    unsafe { shrinker_count(z, sc, count, Zswap::pool_shrinker_count) }
}

/// The pool's compaction shrinker, scan half (`zs_shrinker_scan`): moves
/// objects until `sc->nr_to_scan` pages were given back; `*freed` is the
/// pages freed or `ZSWAP_SHRINK_STOP` (nothing could be). The pages count
/// in `pages_compacted`. Never sleeps, no I/O; it takes pool spinlocks and
/// frees pages (`free_page`), so call it with no lock that those hooks
/// take. `-EINVAL` as for `zswap_shrinker_scan`.
///
/// # Safety
///
/// `sc` is NULL or valid for reads and writes; `freed` NULL or valid for a
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_pool_shrinker_scan(
    z: *mut zswap,
    sc: *mut zswap_shrink_control,
    freed: *mut u64,
) -> c_int {
    // SAFETY: `sc` and `freed` are NULL or valid (and `sc` not aliased) as
    // `shrinker_scan` needs (this function's contract).
    unsafe { shrinker_scan(z, sc, freed, Zswap::pool_shrinker_scan) }
}

/// `zs_compact`: compacts every pool completely (the pool's `compact`
/// knob); the pages given back go to `*pages` and count in
/// `pages_compacted`. Never sleeps, no I/O. `-EINVAL` for NULL.
///
/// # Safety
///
/// `pages` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_compact(z: *mut zswap, pages: *mut u64) -> c_int {
    rc((|| {
        let z = inst(z)?;
        non_null(pages)?;
        let n = z.zswap.compact_pools() as u64;
        // SAFETY: non-NULL and valid for a write (contract).
        unsafe { put(pages, n) }
    })())
}

// ---------------------------------------------------------------------------
// parameters and stats
// ---------------------------------------------------------------------------

/// Sets a parameter by its Linux name (`/sys/module/zswap/parameters/NAME`):
/// `enabled`, `shrinker_enabled` (`Y`/`N`/`1`/`0`...), `max_pool_percent`,
/// `accept_threshold_percent` (unsigned integers, as Linux's
/// `param_set_uint` takes them), `compressor` (`lz4`, `zstd` when built in).
/// May sleep (a compressor change allocates a pool). A bad name or value
/// changes nothing: `-EINVAL`; `-ENOENT` a compressor that is not available,
/// `-EBUSY`, `-ENOMEM`. The parsing rules are zswap-core's `set_param`.
///
/// # Safety
///
/// `name` and `value` are NULL or NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_param_set(
    z: *mut zswap,
    name: *const c_char,
    value: *const c_char,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        // SAFETY: NULL or NUL-terminated (contract).
        let (n, v) = unsafe { (c_str(name)?, c_str(value)?) };
        z.zswap.set_param(n, v)
    })())
}

/// A `core::fmt::Write` into a fixed buffer; fails when it is full.
struct BufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn param_value(p: &ZswapParams, name: &str, w: &mut BufWriter<'_>) -> Result<()> {
    use core::fmt::Write;
    let yn = |b: bool| if b { "Y" } else { "N" };
    let r = match name.trim_ascii() {
        "enabled" => w.write_str(yn(p.enabled)),
        "shrinker_enabled" => w.write_str(yn(p.shrinker_enabled)),
        "compressor" => w.write_str(p.compressor.name()),
        "max_pool_percent" => write!(w, "{}", p.max_pool_percent),
        "accept_threshold_percent" => write!(w, "{}", p.accept_threshold_percent),
        _ => return Err(Error::EINVAL),
    };
    r.map_err(|_| Error::EINVAL)
}

/// Reads a parameter by its Linux name into `buf` (`len` bytes), as sysfs
/// shows it (`Y`/`N`, numbers, the compressor's name), NUL-terminated.
/// Returns the length without the NUL, or `-EINVAL` (unknown name, NULL,
/// `len` too small for the value and its NUL).
///
/// # Safety
///
/// `name` is NULL or NUL-terminated; `buf` is NULL or valid for writes of
/// `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_param_get(
    z: *mut zswap,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    let r = (|| -> Result<c_int> {
        let z = inst(z)?;
        // SAFETY: NULL or NUL-terminated (contract).
        let n = unsafe { c_str(name)? };
        if buf.is_null() || len == 0 {
            return Err(Error::EINVAL);
        }
        // SAFETY: non-NULL and valid for writes of `len` bytes (contract).
        let out = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
        let (body, _nul) = out.split_at_mut(len - 1);
        let mut w = BufWriter { buf: body, len: 0 };
        param_value(&z.zswap.params(), n, &mut w)?;
        let n = w.len;
        if let Some(b) = out.get_mut(n) {
            *b = 0;
        }
        c_int::try_from(n).map_err(|_| Error::EINVAL)
    })();
    match r {
        Ok(n) => n,
        Err(e) => -e.to_errno(),
    }
}

/// The C struct of a stats snapshot.
pub(crate) fn c_stats(s: &ZswapStats) -> zswap_stats {
    zswap_stats {
        stored_pages: s.stored_pages,
        stored_incompressible_pages: s.stored_incompressible_pages,
        pool_total_size: s.pool_total_size,
        pool_limit_hit: s.pool_limit_hit,
        written_back_pages: s.written_back_pages,
        reject_reclaim_fail: s.reject_reclaim_fail,
        reject_alloc_fail: s.reject_alloc_fail,
        reject_kmemcache_fail: s.reject_kmemcache_fail,
        reject_compress_fail: s.reject_compress_fail,
        reject_compress_poor: s.reject_compress_poor,
        decompress_fail: s.decompress_fail,
        reject_disabled: s.reject_disabled,
        reject_memcg_limit: s.reject_memcg_limit,
        reject_pool_limit: s.reject_pool_limit,
        zswpin: s.zswpin,
        zswpout: s.zswpout,
        zswpwb: s.zswpwb,
        writeback_skip_exists: s.writeback_skip_exists,
        pages_compacted: s.pages_compacted,
    }
}

/// Fills `*out` with a snapshot of the counters. Never sleeps. `-EINVAL`
/// for NULL.
///
/// # Safety
///
/// `out` is NULL or valid for a write of `struct zswap_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_get_stats(z: *mut zswap, out: *mut zswap_stats) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let s = c_stats(&z.zswap.stats());
        // SAFETY: NULL-checked by `put`; valid for a write (contract).
        unsafe { put(out, s) }
    })())
}

/// Reads one counter by its Linux name (any counter zswap keeps, including
/// ones newer than `struct zswap_stats`, and the swap core's vmstat events
/// `swpin_zero` / `swpout_zero`) into `*value`. `-EINVAL` for an
/// unknown name or NULL.
///
/// # Safety
///
/// `name` is NULL or NUL-terminated; `value` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_get_stat(
    z: *mut zswap,
    name: *const c_char,
    value: *mut u64,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        // SAFETY: NULL or NUL-terminated (contract).
        let n = unsafe { c_str(name)? };
        let sw = z.swap().stats();
        let v = match n {
            "swpin_zero" => sw.swpin_zero,
            "swpout_zero" => sw.swpout_zero,
            _ => z.zswap.stats().get(n).ok_or(Error::EINVAL)?,
        };
        // SAFETY: NULL-checked by `put`; valid for a write (contract).
        unsafe { put(value, v) }
    })())
}

// ---------------------------------------------------------------------------
// cgroups
// ---------------------------------------------------------------------------

fn tree(z: &zswap) -> Result<&MemcgTree> {
    z.memcg().ok_or(Error::EINVAL)
}

/// Creates the cgroup at `path` (`"a"`, `"a/b"`: the parent must exist) and
/// returns its id (the `memcg_id` of the other calls) through `*id_out`. The
/// root cgroup always exists, id 1, path `""`. May sleep. `-EINVAL` (no
/// cgroup tree, bad path, NULL), `-EEXIST`, `-ENOENT` (no parent),
/// `-ENOSPC` (ids exhausted), `-ENOMEM`.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated; `id_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_memcg_create(
    z: *mut zswap,
    path: *const c_char,
    id_out: *mut u32,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let t = tree(z)?;
        // SAFETY: NULL or NUL-terminated (contract).
        let p = unsafe { c_str(path)? };
        non_null(id_out)?;
        let m = t.create(p, Gfp::KERNEL)?;
        // SAFETY: non-NULL and valid for a write (contract).
        unsafe { put(id_out, m.id()) }
    })())
}

/// Takes the cgroup at `path` offline and removes it (`rmdir`): its charges
/// and zswap entries move to its parent. `-EBUSY` while it has children,
/// `-ENOENT` no such cgroup, `-EINVAL` (root, no tree, NULL). May sleep.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_memcg_remove(z: *mut zswap, path: *const c_char) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let t = tree(z)?;
        // SAFETY: NULL or NUL-terminated (contract).
        let p = unsafe { c_str(path)? };
        let off = t.remove(p)?;
        if off.newly_offline {
            z.zswap.memcg_offline(&off.memcg)?;
        }
        Ok(())
    })())
}

/// Writes a cgroup file: `memory.zswap.max`, `memory.max` (`max`, bytes,
/// `K`/`M`/`G`), `memory.zswap.writeback` (`0`/`1`). Never sleeps. `-EINVAL`
/// for an unknown cgroup or file, a bad value (nothing changes), a file root
/// does not have (`memory.max`, `memory.zswap.max`), NULL.
///
/// # Safety
///
/// `file` and `value` are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_memcg_write(
    z: *mut zswap,
    memcg_id: u32,
    file: *const c_char,
    value: *const c_char,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let m = z.memcg_of(memcg_id)?.ok_or(Error::EINVAL)?;
        // SAFETY: NULL or NUL-terminated (contract).
        let (f, v) = unsafe { (c_str(file)?, c_str(value)?) };
        match f {
            "memory.zswap.max" => m.set_zswap_max(v),
            "memory.max" => m.set_memory_max(v),
            "memory.zswap.writeback" => m.set_zswap_writeback(v),
            _ => Err(Error::EINVAL),
        }
    })())
}

/// Reads a cgroup value into `*value`: `memory.current`, `memory.max`,
/// `memory.zswap.current`, `memory.zswap.max` (bytes; `UINT64_MAX` for
/// `max`), `memory.zswap.writeback` (0/1), or a `memory.stat` key (`zswap`,
/// `zswapped`, `zswap_incomp` in bytes; `zswpin`, `zswpout`, `zswpwb`,
/// `swpin_zero`, `swpout_zero` in pages). Never sleeps. `-EINVAL` for an unknown cgroup or name, NULL.
///
/// # Safety
///
/// `name` is NULL or NUL-terminated; `value` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn zswap_memcg_read(
    z: *mut zswap,
    memcg_id: u32,
    name: *const c_char,
    value: *mut u64,
) -> c_int {
    rc((|| {
        let z = inst(z)?;
        let m = z.memcg_of(memcg_id)?.ok_or(Error::EINVAL)?;
        // SAFETY: NULL or NUL-terminated (contract).
        let n = unsafe { c_str(name)? };
        let st = m.stat();
        let limit = |pages: u64| {
            pages
                .checked_mul(PAGE_SIZE as u64)
                .filter(|_| pages != memcg::PAGE_COUNTER_MAX)
                .unwrap_or(u64::MAX)
        };
        let v = match n {
            "memory.current" => m.memory_current(),
            "memory.max" => m.memory_max(),
            "memory.zswap.current" => m.zswap_current(),
            "memory.zswap.max" => limit(m.zswap_max_pages()),
            "memory.zswap.writeback" => u64::from(m.zswap_writeback()),
            "zswap" => st.zswap,
            "zswapped" => st.zswapped,
            "zswap_incomp" => st.zswap_incomp,
            "zswpin" => st.zswpin,
            "zswpout" => st.zswpout,
            "zswpwb" => st.zswpwb,
            "swpin_zero" => st.swpin_zero,
            "swpout_zero" => st.swpout_zero,
            _ => return Err(Error::EINVAL),
        };
        // SAFETY: NULL-checked by `put`; valid for a write (contract).
        unsafe { put(value, v) }
    })())
}
