//! Exceptions on aarch64: entering the EL0 task and coming back on its next
//! exception.
//!
//! [`enter_user`] saves the kernel's callee-saved registers on the kernel
//! stack, loads the task's registers from its [`UserContext`] (its stack
//! pointer into `SP_EL0`, its pc into `ELR_EL1`) and `eret`s to EL0. The
//! task's next synchronous exception (an `svc`, a data or instruction
//! abort) enters the vector for "lower EL, AArch64, synchronous" on
//! `SP_EL1`, which is still the kernel's stack: the entry code saves the
//! task's registers, its `PSTATE` (`SPSR_EL1`: the condition flags of an
//! interrupted compare-and-branch) and the syndrome (`ESR_EL1`, `FAR_EL1`)
//! into the
//! context (found through `TPIDR_EL1`) and returns from `enter_user`. Any
//! other exception (from EL1, or an interrupt) is a kernel bug, printed
//! before powering off.

use crate::mm::fault::Access;
use crate::trap::Trap;

/// The task's registers while it is not running, and its last exception.
#[repr(C)]
pub struct UserContext {
    /// `x0`..`x30`.
    regs: [usize; 31],
    /// Where the task resumes (`ELR_EL1`).
    pc: usize,
    /// Its stack pointer (`SP_EL0`).
    sp: usize,
    /// The kernel's stack pointer inside `run_user`.
    kernel_sp: usize,
    /// `ESR_EL1` of the last exception.
    esr: usize,
    /// `FAR_EL1` of the last exception.
    far: usize,
    /// The task's `PSTATE` (`SPSR_EL1`): its condition flags survive the
    /// exception with it.
    spsr: usize,
}

impl UserContext {
    /// A task starting at `pc` with stack pointer `sp` and arguments `args`
    /// in `x0` and `x1`.
    pub fn new(pc: usize, sp: usize, args: [usize; 2]) -> UserContext {
        let mut regs = [0; 31];
        regs[0] = args[0];
        regs[1] = args[1];
        UserContext {
            regs,
            pc,
            sp,
            kernel_sp: 0,
            esr: 0,
            far: 0,
            // EL0t, interrupts masked (the kernel uses none).
            spsr: 0x3c0,
        }
    }

    /// Where the task is (its last exception's return address).
    pub fn pc(&self) -> usize {
        self.pc
    }
}

core::arch::global_asm!(
    r#"
    .equ CTX_PC, 248
    .equ CTX_SP, 256
    .equ CTX_KSP, 264
    .equ CTX_ESR, 272
    .equ CTX_FAR, 280
    .equ CTX_SPSR, 288

    .section .text
    .balign 4
    .global run_user
run_user:                              // x0 = &mut UserContext
    sub   sp, sp, #176
    stp   x19, x20, [sp, #0]
    stp   x21, x22, [sp, #16]
    stp   x23, x24, [sp, #32]
    stp   x25, x26, [sp, #48]
    stp   x27, x28, [sp, #64]
    stp   x29, x30, [sp, #80]
    stp   d8, d9, [sp, #96]
    stp   d10, d11, [sp, #112]
    stp   d12, d13, [sp, #128]
    stp   d14, d15, [sp, #144]
    mov   x1, sp
    str   x1, [x0, #CTX_KSP]
    msr   tpidr_el1, x0
    ldr   x1, [x0, #CTX_PC]
    msr   elr_el1, x1
    ldr   x1, [x0, #CTX_SP]
    msr   sp_el0, x1
    ldr   x1, [x0, #CTX_SPSR]
    msr   spsr_el1, x1
    ldp   x2, x3, [x0, #16]
    ldp   x4, x5, [x0, #32]
    ldp   x6, x7, [x0, #48]
    ldp   x8, x9, [x0, #64]
    ldp   x10, x11, [x0, #80]
    ldp   x12, x13, [x0, #96]
    ldp   x14, x15, [x0, #112]
    ldp   x16, x17, [x0, #128]
    ldp   x18, x19, [x0, #144]
    ldp   x20, x21, [x0, #160]
    ldp   x22, x23, [x0, #176]
    ldp   x24, x25, [x0, #192]
    ldp   x26, x27, [x0, #208]
    ldp   x28, x29, [x0, #224]
    ldr   x30, [x0, #240]
    ldp   x0, x1, [x0, #0]
    eret

user_trap:                             // sp = the kernel's, x0/x1 on it
    mrs   x0, tpidr_el1
    stp   x2, x3, [x0, #16]
    stp   x4, x5, [x0, #32]
    stp   x6, x7, [x0, #48]
    stp   x8, x9, [x0, #64]
    stp   x10, x11, [x0, #80]
    stp   x12, x13, [x0, #96]
    stp   x14, x15, [x0, #112]
    stp   x16, x17, [x0, #128]
    stp   x18, x19, [x0, #144]
    stp   x20, x21, [x0, #160]
    stp   x22, x23, [x0, #176]
    stp   x24, x25, [x0, #192]
    stp   x26, x27, [x0, #208]
    stp   x28, x29, [x0, #224]
    str   x30, [x0, #240]
    ldp   x2, x3, [sp], #16            // the task's x0, x1
    stp   x2, x3, [x0, #0]
    mrs   x1, elr_el1
    str   x1, [x0, #CTX_PC]
    mrs   x1, sp_el0
    str   x1, [x0, #CTX_SP]
    mrs   x1, esr_el1
    str   x1, [x0, #CTX_ESR]
    mrs   x1, far_el1
    str   x1, [x0, #CTX_FAR]
    mrs   x1, spsr_el1
    str   x1, [x0, #CTX_SPSR]
    ldr   x1, [x0, #CTX_KSP]
    mov   sp, x1
    ldp   x19, x20, [sp, #0]
    ldp   x21, x22, [sp, #16]
    ldp   x23, x24, [sp, #32]
    ldp   x25, x26, [sp, #48]
    ldp   x27, x28, [sp, #64]
    ldp   x29, x30, [sp, #80]
    ldp   d8, d9, [sp, #96]
    ldp   d10, d11, [sp, #112]
    ldp   d12, d13, [sp, #128]
    ldp   d14, d15, [sp, #144]
    add   sp, sp, #176
    ret

kernel_exception:
    mrs   x0, esr_el1
    mrs   x1, elr_el1
    mrs   x2, far_el1
    bl    {kernel_trap}

    // The vector table: 16 entries of 0x80 bytes. Entry 8 is "lower EL,
    // AArch64, synchronous": the task's svc and aborts.
    .balign 0x800
    .global exception_vectors
exception_vectors:
    .rept 8
    .balign 0x80
    b     kernel_exception
    .endr
    .balign 0x80
    stp   x0, x1, [sp, #-16]!
    b     user_trap
    .rept 7
    .balign 0x80
    b     kernel_exception
    .endr
"#,
    kernel_trap = sym kernel_trap,
);

unsafe extern "C" {
    fn run_user(ctx: *mut UserContext);
    static exception_vectors: u8;
}

/// Installs the exception vectors.
pub fn init() {
    let v = (&raw const exception_vectors) as usize;
    // SAFETY: `exception_vectors` is the 2 KiB-aligned table above.
    unsafe { core::arch::asm!("msr vbar_el1, {0}", "isb", in(reg) v, options(nostack)) };
}

/// Runs the task until its next exception, and says what it was.
pub fn enter_user(ctx: &mut UserContext) -> Trap {
    // SAFETY: `run_user` saves and restores the callee-saved registers
    // (x19-x30, d8-d15) and the stack pointer, and returns like a function
    // once the task takes an exception; it writes only `*ctx`.
    unsafe { run_user(ctx) };
    let ec = ctx.esr >> 26;
    match ec {
        // SVC from AArch64: the number in x8 (Linux's convention), the
        // return address is already past the instruction.
        0x15 => Trap::Syscall {
            nr: ctx.regs[8],
            args: [ctx.regs[0], ctx.regs[1], ctx.regs[2]],
        },
        // Instruction abort from EL0.
        0x20 => Trap::PageFault {
            addr: ctx.far,
            access: Access::Fetch,
        },
        // Data abort from EL0: ESR.WnR (bit 6) tells a write.
        0x24 => Trap::PageFault {
            addr: ctx.far,
            access: if ctx.esr & (1 << 6) != 0 {
                Access::Store
            } else {
                Access::Load
            },
        },
        _ => Trap::Other {
            cause: ctx.esr,
            tval: ctx.far,
        },
    }
}

/// Resumes the task after its system call (nothing to do: `ELR_EL1` is
/// past the `svc` already).
pub fn syscall_done(_ctx: &mut UserContext) {}

/// An exception taken at EL1, or one the kernel does not expect: a bug.
extern "C" fn kernel_trap(esr: usize, elr: usize, far: usize) -> ! {
    crate::kprintln!("kernel exception: esr {esr:#x} elr {elr:#x} far {far:#x}");
    crate::arch::poweroff(crate::TRAP_STATUS)
}
