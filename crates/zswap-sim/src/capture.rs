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
//! root with `CAP_SYS_PTRACE`); without them the command fails and says
//! what the kernel denied (its ptrace access check, the errno) and what
//! this process holds.

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

/// What this process may do about another's memory, for messages: its
/// effective uid, whether it holds `CAP_SYS_PTRACE`, and Yama's
/// `ptrace_scope` (None where Yama is absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtraceRights {
    /// Effective user id.
    pub euid: u32,
    /// `CAP_SYS_PTRACE` is in the effective set.
    pub cap_sys_ptrace: bool,
    /// `/proc/sys/kernel/yama/ptrace_scope`.
    pub yama_scope: Option<u32>,
}

impl PtraceRights {
    /// This process's rights.
    pub fn current() -> PtraceRights {
        const CAP_SYS_PTRACE: u32 = 19;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .map(str::to_string)
        };
        let euid = field("Uid:")
            .and_then(|v| v.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(u32::MAX);
        let cap_sys_ptrace = field("CapEff:")
            .and_then(|v| u64::from_str_radix(&v, 16).ok())
            .is_some_and(|caps| caps >> CAP_SYS_PTRACE & 1 == 1);
        let yama_scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        PtraceRights {
            euid,
            cap_sys_ptrace,
            yama_scope,
        }
    }
}

fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::ESRCH) => "ESRCH".into(),
        Some(n) => format!("errno {n}"),
        None => e.kind().to_string(),
    }
}

/// The message for a failed read of `what` (`/proc/PID/maps` or `mem`) of
/// process `pid`: what the kernel denied and why it may have, given this
/// process's `rights`; a remedy only where one is left to take.
pub fn denied_message(what: &str, pid: u32, e: &io::Error, rights: PtraceRights) -> String {
    if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) {
        return format!("no process {pid} ({what}: {e})");
    }
    if e.kind() != io::ErrorKind::PermissionDenied {
        return format!("cannot read {what} of process {pid}: {e}");
    }
    let check = if what.ends_with("mem") {
        "PTRACE_MODE_ATTACH"
    } else {
        "PTRACE_MODE_READ"
    };
    let yama = match rights.yama_scope {
        Some(n) => format!("Yama ptrace_scope is {n}"),
        None => "Yama is not present".into(),
    };
    let head = format!(
        "cannot read {what} of process {pid}: the kernel's ptrace access check ({check}) denied it ({})",
        errno_name(e)
    );
    if rights.euid == 0 && rights.cap_sys_ptrace {
        format!(
            "{head}, although this process runs as root with CAP_SYS_PTRACE ({yama}): the target is \
             out of its reach: in a user namespace this one does not own (a sandbox or \
             container), not dumpable, or protected by a security module"
        )
    } else if rights.euid == 0 {
        format!(
            "{head}: this process runs as root but without CAP_SYS_PTRACE (dropped, as in \
             most sandboxes and containers; {yama})"
        )
    } else {
        let scope_hint = match rights.yama_scope {
            Some(0) | None => String::new(),
            Some(n) => format!(", or as the same user once Yama ptrace_scope ({n}) is 0"),
        };
        format!(
            "{head}: reading another process's memory needs ptrace rights over it: run as its \
             user{scope_hint}, or as root with CAP_SYS_PTRACE"
        )
    }
}

fn not_permitted(what: &str, pid: u32, e: &io::Error) -> String {
    denied_message(what, pid, e, PtraceRights::current())
}

/// Creates (or truncates) the output page file: a regular file only. A
/// FIFO or device is refused before it is opened for writing, and the open
/// does not block (a FIFO without a reader would hang it).
fn create_out(out: &Path) -> Result<File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = || {
        format!(
            "--out {}: not a regular file (the page file is written only to a regular file)",
            out.display()
        )
    };
    if let Ok(md) = std::fs::metadata(out)
        && !md.is_file()
    {
        return Err(refuse());
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(out)
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(refuse());
    }
    Ok(f)
}

/// Captures up to `max_pages` pages of process `pid` into `out`.
pub fn capture(pid: u32, out: &Path, max_pages: u64) -> Result<CaptureSummary, String> {
    if max_pages == 0 {
        return Err("--max-pages must be at least 1".into());
    }
    let proc = format!("/proc/{pid}");
    let maps = std::fs::read_to_string(format!("{proc}/maps"))
        .map_err(|e| not_permitted(&format!("{proc}/maps"), pid, &e))?;
    let mappings = anon_mappings(&maps);
    if mappings.is_empty() {
        return Err(format!(
            "process {pid} has no private writable anonymous mappings"
        ));
    }
    let mem = File::open(format!("{proc}/mem"))
        .map_err(|e| not_permitted(&format!("{proc}/mem"), pid, &e))?;

    // Candidate pages: resident ones if pagemap says so (read in chunks:
    // some programs reserve many GiB of address space they never touch).
    let pagemap = File::open(format!("{proc}/pagemap")).ok();
    let mut used_pagemap = pagemap.is_some();
    let mut resident: Vec<u64> = Vec::new();
    if let Some(pm) = &pagemap {
        const CHUNK: u64 = 1 << 16;
        let mut buf = vec![0u8; CHUNK as usize * 8];
        'maps: for m in &mappings {
            let n = (m.end - m.start) / PAGE_SIZE as u64;
            let mut i = 0;
            while i < n {
                let k = CHUNK.min(n - i);
                let chunk = &mut buf[..k as usize * 8];
                if pm
                    .read_exact_at(chunk, (m.start / PAGE_SIZE as u64 + i) * 8)
                    .is_err()
                {
                    used_pagemap = false;
                    break 'maps;
                }
                for (j, c) in chunk.chunks_exact(8).enumerate() {
                    let e = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
                    if e >> 63 == 1 {
                        resident.push(m.start + (i + j as u64) * PAGE_SIZE as u64);
                    }
                }
                i += k;
            }
        }
    }
    // Without pagemap: every page of the mappings is a candidate, picked by
    // index without listing them all.
    let all_pages: u64 = mappings
        .iter()
        .map(|m| (m.end - m.start) / PAGE_SIZE as u64)
        .sum();
    let nth_page = |mut idx: u64| -> u64 {
        for m in &mappings {
            let n = (m.end - m.start) / PAGE_SIZE as u64;
            if idx < n {
                return m.start + idx * PAGE_SIZE as u64;
            }
            idx -= n;
        }
        0
    };
    let total = if used_pagemap {
        resident.len() as u64
    } else {
        all_pages
    };
    if total == 0 {
        return Err(format!("process {pid} has no resident anonymous pages"));
    }

    // A uniform sample in address order.
    let take = max_pages.min(total);
    let mut file = std::io::BufWriter::new(create_out(out)?);
    let mut page = vec![0u8; PAGE_SIZE];
    let (mut written, mut unreadable) = (0u64, 0u64);
    let mut first_err: Option<io::Error> = None;
    for j in 0..take {
        let idx = j * total / take;
        let addr = if used_pagemap {
            resident[idx as usize]
        } else {
            nth_page(idx)
        };
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
        return Err(not_permitted(&format!("{proc}/mem"), pid, &e));
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
    fn a_denied_read_says_what_was_denied_and_no_remedy_already_taken() {
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        let root = PtraceRights {
            euid: 0,
            cap_sys_ptrace: true,
            yama_scope: None,
        };
        let m = denied_message("/proc/1/mem", 1, &denied, root);
        assert!(
            m.contains("ptrace access check (PTRACE_MODE_ATTACH)"),
            "{m}"
        );
        assert!(m.contains("EACCES") && m.contains("CAP_SYS_PTRACE"), "{m}");
        assert!(!m.contains("run as root"), "{m}");
        let m = denied_message(
            "/proc/1/maps",
            1,
            &io::Error::from_raw_os_error(libc::EPERM),
            PtraceRights {
                cap_sys_ptrace: false,
                yama_scope: Some(3),
                ..root
            },
        );
        assert!(m.contains("PTRACE_MODE_READ") && m.contains("EPERM"), "{m}");
        assert!(m.contains("without CAP_SYS_PTRACE") && m.contains("ptrace_scope is 3"));
        assert!(!m.contains("run as root"), "{m}");
        let user = PtraceRights {
            euid: 1000,
            cap_sys_ptrace: false,
            yama_scope: Some(1),
        };
        let m = denied_message("/proc/1/mem", 1, &denied, user);
        assert!(m.contains("as root with CAP_SYS_PTRACE"), "{m}");
        assert!(m.contains("ptrace_scope (1) is 0"), "{m}");
        let gone = io::Error::from_raw_os_error(libc::ESRCH);
        assert!(denied_message("/proc/9/maps", 9, &gone, user).starts_with("no process 9"));
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
        // Only a regular file is written: a device is refused, not opened.
        let e = capture(std::process::id(), Path::new("/dev/null"), 4).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
