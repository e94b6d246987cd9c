//! The platform's view of CPUs, for per-CPU state (compression contexts).

/// Which CPU runs the caller, and how many there are.
///
/// `current_cpu` may be stale the moment it returns (the task can migrate):
/// per-CPU state in this workspace is always protected by its own lock, so a
/// stale answer costs contention, never correctness.
pub trait CpuInfo: Send + Sync {
    /// The CPU the caller runs on, in `0..nr_cpus()`. Out-of-range answers are
    /// clamped by users, never trusted as an index.
    fn current_cpu(&self) -> usize;
    /// The number of possible CPUs (at least 1).
    fn nr_cpus(&self) -> usize;
    /// Is `cpu` online now? Per-CPU state is prepared for the CPUs online
    /// when it is created and for each CPU brought up later (zswap's
    /// `cpu_up` hook). Default: every possible CPU is online.
    fn is_online(&self, cpu: usize) -> bool {
        cpu < self.nr_cpus()
    }
}

/// A uniprocessor.
#[derive(Clone, Copy, Debug, Default)]
pub struct UniCpu;

impl CpuInfo for UniCpu {
    fn current_cpu(&self) -> usize {
        0
    }
    fn nr_cpus(&self) -> usize {
        1
    }
}

impl<C: CpuInfo + ?Sized> CpuInfo for &C {
    fn current_cpu(&self) -> usize {
        (**self).current_cpu()
    }
    fn nr_cpus(&self) -> usize {
        (**self).nr_cpus()
    }
    fn is_online(&self, cpu: usize) -> bool {
        (**self).is_online(cpu)
    }
}
