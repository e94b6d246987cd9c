//! The errno-style error shared by every crate of the workspace.

use core::fmt;

/// An errno-style error. The numeric values are Linux's, so a kernel module can
/// hand them straight back to user space (`-(e as i32)`).
///
/// Each variant documents what it means *in this workspace*.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Error {
    /// No such entry: the swap slot is free, the handle or cgroup is unknown,
    /// or zswap holds no copy of the page (the caller reads the device).
    ENOENT = 2,
    /// I/O or integrity error: a compressed object did not decompress to
    /// exactly one page, or the backing device failed.
    EIO = 5,
    /// Try again: less was reclaimed than asked, or nothing could be written
    /// back this time.
    EAGAIN = 11,
    /// Out of memory: an allocation with the caller's GFP flags failed, or a
    /// memory cgroup charge could not be satisfied after reclaim.
    ENOMEM = 12,
    /// Busy: the object is in use (a swap device with slots still allocated,
    /// a cgroup with children).
    EBUSY = 16,
    /// Already exists: the swap slot is already in, or being brought into, the
    /// swap cache (`SWAP_HAS_CACHE` set).
    EEXIST = 17,
    /// Invalid argument: a value that does not parse, is out of range, or names
    /// a swap type that is not registered.
    EINVAL = 22,
    /// No space: the object does not fit (larger than a page), or a device is
    /// full.
    ENOSPC = 28,
    /// A recursive wait was detected and refused: the waiter would wait on a
    /// resource its own call chain holds. Only platforms that detect it (the
    /// simulator) return it; a kernel would hang instead.
    EDEADLK = 35,
}

impl Error {
    /// The positive errno value (`ENOMEM` is 12).
    pub const fn to_errno(self) -> i32 {
        self as i32
    }

    /// The symbolic name, as Linux spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Error::ENOENT => "ENOENT",
            Error::EIO => "EIO",
            Error::EAGAIN => "EAGAIN",
            Error::ENOMEM => "ENOMEM",
            Error::EBUSY => "EBUSY",
            Error::EEXIST => "EEXIST",
            Error::EINVAL => "EINVAL",
            Error::ENOSPC => "ENOSPC",
            Error::EDEADLK => "EDEADLK",
        }
    }

    /// Every variant, in errno order.
    pub const ALL: [Error; 9] = [
        Error::ENOENT,
        Error::EIO,
        Error::EAGAIN,
        Error::ENOMEM,
        Error::EBUSY,
        Error::EEXIST,
        Error::EINVAL,
        Error::ENOSPC,
        Error::EDEADLK,
    ];

    /// Parses a symbolic name (`"EAGAIN"`), as used in scenario files.
    pub fn from_name(name: &str) -> Option<Error> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Converts a negative or positive errno back, if it is one of ours.
    pub fn from_errno(errno: i32) -> Option<Error> {
        let n = errno.checked_abs()?;
        Self::ALL.into_iter().find(|e| e.to_errno() == n)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Error::ENOENT => "no such entry",
            Error::EIO => "I/O or integrity error",
            Error::EAGAIN => "try again",
            Error::ENOMEM => "out of memory",
            Error::EBUSY => "busy",
            Error::EEXIST => "already exists",
            Error::EINVAL => "invalid argument",
            Error::ENOSPC => "no space",
            Error::EDEADLK => "recursive wait refused",
        };
        write!(f, "{} ({})", self.name(), what)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl From<core::alloc::LayoutError> for Error {
    fn from(_: core::alloc::LayoutError) -> Self {
        Error::EINVAL
    }
}

impl From<alloc::collections::TryReserveError> for Error {
    fn from(_: alloc::collections::TryReserveError) -> Self {
        Error::ENOMEM
    }
}

/// `Result` with [`Error`] as the error type; `Result` alone means `Result<()>`.
pub type Result<T = ()> = core::result::Result<T, Error>;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn errno_values_are_linux_values() {
        assert_eq!(Error::EEXIST.to_errno(), 17);
        assert_eq!(Error::ENOMEM.to_errno(), 12);
        assert_eq!(Error::from_errno(-17), Some(Error::EEXIST));
        assert_eq!(Error::from_errno(i32::MIN), None);
        assert_eq!(Error::from_name("EAGAIN"), Some(Error::EAGAIN));
        assert_eq!(Error::from_name("EFOO"), None);
    }
}
