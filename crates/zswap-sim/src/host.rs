//! The host under the simulated machine: reading the user's files without
//! blocking or running out of memory, how much memory the host can back,
//! and the folder that holds a swap device kept in files.
//!
//! Everything here is checked before anything is read or the machine boots,
//! so a bad input fails at once with a reason instead of hanging (a FIFO),
//! growing without end (`/dev/zero`) or failing at first use (a swap folder
//! that cannot hold files).

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest scenario file read, in bytes.
pub const SCENARIO_MAX_BYTES: u64 = 4 << 20;
/// The largest page file (`fill = "pages:FILE"`) read, in bytes.
pub const PAGE_FILE_MAX_BYTES: u64 = 256 << 20;

/// What kind of file `md` describes, for messages.
fn kind(md: &Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "of another kind"
    }
}

/// Reads a whole regular file of at most `max` bytes. Anything else (a
/// folder, FIFO, device or socket; a file that is or grows too large) is
/// refused before a byte is read: the type is checked before opening, the
/// file is opened non-blocking (a FIFO swapped in meanwhile cannot block
/// the open) and checked again through the open descriptor, and at most
/// `max + 1` bytes are ever read.
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let md = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    let refuse = |md: &Metadata| {
        format!(
            "{}, not a regular file (only regular files are read)",
            kind(md)
        )
    };
    let too_large = |len: u64| {
        format!(
            "too large: {len} bytes, at most {max} ({} MiB) are read",
            max >> 20
        )
    };
    if !md.is_file() {
        return Err(refuse(&md));
    }
    if md.len() > max {
        return Err(too_large(md.len()));
    }
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let md = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !md.is_file() {
        return Err(refuse(&md));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(md.len().min(max) as usize)
        .map_err(|_| "cannot read: out of memory".to_string())?;
    f.take(max + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read: {e}"))?;
    if data.len() as u64 > max {
        return Err(too_large(data.len() as u64));
    }
    Ok(data)
}

/// Bytes of memory this process can still get from the host, and where
/// the figure comes from: the kernel's `MemAvailable`, or the room left
/// under the memory cgroup's `memory.max` when that is lower. None where
/// the host does not say.
pub fn available_memory() -> Option<(u64, &'static str)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let avail_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let avail = avail_kb.saturating_mul(1024);
    match cgroup_room() {
        Some(room) if room < avail => Some((room, "left under this cgroup's memory.max")),
        _ => Some((avail, "MemAvailable")),
    }
}

/// `memory.max - memory.current` of this process's cgroup (v2), if limited.
fn cgroup_room() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let max: u64 = std::fs::read_to_string(dir.join("memory.max"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cur: u64 = std::fs::read_to_string(dir.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(cur))
}

/// Checks that a RAM of `ram_bytes` fits in the `available` host memory
/// (bytes and where the figure comes from); the error says both.
pub fn check_ram(ram_bytes: u64, available: Option<(u64, &str)>) -> Result<(), String> {
    match available {
        Some((avail, source)) if ram_bytes > avail => Err(format!(
            "ram: {} MiB asked for, more than the host can back: {} MiB available ({source})",
            ram_bytes >> 20,
            avail >> 20
        )),
        _ => Ok(()),
    }
}

/// Checks the folder of a swap device kept in files: it must exist, be a
/// folder, and take the device's file `file_name` (created there if absent,
/// so a folder that cannot hold files fails now and not at the first
/// swap-out). Nothing is created outside `dir`.
pub fn check_swap_folder(dir: &Path, file_name: &str) -> Result<(), String> {
    let name = dir.display();
    let md = std::fs::metadata(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "swap_file: folder {name} does not exist (it is not created: make it, or name another)"
            )
        } else {
            format!("swap_file: {name}: {e}")
        }
    })?;
    if !md.is_dir() {
        return Err(format!(
            "swap_file: {name} is {}, not a folder: swap_file names the folder that holds the swap device's file ({file_name})",
            if md.is_file() { "a file" } else { kind(&md) }
        ));
    }
    let path = dir.join(file_name);
    if let Ok(md) = std::fs::symlink_metadata(&path)
        && !md.is_file()
    {
        return Err(format!(
            "swap_file: {} is {}; the swap device needs a regular file there",
            path.display(),
            if md.file_type().is_symlink() {
                "a symbolic link"
            } else {
                kind(&md)
            }
        ));
    }
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("swap_file: cannot write in folder {name}: {e}"))?;
    let md = f
        .metadata()
        .map_err(|e| format!("swap_file: {}: {e}", path.display()))?;
    if !md.is_file() {
        return Err(format!(
            "swap_file: {} is {}; the swap device needs a regular file there",
            path.display(),
            kind(&md)
        ));
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("zswap-sim-host-{}-{name}", std::process::id()))
    }

    #[test]
    fn only_regular_files_are_read_and_only_so_much() {
        for dev in ["/dev/zero", "/dev/urandom", "/dev/null"] {
            let e = read_regular_file(Path::new(dev), 1 << 20).unwrap_err();
            assert!(e.contains("character device"), "{e}");
        }
        let e = read_regular_file(Path::new("/"), 1 << 20).unwrap_err();
        assert!(e.contains("a folder"), "{e}");
        let p = temp("big");
        std::fs::write(&p, vec![7u8; 5000]).unwrap();
        assert_eq!(read_regular_file(&p, 5000).unwrap().len(), 5000);
        let e = read_regular_file(&p, 4999).unwrap_err();
        assert!(e.contains("too large: 5000 bytes"), "{e}");
        std::fs::remove_file(&p).unwrap();
        let e = read_regular_file(&p, 1).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        // A FIFO is refused at once (no writer: opening it would block).
        let f = temp("fifo");
        let made = std::process::Command::new("mkfifo").arg(&f).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read_regular_file(&f, 1 << 20).unwrap_err();
            assert!(e.contains("a FIFO"), "{e}");
            std::fs::remove_file(&f).unwrap();
        }
    }

    #[test]
    fn ram_beyond_the_host_is_refused_with_both_sizes() {
        let e = check_ram(64 << 30, Some((3 << 30, "MemAvailable"))).unwrap_err();
        assert!(e.contains("65536 MiB") && e.contains("3072 MiB"), "{e}");
        assert!(check_ram(64 << 20, Some((3 << 30, "MemAvailable"))).is_ok());
        assert!(check_ram(64 << 30, None).is_ok());
        assert!(available_memory().is_some_and(|(a, _)| a > 0));
    }

    #[test]
    fn swap_folder_must_exist_be_a_folder_and_take_files() {
        let d = temp("swapdir");
        let e = check_swap_folder(&d, "swap.0").unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        assert!(!d.exists(), "nothing is created");
        std::fs::write(&d, b"x").unwrap();
        let e = check_swap_folder(&d, "swap.0").unwrap_err();
        assert!(e.contains("is a file, not a folder"), "{e}");
        std::fs::remove_file(&d).unwrap();
        std::fs::create_dir(&d).unwrap();
        check_swap_folder(&d, "swap.0").unwrap();
        assert!(d.join("swap.0").is_file());
        std::fs::remove_dir_all(&d).unwrap();
        let e = check_swap_folder(Path::new("/proc/self"), "swap.0").unwrap_err();
        assert!(e.contains("cannot write in folder"), "{e}");
    }
}
