//! The self-test: boot, two swap rounds (lz4, then zstd), reclaim from a
//! swap-in charge, teardown.
//!
//! Every check has its own exit status:
//!
//! | status | check |
//! |---|---|
//! | 1..=7 | boot: cgroup tree, cgroup, swap device, swap space, zswap, zswap swapon, `memory.zswap.max` |
//! | 10 + k | lz4 round, check `k` below |
//! | 50 + k | zstd round, check `k` below |
//! | 90, 91 | switching the compressor to zstd failed / did not take |
//! | 100, 102..=112 | reclaim from a swap-in charge, see [`reclaim_from_fault`] |
//! | 101 | panic |
//! | 120..=134 | teardown, see [`teardown`] |
//!
//! Round checks `k` (see [`round`]): 0 swap-out failed (folio, slot or
//! `zswap_store`); 1 `stored_pages` / `zswpout` wrong after the stores; 2
//! a zero page did not go to the swap core's zeromap (`swpout_zero`,
//! `swpin_zero`, or zswap or the device saw it); 3 `stored_incompressible_pages` wrong; 4 the
//! cgroup's `memory.zswap.current` is 0 or the pool holds no page; 5 a
//! store wrote to the device; 6 a fault could not bring a page into the
//! swap cache; 7 zswap did not load a page it holds; 8 a loaded page differs;
//! 9 the slot was not freed after the fault; 10 `zswpin` wrong; 11 the entry
//! of a loaded page survived; 12 `Zswap::writeback` of a compressible entry
//! failed; 13 a same-value page was not written back (6.12+: it is
//! compressed like any page); 14
//! `shrink_memcg` failed; 15 nothing written back; 16 a writeback failed
//! (`reject_reclaim_fail`) or `writeback_folio_done` was not called once per
//! written folio; 17 the device holds a different number of pages than were
//! written back; 18 zswap still answered a load for a written-back slot; 19
//! the device read failed; 20 a page read from the device differs; 21 a
//! cgroup's `memory.current` differs from its `memory.zswap.current`
//! (a swap-in charge leaked); 22 freeing a slot failed; 23 entries left
//! after every slot was freed; 24 slots left in use; 25 pages left on the
//! device; 26 zswap bytes left charged to the cgroup; 27 pool pages left.

use alloc::vec::Vec;

use kbase::{Error, Gfp, PAGE_SIZE};
use memcg::{MemcgRef, MemcgTree};
use swapcache::{Folio, MemBackend, SwapBackend, SwapSpace, SwpEntry};
use zswap_core::{CompressorKind, Zswap, ZswapParams};

use crate::frames::{FRAMES, NR_FRAMES};
use crate::kernel::{BASE, BareSwap, BareZswap, EVENTS, Events, ZSWAP, uncharge_folio};

/// Slots of the swap device.
const SWAP_PAGES: u64 = 1024;
/// Pages swapped out by the lz4 round, the zstd round and the reclaim test.
const LZ4_PAGES: usize = 48;
const ZSTD_PAGES: usize = 24;
const RECLAIM_PAGES: usize = 24;

type Check = core::result::Result<(), u8>;

/// Check `code`: printed as it runs (`crate::checks`).
fn ensure(ok: bool, code: u8) -> Check {
    crate::checks::ensure(ok, code)
}

/// The kernel's objects, once booted.
struct K {
    base: &'static crate::kernel::Base,
    zswap: &'static Zswap<BareZswap>,
    swp_type: u32,
    cg: MemcgRef,
}

impl K {
    fn swap(&self) -> &SwapSpace<BareSwap> {
        &self.base.swap
    }
    fn backend(&self) -> &MemBackend {
        &self.base.backend
    }
}

/// Runs the self-test; `Err` carries the failed check's exit status.
pub fn run() -> Check {
    let k = boot()?;
    round(&k, 10, LZ4_PAGES, 1)?;
    k.zswap.set_param("compressor", "zstd").map_err(|_| 90)?;
    ensure(k.zswap.params().compressor == CompressorKind::Zstd, 91)?;
    round(&k, 50, ZSTD_PAGES, 2)?;
    reclaim_from_fault(&k)?;
    teardown(&k)
}

fn boot() -> core::result::Result<K, u8> {
    let memcgs = MemcgTree::new(Gfp::KERNEL).map_err(|_| 1)?;
    let base = BASE.call_once(|| crate::kernel::Base {
        swap: SwapSpace::new(BareSwap),
        memcgs,
        backend: MemBackend::new(),
    });
    let cg = base.memcgs.create("selftest", Gfp::KERNEL).map_err(|_| 2)?;
    let swp_type = base.swap.swapon(SWAP_PAGES, Gfp::KERNEL).map_err(|_| 4)?;
    let params = ZswapParams {
        shrinker_enabled: true,
        ..ZswapParams::default()
    };
    let z = Zswap::new(BareZswap::new(base), params, Gfp::KERNEL).map_err(|_| 5)?;
    let zswap = ZSWAP.call_once(|| z);
    zswap.swapon(swp_type, SWAP_PAGES).map_err(|_| 6)?;
    // The cgroup may use zswap without a limit.
    ensure(cg.zswap_max_pages() > 0, 7)?;
    ensure(base.backend.stored_pages() == 0, 3)?;
    Ok(K {
        base,
        zswap,
        swp_type,
        cg,
    })
}

// ---------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------

/// What page `i` holds: one repeated non-zero byte, compressible or
/// incompressible.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Same,
    Text,
    Noise,
}

fn kind(i: usize) -> Kind {
    match i % 3 {
        0 => Kind::Same,
        1 => Kind::Text,
        _ => Kind::Noise,
    }
}

/// Fills `p` with page `i` of the series `salt`.
fn fill(i: usize, salt: u64, p: &mut [u8; PAGE_SIZE]) {
    let seed = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
    match kind(i) {
        Kind::Same => p.fill((seed >> 56) as u8 | 1),
        Kind::Text => {
            for (j, b) in p.iter_mut().enumerate() {
                *b = if j % 64 < 8 {
                    (seed as u8).wrapping_add((j / 64) as u8)
                } else {
                    b"zswap"[j % 5]
                };
            }
        }
        Kind::Noise => {
            let mut x = seed | 1;
            for chunk in p.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_ne_bytes());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The mm side: swap-out, fault, exit
// ---------------------------------------------------------------------------

/// Reclaim's swap-out of one page charged to `cg` (`swap_writeout`): a slot
/// and the swap cache, the swap-cgroup record, the swap core's zeromap for
/// a zero page (nothing written, zswap never sees it), else `zswap_store`;
/// then the folio leaves the swap cache and is freed. The slot keeps count
/// 1 (the page table's).
fn swap_out(k: &K, data: &[u8; PAGE_SIZE]) -> kbase::Result<SwpEntry> {
    let folio = Folio::alloc(&FRAMES, 1, Gfp::KERNEL)?;
    folio.with_page_mut(0, |p| p.copy_from_slice(data))?;
    folio.set_memcg_id(k.cg.id());
    folio.lock();
    let swp = match k.swap().add_to_swap(&folio, Gfp::KERNEL) {
        Ok(s) => s,
        Err(e) => {
            folio.unlock();
            return Err(e);
        }
    };
    let r = k
        .swap()
        .swap_cgroup_record(swp, 1, k.cg.id())
        .and_then(|()| k.swap().zeromap_folio_store(&folio))
        .and_then(|zero| if zero { Ok(()) } else { k.zswap.store(&folio) });
    k.swap().delete_from_swap_cache(&folio);
    folio.unlock();
    if r.is_err() {
        let _ = k.swap().swap_free(swp);
    }
    r.map(|()| swp)
}

/// Where a fault must find the page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Zeromap,
    Zswap,
    Device,
}

/// A fault on `swp`: a new swap-cache folio (charged), filled from the
/// zeromap, zswap or the device (`swap_read_folio`'s order), compared with
/// `want`, mapped (the slot's count goes, freeing it) and then freed by the
/// program (uncharged). Its checks are round check numbers, turned into
/// statuses by `code`: 6 no folio, 2 the zeromap did not fill a zero page
/// (or filled another), 7 zswap did not load, 18 zswap loaded a page it
/// should not hold, 19 device read failed, 8/20 wrong data, 9 slot not
/// freed.
fn fault(
    k: &K,
    swp: SwpEntry,
    want: &[u8; PAGE_SIZE],
    from: Source,
    code: impl Fn(u8) -> u8,
) -> Check {
    let mut stale = 0;
    let folio = loop {
        let (f, new) = k
            .swap()
            .read_swap_cache_async(swp, Gfp::KERNEL, false)
            .map_err(|_| code(6))?;
        if new {
            break f;
        }
        // do_swap_page: a folio found in the swap cache must still be the
        // cache's folio for `swp` once locked (it may have left, and another
        // been cached); retry otherwise. Nothing here leaves one there
        // between faults, so a hit is a check failure once verified.
        f.lock();
        let current = f.test_swapcache() && f.swap() == Some(swp);
        f.unlock();
        stale += 1;
        ensure(!current && stale < 8, code(6))?;
    };
    let filled = match (k.swap().zeromap_folio_read(&folio), from) {
        (Ok(true), Source::Zeromap) => Ok(()),
        (Ok(false), Source::Zeromap) | (Ok(true), _) | (Err(_), _) => Err(code(2)),
        (Ok(false), _) => match (k.zswap.load(&folio), from) {
            (Ok(()), Source::Zswap) => Ok(()),
            (Err(Error::ENOENT), Source::Device) => {
                let r = folio
                    .with_page_mut(0, |p| k.backend().read_page(swp, p))
                    .unwrap_or(Err(Error::EIO));
                if r.is_ok() {
                    folio.set_uptodate();
                    k.zswap.folio_swapin(&folio);
                }
                r.map_err(|_| code(19))
            }
            (_, Source::Zswap) => Err(code(7)),
            (_, _) => Err(code(18)),
        },
    };
    if let Err(c) = filled {
        k.swap().delete_from_swap_cache(&folio);
        folio.unlock();
        uncharge_folio(&folio);
        return Err(c);
    }
    folio.unlock();
    let same = folio.with_page(0, |p| p == want).unwrap_or(false);
    // Map it: the page table takes the page, the slot's reference goes and
    // with it the swap-cache folio (the slot is freed).
    let freed = k.swap().swap_free(swp).is_ok() && k.swap().swap_count(swp) == Ok(0);
    folio.lock();
    k.swap().delete_from_swap_cache(&folio);
    folio.unlock();
    // The program frees the page.
    uncharge_folio(&folio);
    ensure(same, code(if from == Source::Device { 20 } else { 8 }))?;
    ensure(freed && k.swap().has_cache(swp) == Ok(false), code(9))
}

/// `memory.current` of the cgroup is exactly its zswap bytes: no swap-in
/// charge is left over (no page is mapped between the steps).
fn charges_balanced(k: &K) -> bool {
    k.cg.memory_current() == k.cg.zswap_current()
}

// ---------------------------------------------------------------------------
// A round
// ---------------------------------------------------------------------------

/// One round with the current compressor: swap `n` pages out, load every
/// fourth back, write some back (`writeback` and `shrink_memcg`), read those
/// from the device, free the rest. Exit statuses `base + k` (module table).
fn round(k: &K, base: u8, n: usize, salt: u64) -> Check {
    let fail = |c: u8| base + c;
    let z = k.zswap;
    let s0 = z.stats();
    let mut page = [0u8; PAGE_SIZE];

    // Swap-out.
    let mut slots: Vec<Option<SwpEntry>> = Vec::new();
    slots.try_reserve_exact(n).map_err(|_| fail(0))?;
    for i in 0..n {
        fill(i, salt, &mut page);
        slots.push(Some(swap_out(k, &page).map_err(|_| fail(0))?));
    }
    let s = z.stats();
    let count = |want: Kind| (0..n).filter(|&i| kind(i) == want).count() as u64;
    ensure(
        s.stored_pages - s0.stored_pages == n as u64 && s.zswpout - s0.zswpout == n as u64,
        fail(1),
    )?;
    ensure(
        s.stored_incompressible_pages - s0.stored_incompressible_pages == count(Kind::Noise),
        fail(3),
    )?;
    ensure(k.cg.zswap_current() > 0 && z.total_pages() > 0, fail(4))?;
    ensure(k.backend().stored_pages() == 0, fail(5))?;
    // A zero page: the swap core's zeromap takes it (6.12+), zswap and the
    // device never see it; the fault fills zeros.
    let zero = [0u8; PAGE_SIZE];
    let (v0, cg0) = (k.swap().stats(), k.cg.stat());
    let zslot = swap_out(k, &zero).map_err(|_| fail(2))?;
    let (v, cg) = (k.swap().stats(), k.cg.stat());
    ensure(
        v.swpout_zero == v0.swpout_zero + 1
            && cg.swpout_zero == cg0.swpout_zero + 1
            && !z.is_present(zslot)
            && z.stats().stored_pages == s.stored_pages
            && k.backend().stored_pages() == 0,
        fail(2),
    )?;
    fault(k, zslot, &zero, Source::Zeromap, fail)?;
    ensure(
        k.swap().stats().swpin_zero == v0.swpin_zero + 1
            && k.cg.stat().swpin_zero == cg0.swpin_zero + 1,
        fail(2),
    )?;

    // Faults on every fourth page: loads from zswap.
    let mut loaded = 0u64;
    for (i, slot) in slots.iter_mut().enumerate().step_by(4) {
        let Some(swp) = *slot else { continue };
        fill(i, salt, &mut page);
        fault(k, swp, &page, Source::Zswap, fail)?;
        ensure(!z.is_present(swp), fail(11))?;
        *slot = None;
        loaded += 1;
    }
    ensure(z.stats().zswpin - s0.zswpin == loaded, fail(10))?;
    ensure(charges_balanced(k), fail(21))?;

    // Writeback: one chosen compressible entry, then the cgroup's LRU.
    let wb0 = z.stats();
    let done0 = Events::get(&EVENTS.wb_done);
    let pick = |want: Kind| {
        slots
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.filter(|_| kind(i) == want))
    };
    let text = pick(Kind::Text).ok_or(fail(12))?;
    z.writeback(text).map_err(|_| fail(12))?;
    ensure(!z.is_present(text), fail(12))?;
    let same = pick(Kind::Same).ok_or(fail(13))?;
    z.writeback(same).map_err(|_| fail(13))?;
    ensure(!z.is_present(same), fail(13))?;
    // One entry per call (Linux's `nr_to_walk = 1`): calls that meet a
    // referenced entry only take its second chance away (EAGAIN); once the
    // head entries lost theirs, each call writes one back. Two of them.
    let bound = 2 * z.lru_count(Some(&k.cg)) + 4;
    for _ in 0..bound {
        if z.stats().written_back_pages - wb0.written_back_pages >= 4 {
            break;
        }
        match z.shrink_memcg(&k.cg) {
            Ok(()) | Err(Error::EAGAIN) => {}
            Err(_) => return Err(fail(14)),
        }
    }
    let s = z.stats();
    let written = s.written_back_pages - wb0.written_back_pages;
    ensure(written >= 3, fail(15))?;
    ensure(
        s.reject_reclaim_fail == wb0.reject_reclaim_fail
            && (Events::get(&EVENTS.wb_done) - done0) as u64 == written
            && s.zswpwb - wb0.zswpwb == written,
        fail(16),
    )?;
    ensure(k.backend().stored_pages() as u64 == written, fail(17))?;
    ensure(charges_balanced(k), fail(21))?;

    // Faults on the written-back pages: read from the device.
    let mut read = 0u64;
    for (i, slot) in slots.iter_mut().enumerate() {
        let Some(swp) = *slot else { continue };
        if z.is_present(swp) {
            continue;
        }
        fill(i, salt, &mut page);
        fault(k, swp, &page, Source::Device, fail)?;
        *slot = None;
        read += 1;
    }
    ensure(read == written, fail(17))?;
    ensure(z.stats().zswpin - s0.zswpin == loaded, fail(18))?;
    ensure(charges_balanced(k), fail(21))?;

    // Process exit: every other slot is freed; zswap hears of each.
    for swp in slots.iter().flatten() {
        k.swap().free_swap_and_cache(*swp).map_err(|_| fail(22))?;
    }
    let s = z.stats();
    ensure(s.stored_pages == s0.stored_pages, fail(23))?;
    ensure(k.swap().inuse_pages(k.swp_type) == Ok(0), fail(24))?;
    ensure(k.backend().stored_pages() == 0, fail(25))?;
    ensure(
        k.cg.zswap_current() == 0 && k.cg.memory_current() == 0,
        fail(26),
    )?;
    ensure(z.total_pages() == 0 && z.lru_entries() == 0, fail(27))
}

// ---------------------------------------------------------------------------
// Reclaim from a swap-in charge
// ---------------------------------------------------------------------------

/// Formats `v` in decimal into `buf`.
fn decimal(v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..)
        .and_then(|s| core::str::from_utf8(s).ok())
        .unwrap_or("")
}

/// The fault-plus-reclaim recursion: the cgroup sits at `memory.max`, so a
/// fault's swap-in charge reclaims, and reclaim is zswap writeback of the
/// cgroup's entries, the faulting slot's own entry among them. Writeback
/// must skip that slot (the fault holds `SWAP_HAS_CACHE` with no folio yet:
/// `read_swap_cache_async` fails at once, writeback gives `ENOMEM`), write
/// others back (charging their folios by force, from reclaim context), and
/// the fault must complete with its page loaded from zswap.
///
/// Statuses: 100 swap-out failed; 102 `memory.max` not set; 103 the fault
/// failed (charge or load); 104 its page differs; 105 reclaim never ran;
/// 106 nothing was written back; 107 writeback did not skip the faulting
/// slot; 108 no forced charge from reclaim; 109 `memory.current` above
/// `memory.max` after the fault; 110 the other pages did not come back
/// intact; 111 a wait on the swap cache gave up; 112 charges left.
fn reclaim_from_fault(k: &K) -> Check {
    const N: usize = RECLAIM_PAGES;
    const SALT: u64 = 3;
    let z = k.zswap;
    let mut page = [0u8; PAGE_SIZE];
    let mut slots: Vec<Option<SwpEntry>> = Vec::new();
    slots.try_reserve_exact(N).map_err(|_| 100)?;
    for i in 0..N {
        fill(i, SALT, &mut page);
        slots.push(Some(swap_out(k, &page).map_err(|_| 100)?));
    }
    // At the limit: the next page charged needs reclaim.
    let limit = k.cg.memory_current() / PAGE_SIZE as u64 * PAGE_SIZE as u64;
    let mut buf = [0u8; 20];
    k.cg.set_memory_max(decimal(limit, &mut buf))
        .map_err(|_| 102)?;
    ensure(k.cg.memory_max() == limit, 102)?;

    let s0 = z.stats();
    let reclaims0 = Events::get(&EVENTS.reclaims);
    let forced0 = Events::get(&EVENTS.forced_charges);
    // Fault on the oldest entry on the LRU: the first the walk considers.
    const FIRST: usize = 0;
    let first = slots.get(FIRST).copied().flatten().ok_or(100)?;
    let (folio, new) = k
        .swap()
        .read_swap_cache_async(first, Gfp::KERNEL, false)
        .map_err(|_| 103)?;
    ensure(new, 103)?;
    let loaded = z.load(&folio);
    folio.unlock();
    ensure(loaded.is_ok(), 103)?;
    fill(FIRST, SALT, &mut page);
    ensure(folio.with_page(0, |p| p == &page) == Ok(true), 104)?;
    let s = z.stats();
    ensure(Events::get(&EVENTS.reclaims) > reclaims0, 105)?;
    ensure(s.written_back_pages > s0.written_back_pages, 106)?;
    ensure(s.writeback_skip_exists > s0.writeback_skip_exists, 107)?;
    ensure(Events::get(&EVENTS.forced_charges) > forced0, 108)?;
    ensure(k.cg.memory_current() <= k.cg.memory_max(), 109)?;
    // Map, then free the page.
    let freed = k.swap().swap_free(first).is_ok();
    folio.lock();
    k.swap().delete_from_swap_cache(&folio);
    folio.unlock();
    uncharge_folio(&folio);
    drop(folio);
    ensure(freed && k.swap().has_cache(first) == Ok(false), 103)?;
    if let Some(s) = slots.get_mut(FIRST) {
        *s = None;
    }
    k.cg.set_memory_max("max").map_err(|_| 102)?;

    // Everything else comes back intact, from wherever it is now.
    for (i, slot) in slots.iter().enumerate() {
        let Some(swp) = *slot else { continue };
        let from = if z.is_present(swp) {
            Source::Zswap
        } else {
            Source::Device
        };
        fill(i, SALT, &mut page);
        fault(k, swp, &page, from, |_| 110)?;
    }
    ensure(Events::get(&EVENTS.stuck_waits) == 0, 111)?;
    ensure(k.cg.memory_current() == 0 && k.cg.zswap_current() == 0, 112)
}

// ---------------------------------------------------------------------------
// Teardown
// ---------------------------------------------------------------------------

/// The final state. Statuses: 120 entries left (`stored_pages`); 121
/// nothing was ever written back; 122 pool pages left (`pool_total_size`,
/// `total_pages`); 123 more than one pool left after the compressor switch;
/// 124 zswap swapoff refused; 125 swap swapoff refused; 126 page frames
/// still allocated; 127 a page was freed twice or was not ours; 128 the
/// heap ran out; 129 a cgroup still has charges; 130 a swap-cache wait gave
/// up; 131 shrink work was queued (the pool never came near its limit); 132
/// a counter of rejections moved; 133 the cgroup lists still hold entries;
/// 134 `slot_freed` was not called exactly once per slot ever used.
fn teardown(k: &K) -> Check {
    let z = k.zswap;
    let s = z.stats();
    ensure(s.stored_pages == 0, 120)?;
    ensure(s.written_back_pages > 0, 121)?;
    ensure(s.pool_total_size == 0 && z.total_pages() == 0, 122)?;
    ensure(z.nr_pools() == 1, 123)?;
    ensure(
        s.reject_alloc_fail == 0
            && s.reject_kmemcache_fail == 0
            && s.reject_compress_fail == 0
            && s.reject_compress_poor == 0
            && s.reject_pool_limit == 0
            && s.reject_memcg_limit == 0
            && s.decompress_fail == 0,
        132,
    )?;
    ensure(z.lru_entries() == 0, 133)?;
    z.swapoff(k.swp_type).map_err(|_| 124)?;
    k.swap().swapoff(k.swp_type).map_err(|_| 125)?;
    ensure(FRAMES.nr_free() == NR_FRAMES, 126)?;
    ensure(FRAMES.bad_frees() == 0, 127)?;
    ensure(crate::ALLOCATOR.failures() == 0, 128)?;
    let root = k.base.memcgs.root();
    ensure(
        k.cg.memory_current() == 0 && root.memory_current() == 0,
        129,
    )?;
    ensure(Events::get(&EVENTS.stuck_waits) == 0, 130)?;
    ensure(
        // Each round also swaps one zero page out to the zeromap.
        Events::get(&EVENTS.slots_freed) == LZ4_PAGES + ZSTD_PAGES + RECLAIM_PAGES + 2,
        134,
    )?;
    ensure(Events::get(&z.platform().shrink_queued) == 0, 131)
}
