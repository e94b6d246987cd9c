//! [`FileBackend`]: swap slots in host files (`std` feature).
//!
//! Host-only code: it uses `std`'s sleeping locks, which may be held across
//! allocation, and does its I/O with positional reads and writes
//! (`pread`/`pwrite`) outside any lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::vec::Vec;

use kbase::{Error, PAGE_SIZE, Result};

use crate::backend::SwapBackend;
use crate::entry::{MAX_SWAPFILES, SwpEntry};

/// One swap type's file and which of its slots hold data.
struct TypeFile {
    file: OnceLock<File>,
    written: Mutex<Vec<u64>>,
}

/// Swap slots in files: one file per swap type (`swap.<type>` in a
/// directory), slot `offset` at byte `offset * PAGE_SIZE`. Files are created
/// on first write. Reading a slot never written (or discarded) is `ENOENT`;
/// an I/O error is `EIO`.
pub struct FileBackend {
    dir: PathBuf,
    types: [TypeFile; MAX_SWAPFILES as usize],
}

impl FileBackend {
    /// A backend keeping its files in `dir` (which must exist).
    pub fn new(dir: impl AsRef<Path>) -> Result<FileBackend> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::ENOENT);
        }
        Ok(FileBackend {
            dir,
            types: core::array::from_fn(|_| TypeFile {
                file: OnceLock::new(),
                written: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The file of swap type `t` (created on first use).
    pub fn path(&self, swp_type: u32) -> PathBuf {
        self.dir.join(std::format!("swap.{swp_type}"))
    }

    fn typ(&self, entry: SwpEntry) -> Result<&TypeFile> {
        self.types
            .get(entry.swp_type() as usize)
            .ok_or(Error::EINVAL)
    }

    fn file(&self, entry: SwpEntry) -> Result<&File> {
        let t = self.typ(entry)?;
        if let Some(f) = t.file.get() {
            return Ok(f);
        }
        // Open (and truncate) under the type's lock, so a racing first
        // writer can never truncate data another one already wrote.
        let _serialise = t.written.lock().map_err(|_| Error::EIO)?;
        if let Some(f) = t.file.get() {
            return Ok(f);
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(entry.swp_type()))
            .map_err(|_| Error::EIO)?;
        Ok(t.file.get_or_init(|| f))
    }

    fn pos(entry: SwpEntry) -> Result<u64> {
        entry
            .offset()
            .checked_mul(PAGE_SIZE as u64)
            .ok_or(Error::EINVAL)
    }

    fn is_written(&self, entry: SwpEntry) -> Result<bool> {
        let w = self.typ(entry)?.written.lock().map_err(|_| Error::EIO)?;
        let word = usize::try_from(entry.offset() / 64).map_err(|_| Error::EINVAL)?;
        Ok(w.get(word)
            .is_some_and(|b| b & (1 << (entry.offset() % 64)) != 0))
    }

    fn mark(&self, entry: SwpEntry, written: bool) -> Result<()> {
        let mut w = self.typ(entry)?.written.lock().map_err(|_| Error::EIO)?;
        let word = usize::try_from(entry.offset() / 64).map_err(|_| Error::EINVAL)?;
        if word >= w.len() {
            if !written {
                return Ok(());
            }
            let extra = word + 1 - w.len();
            w.try_reserve(extra)?;
            w.resize(word + 1, 0);
        }
        if let Some(b) = w.get_mut(word) {
            if written {
                *b |= 1 << (entry.offset() % 64);
            } else {
                *b &= !(1 << (entry.offset() % 64));
            }
        }
        Ok(())
    }
}

impl SwapBackend for FileBackend {
    fn write_page(&self, entry: SwpEntry, page: &[u8; PAGE_SIZE]) -> Result<()> {
        let pos = Self::pos(entry)?;
        self.file(entry)?
            .write_all_at(page, pos)
            .map_err(|_| Error::EIO)?;
        self.mark(entry, true)
    }

    fn read_page(&self, entry: SwpEntry, page: &mut [u8; PAGE_SIZE]) -> Result<()> {
        if !self.is_written(entry)? {
            return Err(Error::ENOENT);
        }
        let pos = Self::pos(entry)?;
        self.file(entry)?
            .read_exact_at(page, pos)
            .map_err(|_| Error::EIO)
    }

    fn discard(&self, entry: SwpEntry) {
        let _ = self.mark(entry, false);
    }
}
