//! GFP-like allocation flags.

bitflags::bitflags! {
    /// What an allocation may do to succeed, after Linux's `gfp_t`.
    ///
    /// Only the bits that change behaviour in this workspace exist. A call
    /// without [`Gfp::DIRECT_RECLAIM`] must not block: no sleeping lock is
    /// taken, no reclaim runs, and a page allocator fails at once instead.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Gfp: u32 {
        /// The caller may enter direct reclaim (and therefore block).
        const DIRECT_RECLAIM = 1 << 0;
        /// The caller may wake the background reclaimer.
        const KSWAPD_RECLAIM = 1 << 1;
        /// Reclaim may start I/O (swap writeback).
        const IO = 1 << 2;
        /// Reclaim may call into filesystems.
        const FS = 1 << 3;
        /// Fail rather than retry hard.
        const NORETRY = 1 << 4;
        /// Do not log the failure.
        const NOWARN = 1 << 5;
        /// The memory may be moved by compaction.
        const MOVABLE = 1 << 6;
        /// Return zeroed memory.
        const ZERO = 1 << 7;
        /// Highmem is acceptable (meaningless here, kept for the C mapping).
        const HIGHMEM = 1 << 8;
        /// The caller cannot handle failure (`__GFP_NOFAIL`). A memory cgroup
        /// charge with it is forced past `memory.max` once reclaim cannot
        /// make room; with it and without [`Gfp::DIRECT_RECLAIM`] (reclaim
        /// context, Linux's `PF_MEMALLOC`) the charge is forced at once.
        const NOFAIL = 1 << 9;
    }
}

impl Gfp {
    /// Both reclaim bits.
    pub const RECLAIM: Gfp = Gfp::DIRECT_RECLAIM.union(Gfp::KSWAPD_RECLAIM);
    /// Ordinary kernel allocation: may block, reclaim, do I/O.
    pub const KERNEL: Gfp = Gfp::RECLAIM.union(Gfp::IO).union(Gfp::FS);
    /// May not block; may wake the background reclaimer.
    pub const NOWAIT: Gfp = Gfp::KSWAPD_RECLAIM.union(Gfp::NOWARN);
    /// May not block (interrupt context).
    pub const ATOMIC: Gfp = Gfp::KSWAPD_RECLAIM;
    /// May block and reclaim but not start I/O.
    pub const NOIO: Gfp = Gfp::RECLAIM;
    /// What zswap passes to the pool allocator: never blocks, fails fast.
    pub const ZSWAP_POOL: Gfp = Gfp::NOWAIT
        .union(Gfp::NORETRY)
        .union(Gfp::HIGHMEM)
        .union(Gfp::MOVABLE);

    /// May the allocation sleep (direct reclaim allowed)?
    pub const fn can_block(self) -> bool {
        self.contains(Gfp::DIRECT_RECLAIM)
    }

    /// May reclaim enter I/O and filesystem code (Linux's `gfp_has_io_fs`)?
    pub const fn has_io_fs(self) -> bool {
        self.contains(Gfp::IO.union(Gfp::FS))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn kernel_blocks_nowait_does_not() {
        assert!(Gfp::KERNEL.can_block());
        assert!(Gfp::KERNEL.has_io_fs());
        assert!(!Gfp::NOWAIT.can_block());
        assert!(!Gfp::ZSWAP_POOL.can_block());
        assert!(!Gfp::NOIO.has_io_fs());
    }
}
