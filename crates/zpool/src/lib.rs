//! zpool: a zsmalloc-class allocator for compressed objects (API first; the
//! allocator lands next).
#![no_std]
extern crate alloc;

use kbase::{Error, Gfp, PageAllocator, Result};

/// An opaque reference to one object of a [`ZsPool`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Handle(u64);

impl Handle {
    /// The handle as a plain `u64` (for storing in other structures).
    pub const fn to_raw(self) -> u64 {
        self.0
    }
    /// Rebuilds a handle from [`Handle::to_raw`]. Validated on use.
    pub const fn from_raw(raw: u64) -> Handle {
        Handle(raw)
    }
}

/// Pool configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZsConfig {
    /// Longest zspage chain, in pages (Linux's `CONFIG_ZSMALLOC_CHAIN_SIZE`).
    pub max_pages_per_zspage: usize,
}

impl Default for ZsConfig {
    fn default() -> Self {
        ZsConfig {
            max_pages_per_zspage: 8,
        }
    }
}

/// Pool-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pages held from the page allocator.
    pub pages: usize,
    /// Live objects.
    pub objects: usize,
    /// Sum of the sizes of the live objects, in bytes.
    pub bytes_stored: usize,
    /// Pages given back by compaction, since the pool was created.
    pub pages_compacted: usize,
}

/// A pool of compressed objects.
pub struct ZsPool<A: PageAllocator> {
    alloc: A,
    cfg: ZsConfig,
}

impl<A: PageAllocator> ZsPool<A> {
    /// A pool with the default configuration.
    pub fn new(alloc: A) -> Result<ZsPool<A>> {
        Self::with_config(alloc, ZsConfig::default())
    }
    /// A pool with `cfg`.
    pub fn with_config(alloc: A, cfg: ZsConfig) -> Result<ZsPool<A>> {
        Ok(ZsPool { alloc, cfg })
    }
    /// Allocates an object of `size` bytes.
    pub fn malloc(&self, size: usize, gfp: Gfp) -> Result<Handle> {
        let _ = (&self.alloc, self.cfg, size, gfp);
        Err(Error::ENOMEM)
    }
    /// Frees an object.
    pub fn free(&self, h: Handle) -> Result<()> {
        let _ = h;
        Err(Error::ENOENT)
    }
    /// Writes `src` at the start of the object.
    pub fn write(&self, h: Handle, src: &[u8]) -> Result<()> {
        let _ = (h, src);
        Err(Error::ENOENT)
    }
    /// Copies the object into `dst`, returns its size.
    pub fn read(&self, h: Handle, dst: &mut [u8]) -> Result<usize> {
        let _ = (h, dst);
        Err(Error::ENOENT)
    }
    /// Zero-copy read: one segment, or two when the object spans a page boundary.
    pub fn read_with<R>(&self, h: Handle, f: impl FnOnce(&[u8], &[u8]) -> R) -> Result<R> {
        let _ = (h, f);
        Err(Error::ENOENT)
    }
    /// The object's size.
    pub fn obj_size(&self, h: Handle) -> Result<usize> {
        let _ = h;
        Err(Error::ENOENT)
    }
    /// Pages held (zs_get_total_pages).
    pub fn total_pages(&self) -> usize {
        0
    }
    /// Compacts every class; returns the pages freed.
    pub fn compact(&self) -> usize {
        0
    }
    /// Pool-wide counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats::default()
    }
}
