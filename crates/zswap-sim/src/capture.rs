//! `zswap-sim capture`: samples the resident anonymous memory of a running
//! process into a page file (4 KiB pages, address order), so users can try
//! zswap on their own workload with `fill = "pages:FILE"`.
//!
//! What is read: the private, writable mappings of `/proc/PID/maps` with no
//! file behind them (heap, stack, unnamed). Where `/proc/PID/pagemap` is
//! readable, only resident pages are taken (bit 63: present); otherwise
//! every page that `/proc/PID/mem` lets us read. The sample is spread
//! uniformly over all candidates. Reading another process's memory needs
//! ptrace rights over it (same user and `kernel.yama.ptrace_scope` 0, or
//! root); without them the command fails with a clear message.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use kbase::PAGE_SIZE;

/// What a capture did.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    /// Anonymous private writable mappings found.
    pub mappings: usize,
    /// Candidate pages (resident ones if pagemap was readable).
    pub candidates: u64,
    /// Whether residency came from pagemap.
    pub used_pagemap: bool,
    /// Pages written.
    pub written: u64,
    /// Pages that could not be read and were skipped.
    pub unreadable: u64,
}

/// One anonymous mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
}

/// Parses `/proc/PID/maps` text and keeps private writable anonymous
/// mappings (`rw-p`, inode 0, no path or `[heap]`/`[stack]`/`[anon:...]`).
pub fn anon_mappings(maps: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(_off), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.collect::<Vec<_>>().join(" ");
        let anon = inode == "0"
            && (path.is_empty()
                || path == "[heap]"
                || path.starts_with("[stack")
                || path.starts_with("[anon"));
        if !anon || !perms.starts_with("rw") || perms.as_bytes().get(3) != Some(&b'p') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
            && end > start
        {
            out.push(Mapping { start, end });
        }
    }
    out
}

fn not_permitted(what: &str, pid: u32, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        format!(
            "cannot read {what} of process {pid}: permission denied. Reading another process's memory \
             needs ptrace rights over it: run as root, or as the same user with \
             /proc/sys/kernel/yama/ptrace_scope set to 0"
        )
    } else if e.kind() == io::ErrorKind::NotFound {
        format!("no process {pid} ({what}: {e})")
    } else {
        format!("cannot read {what} of process {pid}: {e}")
    }
}

/// Captures up to `max_pages` pages of process `pid` into `out`.
pub fn capture(pid: u32, out: &Path, max_pages: u64) -> Result<CaptureSummary, String> {
    if max_pages == 0 {
        return Err("--max-pages must be at least 1".into());
    }
    let proc = format!("/proc/{pid}");
    let maps = std::fs::read_to_string(format!("{proc}/maps"))
        .map_err(|e| not_permitted("/proc/PID/maps", pid, &e))?;
    let mappings = anon_mappings(&maps);
    if mappings.is_empty() {
        return Err(format!(
            "process {pid} has no private writable anonymous mappings"
        ));
    }
    let mem =
        File::open(format!("{proc}/mem")).map_err(|e| not_permitted("/proc/PID/mem", pid, &e))?;

    // Candidate pages: resident ones if pagemap says so.
    let pagemap = File::open(format!("{proc}/pagemap")).ok();
    let mut used_pagemap = pagemap.is_some();
    let mut candidates: Vec<u64> = Vec::new();
    for m in &mappings {
        let n = (m.end - m.start) / PAGE_SIZE as u64;
        let mut resident: Option<Vec<u64>> = None;
        if let Some(pm) = &pagemap {
            let mut buf = vec![0u8; n as usize * 8];
            match pm.read_exact_at(&mut buf, (m.start / PAGE_SIZE as u64) * 8) {
                Ok(()) => {
                    resident = Some(
                        buf.chunks_exact(8)
                            .enumerate()
                            .filter(|(_, c)| {
                                u64::from_le_bytes((*c).try_into().unwrap_or([0; 8])) >> 63 == 1
                            })
                            .map(|(i, _)| m.start + i as u64 * PAGE_SIZE as u64)
                            .collect(),
                    );
                }
                Err(_) => used_pagemap = false,
            }
        }
        match resident {
            Some(r) if used_pagemap => candidates.extend(r),
            _ => candidates.extend((0..n).map(|i| m.start + i * PAGE_SIZE as u64)),
        }
    }
    if candidates.is_empty() {
        return Err(format!("process {pid} has no resident anonymous pages"));
    }

    // A uniform sample in address order.
    let total = candidates.len() as u64;
    let take = max_pages.min(total);
    let mut file = std::io::BufWriter::new(
        File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?,
    );
    let mut page = vec![0u8; PAGE_SIZE];
    let (mut written, mut unreadable) = (0u64, 0u64);
    let mut first_err: Option<io::Error> = None;
    for j in 0..take {
        let addr = candidates[(j * total / take) as usize];
        match mem.read_exact_at(&mut page, addr) {
            Ok(()) => {
                file.write_all(&page)
                    .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
                written += 1;
            }
            Err(e) => {
                unreadable += 1;
                first_err.get_or_insert(e);
            }
        }
    }
    file.flush()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    if written == 0 {
        let _ = std::fs::remove_file(out);
        let e = first_err.unwrap_or_else(|| io::Error::other("nothing readable"));
        return Err(not_permitted("/proc/PID/mem", pid, &e));
    }
    Ok(CaptureSummary {
        mappings: mappings.len(),
        candidates: total,
        used_pagemap,
        written,
        unreadable,
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_maps() {
        let maps = "\
55d4c0a00000-55d4c0a21000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000004000 rw-p 00000000 00:00 0 
7f0000004000-7f0000008000 r--p 00000000 00:00 0 
7f0000008000-7f000000c000 rw-s 00000000 00:05 1234                       /dev/zero (deleted)
7f000000c000-7f0000010000 rw-p 00001000 08:01 5678                       /usr/lib/libc.so.6
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
";
        let m = anon_mappings(maps);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].start, 0x55d4c0a00000);
        assert_eq!(
            m[1],
            Mapping {
                start: 0x7f0000000000,
                end: 0x7f0000004000
            }
        );
    }

    #[test]
    fn captures_own_process() {
        // Our own memory is always readable.
        let buf: Vec<u8> = (0..64 * PAGE_SIZE).map(|i| (i / 7) as u8).collect();
        let out =
            std::env::temp_dir().join(format!("zswap-sim-capture-{}.bin", std::process::id()));
        let s = capture(std::process::id(), &out, 32).unwrap();
        assert!(s.written > 0 && s.written <= 32);
        let len = std::fs::metadata(&out).unwrap().len();
        assert_eq!(len, s.written * PAGE_SIZE as u64);
        let _ = std::fs::remove_file(&out);
        assert!(buf.len() > 1);
        assert!(
            capture(u32::MAX - 1, &out, 4)
                .unwrap_err()
                .contains("no process")
        );
    }
}
