//! Check reporting: every check prints one line as it runs (`ok N - what`
//! or `FAIL N - what`), and the run ends with a line of counts. The numbers
//! are the exit statuses of the table in `selftest`.

use kbase::sync::{AtomicUsize, Ordering};

/// What the kernel runs on, for the first line.
pub const MACHINE: &str = if cfg!(target_arch = "riscv64") {
    "riscv64 (QEMU virt, M-mode)"
} else if cfg!(target_arch = "aarch64") {
    "aarch64 (QEMU virt, Cortex-A57, EL1)"
} else {
    "x86_64 (a Linux process)"
};

static PASSED: AtomicUsize = AtomicUsize::new(0);
/// The status whose failure was already printed (0: none).
static PRINTED_FAIL: AtomicUsize = AtomicUsize::new(0);

/// Records check `code`: prints it, counts a pass, and turns a failure
/// into `Err(code)`.
pub fn ensure(ok: bool, code: u8) -> Result<(), u8> {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
        crate::kprintln!("ok {code} - {}", describe(code));
        Ok(())
    } else {
        PRINTED_FAIL.store(usize::from(code), Ordering::Relaxed);
        crate::kprintln!("FAIL {code} - {}", describe(code));
        Err(code)
    }
}

/// The last line: counts and verdict. `failed`: the status of the check
/// that stopped the run (a failed step is printed here if no check line
/// reported it).
pub fn summary(failed: Option<u8>) {
    let passed = PASSED.load(Ordering::Relaxed);
    match failed {
        None => crate::kprintln!("bare-selftest: {passed} checks passed, 0 failed: PASS"),
        Some(code) => {
            if PRINTED_FAIL.load(Ordering::Relaxed) != usize::from(code) {
                crate::kprintln!("FAIL {code} - {}", describe(code));
            }
            crate::kprintln!(
                "bare-selftest: {passed} checks passed, 1 failed (status {code}): FAIL"
            );
        }
    }
}

/// What check `code` checks (the table in `selftest`).
pub fn describe(code: u8) -> &'static str {
    match code {
        1 => "boot: memory cgroup tree created",
        2 => "boot: cgroup created",
        3 => "boot: swap device starts empty",
        4 => "boot: swapon",
        5 => "boot: zswap created",
        6 => "boot: zswap swapon",
        7 => "boot: memory.zswap.max lets the cgroup use zswap",
        10..=37 => round_check(code - 10, "lz4"),
        50..=77 => round_check(code - 50, "zstd"),
        90 => "compressor switch to zstd accepted",
        91 => "compressor is zstd",
        100 => "fault reclaim: swap-out",
        101 => "panic",
        102 => "fault reclaim: memory.max set at the cgroup's usage",
        103 => "fault reclaim: fault charged, loaded and mapped",
        104 => "fault reclaim: faulted page intact",
        105 => "fault reclaim: the charge ran reclaim",
        106 => "fault reclaim: reclaim wrote back",
        107 => "fault reclaim: writeback skipped the faulting slot (EEXIST)",
        108 => "fault reclaim: writeback's charge was forced from reclaim",
        109 => "fault reclaim: memory.current <= memory.max",
        110 => "fault reclaim: other pages come back intact",
        111 => "fault reclaim: no swap-cache wait gave up",
        112 => "fault reclaim: no charge left",
        120 => "teardown: no entry left",
        121 => "teardown: something was written back",
        122 => "teardown: no pool page left",
        123 => "teardown: one pool after the compressor switch",
        124 => "teardown: zswap swapoff",
        125 => "teardown: swapoff",
        126 => "teardown: every page frame freed",
        127 => "teardown: no bad page free",
        128 => "teardown: the heap never ran out",
        129 => "teardown: no cgroup charge left",
        130 => "teardown: no swap-cache wait gave up",
        131 => "teardown: no shrink work queued",
        132 => "teardown: no rejection counted",
        133 => "teardown: cgroup LRUs empty",
        134 => "teardown: slot_freed once per slot",
        200 => "CPU exception",
        _ => "(see the table in selftest.rs)",
    }
}

/// Round check `k` (the list in `selftest`), for compressor `c`.
fn round_check(k: u8, c: &str) -> &'static str {
    let zstd = c == "zstd";
    macro_rules! pick {
        ($s:literal) => {
            if zstd {
                concat!("zstd round: ", $s)
            } else {
                concat!("lz4 round: ", $s)
            }
        };
    }
    match k {
        0 => pick!("swap-out (folio, slot, zswap_store)"),
        1 => pick!("stored_pages and zswpout count the stores"),
        2 => pick!("zero page in the zeromap (swpout_zero, swpin_zero), not zswap"),
        3 => pick!("stored_incompressible_pages"),
        4 => pick!("memory.zswap.current and pool pages"),
        5 => pick!("stores did not touch the device"),
        6 => pick!("fault brought the page into the swap cache"),
        7 => pick!("zswap loaded the page"),
        8 => pick!("loaded page intact"),
        9 => pick!("slot freed after the fault"),
        10 => pick!("zswpin counts the loads"),
        11 => pick!("loaded page's entry gone"),
        12 => pick!("writeback of a compressible entry"),
        13 => pick!("same-value page compressed and written back like any page"),
        14 => pick!("shrink_memcg"),
        15 => pick!("something written back"),
        16 => pick!("writeback_folio_done once per written folio"),
        17 => pick!("device holds the written-back pages"),
        18 => pick!("zswap holds no written-back slot"),
        19 => pick!("device read"),
        20 => pick!("page read from the device intact"),
        21 => pick!("memory.current == memory.zswap.current"),
        22 => pick!("slot freed"),
        23 => pick!("no entry left"),
        24 => pick!("no slot left in use"),
        25 => pick!("device empty"),
        26 => pick!("no zswap bytes charged"),
        27 => pick!("no pool page left"),
        _ => pick!("(see the table in selftest.rs)"),
    }
}
