//! Backing stores for swap slots: the [`SwapBackend`] trait and the
//! in-memory [`MemBackend`].

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

use kbase::sync::{AtomicUsize, Mutex, Ordering};
use kbase::{Error, Gfp, PAGE_SIZE, Result, try_box};

use crate::entry::{MAX_SWAPFILES, SwpEntry};

/// Backing store for swap slots (the swap device's I/O).
///
/// Implementations must be safe to call concurrently for different slots;
/// callers serialise I/O on one slot through the swap cache folio lock.
pub trait SwapBackend: Send + Sync {
    /// Writes one page to the slot.
    fn write_page(&self, entry: SwpEntry, page: &[u8; PAGE_SIZE]) -> Result<()>;
    /// Reads the slot's page back; `ENOENT` if the slot was never written
    /// (or was discarded since).
    fn read_page(&self, entry: SwpEntry, page: &mut [u8; PAGE_SIZE]) -> Result<()>;
    /// The slot was freed; its contents may be dropped.
    fn discard(&self, entry: SwpEntry) {
        let _ = entry;
    }
}

impl<B: SwapBackend + ?Sized> SwapBackend for &B {
    fn write_page(&self, entry: SwpEntry, page: &[u8; PAGE_SIZE]) -> Result<()> {
        (**self).write_page(entry, page)
    }
    fn read_page(&self, entry: SwpEntry, page: &mut [u8; PAGE_SIZE]) -> Result<()> {
        (**self).read_page(entry, page)
    }
    fn discard(&self, entry: SwpEntry) {
        (**self).discard(entry)
    }
}

/// Slots per chunk of [`MemBackend`]'s sparse table.
const CHUNK: u64 = 512;

type Page = Box<[u8; PAGE_SIZE]>;
type Chunk = Vec<Option<Page>>;

/// One swap type's pages: chunks of [`CHUNK`] slots, sorted by chunk number.
#[derive(Default)]
struct MemDev {
    chunks: Vec<(u64, Chunk)>,
}

impl MemDev {
    fn find(&self, chunk_no: u64) -> core::result::Result<usize, usize> {
        self.chunks.binary_search_by_key(&chunk_no, |(n, _)| *n)
    }

    fn slot_mut(&mut self, entry: SwpEntry) -> Option<&mut Option<Page>> {
        let i = self.find(entry.offset() / CHUNK).ok()?;
        let (_, chunk) = self.chunks.get_mut(i)?;
        chunk.get_mut((entry.offset() % CHUNK) as usize)
    }

    fn slot(&self, entry: SwpEntry) -> Option<&Page> {
        let i = self.find(entry.offset() / CHUNK).ok()?;
        let (_, chunk) = self.chunks.get(i)?;
        chunk.get((entry.offset() % CHUNK) as usize)?.as_ref()
    }
}

/// An in-memory swap device: a sparse table of page copies per swap type.
///
/// Every allocation is fallible and made with no lock held (the new page,
/// a new chunk, a larger chunk index are allocated first, then published
/// under the lock). Any offset works; memory grows with the pages written.
/// For tests it can be limited in pages (`ENOSPC`) and made to fail the next
/// reads or writes (`EIO`).
pub struct MemBackend {
    devs: [Mutex<MemDev>; MAX_SWAPFILES as usize],
    pages: AtomicUsize,
    limit: usize,
    fail_writes: AtomicUsize,
    fail_reads: AtomicUsize,
}

impl Default for MemBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemBackend {
    /// An empty backend without a page limit.
    pub fn new() -> MemBackend {
        Self::with_limit(usize::MAX)
    }

    /// An empty backend holding at most `max_pages` pages (`ENOSPC` past it).
    pub fn with_limit(max_pages: usize) -> MemBackend {
        MemBackend {
            devs: core::array::from_fn(|_| Mutex::new(MemDev::default())),
            pages: AtomicUsize::new(0),
            limit: max_pages,
            fail_writes: AtomicUsize::new(0),
            fail_reads: AtomicUsize::new(0),
        }
    }

    /// Pages currently stored.
    pub fn stored_pages(&self) -> usize {
        self.pages.load(Ordering::Relaxed)
    }

    /// Fails the next `n` writes with `EIO` (nothing is stored).
    pub fn fail_next_writes(&self, n: usize) {
        self.fail_writes.store(n, Ordering::Relaxed);
    }

    /// Fails the next `n` reads with `EIO`.
    pub fn fail_next_reads(&self, n: usize) {
        self.fail_reads.store(n, Ordering::Relaxed);
    }

    fn dev(&self, entry: SwpEntry) -> Result<&Mutex<MemDev>> {
        self.devs
            .get(entry.swp_type() as usize)
            .ok_or(Error::EINVAL)
    }

    fn take_fault(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
            .is_ok()
    }

    /// Publishes a freshly allocated page at `entry`, allocating table space
    /// outside the lock as needed. Returns a replaced page, to free unlocked.
    fn publish(&self, entry: SwpEntry, page: Page) -> Result<Option<Page>> {
        let dev = self.dev(entry)?;
        let chunk_no = entry.offset() / CHUNK;
        let mut page = Some(page);
        let mut new_chunk: Option<Chunk> = None;
        let mut new_index: Option<Vec<(u64, Chunk)>> = None;
        // Each round publishes, or allocates one missing piece with the lock
        // dropped; pieces are kept across rounds, so a few rounds suffice
        // unless other writers keep growing the index under us.
        for _ in 0..8 {
            let mut d = dev.lock();
            match d.find(chunk_no) {
                Ok(_) => {
                    let old = match d.slot_mut(entry) {
                        Some(slot) => core::mem::replace(slot, page.take()),
                        None => return Err(Error::EINVAL),
                    };
                    drop(d);
                    return Ok(old);
                }
                Err(pos) => {
                    if let Some(chunk) = new_chunk.take() {
                        if d.chunks.len() < d.chunks.capacity() {
                            d.chunks.insert(pos, (chunk_no, chunk));
                            continue;
                        }
                        if let Some(bigger) = new_index.as_mut()
                            && bigger.capacity() > d.chunks.len()
                        {
                            // Move the index into the larger vector; it has
                            // room, so nothing allocates under the lock.
                            bigger.append(&mut d.chunks);
                            core::mem::swap(&mut d.chunks, bigger);
                            d.chunks.insert(pos, (chunk_no, chunk));
                            drop(d);
                            // Frees the old, now empty, index unlocked.
                            new_index = None;
                            continue;
                        }
                        new_chunk = Some(chunk);
                        let want = d.chunks.len().saturating_mul(2).max(4);
                        drop(d);
                        // A too-small index from an earlier round is freed
                        // first (unlocked).
                        drop(new_index.take());
                        let mut v = Vec::new();
                        v.try_reserve_exact(want)?;
                        new_index = Some(v);
                    } else {
                        drop(d);
                        let mut c: Chunk = Vec::new();
                        c.try_reserve_exact(CHUNK as usize)?;
                        c.resize_with(CHUNK as usize, || None);
                        new_chunk = Some(c);
                    }
                }
            }
        }
        Err(Error::ENOMEM)
    }
}

/// A heap copy of `src`, allocated fallibly without a page-sized stack
/// temporary.
fn copy_page(src: &[u8; PAGE_SIZE], gfp: Gfp) -> Result<Page> {
    let mut b = try_box(MaybeUninit::<[u8; PAGE_SIZE]>::uninit(), gfp)?;
    // SAFETY: `b` is a fresh, exclusively owned allocation of PAGE_SIZE bytes
    // and `src` is a distinct page, so the copy is in bounds and does not
    // overlap; after it every byte is initialised, which is what
    // `assume_init` requires.
    unsafe {
        core::ptr::copy_nonoverlapping(src.as_ptr(), b.as_mut_ptr().cast::<u8>(), PAGE_SIZE);
        Ok(b.assume_init())
    }
}

impl SwapBackend for MemBackend {
    fn write_page(&self, entry: SwpEntry, page: &[u8; PAGE_SIZE]) -> Result<()> {
        if Self::take_fault(&self.fail_writes) {
            return Err(Error::EIO);
        }
        // Overwrite in place when the slot already holds a page.
        {
            let mut d = self.dev(entry)?.lock();
            if let Some(Some(p)) = d.slot_mut(entry) {
                p.copy_from_slice(page);
                return Ok(());
            }
        }
        if self
            .pages
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Error::ENOSPC);
        }
        let copy = match copy_page(page, Gfp::KERNEL) {
            Ok(c) => c,
            Err(e) => {
                self.pages.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        match self.publish(entry, copy) {
            Ok(Some(_replaced)) => {
                // A racing writer stored the slot first; one page is counted.
                self.pages.fetch_sub(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.pages.fetch_sub(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn read_page(&self, entry: SwpEntry, page: &mut [u8; PAGE_SIZE]) -> Result<()> {
        if Self::take_fault(&self.fail_reads) {
            return Err(Error::EIO);
        }
        let d = self.dev(entry)?.lock();
        let p = d.slot(entry).ok_or(Error::ENOENT)?;
        page.copy_from_slice(&p[..]);
        Ok(())
    }

    fn discard(&self, entry: SwpEntry) {
        let Ok(dev) = self.dev(entry) else { return };
        let old = {
            let mut d = dev.lock();
            d.slot_mut(entry).and_then(Option::take)
        };
        if old.is_some() {
            self.pages.fetch_sub(1, Ordering::Relaxed);
        }
        // `old` is freed here, with no lock held.
    }
}
