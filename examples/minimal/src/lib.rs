//! The smallest kernel that runs zswap: every platform trait implemented
//! with the fewest lines, then one page stored, written back and loaded.
//! `docs/porting.md` explains each piece; `crates/zswap-sim` and the
//! demand-paging kernel under `ci/` are the larger examples.
//!
//! No memory cgroups here (`memcg_tree` is `None`), one CPU, pages from the
//! heap, a swap device in memory, and the shrink worker run inline by the
//! kernel instead of from a work queue.

use std::sync::{Arc, OnceLock, Weak};

use kbase::{CpuInfo, Error, Gfp, HeapPageAllocator, PAGE_SIZE, PageAllocator, Result, UniCpu};
use swapcache::{Folio, MemBackend, SwapBackend, SwapPlatform, SwapSpace, SwpEntry};
use zswap_core::{Zswap, ZswapParams, ZswapPlatform};

/// The kernel: the swap core, the swap device and zswap.
pub struct Kernel {
    pub swap: Arc<SwapSpace<Swap>>,
    pub device: Arc<MemBackend>,
    pub zswap: Zswap<Plat>,
}

/// The swap core's platform. `slot_freed` must reach zswap, so it holds a
/// `Weak` to the kernel, set once the kernel exists.
pub struct Swap {
    pages: &'static HeapPageAllocator,
    kernel: OnceLock<Weak<Kernel>>,
}

impl SwapPlatform for Swap {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.pages
    }
    // No memory cgroups: nothing to charge. (A kernel with memcg charges
    // here, may reclaim, and reclaim may re-enter zswap.)
    fn charge_swapin(&self, _: &Folio, _: SwpEntry, _: Gfp) -> Result<()> {
        Ok(())
    }
    // The slot is free: drop zswap's copy and the device's.
    fn slot_freed(&self, entry: SwpEntry) {
        if let Some(k) = self.kernel.get().and_then(Weak::upgrade) {
            k.zswap.invalidate(entry);
            k.device.discard(entry);
        }
    }
    // Another task is bringing the slot in: wait a little, retry.
    fn swapcache_wait(&self, _: SwpEntry, _: u32) -> Result<()> {
        std::thread::yield_now();
        Ok(())
    }
}

/// zswap's platform: it hands out the swap space and the device.
pub struct Plat {
    pages: &'static HeapPageAllocator,
    swap: Arc<SwapSpace<Swap>>,
    device: Arc<MemBackend>,
}

impl ZswapPlatform for Plat {
    type Swap = Swap;
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.pages
    }
    fn cpu(&self) -> &dyn CpuInfo {
        &UniCpu
    }
    fn totalram_pages(&self) -> u64 {
        1 << 18 // 1 GiB
    }
    fn swap_space(&self) -> &SwapSpace<Swap> {
        &self.swap
    }
    fn backend(&self) -> &dyn SwapBackend {
        &*self.device
    }
    fn memcg_tree(&self) -> Option<&memcg::MemcgTree> {
        None
    }
    // A real kernel queues a work item that calls `Zswap::shrink_worker`;
    // this one calls it after each swap-out when asked to (see `swap_out`).
    fn queue_shrink_work(&self) {}
}

impl Kernel {
    /// Boot: allocator, swap core, device, zswap, one swap device on.
    pub fn boot(swap_pages: u64) -> Result<Arc<Kernel>> {
        let pages: &'static HeapPageAllocator = Box::leak(Box::new(HeapPageAllocator::new()));
        let swap = Arc::new(SwapSpace::new(Swap {
            pages,
            kernel: OnceLock::new(),
        }));
        let device = Arc::new(MemBackend::new());
        let plat = Plat {
            pages,
            swap: swap.clone(),
            device: device.clone(),
        };
        let zswap = Zswap::new(plat, ZswapParams::default(), Gfp::KERNEL)?;
        let swp_type = swap.swapon(swap_pages, Gfp::KERNEL)?;
        zswap.swapon(swp_type, swap_pages)?;
        let k = Arc::new(Kernel {
            swap,
            device,
            zswap,
        });
        let _ = k.swap.platform().kernel.set(Arc::downgrade(&k));
        Ok(k)
    }

    /// Reclaim's swap-out of one page: a slot and the swap cache, then
    /// `store`; if zswap refuses, the device write. The slot keeps one
    /// reference: the page-table entry that now points at it.
    pub fn swap_out(&self, data: &[u8; PAGE_SIZE]) -> Result<SwpEntry> {
        let folio = Folio::alloc(self.swap.platform().pages, 1, Gfp::KERNEL)?;
        folio.with_page_mut(0, |p| p.copy_from_slice(data))?;
        folio.lock();
        let entry = match self.swap.add_to_swap(&folio, Gfp::KERNEL) {
            Ok(e) => e,
            Err(e) => {
                folio.unlock();
                return Err(e);
            }
        };
        // A zero-filled page goes to the swap core's zeromap (no zswap
        // entry, no I/O); any other to zswap, else to the device.
        let zero = self.swap.zeromap_folio_store(&folio).unwrap_or(false);
        let r = match if zero {
            Ok(())
        } else {
            self.zswap.store(&folio)
        } {
            Ok(()) => Ok(()),
            Err(_) => folio
                .with_page(0, |p| self.device.write_page(entry, p))
                .and_then(|r| r),
        };
        self.swap.delete_from_swap_cache(&folio);
        folio.unlock();
        r.map(|()| entry)
    }

    /// A fault on `entry`: bring the page into the swap cache (zswap, else
    /// the device), copy it out (the "mapping"), drop the page table's
    /// reference and, with none left, the swap-cache folio.
    pub fn swap_in(&self, entry: SwpEntry) -> Result<Box<[u8; PAGE_SIZE]>> {
        let (folio, new) = self.swap.read_swap_cache_async(entry, Gfp::KERNEL, false)?;
        folio_filled(self, &folio, entry, new)?;
        let mut out = Box::new([0u8; PAGE_SIZE]);
        folio.with_page(0, |p| out.copy_from_slice(p))?;
        self.swap.swap_free(entry)?;
        if self.swap.swap_count(entry) == Ok(0) {
            folio.lock();
            self.swap.delete_from_swap_cache(&folio);
            folio.unlock();
        }
        Ok(out)
    }
}

/// Makes the swap-cache folio for `entry` uptodate and leaves it unlocked.
fn folio_filled(k: &Kernel, folio: &Folio, entry: SwpEntry, new: bool) -> Result<()> {
    if new {
        // Ours, locked: the zeromap, then zswap, then the device.
        let r = match k.swap.zeromap_folio_read(folio) {
            Ok(true) => Ok(()),
            Ok(false) => k.zswap.load(folio),
            Err(e) => Err(e),
        };
        let r = match r {
            Err(Error::ENOENT) => {
                let r = folio.with_page_mut(0, |p| k.device.read_page(entry, p));
                r.and_then(|r| r).map(|()| folio.set_uptodate())
            }
            r => r,
        };
        if r.is_err() {
            k.swap.delete_from_swap_cache(folio);
        }
        folio.unlock();
        return r;
    }
    // Someone else's folio (writeback's): wait for its lock, then check it
    // is still the cache's folio for the entry, as do_swap_page does.
    folio.lock();
    let ok = folio.swap() == Some(entry) && folio.test_uptodate();
    folio.unlock();
    if ok { Ok(()) } else { Err(Error::EAGAIN) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seed: u8) -> Box<[u8; PAGE_SIZE]> {
        let mut p = Box::new([0u8; PAGE_SIZE]);
        for (i, b) in p.iter_mut().enumerate() {
            *b = if i % 32 < 4 { seed ^ (i / 32) as u8 } else { 0 };
        }
        p
    }

    #[test]
    fn store_load_and_writeback_one_page() {
        let k = Kernel::boot(64).unwrap();
        let (a, b) = (page(1), page(2));
        let ea = k.swap_out(&a).unwrap();
        let eb = k.swap_out(&b).unwrap();
        assert!(k.zswap.is_present(ea) && k.zswap.is_present(eb));
        assert_eq!(k.zswap.stats().stored_pages, 2);
        assert_eq!(k.device.stored_pages(), 0, "zswap took both pages");

        // Write b back to the device, as the shrinker would.
        k.zswap.writeback(eb).unwrap();
        assert!(!k.zswap.is_present(eb));
        assert_eq!(k.device.stored_pages(), 1);
        assert_eq!(k.zswap.stats().written_back_pages, 1);

        // A zero page never reaches zswap: the swap core's zeromap has it.
        let zero = Box::new([0u8; PAGE_SIZE]);
        let ez = k.swap_out(&zero).unwrap();
        assert!(!k.zswap.is_present(ez) && k.swap.zeromap_test(ez));

        // Faults: a from zswap, b from the device, the zero page from the
        // zeromap, all byte for byte.
        assert_eq!(k.swap_in(ea).unwrap(), a);
        assert_eq!(k.swap_in(eb).unwrap(), b);
        assert_eq!(k.swap_in(ez).unwrap(), zero);
        assert_eq!(k.swap.stats().swpin_zero, 1);
        let st = k.zswap.stats();
        assert_eq!((st.zswpin, st.stored_pages), (1, 0));
        // The slots are free again: the device copy went with b's slot.
        assert_eq!(k.device.stored_pages(), 0);
        assert_eq!(k.swap.inuse_pages(ea.swp_type()), Ok(0));
    }
}
