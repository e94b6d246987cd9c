//! `swp_entry_t`: a swap slot named by its device (swap type) and offset.

use kbase::{Error, Result};

/// The number of swap devices that can be registered at once (Linux's
/// `MAX_SWAPFILES` without the special migration/hwpoison types).
pub const MAX_SWAPFILES: u32 = 32;

/// Bits of the offset field.
const OFFSET_BITS: u32 = 58;
/// Bits of the type field.
const TYPE_BITS: u32 = 5;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
const TYPE_MASK: u64 = (1 << TYPE_BITS) - 1;

/// The largest offset a [`SwpEntry`] can name.
pub const MAX_SWAP_OFFSET: u64 = OFFSET_MASK;

/// `swp_entry_t`: swap type (5 bits) and offset (58 bits) packed in a `u64`.
///
/// # Invariants
///
/// The type field is below [`MAX_SWAPFILES`] and bit 63 is clear, so every
/// value is one [`SwpEntry::new`] could have built.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SwpEntry(u64);

impl SwpEntry {
    /// Packs a swap type and an offset.
    ///
    /// `EINVAL` if `swp_type >= MAX_SWAPFILES` or the offset needs more than
    /// 58 bits. Whether the device exists is checked only when the entry is
    /// used.
    #[inline]
    pub fn new(swp_type: u32, offset: u64) -> Result<SwpEntry> {
        if swp_type >= MAX_SWAPFILES || offset > OFFSET_MASK {
            return Err(Error::EINVAL);
        }
        // INVARIANT: type checked above; 5 + 58 bits leave bit 63 clear.
        Ok(SwpEntry((u64::from(swp_type) << OFFSET_BITS) | offset))
    }

    /// Packs a swap type and a 32-bit offset; infallible because any such
    /// offset fits. The type is taken modulo [`MAX_SWAPFILES`] (five bits):
    /// callers pass one that came from an entry.
    pub const fn from_type_and_u32(swp_type: u32, offset: u32) -> SwpEntry {
        // INVARIANT: the type is masked to five bits, a `u32` offset fits
        // the 58-bit field, and bit 63 stays clear.
        SwpEntry(((swp_type as u64 & TYPE_MASK) << OFFSET_BITS) | offset as u64)
    }

    /// The swap type (index of the swap device).
    #[inline]
    pub fn swp_type(self) -> u32 {
        // The mask keeps five bits, which always fit.
        ((self.0 >> OFFSET_BITS) & TYPE_MASK) as u32
    }

    /// The slot's offset within its device, in pages.
    #[inline]
    pub fn offset(self) -> u64 {
        self.0 & OFFSET_MASK
    }

    /// The packed value (what a page-table entry would hold).
    #[inline]
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// Unpacks a value from [`SwpEntry::to_raw`]; `EINVAL` for values no entry
    /// packs to (bit 63 set or a type `>= MAX_SWAPFILES`).
    #[inline]
    pub fn from_raw(raw: u64) -> Result<SwpEntry> {
        if raw >> (OFFSET_BITS + TYPE_BITS) != 0 {
            return Err(Error::EINVAL);
        }
        SwpEntry::new(((raw >> OFFSET_BITS) & TYPE_MASK) as u32, raw & OFFSET_MASK)
    }

    /// The entry `n` slots further on the same device (for the pages of a
    /// large folio). `EINVAL` if the offset would overflow.
    #[inline]
    pub fn checked_add(self, n: u64) -> Result<SwpEntry> {
        let off = self.offset().checked_add(n).ok_or(Error::EINVAL)?;
        SwpEntry::new(self.swp_type(), off)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_roundtrip() {
        let e = SwpEntry::new(31, MAX_SWAP_OFFSET).unwrap();
        assert_eq!(e.swp_type(), 31);
        assert_eq!(e.offset(), MAX_SWAP_OFFSET);
        assert_eq!(SwpEntry::from_raw(e.to_raw()).unwrap(), e);
        let z = SwpEntry::new(0, 0).unwrap();
        assert_eq!(z.to_raw(), 0);
        assert_eq!(e.checked_add(0).unwrap(), e);
        assert_eq!(e.checked_add(1), Err(Error::EINVAL));
        assert_eq!(z.checked_add(5).unwrap().offset(), 5);
    }

    #[test]
    fn out_of_range_is_einval() {
        assert_eq!(SwpEntry::new(MAX_SWAPFILES, 0), Err(Error::EINVAL));
        assert_eq!(SwpEntry::new(0, MAX_SWAP_OFFSET + 1), Err(Error::EINVAL));
        assert_eq!(SwpEntry::from_raw(1 << 63), Err(Error::EINVAL));
        assert_eq!(SwpEntry::from_raw(u64::MAX), Err(Error::EINVAL));
        // Type 32 does not fit in 5 bits; type 31 is the largest.
        assert_eq!(SwpEntry::from_raw(31 << 58).unwrap().swp_type(), 31);
    }
}
