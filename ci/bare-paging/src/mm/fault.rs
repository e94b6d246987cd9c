//! The page fault handler (`handle_mm_fault`, reduced to one task).
//!
//! A fault on a user address looks at its PTE:
//!
//! - present: the hardware wanted the accessed or dirty bit set (QEMU's
//!   riscv64 sets them itself; the Cortex-A57 takes an access-flag fault):
//!   set them, done;
//! - none: first touch, `do_anonymous_page`: a zeroed page, charged to the
//!   task's cgroup;
//! - a swap entry: `do_swap_page`: `read_swap_cache_async` brings a folio
//!   into the swap cache (its charge may reclaim, and reclaim may write
//!   back zswap entries, this very slot's included: writeback skips it with
//!   `EEXIST`); the swap core's zeromap fills it if it was a zero page,
//!   else zswap `load`, else the RAM disk (the page was written back, or
//!   refused at store); then the slot is freed and the page mapped.
//!
//! Before any of this the frames are balanced (`kswapd`'s job): below the
//! low watermark, reclaim runs.

use kbase::{Error, Gfp, PAGE_SIZE};
use memcg::MemcgEvent;
use swapcache::{Folio, FolioRef, SwpEntry};

use super::pagetable::{PTE_A, PTE_D, PTE_W, Pte};
use super::reclaim::{SWAP_CLUSTER_MAX, balance_frames, reclaim_global};
use super::{VMSTAT, Vma, count, with_mm};
use crate::mm::frames::FRAMES;
use crate::zswap_glue::{RAMDISK, Reclaim, swap, uncharge_folio, zswap};
use swapcache::SwapBackend;

/// What the faulting access was.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Instruction fetch.
    Fetch,
    /// Load.
    Load,
    /// Store.
    Store,
}

/// Why a fault could not be handled (Linux's `VM_FAULT_*` errors): the
/// task must die.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VmFault {
    /// No mapping allows the access.
    Sigsegv,
    /// Out of memory (the cgroup or the frames).
    Oom,
    /// The page could not be brought back.
    Sigbus,
}

impl From<Error> for VmFault {
    fn from(e: Error) -> VmFault {
        if e == Error::ENOMEM {
            VmFault::Oom
        } else {
            VmFault::Sigbus
        }
    }
}

type Result<T> = core::result::Result<T, VmFault>;

/// Handles a page fault of the task at `addr`.
pub fn handle_page_fault(addr: usize, access: Access) -> Result<()> {
    count(&VMSTAT.faults);
    let va = addr & !(PAGE_SIZE - 1);
    let (vma, pte) = with_mm(|mm| (mm.vma(va), mm.aspace.read(va))).ok_or(VmFault::Sigbus)?;
    match (vma, access) {
        (None, _) | (Some(Vma::Code), Access::Store) | (Some(Vma::Anon), Access::Fetch) => {
            return Err(VmFault::Sigsegv);
        }
        _ => {}
    }
    match pte {
        Pte::Present { pa, flags } => {
            if access == Access::Store && flags & PTE_W == 0 {
                return Err(VmFault::Sigsegv);
            }
            let extra = if access == Access::Store {
                PTE_A | PTE_D
            } else {
                PTE_A
            };
            count(&VMSTAT.access_faults);
            with_mm(|mm| {
                mm.aspace.write(
                    va,
                    Pte::Present {
                        pa,
                        flags: flags | extra,
                    },
                )
            })
            .ok_or(VmFault::Sigbus)??;
            Ok(())
        }
        Pte::None => {
            balance_frames();
            do_anonymous_page(va)
        }
        Pte::Swap(entry) => {
            balance_frames();
            do_swap_page(va, entry)
        }
    }
}

/// A folio of one page, reclaiming globally when no frame is free.
fn alloc_folio(gfp: Gfp) -> Result<FolioRef> {
    Ok(alloc_folio_or_enomem(gfp)?)
}

fn alloc_folio_or_enomem(gfp: Gfp) -> kbase::Result<FolioRef> {
    for _ in 0..8 {
        match Folio::alloc(&FRAMES, 1, gfp) {
            Err(Error::ENOMEM) => {
                if reclaim_global(SWAP_CLUSTER_MAX) == 0 {
                    break;
                }
            }
            r => return r,
        }
    }
    Err(Error::ENOMEM)
}

/// First touch of an anonymous page: map a zeroed, charged page.
fn do_anonymous_page(va: usize) -> Result<()> {
    let s = swap()?;
    let memcg = with_mm(|mm| mm.memcg.clone()).ok_or(VmFault::Sigbus)?;
    let folio = alloc_folio(Gfp::KERNEL | Gfp::ZERO)?;
    // mem_cgroup_charge: over memory.max this reclaims (no lock held).
    s.memcgs.try_charge(&memcg, 1, Gfp::KERNEL, &Reclaim)?;
    folio.set_memcg_id(memcg.id());
    count(&VMSTAT.demand_zero);
    let r = with_mm(|mm| mm.map_anon(va, folio.clone())).unwrap_or(Err(Error::EINVAL));
    if r.is_err() {
        uncharge_folio(&folio);
    }
    Ok(r?)
}

/// `do_swap_page`: the PTE holds `entry`; bring the page back.
fn do_swap_page(va: usize, entry: SwpEntry) -> Result<()> {
    let s = swap()?;
    // A task's swap-in never skips (skip_if_exists = false): it waits for a
    // busy slot. The folio allocation may fail for want of frames: reclaim
    // and retry, as the page allocator would.
    let mut tries = 0;
    let (folio, new) = loop {
        match s.space.read_swap_cache_async(entry, Gfp::KERNEL, false) {
            Ok(x) => break x,
            Err(Error::ENOMEM) if FRAMES.nr_free() == 0 && tries < 8 => {
                tries += 1;
                if reclaim_global(SWAP_CLUSTER_MAX) == 0 {
                    return Err(VmFault::Oom);
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    if new {
        // swap_read_folio: the zeromap, then zswap, then the device.
        let r = match s.space.zeromap_folio_read(&folio) {
            Ok(true) => {
                count(&VMSTAT.swapin_zero);
                Ok(())
            }
            Ok(false) => swap_read(&folio, entry),
            Err(e) => Err(e),
        };
        if r.is_err() {
            // Leave the slot as it was; the task gets SIGBUS.
            s.space.delete_from_swap_cache(&folio);
            folio.unlock();
            uncharge_folio(&folio);
            return Err(VmFault::Sigbus);
        }
        folio.set_uptodate();
    } else {
        // Found in the swap cache (a writeback whose device write failed
        // left it there). One task: nobody else holds its lock. Locked, it
        // must still be the swap cache's folio for this entry (Linux
        // re-checks the same after folio_lock).
        if !folio.trylock() {
            return Err(VmFault::Sigbus);
        }
        if !folio.test_swapcache() || folio.swap() != Some(entry) || !folio.test_uptodate() {
            folio.unlock();
            return Err(VmFault::Sigbus);
        }
        if folio.memcg_id() == 0 {
            let memcg = with_mm(|mm| mm.memcg.clone()).ok_or(VmFault::Sigbus)?;
            if let Err(e) = s.memcgs.try_charge(&memcg, 1, Gfp::KERNEL, &Reclaim) {
                folio.unlock();
                return Err(e.into());
            }
            folio.set_memcg_id(memcg.id());
        }
    }
    // pte_same: reclaim ran meanwhile, but only this fault touches `va`.
    if with_mm(|mm| mm.aspace.read(va)) != Some(Pte::Swap(entry)) {
        folio.unlock();
        return Err(VmFault::Sigbus);
    }
    // The page is the task's alone now: the PTE's swap reference goes
    // (mem_cgroup_uncharge_swap + swap_free), the folio leaves the swap
    // cache (folio_free_swap), which frees the slot (zswap forgets it).
    if let Some(m) = s.memcgs.get(s.space.lookup_swap_cgroup_id(entry)) {
        m.swap_uncharge(1);
    }
    let _ = s.space.swap_free(entry);
    s.space.delete_from_swap_cache(&folio);
    folio.unlock();
    let r = with_mm(|mm| mm.map_anon(va, folio.clone())).unwrap_or(Err(Error::EINVAL));
    if r.is_err() {
        uncharge_folio(&folio);
    }
    Ok(r?)
}

/// The page is not a zero page: zswap `load`, or the RAM disk if zswap
/// does not hold it (written back, or refused at store).
fn swap_read(folio: &Folio, entry: SwpEntry) -> kbase::Result<()> {
    let (s, z) = (swap()?, zswap()?);
    match z.load(folio) {
        Ok(()) => {
            count(&VMSTAT.swapin_zswap);
            Ok(())
        }
        Err(Error::ENOENT) => {
            folio
                .with_page_mut(0, |p| RAMDISK.read_page(entry, p))
                .unwrap_or(Err(Error::EIO))?;
            count(&VMSTAT.swapin_device);
            if let Some(m) = s.memcgs.get(folio.memcg_id()) {
                m.count_event(MemcgEvent::Pswpin, 1);
            }
            // zswap_folio_swapin: the shrinker backs off a little.
            z.folio_swapin(folio);
            Ok(())
        }
        Err(e) => Err(e),
    }
}
