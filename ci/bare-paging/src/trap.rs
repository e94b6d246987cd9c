//! Traps from the user task, as the kernel's main loop sees them.
//!
//! One task, so no scheduler: the kernel calls [`enter_user`], which runs
//! the task until its next trap and returns like a function, with the
//! task's registers saved in its [`UserContext`]. The machine's entry and
//! exit code is in `arch/*/trap.rs`; this is what it reports.

pub use crate::arch::trap::{UserContext, enter_user, init, syscall_done};

use crate::mm::fault::Access;

/// Why the task stopped running.
pub enum Trap {
    /// A system call: its number and first three arguments.
    Syscall { nr: usize, args: [usize; 3] },
    /// A page fault at `addr`.
    PageFault { addr: usize, access: Access },
    /// Anything else (the raw cause and value registers).
    Other { cause: usize, tval: usize },
}
