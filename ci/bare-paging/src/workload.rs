//! The user program, and the system calls it makes.
//!
//! The program runs in U-mode on its own page table. Its code is in the
//! `.user` sections, on pages of their own that the kernel maps into the
//! task at [`USER_CODE`](crate::mm::USER_CODE), a different address from
//! the kernel's: the code is position-independent and reaches nothing
//! outside those pages. Every function and constant here is placed there;
//! it uses no `core` function that is not inlined (volatile accesses and
//! integer arithmetic only, no panics, no `match`, whose jump tables would
//! live in the kernel's `.rodata`); and its 64-bit constants are read from
//! [`KEYS`] at run time, so the compiler does not put them in a constant
//! pool in the kernel's `.rodata` either. Reaching outside would be a page
//! fault the kernel reports as the task's segmentation fault.
//!
//! It gets its data area in `a0` and its size in pages (a power of two) in
//! `a1`, and then:
//!
//! 1. writes every page, in address order (generation 1);
//! 2. reads every page back in a scattered order (`i * 0x9e5 + 17` modulo
//!    the size) and checks every word;
//! 3. rewrites a quarter of the pages, from the top down (generation 2);
//! 4. checks every page again, in another scattered order.
//!
//! The words of a page depend on its number and generation, in four kinds
//! (by page number): text-like (compresses well), noise (does not
//! compress: zswap stores it raw), sparse (a header word and zeros; all
//! zeros once rewritten: a zero page, which never reaches zswap) and
//! same-filled (one word repeated). After each
//! pass it reports the pages it touched and the words that differed; at the
//! end it exits with the number of words that differed.

/// `exit(status)`: Linux's number on riscv64 and aarch64.
pub const SYS_EXIT: usize = 93;
/// `report(pass, pages, bad_words)`: a pass is done.
pub const SYS_REPORT: usize = 500;

const WORDS: usize = 4096 / 8;

/// The program's 64-bit constants: splitmix64's increment and multipliers,
/// and the text pages' phrase.
#[unsafe(link_section = ".user.rodata")]
static KEYS: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xbf58_476d_1ce4_e5b9,
    0x94d0_49bb_1331_11eb,
    0x2070_6177_737a_2020,
];

/// [`KEYS`], read once.
#[derive(Clone, Copy)]
struct Keys([u64; 4]);

#[unsafe(link_section = ".user")]
#[inline(always)]
fn keys() -> Keys {
    let mut k = [0; 4];
    let mut i = 0;
    while i < 4 {
        // SAFETY: `KEYS` is a static of four words, mapped with the code.
        k[i] = unsafe { (&raw const KEYS).cast::<u64>().add(i).read_volatile() };
        i += 1;
    }
    Keys(k)
}

#[unsafe(link_section = ".user")]
#[inline(always)]
fn syscall(nr: usize, a0: usize, a1: usize, a2: usize) {
    // SAFETY: `ecall` traps to the kernel, which reads a7 and a0..a2 and
    // may write a0; it touches no memory of ours.
    #[cfg(target_arch = "riscv64")]
    unsafe {
        core::arch::asm!("ecall", in("a7") nr, inlateout("a0") a0 => _, in("a1") a1, in("a2") a2,
            options(nostack))
    }
    // SAFETY: `svc` traps to the kernel, which reads x8 and x0..x2 and may
    // write x0; it touches no memory of ours.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("svc #0", in("x8") nr, inlateout("x0") a0 => _, in("x1") a1, in("x2") a2,
            options(nostack))
    }
}

/// splitmix64's finaliser: a well-mixed word from any word.
#[unsafe(link_section = ".user")]
#[inline(always)]
fn mix(k: Keys, x: u64) -> u64 {
    let mut z = x.wrapping_add(k.0[0]);
    z = (z ^ (z >> 30)).wrapping_mul(k.0[1]);
    z = (z ^ (z >> 27)).wrapping_mul(k.0[2]);
    z ^ (z >> 31)
}

/// Word `j` of page `p` in generation `g`.
#[unsafe(link_section = ".user")]
#[inline(always)]
fn value(k: Keys, p: usize, j: usize, g: u64) -> u64 {
    let seed = mix(k, ((p as u64) << 8) | g);
    if p & 2 == 0 {
        if p & 1 == 0 {
            // Text-like: a header word every 64 bytes, the rest a phrase.
            if j & 7 == 0 {
                seed ^ j as u64
            } else {
                k.0[3] ^ (j & 7) as u64
            }
        } else {
            // Noise.
            mix(k, seed ^ j as u64)
        }
    } else if p & 1 == 0 {
        // Sparse: a header word, then zeros; rewritten (generation 2), all
        // zeros: a zero page, which swap-out records in the zeromap.
        if j == 0 && g == 1 { seed } else { 0 }
    } else {
        // Same-filled.
        seed
    }
}

#[unsafe(link_section = ".user")]
#[inline(always)]
fn page_ptr(base: usize, p: usize) -> *mut u64 {
    (base + p * 4096) as *mut u64
}

#[unsafe(link_section = ".user")]
#[inline(never)]
fn write_page(k: Keys, base: usize, p: usize, g: u64) {
    let ptr = page_ptr(base, p);
    let mut j = 0;
    while j < WORDS {
        // SAFETY: inside the task's data area (the kernel maps it on first
        // touch); `j < WORDS` keeps it inside page `p`.
        unsafe { ptr.add(j).write_volatile(value(k, p, j, g)) };
        j += 1;
    }
}

/// Words of page `p` that differ from generation `g`.
#[unsafe(link_section = ".user")]
#[inline(never)]
fn check_page(k: Keys, base: usize, p: usize, g: u64) -> usize {
    let ptr = page_ptr(base, p);
    let mut bad = 0;
    let mut j = 0;
    while j < WORDS {
        // SAFETY: as in `write_page`.
        if unsafe { ptr.add(j).read_volatile() } != value(k, p, j, g) {
            bad += 1;
        }
        j += 1;
    }
    bad
}

/// The generation page `p` has after pass 3: pass 3 rewrites one page in
/// four (in groups of four, so of every kind). No `%`: a division by a
/// constant needs a 64-bit magic number from a constant pool.
#[unsafe(link_section = ".user")]
#[inline(always)]
fn final_gen(p: usize) -> u64 {
    if p & 0xc == 4 { 2 } else { 1 }
}

/// The program's entry point (`a0` = data area, `a1` = pages in it, a power
/// of two).
#[unsafe(link_section = ".user")]
#[unsafe(no_mangle)]
pub extern "C" fn user_main(base: usize, npages: usize) -> ! {
    let k = keys();
    let mask = npages.wrapping_sub(1);
    let mut total_bad = 0;

    let mut p = 0;
    while p < npages {
        write_page(k, base, p, 1);
        p += 1;
    }
    syscall(SYS_REPORT, 1, npages, 0);

    let mut bad = 0;
    let mut i = 0;
    while i < npages {
        bad += check_page(k, base, i.wrapping_mul(0x9e5).wrapping_add(17) & mask, 1);
        i += 1;
    }
    syscall(SYS_REPORT, 2, npages, bad);
    total_bad += bad;

    let mut n = 0;
    let mut p = npages;
    while p > 0 {
        p -= 1;
        if final_gen(p) == 2 {
            write_page(k, base, p, 2);
            n += 1;
        }
    }
    syscall(SYS_REPORT, 3, n, 0);

    let mut bad = 0;
    let mut i = 0;
    while i < npages {
        let p = i.wrapping_mul(0x2b3d).wrapping_add(npages / 2) & mask;
        bad += check_page(k, base, p, final_gen(p));
        i += 1;
    }
    syscall(SYS_REPORT, 4, npages, bad);
    total_bad += bad;

    syscall(SYS_EXIT, total_bad, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}

/// What a pass did, as the task reported it.
#[derive(Clone, Copy, Default)]
pub struct Pass {
    /// Pages touched.
    pub pages: usize,
    /// Words that differed.
    pub bad: usize,
}

/// What the pass numbers mean.
pub const PASS_NAMES: [&str; 4] = [
    "write every page, in order",
    "read back, scattered order",
    "rewrite a quarter of the pages, top down",
    "read back, another scattered order",
];
