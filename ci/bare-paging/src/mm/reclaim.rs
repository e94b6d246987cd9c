//! Reclaim: finding cold pages with the clock, swapping them out through
//! zswap, and shrinking zswap itself.
//!
//! - The clock ([`Mm::clock_step`](super::Mm)): the hand walks the ring of
//!   resident pages; a page whose PTE has the accessed bit gets a second
//!   chance (the bit is cleared, its TLB entry flushed so the next access
//!   sets it again); one without it is the victim.
//! - [`pageout`]: `add_to_swap` (a slot and the swap cache), the PTE takes
//!   the swap entry (`try_to_unmap`, TLB flushed); a zero page only sets
//!   its bit in the swap core's zeromap; any other goes to `zswap_store`,
//!   and if zswap refuses it (pool limit, cgroup limit, no memory) to the
//!   RAM disk; then the folio leaves the swap cache and is freed and
//!   uncharged.
//! - `shrink_slab` for zswap's shrinker: writes back zswap entries of the
//!   cgroup to the device, in proportion to the LRU share just scanned and
//!   at least what the LRU could not give.
//!
//! [`reclaim_memcg`] runs for a cgroup at `memory.max` (from the charge in
//! a fault); [`reclaim_global`] when free frames run out;
//! [`balance_frames`] keeps them above a low watermark. All run as reclaim
//! context (`PF_MEMALLOC`): charges from inside are forced, and reclaim
//! does not recurse.

use kbase::{Gfp, Result};
use memcg::MemcgRef;
use swapcache::FolioRef;
use zswap_core::{ShrinkControl, ShrinkResult};

use super::frames::{FRAMES, NR_FRAMES};
use super::pagetable::{PTE_A, Pte};
use super::{Mm, Resident, VMSTAT, count, with_mm};
use crate::zswap_glue::{RAMDISK, as_reclaim, swap, uncharge_folio, zswap};
use swapcache::SwapBackend;

/// Reclaim works in batches of this many pages.
pub const SWAP_CLUSTER_MAX: u64 = 32;
/// Below this many free frames (1/8 of RAM), reclaim runs before a fault
/// is handled (`kswapd`'s low watermark).
pub const WMARK_LOW: usize = NR_FRAMES / 8;
/// ... until this many are free (the high watermark).
pub const WMARK_HIGH: usize = NR_FRAMES * 3 / 16;

/// What one step of the clock found.
enum Step {
    /// Nothing to scan.
    Empty,
    /// A referenced page: its accessed bit was cleared.
    Referenced,
    /// A cold page, taken off the ring.
    Victim(Resident),
}

impl Mm {
    /// One step of the clock hand.
    fn clock_step(&mut self) -> Step {
        if self.resident.is_empty() {
            return Step::Empty;
        }
        if self.hand >= self.resident.len() {
            self.hand = 0;
        }
        let Some(va) = self.resident.get(self.hand).map(|r| r.va) else {
            return Step::Empty;
        };
        if let Pte::Present { pa, flags } = self.aspace.read(va)
            && flags & PTE_A != 0
        {
            let young = Pte::Present {
                pa,
                flags: flags & !PTE_A,
            };
            if self.aspace.write(va, young).is_ok() {
                self.hand += 1;
                return Step::Referenced;
            }
        }
        Step::Victim(self.resident.remove(self.hand))
    }

    /// Puts a page the reclaimer could not free back on the ring (behind
    /// the hand: it is looked at last).
    fn putback(&mut self, r: Resident) {
        if self.resident.try_reserve(1).is_ok() {
            let at = self.hand.min(self.resident.len());
            self.resident.insert(at, r);
            self.hand = at + 1;
        }
    }
}

/// Swaps out one cold page. Returns whether its frame was freed.
fn pageout(victim: Resident) -> Result<bool> {
    let (s, z) = (swap()?, zswap()?);
    let Resident { va, folio } = victim;
    let keep = |folio: FolioRef| {
        with_mm(|mm| mm.putback(Resident { va, folio }));
        Ok(false)
    };
    let Some(memcg) = s.memcgs.get(folio.memcg_id()) else {
        return keep(folio);
    };
    if !folio.trylock() {
        return keep(folio);
    }
    // add_to_swap: a slot whose count of 1 is the PTE's, and the swap cache.
    let Ok(entry) = s.space.add_to_swap(&folio, Gfp::NOWAIT) else {
        folio.unlock();
        return keep(folio);
    };
    let _ = s.space.swap_cgroup_record(entry, 1, memcg.id());
    memcg.swap_charge(1);
    folio.set_dirty();
    // try_to_unmap: the PTE keeps the swap entry; the TLB forgets the page.
    let unmapped = with_mm(|mm| mm.aspace.write(va, Pte::Swap(entry)));
    // swap_writeout: a zero page only sets its zeromap bit; otherwise zswap
    // first, the device if zswap refuses.
    let written = unmapped.is_some_and(|r| r.is_ok())
        && if s.space.zeromap_folio_store(&folio) == Ok(true) {
            count(&VMSTAT.pageout_zero);
            true
        } else if z.store(&folio).is_ok() {
            count(&VMSTAT.pageout_zswap);
            true
        } else {
            let w = folio.with_page(0, |p| RAMDISK.write_page(entry, p));
            let ok = matches!(w, Ok(Ok(())));
            if ok {
                count(&VMSTAT.pageout_device);
            }
            ok
        };
    if !written {
        // Keep the page: map it again and give the slot back.
        let pa = folio.with_page(0, |p| p.as_ptr() as usize)?;
        let flags = super::pagetable::PTE_R
            | super::pagetable::PTE_W
            | super::pagetable::PTE_U
            | PTE_A
            | super::pagetable::PTE_D;
        with_mm(|mm| mm.aspace.write(va, Pte::Present { pa, flags }));
        memcg.swap_uncharge(1);
        let _ = s.space.swap_free(entry);
        s.space.delete_from_swap_cache(&folio);
        folio.unlock();
        return keep(folio);
    }
    // Written: the page is clean; it leaves the swap cache and RAM.
    folio.clear_dirty();
    s.space.delete_from_swap_cache(&folio);
    folio.unlock();
    uncharge_folio(&folio);
    Ok(true)
}

/// `shrink_lruvec`: runs the clock until `nr` pages are freed or a scan
/// budget is spent. Only the task's pages exist, so `target` (a cgroup)
/// either covers them or there is nothing to scan. Returns (freed,
/// scanned, resident pages before).
fn shrink_lru(target: Option<&MemcgRef>, nr: u64) -> (u64, u64, u64) {
    let Some((lru_pages, covered)) = with_mm(|mm| {
        let covered = target.is_none_or(|t| mm.memcg.is_descendant_of(t));
        (mm.resident.len() as u64, covered)
    }) else {
        return (0, 0, 0);
    };
    if !covered {
        return (0, 0, lru_pages);
    }
    // Enough to go round twice: the first lap may only clear accessed bits.
    let budget = nr
        .saturating_mul(4)
        .saturating_add(SWAP_CLUSTER_MAX)
        .max(2 * lru_pages + 1);
    let (mut freed, mut scanned) = (0, 0);
    while freed < nr && scanned < budget {
        let step = with_mm(|mm| mm.clock_step());
        scanned += 1;
        count(&VMSTAT.clock_scanned);
        match step {
            None | Some(Step::Empty) => break,
            Some(Step::Referenced) => count(&VMSTAT.clock_referenced),
            Some(Step::Victim(v)) => {
                if pageout(v).unwrap_or(false) {
                    freed += 1;
                }
            }
        }
    }
    (freed, scanned, lru_pages)
}

/// `shrink_slab` for zswap's shrinker on `memcg`: writes back a share of
/// its entries (twice the share of the LRU just scanned,
/// `DEFAULT_SEEKS` = 2), and at least `want`. Returns the pages written
/// back.
fn shrink_slab(memcg: &MemcgRef, scanned: u64, lru_pages: u64, want: u64) -> u64 {
    let Ok(z) = zswap() else { return 0 };
    let mut sc = ShrinkControl::new(Some(memcg.clone()), 0);
    let freeable = z.shrinker_count(&sc);
    if freeable == 0 {
        return 0;
    }
    let share = 2 * scanned * freeable / lru_pages.max(1);
    sc.nr_to_scan = share.max(want).min(freeable) as usize;
    match z.shrinker_scan(&mut sc) {
        ShrinkResult::Freed(n) => {
            VMSTAT
                .shrinker_written
                .fetch_add(n, kbase::sync::Ordering::Relaxed);
            n as u64
        }
        ShrinkResult::Stop => 0,
    }
}

/// `try_to_free_mem_cgroup_pages`: reclaims at least a batch from `memcg`
/// (the LRU, then zswap's shrinker). Returns the pages freed (0 from inside
/// reclaim: it does not recurse).
pub fn reclaim_memcg(memcg: &MemcgRef, nr_pages: u64, _gfp: Gfp) -> u64 {
    as_reclaim(|| {
        count(&VMSTAT.memcg_reclaims);
        let nr = nr_pages.max(SWAP_CLUSTER_MAX);
        let (freed, scanned, lru_pages) = shrink_lru(Some(memcg), nr);
        freed + shrink_slab(memcg, scanned, lru_pages, nr - freed.min(nr))
    })
    .unwrap_or(0)
}

/// Global reclaim (direct reclaim for the page allocator): frees up to
/// `nr` frames from the LRU, then zswap's shrinker on the task's cgroup.
pub fn reclaim_global(nr: u64) -> u64 {
    as_reclaim(|| {
        count(&VMSTAT.global_reclaims);
        let (freed, scanned, lru_pages) = shrink_lru(None, nr);
        let written = with_mm(|mm| mm.memcg.clone())
            .map(|m| shrink_slab(&m, scanned, lru_pages, nr - freed.min(nr)))
            .unwrap_or(0);
        freed + written
    })
    .unwrap_or(0)
}

/// `kswapd`: below the low watermark, reclaim up to the high one (a
/// bounded number of rounds: a page moved into zswap frees its frame but
/// takes pool space, so progress in pages is not always progress in
/// frames).
pub fn balance_frames() {
    if FRAMES.nr_free() >= WMARK_LOW {
        return;
    }
    for _ in 0..16 {
        let free = FRAMES.nr_free();
        if free >= WMARK_HIGH {
            break;
        }
        if reclaim_global((WMARK_HIGH - free) as u64) == 0 {
            break;
        }
    }
}
