//! x86_64: the kernel runs as a Linux process (the freestanding image is
//! static, so Linux's loader starts it at `_start` with a stack and a
//! zeroed `.bss`). Console: `write(1, ...)`; power-off: `exit(status)`.

/// The entry point.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    crate::kmain()
}

/// Writes `bytes` to standard output.
pub fn console_write(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n: isize;
        // SAFETY: Linux's write syscall (1) reads `rest.len()` bytes at
        // `rest.as_ptr()`, which are valid; it clobbers rcx and r11.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") 1isize => n,
                in("rdi") 1,
                in("rsi") rest.as_ptr(),
                in("rdx") rest.len(),
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            )
        };
        let Ok(n) = usize::try_from(n) else { return };
        if n == 0 {
            return;
        }
        rest = rest.get(n..).unwrap_or(&[]);
    }
}

/// Ends the run with `code`: the process exits (Linux `exit`).
pub fn poweroff(code: u8) -> ! {
    // SAFETY: Linux's exit syscall (60) takes the status in rdi and does not
    // return; it touches no memory of ours.
    unsafe {
        core::arch::asm!("syscall", in("rax") 60, in("rdi") i64::from(code), options(noreturn))
    }
}
