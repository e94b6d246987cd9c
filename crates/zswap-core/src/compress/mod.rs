//! Compressors: per-CPU compression contexts for zswap entries.
//!
//! Linux's zswap keeps one `crypto_acomp` context per CPU in its pool
//! (`acomp_ctx`: the transform, a request and a 2-page buffer, behind a mutex).
//! [`Compressor`] is the same thing for the algorithms this crate ships:
//!
//! - **lz4** ([`CompressorKind::Lz4`], the default): LZ4 block format,
//!   compressed by this crate's page encoder ([`lz4_enc`]: a greedy search
//!   specialised for one page, word-at-a-time match counting and literal
//!   copies, at or near C liblz4's speed and with slightly smaller blocks
//!   than `lz4_flex` on the corpus) and decoded by its own block decoder
//!   ([`lz4_block`]: a fast loop of whole-word copies and an exact tail,
//!   every bound checked, C liblz4's speed). Each CPU owns the encoder's
//!   8 KiB hash table (zeroed per page, allocated once) and a scratch
//!   buffer of [`lz4_enc::DST_LEN`] bytes (LZ4's bound for a page plus the
//!   encoder's word-copy room; a page that does not shrink still gives a
//!   whole block, which the caller sees as "longer than a page").
//!   Decompression needs no state, no lock and no copy: an object split
//!   over two pool pages is decoded from its two parts
//!   ([`lz4_block::decompress_split`]).
//! - **zstd** ([`CompressorKind::Zstd`], cargo feature `zstd`): C zstd at level
//!   [`ZSTD_LEVEL`] through `zstd-sys`, with *static* contexts
//!   (`ZSTD_initStaticCCtx`/`ZSTD_initStaticDCtx`) sized for one page, so the
//!   C code never calls `malloc` after [`Compressor::new`]. A split object
//!   is copied into a second per-CPU scratch buffer and decompressed whole
//!   (one-shot decompression wants its input in one piece; streaming would
//!   need a larger context and buffers of its own). Without the
//!   feature the name is known but unavailable ([`Error::ENOENT`]).
//!
//! # Lifecycle
//!
//! [`Compressor::new`] allocates every context up front, fallibly (one pair
//! per possible CPU; a failure frees what was built and returns `ENOMEM`). After
//! that, [`Compressor::compress`] and [`Compressor::decompress`] allocate
//! nothing. Dropping the compressor frees the contexts.
//!
//! # Locking
//!
//! Each CPU has two contexts, one to compress and one to decompress, each
//! behind its own [`kbase::sync::Mutex`] (a spinlock). The `cpu` argument
//! picks them (`cpu % nr_contexts`, so a stale or bogus CPU number costs
//! contention, never memory safety).
//!
//! - The compression lock is held while the closure given to
//!   [`Compressor::compress`] runs (the result lives in the context's scratch
//!   buffer). The closure may take pool locks (zswap's store allocates the
//!   pool object and copies the result there, as Linux does under
//!   `acomp_ctx->mutex`), but must not block, must not allocate with a
//!   blocking GFP, and must not call back into the same compressor for the
//!   same CPU.
//! - The decompression lock is a leaf: nothing is called and no other lock
//!   is taken under it. So [`Compressor::decompress`] may be called with pool
//!   locks held (zswap's load decompresses straight from the pool, under the
//!   pool's class lock). With one lock for both directions that would be the
//!   inverse order of store's (compressor -> pool vs pool -> compressor) and
//!   could deadlock; two locks keep the order acyclic:
//!   `compression lock -> pool locks -> decompression lock`.
//!
//! # Errors
//!
//! - [`CompressorKind::from_name`]: `ENOENT` ("algorithm unavailable", as
//!   Linux's `-ENOENT` when `crypto_has_acomp` fails) for a name this crate
//!   does not know and for a known algorithm not built in.
//! - [`Compressor::new`]: `ENOENT` for an algorithm not built in, `ENOMEM`.
//! - [`Compressor::compress`]: `EIO` if the algorithm fails (not expected for
//!   any page). A result of `PAGE_SIZE` bytes or more means "does not shrink":
//!   the caller stores the page raw (or rejects it).
//! - [`Compressor::decompress`]: `EIO` for anything that is not a valid
//!   compressed object of exactly `PAGE_SIZE` bytes: corrupt, truncated,
//!   garbage, too short or too long output, oversized input. It never panics.
//!   Neither format carries a checksum (as in Linux), so damage that still
//!   decodes to exactly one page, such as a flipped literal byte, goes
//!   unnoticed: decompression guarantees memory safety and the page size,
//!   not integrity.
//!
//! # Module map
//!
//! - `lz4`: the lz4 context (the encoder's table).
//! - [`lz4_enc`]: the lz4 page encoder (its loop, `lz4_enc::fast`, is its
//!   only `unsafe`).
//! - [`lz4_block`]: the lz4 block decoder (its fast loop, `lz4_block::fast`,
//!   is its only `unsafe`).
//! - `zstd` (feature `zstd`): static zstd contexts over `zstd-sys`.
//! - `zstd_shim` (feature `zstd`, bare-metal targets): the `malloc` family the
//!   freestanding C build is pointed at; static contexts never call it.

mod lz4;
pub mod lz4_block;
pub mod lz4_enc;
#[cfg(feature = "zstd")]
mod zstd;
#[cfg(all(feature = "zstd", target_os = "none"))]
mod zstd_shim;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::{fmt, ptr};

use kbase::sync::{AtomicPtr, Mutex, Ordering, lock_class};
use kbase::{Error, Gfp, PAGE_SIZE, Result, try_box};

/// Size of each zstd per-CPU scratch buffer: two pages, like Linux's
/// `acomp_ctx->buffer`. Holds any compression result (the lz4 and zstd
/// worst-case bounds for one page are below it) and, for zstd, a compressed
/// object that spans two pool pages, copied together for decompression.
/// lz4's compression scratch is smaller ([`lz4_enc::DST_LEN`]: the
/// encoder's bound and copy room, about a page).
pub const SCRATCH_SIZE: usize = 2 * PAGE_SIZE;

/// The zstd compression level (Linux's `crypto/zstd.c` default, 3).
pub const ZSTD_LEVEL: i32 = 3;

/// A compression algorithm, by its zswap `compressor` parameter name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CompressorKind {
    /// LZ4 block format (this crate's encoder and decoder). Always
    /// available; the default.
    #[default]
    Lz4,
    /// zstd (C zstd via `zstd-sys`). Available with the `zstd` feature.
    Zstd,
}

impl CompressorKind {
    /// Every algorithm this crate knows, available or not.
    pub const ALL: [CompressorKind; 2] = [CompressorKind::Lz4, CompressorKind::Zstd];

    /// The parameter name: `"lz4"` or `"zstd"`.
    pub const fn name(self) -> &'static str {
        match self {
            CompressorKind::Lz4 => "lz4",
            CompressorKind::Zstd => "zstd",
        }
    }

    /// Is this algorithm built into this binary?
    pub const fn is_available(self) -> bool {
        match self {
            CompressorKind::Lz4 => true,
            CompressorKind::Zstd => cfg!(feature = "zstd"),
        }
    }

    /// Parses a `compressor` parameter value. Surrounding ASCII whitespace is
    /// ignored (a sysfs write usually ends in `'\n'`).
    ///
    /// Returns `ENOENT` ("algorithm unavailable") both for a name that is not
    /// an algorithm of this crate and for one that is not built in (`zstd`
    /// without the `zstd` feature), as Linux's zswap does when
    /// `crypto_has_acomp` fails.
    pub fn from_name(name: &str) -> Result<CompressorKind> {
        let name = name.trim_ascii();
        let kind = CompressorKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or(Error::ENOENT)?;
        if kind.is_available() {
            Ok(kind)
        } else {
            Err(Error::ENOENT)
        }
    }
}

impl fmt::Display for CompressorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One CPU's contexts. Compression and decompression have separate locks
/// and scratch buffers: see "Locking" in the module docs for why.
struct PerCpu {
    comp: Mutex<CompCtx>,
    decomp: Mutex<DecompCtx>,
}

/// One CPU's compression state.
struct CompCtx {
    /// [`SCRATCH_SIZE`] bytes (lz4: [`lz4_enc::DST_LEN`]), allocated once:
    /// the compression result.
    scratch: Vec<u8>,
    engine: CompEngine,
}

enum CompEngine {
    Lz4(lz4::Lz4Ctx),
    #[cfg(feature = "zstd")]
    Zstd(zstd::ZstdCCtx),
}

/// One CPU's decompression state.
struct DecompCtx {
    /// For zstd [`SCRATCH_SIZE`] bytes, allocated once: a split object made
    /// whole. Empty for lz4, which decodes the two parts as they are.
    #[cfg_attr(not(feature = "zstd"), allow(dead_code))]
    scratch: Vec<u8>,
    engine: DecompEngine,
}

enum DecompEngine {
    /// lz4 decompression is stateless.
    Lz4,
    #[cfg(feature = "zstd")]
    Zstd(zstd::ZstdDCtx),
}

/// A zeroed scratch buffer of `len` bytes.
fn scratch(len: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)?;
    v.resize(len, 0);
    Ok(v)
}

impl PerCpu {
    fn try_new(kind: CompressorKind, gfp: Gfp) -> Result<PerCpu> {
        let (comp, comp_scratch, decomp, decomp_scratch) = match kind {
            CompressorKind::Lz4 => (
                CompEngine::Lz4(lz4::Lz4Ctx::try_new(gfp)?),
                lz4_enc::DST_LEN,
                DecompEngine::Lz4,
                Vec::new(),
            ),
            #[cfg(feature = "zstd")]
            CompressorKind::Zstd => (
                CompEngine::Zstd(zstd::ZstdCCtx::try_new(gfp)?),
                SCRATCH_SIZE,
                DecompEngine::Zstd(zstd::ZstdDCtx::try_new(gfp)?),
                scratch(SCRATCH_SIZE)?,
            ),
            #[cfg(not(feature = "zstd"))]
            CompressorKind::Zstd => return Err(Error::ENOENT),
        };
        Ok(PerCpu {
            comp: Mutex::new_class(
                CompCtx {
                    scratch: scratch(comp_scratch)?,
                    engine: comp,
                },
                &lock_class::COMPRESS,
            ),
            decomp: Mutex::new_class(
                DecompCtx {
                    scratch: decomp_scratch,
                    engine: decomp,
                },
                &lock_class::DECOMPRESS,
            ),
        })
    }
}

impl CompCtx {
    /// Compresses `src` into the scratch buffer; returns the used prefix.
    fn compress(&mut self, src: &[u8; PAGE_SIZE]) -> Result<&[u8]> {
        let len = match &mut self.engine {
            CompEngine::Lz4(ctx) => ctx.compress(src, &mut self.scratch)?,
            #[cfg(feature = "zstd")]
            CompEngine::Zstd(ctx) => ctx.compress(src, &mut self.scratch)?,
        };
        self.scratch.get(..len).ok_or(Error::EIO)
    }
}

impl DecompCtx {
    /// Decompresses `a ++ b` into `dst`; zstd goes through the scratch
    /// buffer when `b` is not empty. Returns the decompressed length.
    fn decompress(&mut self, a: &[u8], b: &[u8], dst: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        match &mut self.engine {
            DecompEngine::Lz4 => lz4::decompress_split(a, b, dst),
            #[cfg(feature = "zstd")]
            DecompEngine::Zstd(ctx) => {
                let src: &[u8] = if b.is_empty() {
                    a
                } else {
                    let total = a.len().checked_add(b.len()).ok_or(Error::EIO)?;
                    let buf = self.scratch.get_mut(..total).ok_or(Error::EIO)?;
                    let (head, tail) = buf.split_at_mut(a.len());
                    head.copy_from_slice(a);
                    tail.copy_from_slice(b);
                    buf
                };
                ctx.decompress(src, dst)
            }
        }
    }
}

/// One possible CPU's contexts: none until the CPU is prepared (online at
/// creation, or brought up with [`Compressor::prepare`]); never changed or
/// freed before the compressor (CPU hotplug only adds). Published once, so
/// a user reads it with one load and no lock.
///
/// # Invariants
///
/// The pointer is null or from `Box::into_raw` of a `PerCpu`; it changes at
/// most once (null to a context) and that context is freed only when the
/// slot drops.
struct Slot(AtomicPtr<PerCpu>);

// The contexts are used from any CPU through `&Slot`, as a lock-protected
// `Box<PerCpu>` would be: they must be `Send` and `Sync` (their mutexes).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PerCpu>();
};

impl Slot {
    fn new(ctx: Option<Box<PerCpu>>) -> Slot {
        // INVARIANT: null, or a context from `Box::into_raw`.
        Slot(AtomicPtr::new(ctx.map_or(ptr::null_mut(), Box::into_raw)))
    }

    /// The CPU's contexts, if prepared.
    fn get(&self) -> Option<&PerCpu> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: by the invariant a non-null pointer is a live context
        // (the Acquire load pairs with the Release of its publication, so
        // its contents are visible), never freed before the slot, which
        // outlives the returned borrow of `self`.
        unsafe { p.as_ref() }
    }

    /// Publishes `ctx` if the slot has none; otherwise hands it back.
    fn set(&self, ctx: Box<PerCpu>) -> Option<Box<PerCpu>> {
        let p = Box::into_raw(ctx);
        match self
            .0
            .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire)
        {
            // INVARIANT: set once, null to a context from `Box::into_raw`.
            Ok(_) => None,
            // SAFETY: `p` came from `Box::into_raw` just above and was not
            // published: it is still ours alone.
            Err(_) => Some(unsafe { Box::from_raw(p) }),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let p = self.0.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: by the invariant `p` is from `Box::into_raw` and only
            // freed here; `&mut self` means no borrow from `get` is alive.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// Per-CPU compression contexts for one algorithm (Linux: the pool's
/// `acomp_ctx` array).
///
/// # Invariants
///
/// `percpu` has one slot per possible CPU (at least one), at least one of
/// them prepared, all for `kind`; a prepared slot stays prepared.
///
/// # CPU hotplug
///
/// Contexts are made for the CPUs online when the compressor is built and
/// for each CPU prepared later ([`Compressor::prepare`], Linux's cpuhp
/// "prepare" callback). They are never freed while the compressor lives:
/// a task may take CPU A's context, migrate, and still be compressing with
/// it when A goes offline (the 2024-25 acomp_ctx races). A slot is
/// written once, by the `prepare` that publishes its contexts (an atomic
/// pointer: a user reads it with no lock), so a slot in use never changes.
pub struct Compressor {
    kind: CompressorKind,
    percpu: Vec<Slot>,
}

impl Compressor {
    /// Builds one context per CPU (`nr_cpus` 0 is treated as 1).
    ///
    /// Every byte is allocated here, fallibly: `ENOMEM` if any context cannot
    /// be built (nothing is leaked), `ENOENT` if `kind` is not built in.
    /// `gfp` is the caller's context; the global allocator cannot honour it,
    /// so call this where blocking is allowed (pool creation).
    ///
    /// Memory per CPU: for lz4 a 4.1 KiB scratch buffer and the encoder's
    /// 8 KiB hash table; for zstd two 8 KiB scratch buffers and the page-sized
    /// static contexts (zstd 1.5.7 at level 3: 88 KiB to compress, 94 KiB to
    /// decompress; a level-3 context for inputs of any size would need
    /// 1.3 MiB).
    pub fn new(kind: CompressorKind, nr_cpus: usize, gfp: Gfp) -> Result<Compressor> {
        Self::new_online(kind, nr_cpus, &|_| true, gfp)
    }

    /// Like [`Compressor::new`] for `nr_cpus` possible CPUs, preparing
    /// contexts only for those `online` says are up (at least one: the last
    /// possible CPU if none is); the others are made by
    /// [`Compressor::prepare`] when they come up.
    pub fn new_online(
        kind: CompressorKind,
        nr_cpus: usize,
        online: &dyn Fn(usize) -> bool,
        gfp: Gfp,
    ) -> Result<Compressor> {
        if !kind.is_available() {
            return Err(Error::ENOENT);
        }
        let nr = nr_cpus.max(1);
        let mut percpu = Vec::new();
        percpu.try_reserve_exact(nr)?;
        let mut any = false;
        for cpu in 0..nr {
            let ctx = if online(cpu) || (cpu + 1 == nr && !any) {
                any = true;
                Some(try_box(PerCpu::try_new(kind, gfp)?, gfp)?)
            } else {
                None
            };
            percpu.push(Slot::new(ctx));
        }
        // INVARIANT: nr >= 1 slots of `kind`, at least one prepared.
        Ok(Compressor { kind, percpu })
    }

    /// Prepares `cpu`'s contexts (CPU hotplug, CPU coming up); a CPU already
    /// prepared is left alone (up/down cycles are harmless). Allocates with
    /// no lock held. `ENOMEM`; `EINVAL` for a CPU past the possible ones.
    pub fn prepare(&self, cpu: usize, gfp: Gfp) -> Result<()> {
        let slot = self.percpu.get(cpu).ok_or(Error::EINVAL)?;
        if slot.get().is_some() {
            return Ok(());
        }
        let ctx = try_box(PerCpu::try_new(self.kind, gfp)?, gfp)?;
        // A racing prepare of the same CPU may have won: ours goes.
        drop(slot.set(ctx));
        Ok(())
    }

    /// The algorithm.
    pub fn kind(&self) -> CompressorKind {
        self.kind
    }

    /// The number of per-CPU context slots (possible CPUs).
    pub fn nr_contexts(&self) -> usize {
        self.percpu.len()
    }

    /// The number of CPUs whose contexts are prepared.
    pub fn nr_prepared(&self) -> usize {
        self.percpu.iter().filter(|s| s.get().is_some()).count()
    }

    /// The contexts for `cpu` (clamped into range); a CPU not prepared yet
    /// (it cannot run tasks before its `prepare`, so only a stale or bogus
    /// CPU number) borrows the next prepared CPU's.
    fn context(&self, cpu: usize) -> Result<&PerCpu> {
        // Every store asks: a prepared CPU in range (the only case but for
        // a stale or bogus number) costs no division.
        if let Some(ctx) = self.percpu.get(cpu).and_then(|s| s.get()) {
            return Ok(ctx);
        }
        let nr = self.percpu.len();
        // `checked_rem` only fails for nr == 0, which the invariant rules
        // out; `get` keeps this panic-free regardless.
        let start = cpu.checked_rem(nr).ok_or(Error::EINVAL)?;
        for k in 0..nr {
            let slot = self.percpu.get((start + k) % nr).ok_or(Error::EINVAL)?;
            if let Some(ctx) = slot.get() {
                return Ok(ctx);
            }
        }
        Err(Error::EINVAL)
    }

    /// Compresses one page with CPU `cpu`'s context; `f` sees the compressed
    /// bytes (in the per-CPU scratch buffer, lock held) or the error.
    ///
    /// The result may be `PAGE_SIZE` bytes or longer when the page does not
    /// shrink; the caller then stores the page raw. `f` runs under the
    /// compression lock: see the module docs for what it may not do.
    pub fn compress<R>(
        &self,
        cpu: usize,
        src: &[u8; PAGE_SIZE],
        f: impl FnOnce(Result<&[u8]>) -> R,
    ) -> R {
        let ctx = match self.context(cpu) {
            Ok(ctx) => ctx,
            Err(e) => return f(Err(e)),
        };
        let mut guard = ctx.comp.lock();
        f(guard.compress(src))
    }

    /// Decompresses `a ++ b` (b empty unless the object spans two pool pages)
    /// into `dst`. lz4 decodes the two parts where they are, with no context
    /// and no lock; zstd copies them into the per-CPU scratch first.
    ///
    /// `Ok` only if exactly `PAGE_SIZE` bytes came out; otherwise `EIO`
    /// (`dst` contents are then unspecified). Never panics on corrupt input.
    /// Takes only the decompression lock, a leaf lock: callable under the
    /// pool's locks (zero-copy reads).
    #[inline]
    pub fn decompress(&self, cpu: usize, a: &[u8], b: &[u8], dst: &mut [u8; PAGE_SIZE]) -> Result {
        let len = if self.kind == CompressorKind::Lz4 {
            // lz4 decompression is stateless: no context, no lock.
            lz4::decompress_split(a, b, dst)?
        } else {
            self.decompress_with_context(cpu, a, b, dst)?
        };
        if len == PAGE_SIZE {
            Ok(())
        } else {
            Err(Error::EIO)
        }
    }

    /// The decompressors that keep state: CPU `cpu`'s context, under its
    /// decompression lock. Out of line, so the lz4 path of
    /// [`Compressor::decompress`] stays small where it is inlined.
    #[inline(never)]
    fn decompress_with_context(
        &self,
        cpu: usize,
        a: &[u8],
        b: &[u8],
        dst: &mut [u8; PAGE_SIZE],
    ) -> Result<usize> {
        let ctx = self.context(cpu)?;
        ctx.decomp.lock().decompress(a, b, dst)
    }
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("kind", &self.kind)
            .field("nr_contexts", &self.percpu.len())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
