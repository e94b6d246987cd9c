//! # bare-paging: a kernel that demand-pages a program through zswap
//!
//! The worked example of the porting guide: a kernel small enough to read
//! in one sitting that does what an OS does with zswap, on QEMU's `virt`
//! machine for riscv64 (`-bios none`) and aarch64 (Cortex-A57). It turns
//! the MMU on (39-bit virtual addresses, the kernel identity-mapped) and
//! runs a user program (U-mode / EL0) on its own page table: 32 MiB of
//! data in 8 MiB of page frames, in a memory cgroup whose `memory.max` is
//! 6 MiB. Every page the program touches comes from a page fault; reclaim
//! pushes cold pages out through zswap (or, when zswap refuses, to a
//! RAM-disk swap device); zswap's shrinker writes entries back to the
//! device when the cgroup's compressed memory is too much; the next fault
//! on a page brings it back from wherever it is. The program checks every
//! word it reads. The kernel runs it three times ([`RUNS`]: lz4, C zstd,
//! and lz4 without a cgroup limit so that the frames run out), prints
//! zswap's stats and the cgroup's `memory.stat`, checks that everything
//! was freed, and powers off with the verdict.
//!
//! ## The tour
//!
//! | file | what it is |
//! |---|---|
//! | `arch/*/boot.rs` | entry: stack, `.bss`, (riscv64) PMP, trap delegation and `mret` to S-mode; the machine's UART console and power-off (`ci/bare-common/*_virt.rs`) |
//! | `arch/*/trap.rs` | entering the user task and coming back on its traps; decoding them |
//! | `arch/*/mmu.rs` | the page-table entry format, turning the MMU on, TLB flushes |
//! | `trap.rs` | what a trap is, to the kernel's main loop |
//! | `mm/frames` | the page frame allocator (`ci/bare-common/frames.rs`) |
//! | `mm/pagetable.rs` | three-level tables; present, swap and empty PTEs |
//! | `mm/fault.rs` | the page fault handler: demand-zero, swap-in (`read_swap_cache_async`, zswap `load`, device read) |
//! | `mm/reclaim.rs` | the clock sweep, swap-out (`add_to_swap`, unmap, zswap `store`, device write), memcg and global reclaim, zswap's shrinker |
//! | `mm/mod.rs` | the task's memory map, `exec`, `exit_mmap` |
//! | `zswap_glue.rs` | every platform trait the crates need, and the RAM disk |
//! | `workload.rs` | the user program |
//! | this file | the kernel's main: bring-up, run, report, verdict |
//!
//! Shared by path with the self-test kernel (ci/bare-selftest), from
//! `ci/bare-common/`: the console (`console.rs`), the page frame allocator
//! (`frames.rs`), the heap (`heap.rs`: the `#[global_allocator]`, for the
//! crates' small metadata) and each machine's UART and power-off
//! (`*_virt.rs`).
//!
//! Exit status: 0 pass; 1..=19 a check of the first run failed, 21..=39
//! of the second, 41..=59 of the third (the list in [`run`], the runs in
//! [`RUNS`]); 90 bring-up failed; 101 panic; 200 a trap in the kernel.
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod arch;
#[path = "../../bare-common/console.rs"]
pub mod console;
#[path = "../../bare-common/heap.rs"]
mod heap;
mod mm;
mod trap;
mod workload;
mod zswap_glue;

use kbase::sync::{AtomicUsize, Ordering};
use kbase::{Error, Gfp, PAGE_SIZE, Result};
use memcg::MemcgRef;
use zswap_core::{ZswapParams, ZswapStats};

use mm::fault::{Access, VmFault, handle_page_fault};
use mm::frames::{FRAMES, NR_FRAMES};
use trap::{Trap, UserContext};
use workload::{PASS_NAMES, Pass};
use zswap_glue::{EVENTS, RAMDISK, get, swap, zswap};

#[global_allocator]
static ALLOCATOR: heap::ArenaAlloc = heap::ArenaAlloc;

/// Exit status after a panic.
pub const PANIC_STATUS: u8 = 101;
/// Exit status after a trap in the kernel.
pub const TRAP_STATUS: u8 = 200;
/// Exit status when bring-up failed.
const BOOT_STATUS: u8 = 90;

/// The program's data: 32 MiB (a power of two of pages).
const DATA_PAGES: usize = 8192;
/// One run of the program: its compressor, its cgroup and the cgroup's
/// `memory.max`, and which limit reclaim is expected to meet.
struct RunConfig {
    compressor: &'static str,
    cgroup: &'static str,
    memory_max: &'static str,
    /// `true`: the cgroup's `memory.max` binds (memcg reclaim from the
    /// charges); `false`: no cgroup limit, the frames run low (global
    /// reclaim).
    memcg_bound: bool,
}

/// The runs: lz4 and zstd at a 6 MiB `memory.max`, then lz4 with no cgroup
/// limit, where the 8 MiB of frames are what runs out.
const RUNS: [RunConfig; 3] = [
    RunConfig {
        compressor: "lz4",
        cgroup: "task-lz4",
        memory_max: "6M",
        memcg_bound: true,
    },
    RunConfig {
        compressor: "zstd",
        cgroup: "task-zstd",
        memory_max: "6M",
        memcg_bound: true,
    },
    RunConfig {
        compressor: "lz4",
        cgroup: "task-unlimited",
        memory_max: "max",
        memcg_bound: false,
    },
];

unsafe extern "C" {
    static __user_start: u8;
    static __user_end: u8;
}

/// The kernel image's `.user` pages: the program's code.
pub fn user_code_range() -> (usize, usize) {
    (
        (&raw const __user_start) as usize,
        (&raw const __user_end) as usize,
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kprintln!("PANIC: {info}");
    arch::poweroff(PANIC_STATUS)
}

/// The kernel's main, entered in S-mode from `boot`.
pub extern "C" fn kmain() -> ! {
    trap::init();
    kprintln!("bare-paging: zswap demand paging on {}", arch::MACHINE);
    mm::pagetable::enable_kernel_mapping();
    // Linux's defaults (max_pool_percent 20: 1.6 MiB of the 8 MiB), with
    // the shrinker on.
    let params = ZswapParams {
        shrinker_enabled: true,
        ..ZswapParams::default()
    };
    if let Err(e) = zswap_glue::init(params) {
        kprintln!("bring-up failed: {e:?}");
        arch::poweroff(BOOT_STATUS);
    }
    kprintln!(
        "mm: {} MiB of page frames, swap on a {} MiB RAM disk, zswap max_pool_percent {}",
        (NR_FRAMES * PAGE_SIZE) >> 20,
        (zswap_glue::SWAP_SLOTS * PAGE_SIZE) >> 20,
        params.max_pool_percent
    );
    let mut status = 0;
    for (i, cfg) in RUNS.iter().enumerate() {
        let base = 20 * i as u8;
        if let Err(code) = run(cfg, base) {
            status = code;
            break;
        }
    }
    if status == 0 {
        kprintln!(
            "bare-paging: {} checks passed, 0 failed: PASS",
            PASSED.load(Ordering::Relaxed)
        );
    } else {
        kprintln!(
            "bare-paging: {} checks passed, 1 failed (status {status}): FAIL",
            PASSED.load(Ordering::Relaxed)
        );
    }
    arch::poweroff(status)
}

static PASSED: AtomicUsize = AtomicUsize::new(0);

/// Prints check `code` and turns a failure into `Err(code)`.
fn check(ok: bool, code: u8, what: &str) -> core::result::Result<(), u8> {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        kprintln!("ok {code} - {what}");
        Ok(())
    } else {
        kprintln!("FAIL {code} - {what}");
        Err(code)
    }
}

/// How the task ended.
#[derive(Default)]
struct TaskEnd {
    /// Its `exit` status (words that differed), if it exited by itself.
    exit: Option<usize>,
    /// What each pass reported.
    passes: [Pass; 4],
    /// zswap and the cgroup at the moment it exited (its memory still
    /// there).
    at_exit: Option<(ZswapStats, memcg::MemoryStat, u64)>,
}

/// One run of the program with `compressor`, in a new cgroup. Check codes
/// are `base` plus:
///
/// 1 the program exited by itself after its four passes; 2 every word read
/// back was right; 3 zswap stored pages and loaded them back; 4 zswap wrote
/// back to the device, and faults read pages from it; 5 with a cgroup
/// limit: the cgroup's charges ran reclaim, and swap-in charges reclaimed
/// (the fault-plus-reclaim recursion); without: reclaim ran for want of
/// frames; 6 zswap hit its pool limit and the pages it refused went to the
/// device; 7 `memory.current` was within `memory.max` at exit; 8 zswap is
/// empty after the exit; 9 so is the swap device (and no slot is in use);
/// 10 the cgroup has no charge left; 11 zero pages went to the zeromap
/// and came back from it; 12 every frame is free, none freed twice, the
/// heap never ran out, no swap-cache wait gave up.
fn run(cfg: &RunConfig, base: u8) -> core::result::Result<(), u8> {
    let (compressor, name, max) = (cfg.compressor, cfg.cgroup, cfg.memory_max);
    let boot = |what: &'static str| {
        move |e: Error| {
            kprintln!("{compressor}: {what} failed: {e:?}");
            BOOT_STATUS
        }
    };
    let (s, z) = (
        swap().map_err(boot("bring-up"))?,
        zswap().map_err(boot("bring-up"))?,
    );
    z.set_param("compressor", compressor)
        .map_err(boot("setting the compressor"))?;
    let memcg = s
        .memcgs
        .create(name, Gfp::KERNEL)
        .map_err(boot("creating the cgroup"))?;
    memcg
        .set_memory_max(max)
        .map_err(boot("setting memory.max"))?;
    kprintln!();
    kprintln!(
        "== {compressor}: a task with {} MiB of data in cgroup /{name}, memory.max {max}",
        (DATA_PAGES * PAGE_SIZE) >> 20
    );
    mm::VMSTAT.reset();
    let z0 = z.stats();
    let recursion0 = get(&EVENTS.swapin_charge_reclaims);
    let worker0 = get(&EVENTS.shrink_worker_runs);
    let refused0 = FRAMES.alloc_failures();
    let (_, writes0, reads0) = RAMDISK.usage();
    let end = run_task(&memcg).map_err(boot("running the task"))?;

    let z1 = z.stats();
    let d = |f: fn(&ZswapStats) -> u64| f(&z1) - f(&z0);
    let vm = |name: &str| {
        mm::VMSTAT
            .pairs()
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    };
    let (disk_pages, disk_writes, disk_reads) = RAMDISK.usage();
    kprintln!(
        "kernel: {}",
        mm::VMSTAT
            .pairs()
            .iter()
            .fold(alloc::string::String::new(), |mut acc, (n, v)| {
                use core::fmt::Write as _;
                let _ = write!(acc, "{n} {v}  ");
                acc
            })
    );
    kprintln!(
        "kernel: ramdisk writes {} reads {}; swap-in charges that reclaimed {}; shrink worker runs {}; frame allocations refused {}",
        disk_writes - writes0,
        disk_reads - reads0,
        get(&EVENTS.swapin_charge_reclaims) - recursion0,
        get(&EVENTS.shrink_worker_runs) - worker0,
        FRAMES.alloc_failures() - refused0,
    );
    if let Some((zs, ms, current)) = end.at_exit.as_ref() {
        kprintln!("zswap stats at the task's exit (/sys/kernel/debug/zswap, counters since boot):");
        for (n, v) in zs.iter() {
            kprintln!("  {n} {v}");
        }
        kprintln!(
            "/{name} at the task's exit: memory.current {current} memory.max {}",
            memcg.memory_max()
        );
        kprintln!("/{name}/memory.stat:");
        for line in alloc::format!("{ms}").lines() {
            kprintln!("  {line}");
        }
    }

    let clean_exit = end.exit.is_some() && end.passes.iter().all(|p| p.pages > 0);
    check(
        clean_exit,
        base + 1,
        "the task exited by itself after its four passes",
    )?;
    let bad: usize = end.passes.iter().map(|p| p.bad).sum();
    check(
        end.exit == Some(0) && bad == 0,
        base + 2,
        "every word the task read back was the one it wrote",
    )?;
    check(
        d(|s| s.zswpout) > 0 && d(|s| s.zswpin) > 0 && vm("swapin_zswap") > 0,
        base + 3,
        "pages went out to zswap and faulted back in from it",
    )?;
    check(
        d(|s| s.written_back_pages) > 0 && vm("swapin_device") > 0,
        base + 4,
        "zswap wrote back to the swap device and faults read pages from it",
    )?;
    if cfg.memcg_bound {
        check(
            vm("memcg_reclaims") > 0 && get(&EVENTS.swapin_charge_reclaims) > recursion0,
            base + 5,
            "charges at memory.max reclaimed, swap-in charges among them",
        )?;
    } else {
        check(
            vm("global_reclaims") > 0 && vm("memcg_reclaims") == 0,
            base + 5,
            "reclaim ran because the frames ran low (no cgroup limit)",
        )?;
    }
    check(
        d(|s| s.pool_limit_hit) > 0 && d(|s| s.reject_pool_limit) > 0 && vm("pageout_device") > 0,
        base + 6,
        "zswap refused stores at its pool limit and those pages went to the device",
    )?;
    check(
        end.at_exit
            .as_ref()
            .is_some_and(|(_, _, cur)| *cur <= memcg.memory_max()),
        base + 7,
        "memory.current was within memory.max at exit",
    )?;
    let zs = z.stats();
    check(
        zs.stored_pages == 0 && z.total_pages() == 0 && z.lru_entries() == 0,
        base + 8,
        "zswap holds nothing after the exit",
    )?;
    check(
        disk_pages == 0 && s.space.inuse_pages(s.swp_type) == Ok(0),
        base + 9,
        "the swap device is empty, no slot in use",
    )?;
    check(
        memcg.memory_current() == 0 && memcg.swap_current() == 0 && memcg.zswap_current() == 0,
        base + 10,
        "the cgroup has no charge left",
    )?;
    check(
        vm("pageout_zero") > 0
            && vm("swapin_zero") > 0
            && memcg.stat().swpout_zero == vm("pageout_zero") as u64,
        base + 11,
        "zero pages went to the swap core's zeromap and came back from it",
    )?;
    check(
        FRAMES.nr_free() == NR_FRAMES
            && FRAMES.bad_frees() == 0
            && ALLOCATOR.failures() == 0
            && get(&EVENTS.stuck_waits) == 0,
        base + 12,
        "every frame is free (none freed twice), the heap never ran out, no wait gave up",
    )
}

/// Runs the program to its end in a new address space charged to `memcg`.
fn run_task(memcg: &MemcgRef) -> Result<TaskEnd> {
    mm::exec(memcg.clone(), DATA_PAGES)?;
    let (code_start, _) = user_code_range();
    let entry = mm::USER_CODE + (workload::user_main as *const () as usize - code_start);
    let mut ctx = UserContext::new(entry, mm::USER_STACK_TOP, [mm::USER_DATA, DATA_PAGES]);
    let mut end = TaskEnd::default();
    loop {
        let trap = trap::enter_user(&mut ctx);
        let kill = match trap {
            Trap::Syscall { nr, args } => {
                trap::syscall_done(&mut ctx);
                let [a0, a1, a2] = args;
                match nr {
                    workload::SYS_REPORT => {
                        let name = PASS_NAMES.get(a0.wrapping_sub(1)).copied().unwrap_or("?");
                        kprintln!("task: pass {a0} ({name}): {a1} pages, {a2} bad words");
                        if let Some(p) = end.passes.get_mut(a0.wrapping_sub(1)) {
                            *p = Pass { pages: a1, bad: a2 };
                        }
                        None
                    }
                    workload::SYS_EXIT => {
                        let z = zswap()?;
                        end.at_exit = Some((z.stats(), memcg.stat(), memcg.memory_current()));
                        end.exit = Some(a0);
                        kprintln!("task: exit({a0})");
                        break;
                    }
                    _ => Some(("unknown system call", nr, 0)),
                }
            }
            Trap::PageFault { addr, access } => {
                fault_or_kill(addr, access).map(|why| (why, 0, addr))
            }
            Trap::Other { cause, tval } => Some(("unexpected trap", cause, tval)),
        };
        if let Some((why, cause, addr)) = kill {
            kprintln!(
                "task killed: {why} (cause {cause:#x} address {addr:#x} pc {:#x})",
                ctx.pc()
            );
            break;
        }
        zswap_glue::run_deferred_work();
    }
    mm::exit_mmap()?;
    Ok(end)
}

/// Handles a page fault; `Some(reason)` if the task must die.
fn fault_or_kill(addr: usize, access: Access) -> Option<&'static str> {
    match handle_page_fault(addr, access) {
        Ok(()) => None,
        Err(VmFault::Sigsegv) => Some("segmentation fault"),
        Err(VmFault::Oom) => Some("out of memory"),
        Err(VmFault::Sigbus) => Some("bus error"),
    }
}
