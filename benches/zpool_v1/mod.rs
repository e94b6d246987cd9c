//! zpool as it was before this work (zsmalloc's geometry: 16-byte size
//! classes, merged classes, lazily attached chains of up to 8 pages, loads
//! that hold the class lock while the caller reads), kept in the benches as
//! the baseline the pool is measured against in the same process. Not part
//! of the library; the project's own earlier code, unchanged but for module
//! paths and its unit tests, which stay in the history.

mod class;
mod handle;
mod pages;
mod state;
mod zspage;

use std::vec::Vec;

use kbase::sync::{AtomicUsize, Mutex, Ordering};
use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

pub use class::MAX_PAGES_PER_ZSPAGE;
pub use handle::Handle;

use class::{ClassTable, SizeClass};
use handle::{HandleEntry, HandleParts};
use state::{ClassState, Need};
use zspage::ZsPage;

/// Metadata bytes per stored object: its handle-table entry (12 bytes) and
/// its reverse-map entry in the zspage (4 bytes).
pub const METADATA_BYTES_PER_OBJECT: usize =
    core::mem::size_of::<HandleEntry>() + core::mem::size_of::<u32>();
const _: () = assert!(METADATA_BYTES_PER_OBJECT <= 16);

/// How many times `malloc` drops the class lock to allocate before it gives
/// up with ENOMEM (only reachable when other threads keep taking what it
/// allocated).
const MALLOC_RETRIES: usize = 16;

/// Pool configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZsConfig {
    /// Longest zspage chain, in pages, `1..=MAX_PAGES_PER_ZSPAGE` (Linux's
    /// `CONFIG_ZSMALLOC_CHAIN_SIZE`). Longer chains waste less at the end of
    /// a chain; with lazily attached pages they cost nothing extra.
    pub max_pages_per_zspage: usize,
}

impl Default for ZsConfig {
    fn default() -> Self {
        ZsConfig {
            max_pages_per_zspage: 8,
        }
    }
}

/// Pool-wide counters (Linux: `zs_get_total_pages`, `zs_pool_stats`). Each
/// class contributes a consistent snapshot; classes are read one after the
/// other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pages held from the page allocator (exact).
    pub pages: usize,
    /// Live objects (exact).
    pub objects: usize,
    /// Sum of the sizes of the live objects as asked of `malloc` (exact).
    pub bytes_stored: usize,
    /// Pages given back by compaction since the pool was created
    /// (`pages_compacted`).
    pub pages_compacted: usize,
    /// Heap bytes of metadata: handle tables, zspage tables and descriptors,
    /// reverse maps (capacity, not length). Not part of `pages`.
    pub metadata_bytes: usize,
}

/// Counters of one size class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Slot size in bytes (objects up to this size land here).
    pub size: usize,
    /// Chain length of a complete zspage.
    pub pages_per_zspage: usize,
    /// Objects in a complete zspage.
    pub objs_per_zspage: usize,
    /// One object per single-page zspage.
    pub huge: bool,
    /// Live objects.
    pub objects: usize,
    /// Zspages.
    pub zspages: usize,
    /// Pages attached to this class's zspages.
    pub pages: usize,
}

struct Class {
    info: SizeClass,
    state: Mutex<ClassState>,
}

/// A pool of compressed objects over the platform page allocator `A`.
///
/// # Invariants
///
/// Every page held by the pool came from `alloc`. `pages` equals the sum of
/// the classes' page counts once no call is in flight.
pub struct ZsPool<A: PageAllocator> {
    alloc: A,
    cfg: ZsConfig,
    id: u16,
    table: ClassTable,
    classes: Vec<Class>,
    pages: AtomicUsize,
    compacted: AtomicUsize,
}

/// Pages and a zspage allocated for a `malloc` but maybe not used; whatever
/// is left goes back to the allocator when this is dropped.
struct Spare<'a, A: PageAllocator> {
    alloc: &'a A,
    page: Option<PageFrame>,
    fresh: Option<ZsPage>,
}

impl<A: PageAllocator> Drop for Spare<'_, A> {
    fn drop(&mut self) {
        if let Some(p) = self.page.take() {
            pages::free_page(self.alloc, p);
        }
        if let Some(z) = self.fresh.take() {
            z.release_pages(self.alloc);
        }
    }
}

/// A new pool id, `1..=MAX_POOL_ID`, wrapping.
#[cfg(not(loom))]
fn next_pool_id() -> u16 {
    use handle::MAX_POOL_ID;
    static NEXT: kbase::sync::AtomicU32 = kbase::sync::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (n % MAX_POOL_ID as u32) as u16 + 1
}

/// Loom atomics cannot live in a static; models use one pool at a time.
#[cfg(loom)]
fn next_pool_id() -> u16 {
    1
}

fn try_vec<T>(cap: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(cap)?;
    Ok(v)
}

impl<A: PageAllocator> ZsPool<A> {
    /// A pool with the default configuration (chains of up to 8 pages).
    pub fn new(alloc: A) -> Result<ZsPool<A>> {
        Self::with_config(alloc, ZsConfig::default())
    }

    /// A pool with `cfg`. EINVAL for a chain length outside
    /// `1..=MAX_PAGES_PER_ZSPAGE`; ENOMEM if the class table cannot be
    /// allocated. Holds no page until the first `malloc`.
    pub fn with_config(alloc: A, cfg: ZsConfig) -> Result<ZsPool<A>> {
        let table = ClassTable::new(cfg.max_pages_per_zspage)?;
        let mut classes = try_vec(table.classes.len())?;
        for info in &table.classes {
            classes.push(Class {
                info: *info,
                state: Mutex::new(ClassState::new()),
            });
        }
        Ok(ZsPool {
            alloc,
            cfg,
            id: next_pool_id(),
            table,
            classes,
            pages: AtomicUsize::new(0),
            compacted: AtomicUsize::new(0),
        })
    }

    /// The configuration the pool was built with.
    pub fn config(&self) -> ZsConfig {
        self.cfg
    }

    /// The page allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Allocates an object of `size` bytes (`zs_malloc`); its contents are
    /// undefined until written. Errors: EINVAL for `size == 0`, ENOSPC for
    /// `size > PAGE_SIZE`, ENOMEM when a page or metadata cannot be
    /// allocated with `gfp`.
    pub fn malloc(&self, size: usize, gfp: Gfp) -> Result<Handle> {
        let ci = self.table.index_for(size)?;
        let class = self.classes.get(ci).ok_or(Error::EINVAL)?;
        let mut spare = Spare {
            alloc: &self.alloc,
            page: None,
            fresh: None,
        };
        let mut handles_vec = None;
        let mut slab_vec = None;
        for _ in 0..MALLOC_RETRIES {
            let mut st = class.state.lock();
            let old_handles = handles_vec.take().map(|v| st.handles.adopt(v));
            let old_slab = slab_vec.take().map(|v| st.adopt_slab(v));
            let r = st.alloc(&class.info, size, &mut spare.page, &mut spare.fresh);
            drop(st);
            drop(old_handles);
            drop(old_slab);
            match r? {
                Ok(placed) => {
                    if placed.pages_added != 0 {
                        self.pages.fetch_add(placed.pages_added, Ordering::Relaxed);
                    }
                    return Ok(HandleParts {
                        pool: self.id,
                        class: ci,
                        generation: placed.generation,
                        slot: placed.slot,
                    }
                    .encode());
                }
                Err(Need::Handles(cap)) => handles_vec = Some(try_vec(cap)?),
                Err(Need::Slab(cap)) => slab_vec = Some(try_vec(cap)?),
                Err(Need::Page) => spare.page = Some(pages::alloc_page(&self.alloc, gfp)?),
                Err(Need::ZsPage) => {
                    spare.fresh = Some(ZsPage::new(&self.alloc, &class.info, gfp)?)
                }
            }
        }
        Err(Error::ENOMEM)
    }

    /// Frees an object (`zs_free`). EINVAL for a handle of another pool or
    /// one never handed out, ENOENT for one already freed; nothing changes
    /// then.
    pub fn free(&self, h: Handle) -> Result<()> {
        let (p, class) = self.class_of(h)?;
        let freed = class
            .state
            .lock()
            .free(&class.info, &self.alloc, p.slot, p.generation)?;
        if freed != 0 {
            self.pages.fetch_sub(freed, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `src` to the start of the object (`zs_obj_write`). EINVAL if
    /// `src` is longer than the object, plus the handle errors of
    /// [`free`](Self::free).
    pub fn write(&self, h: Handle, src: &[u8]) -> Result<()> {
        let (p, class) = self.class_of(h)?;
        let mut st = class.state.lock();
        let (z, off, size) = st.locate_mut(&class.info, p.slot, p.generation)?;
        if src.len() > size {
            return Err(Error::EINVAL);
        }
        pages::write_at(&mut z.pages, off, src)
    }

    /// Copies the object into the start of `dst` and returns its size.
    /// EINVAL if `dst` is shorter than the object, plus the handle errors of
    /// [`free`](Self::free).
    pub fn read(&self, h: Handle, dst: &mut [u8]) -> Result<usize> {
        self.read_with(h, |a, b| {
            let n = a.len() + b.len();
            let out = dst.get_mut(..n).ok_or(Error::EINVAL)?;
            let (x, y) = out.split_at_mut(a.len());
            x.copy_from_slice(a);
            y.copy_from_slice(b);
            Ok(n)
        })?
    }

    /// Zero-copy read (`zs_obj_read_sg_begin`): calls `f` with the object's
    /// bytes as one segment, or two when it spans a page boundary (the
    /// second is empty otherwise). `f` runs under the class lock and must not
    /// call into this pool.
    pub fn read_with<R>(&self, h: Handle, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<R> {
        let (p, class) = self.class_of(h)?;
        let st = class.state.lock();
        let (z, off, size) = st.locate(&class.info, p.slot, p.generation)?;
        let (a, b) = pages::segments(&z.pages, off, size)?;
        Ok(f(a, b))
    }

    /// The object's size as given to `malloc`.
    pub fn obj_size(&self, h: Handle) -> Result<usize> {
        let (p, class) = self.class_of(h)?;
        let st = class.state.lock();
        Ok(st.handles.get(p.slot, p.generation)?.size as usize)
    }

    /// Pages held from the page allocator (`zs_get_total_pages`).
    pub fn total_pages(&self) -> usize {
        self.pages.load(Ordering::Relaxed)
    }

    /// Compacts every class (`zs_compact`); returns the pages freed.
    pub fn compact(&self) -> usize {
        let mut total = 0;
        for class in &self.classes {
            loop {
                let r = class.state.lock().compact_step(&class.info, &self.alloc);
                let Ok((freed, more)) = r else { break };
                total += freed;
                self.pages.fetch_sub(freed, Ordering::Relaxed);
                if !more {
                    break;
                }
            }
        }
        self.compacted.fetch_add(total, Ordering::Relaxed);
        total
    }

    /// Pool-wide counters. Takes each class lock in turn (objects and bytes
    /// are kept per class, under the class lock, to keep the data path free
    /// of shared atomics); `pages` alone is a pool-wide atomic, read by
    /// [`total_pages`](Self::total_pages) without any lock.
    pub fn stats(&self) -> PoolStats {
        let mut metadata_bytes = self.classes.capacity() * core::mem::size_of::<Class>();
        let (mut objects, mut bytes_stored) = (0, 0);
        for class in &self.classes {
            let st = class.state.lock();
            metadata_bytes += st.heap_bytes();
            objects += st.handles.live();
            bytes_stored += st.bytes;
        }
        PoolStats {
            pages: self.pages.load(Ordering::Relaxed),
            objects,
            bytes_stored,
            pages_compacted: self.compacted.load(Ordering::Relaxed),
            metadata_bytes,
        }
    }

    /// Number of size classes (after merging).
    pub fn nr_classes(&self) -> usize {
        self.classes.len()
    }

    /// Counters of class `index` (`0..nr_classes()`, by increasing size).
    pub fn class_stats(&self, index: usize) -> Option<ClassStats> {
        let class = self.classes.get(index)?;
        let st = class.state.lock();
        Some(ClassStats {
            size: class.info.size,
            pages_per_zspage: class.info.pages_per_zspage,
            objs_per_zspage: class.info.objs_per_zspage,
            huge: class.info.is_huge(),
            objects: st.handles.live(),
            zspages: st.nr_zspages,
            pages: st.pages,
        })
    }

    /// The class index serving `size`-byte objects.
    pub fn class_index(&self, size: usize) -> Result<usize> {
        self.table.index_for(size)
    }

    fn class_of(&self, h: Handle) -> Result<(HandleParts, &Class)> {
        let p = HandleParts::decode(h);
        if p.pool != self.id {
            return Err(Error::EINVAL);
        }
        let class = self.classes.get(p.class).ok_or(Error::EINVAL)?;
        Ok((p, class))
    }
}

impl<A: PageAllocator> Drop for ZsPool<A> {
    /// Gives every page back, including those of objects never freed.
    fn drop(&mut self) {
        for class in &mut self.classes {
            class.state.get_mut().release_all(&self.alloc);
        }
    }
}

const _: () = assert!(PAGE_SIZE <= u16::MAX as usize);
