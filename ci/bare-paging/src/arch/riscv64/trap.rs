//! Traps on riscv64: entering the U-mode task and coming back on its next
//! trap.
//!
//! One task, so no scheduler: the kernel calls [`run_user`], which saves the
//! kernel's callee-saved registers on the kernel stack, loads the task's
//! registers from its [`UserContext`] and `sret`s to U-mode. The task's next
//! trap (an `ecall`, a page fault, anything delegated to S-mode) lands in
//! `user_trap`, which saves the task's registers and the trap CSRs into the
//! context and returns from `run_user` as if it were an ordinary call. The
//! kernel (`main`) then looks at `scause` and handles it.
//!
//! While the kernel runs, `stvec` points at `kernel_trap`: a trap in S-mode
//! is a kernel bug, printed before powering off.
//!
//! The kernel stays mapped in the task's page table (without the U bit), so
//! no `satp` switch happens on the way in or out.

use crate::mm::fault::Access;
use crate::trap::Trap;

/// `scause` values the kernel handles.
const CAUSE_ECALL_U: usize = 8;
/// Instruction, load and store page faults.
const CAUSE_FETCH_PAGE_FAULT: usize = 12;
const CAUSE_LOAD_PAGE_FAULT: usize = 13;
const CAUSE_STORE_PAGE_FAULT: usize = 15;

/// The task's registers while it is not running (`x0` unused), and what
/// its last trap was.
#[repr(C)]
pub struct UserContext {
    /// `x0`..`x31`; `regs[10]` is `a0`, and so on.
    regs: [usize; 32],
    /// Where the task resumes (`sepc`).
    pc: usize,
    /// The kernel's stack pointer inside `run_user`.
    kernel_sp: usize,
    /// `scause` of the last trap.
    scause: usize,
    /// `stval` of the last trap (the faulting address for page faults).
    stval: usize,
}

impl UserContext {
    /// A task starting at `pc` with stack pointer `sp` and arguments `args`
    /// in `a0` and `a1`.
    pub fn new(pc: usize, sp: usize, args: [usize; 2]) -> UserContext {
        let mut regs = [0; 32];
        regs[2] = sp;
        regs[10] = args[0];
        regs[11] = args[1];
        UserContext {
            regs,
            pc,
            kernel_sp: 0,
            scause: 0,
            stval: 0,
        }
    }

    /// Where the task is (its last trap's `sepc`).
    pub fn pc(&self) -> usize {
        self.pc
    }
}

// Offsets into UserContext: regs[i] at 8 * i, then pc, kernel_sp, scause,
// stval.
core::arch::global_asm!(
    r#"
    .equ CTX_PC, 256
    .equ CTX_KSP, 264
    .equ CTX_CAUSE, 272
    .equ CTX_TVAL, 280

    .section .text
    .global run_user
    .balign 4
run_user:                        # a0 = &mut UserContext
    addi  sp, sp, -112
    sd    ra, 0(sp)
    sd    s0, 8(sp)
    sd    s1, 16(sp)
    sd    s2, 24(sp)
    sd    s3, 32(sp)
    sd    s4, 40(sp)
    sd    s5, 48(sp)
    sd    s6, 56(sp)
    sd    s7, 64(sp)
    sd    s8, 72(sp)
    sd    s9, 80(sp)
    sd    s10, 88(sp)
    sd    s11, 96(sp)
    sd    sp, CTX_KSP(a0)
    csrw  sscratch, a0
    la    t0, user_trap
    csrw  stvec, t0
    ld    t0, CTX_PC(a0)
    csrw  sepc, t0
    li    t0, (1 << 8)           # sstatus.SPP = 0: sret goes to U-mode
    csrc  sstatus, t0
    .irp  r, 1,2,3,4,5,6,7,8,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ld    x\r, (\r * 8)(a0)
    .endr
    ld    a0, (10 * 8)(a0)
    sret

    .balign 4
user_trap:
    csrrw a0, sscratch, a0       # a0 = &mut UserContext, sscratch = task's a0
    .irp  r, 1,2,3,4,5,6,7,8,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    sd    x\r, (\r * 8)(a0)
    .endr
    csrr  t0, sscratch
    sd    t0, (10 * 8)(a0)
    csrr  t0, sepc
    sd    t0, CTX_PC(a0)
    csrr  t0, scause
    sd    t0, CTX_CAUSE(a0)
    csrr  t0, stval
    sd    t0, CTX_TVAL(a0)
    ld    sp, CTX_KSP(a0)
    la    t0, kernel_trap_entry
    csrw  stvec, t0
    ld    ra, 0(sp)
    ld    s0, 8(sp)
    ld    s1, 16(sp)
    ld    s2, 24(sp)
    ld    s3, 32(sp)
    ld    s4, 40(sp)
    ld    s5, 48(sp)
    ld    s6, 56(sp)
    ld    s7, 64(sp)
    ld    s8, 72(sp)
    ld    s9, 80(sp)
    ld    s10, 88(sp)
    ld    s11, 96(sp)
    addi  sp, sp, 112
    ret

    .balign 4
    .global kernel_trap_entry
kernel_trap_entry:
    csrr  a0, scause
    csrr  a1, sepc
    csrr  a2, stval
    call  {kernel_trap}
"#,
    kernel_trap = sym kernel_trap,
);

unsafe extern "C" {
    fn run_user(ctx: *mut UserContext);
    fn kernel_trap_entry();
}

/// Runs the task until its next trap, and says what it was.
pub fn enter_user(ctx: &mut UserContext) -> Trap {
    // SAFETY: `run_user` saves and restores every callee-saved register and
    // the stack pointer, and returns like a function once the task traps;
    // it writes only `*ctx`. The task runs on its own page table entries,
    // which cannot reach kernel memory (no U bit there).
    unsafe { run_user(ctx) };
    let fault = |access| Trap::PageFault {
        addr: ctx.stval,
        access,
    };
    match ctx.scause {
        // The number in a7, the arguments in a0..a2 (Linux's convention).
        CAUSE_ECALL_U => Trap::Syscall {
            nr: ctx.regs[17],
            args: [ctx.regs[10], ctx.regs[11], ctx.regs[12]],
        },
        CAUSE_FETCH_PAGE_FAULT => fault(Access::Fetch),
        CAUSE_LOAD_PAGE_FAULT => fault(Access::Load),
        CAUSE_STORE_PAGE_FAULT => fault(Access::Store),
        _ => Trap::Other {
            cause: ctx.scause,
            tval: ctx.stval,
        },
    }
}

/// Resumes the task after its system call: past the `ecall`.
pub fn syscall_done(ctx: &mut UserContext) {
    ctx.pc += 4;
}

/// Points `stvec` at the kernel's own trap handler.
pub fn init() {
    let entry = kernel_trap_entry as *const () as usize;
    // SAFETY: `kernel_trap_entry` is 4-byte aligned code (direct mode).
    unsafe { core::arch::asm!("csrw stvec, {0}", in(reg) entry, options(nostack)) };
}

/// A trap taken in S-mode: a kernel bug.
extern "C" fn kernel_trap(cause: usize, pc: usize, tval: usize) -> ! {
    crate::kprintln!("kernel trap: scause {cause:#x} sepc {pc:#x} stval {tval:#x}");
    crate::arch::poweroff(crate::TRAP_STATUS)
}
