//! Bad input never crashes or hangs `zswap-sim`: each case exits 2 at once
//! with file:line:col (the file alone where there is no line) and a reason.
//!
//! Every run here is bounded: a run still going after [`HANG`] is killed and
//! the test fails as a hang.
#![cfg(not(loom))]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_zswap-sim");
/// Long enough for a debug build on a loaded machine; a hang goes far past.
const HANG: Duration = Duration::from_secs(30);

struct Out {
    code: Option<i32>,
    stderr: String,
}

fn sim(args: &[&str]) -> Out {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run zswap-sim");
    let t0 = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if t0.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zswap-sim {args:?} hung (killed after {HANG:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    Out {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("zswap-sim-bad-{}-{name}", std::process::id()))
}

fn scenario(name: &str, text: &str) -> PathBuf {
    let p = temp(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `path` and checks: exit 2, the message starts with `path:line:col:`
/// and contains `reason`.
fn bad_at(path: &Path, line: usize, col: usize, reason: &str) {
    let out = sim(&["run", path.to_str().unwrap()]);
    let where_ = format!("{}:{line}:{col}: ", path.display());
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&where_),
        "want {where_:?} in {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(reason),
        "want {reason:?} in {}",
        out.stderr
    );
    assert!(out.stderr.len() < 2000, "a short message: {}", out.stderr);
}

fn mkfifo(p: &Path) -> bool {
    Command::new("mkfifo")
        .arg(p)
        .status()
        .is_ok_and(|s| s.success())
}

/// Case 1: deep and long expressions, in `expect` and in computed values.
#[test]
fn deep_or_long_expressions_exit_2_at_their_line() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let chain = vec!["1"; 20_000].join(" + ");
    let p = scenario(
        "deep.toml",
        &format!("[[step]]\nshrink = true\nexpect = [\"{deep} > 0\"]\n"),
    );
    bad_at(&p, 3, 11, "too long: 20005 bytes (at most 4096)");
    let p6 = scenario(
        "deep100.toml",
        &format!(
            "[[step]]\nshrink = true\nexpect = [\"{}1{} > 0\"]\n",
            "(".repeat(100),
            ")".repeat(100)
        ),
    );
    bad_at(&p6, 3, 11, "parentheses nested too deep (at most 32)");
    let _ = std::fs::remove_file(p6);
    let terms = vec!["1"; 300].join(" + ");
    let p7 = scenario(
        "terms300.toml",
        &format!("[[step]]\nshrink = true\nexpect = [\"{terms} > 0\"]\n"),
    );
    bad_at(&p7, 3, 11, "too many terms: more than 256");
    let _ = std::fs::remove_file(p7);
    let p2 = scenario(
        "chain.toml",
        &format!("[[step]]\nshrink = true\nexpect = [\"{chain} > 0\"]\n"),
    );
    bad_at(&p2, 3, 11, "too long");
    let p3 = scenario(
        "chain-set.toml",
        &format!(
            "[[cgroup]]\nname = \"a\"\n[[step]]\ncgroup = \"a\"\nset = {{ zswap_max = \"= {chain}\" }}\n"
        ),
    );
    bad_at(&p3, 5, 21, "too long");
    let p4 = scenario(
        "deep-cgroup.toml",
        &format!("[[cgroup]]\nname = \"a\"\nmemory_max = \"= {deep}\"\n"),
    );
    bad_at(&p4, 3, 14, "too long");
    // Within the limits an expression still works.
    let ok = format!(
        "{}1{} + {} == 255",
        "(".repeat(32),
        ")".repeat(32),
        vec!["1"; 254].join(" + ")
    );
    let p5 = scenario(
        "within.toml",
        &format!("[[step]]\nshrink = true\nexpect = [\"{ok}\"]\n"),
    );
    let out = sim(&["run", p5.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for p in [p, p2, p3, p4, p5] {
        let _ = std::fs::remove_file(p);
    }
}

/// Case 2: only regular files are read, as scenarios and as page files,
/// and only so much of them.
#[test]
fn special_files_are_refused_at_once() {
    for dev in ["/dev/zero", "/dev/urandom"] {
        let out = sim(&["run", dev]);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{dev}: a character device")),
            "{}",
            out.stderr
        );
        let p = scenario(
            "dev.toml",
            &format!(
                "[[cgroup]]\nname = \"a\"\n[[step]]\ncgroup = \"a\"\nalloc = \"1M\"\nregion = \"r\"\nfill = \"pages:{dev}\"\n"
            ),
        );
        bad_at(&p, 7, 8, "a character device, not a regular file");
        let _ = std::fs::remove_file(p);
    }
    let dir = std::env::temp_dir();
    let out = sim(&["run", dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("a folder"), "{}", out.stderr);

    let fifo = temp("fifo");
    if mkfifo(&fifo) {
        let out = sim(&["run", fifo.to_str().unwrap()]);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(out.stderr.contains("a FIFO"), "{}", out.stderr);
        let p = scenario(
            "fifo.toml",
            &format!(
                "[[cgroup]]\nname = \"a\"\n[[step]]\ncgroup = \"a\"\nalloc = \"1M\"\nregion = \"r\"\nfill = \"pages:{}\"\n",
                fifo.display()
            ),
        );
        bad_at(&p, 7, 8, "a FIFO");
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_file(&fifo);
    }

    // Larger than a scenario may be (a sparse file: nothing is read).
    let big = temp("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let out = sim(&["run", big.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("too large"), "{}", out.stderr);
    let p = scenario(
        "bigpages.toml",
        &format!(
            "[[cgroup]]\nname = \"a\"\n[[step]]\ncgroup = \"a\"\nalloc = \"1M\"\nregion = \"r\"\nfill = \"pages:{}\"\n",
            big.display()
        ),
    );
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    bad_at(&p, 7, 8, "too large");
    let _ = std::fs::remove_file(&big);
    let _ = std::fs::remove_file(p);

    // Bytes that are not UTF-8: the line and column where they start.
    let p = temp("latin1.toml");
    std::fs::write(&p, b"name = \"x\"\n# caf\xe9\n").unwrap();
    bad_at(&p, 2, 6, "not UTF-8");
    let _ = std::fs::remove_file(p);
}

/// Case 3: computed values are evaluated where they stand: at boot in
/// `[[cgroup]]`, when the step runs in `create_cgroup`'s `set`; a result
/// the file cannot take names the value's line.
#[test]
fn computed_values_are_evaluated_where_they_stand() {
    let p = scenario(
        "computed.toml",
        r#"
[[cgroup]]
name = "a"
zswap_max = "= 4096 * 2"
memory_max = "= 16M"
[[step]]
create_cgroup = "a/b"
set = { memory_max = "= 8M", zswap_writeback = "= 1 - 1" }
expect = ["a.memory.zswap.max == 8K", "a.memory.max == 16M", "a/b.memory.max == 8M", "a/b.memory.zswap.writeback == 0"]
"#,
    );
    let out = sim(&["run", p.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let p2 = scenario(
        "computed-bad.toml",
        "[[cgroup]]\nname = \"a\"\n[[step]]\ncreate_cgroup = \"a/b\"\nset = { memory_max = \"= 8M\", zswap_writeback = \"= 1 + 1\" }\n",
    );
    bad_at(&p2, 5, 48, "gives 2; memory.zswap.writeback takes 0 or 1");
    let p3 = scenario(
        "computed-set.toml",
        "[[cgroup]]\nname = \"a\"\n[[step]]\ncgroup = \"a\"\nset = { zswap_writeback = \"= 2 * 1\" }\n",
    );
    bad_at(&p3, 5, 27, "takes 0 or 1");
    // At boot no step has run: no label to read, and only the cgroups
    // declared before.
    let p4 = scenario(
        "computed-boot.toml",
        "[[cgroup]]\nname = \"a\"\nzswap_max = \"= @x.a.memory.max / 2\"\n",
    );
    bad_at(&p4, 3, 13, "computed at boot, before any step");
    let p5 = scenario(
        "computed-zswap.toml",
        "[zswap]\nmax_pool_percent = \"= 10 + 10\"\n",
    );
    bad_at(&p5, 2, 20, "zswap parameters take plain values");
    for p in [p, p2, p3, p4, p5] {
        let _ = std::fs::remove_file(p);
    }
}

/// Case 4: the machine is checked at boot, and each error names its value.
#[test]
fn boot_checks_name_the_values_line() {
    // More RAM than the host can back (64G is the most a scenario may ask).
    let p = scenario("ram.toml", "[machine]\nram = \"64G\"\n");
    let out = sim(&["run", p.to_str().unwrap()]);
    if out.code == Some(0) {
        eprintln!("skipped the RAM case: this host backs 64 GiB");
    } else {
        bad_at(&p, 2, 7, "65536 MiB asked for, more than the host can back");
    }

    // swap_file names a folder: a file there is refused.
    let file = scenario("notafolder", "x");
    let p2 = scenario(
        "swapfile.toml",
        &format!("[machine]\nswap_file = \"{}\"\n", file.display()),
    );
    bad_at(&p2, 2, 13, "is a file, not a folder");

    // A folder that does not exist is not created.
    let missing = temp("missing").join("swap");
    let p3 = scenario(
        "missing.toml",
        &format!("[machine]\nswap_file = \"{}\"\n", missing.display()),
    );
    bad_at(&p3, 2, 13, "does not exist");
    assert!(!missing.parent().unwrap().exists(), "nothing was created");

    // A folder that cannot hold files is found at boot, not at first use.
    let p4 = scenario("proc.toml", "[machine]\nswap_file = \"/proc/sys\"\n");
    bad_at(&p4, 2, 13, "cannot write in folder /proc/sys");
    for p in [p, p2, p3, p4, file] {
        let _ = std::fs::remove_file(p);
    }
}

/// Case 5: a capture the kernel refuses says what it denied.
#[test]
fn denied_capture_says_what_was_denied() {
    let out_file = temp("capture.bin");
    let out = sim(&[
        "capture",
        "--pid",
        "1",
        "--out",
        out_file.to_str().unwrap(),
        "--max-pages",
        "1",
    ]);
    let _ = std::fs::remove_file(&out_file);
    if out.code == Some(0) {
        eprintln!("skipped: this process may read process 1");
        return;
    }
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("ptrace access check") || out.stderr.contains("no process 1"),
        "{}",
        out.stderr
    );
    let rights = zswap_sim::capture::PtraceRights::current();
    if rights.euid == 0 {
        assert!(!out.stderr.contains("run as root"), "{}", out.stderr);
    }
}

/// `capture --out` writes only a regular file: a FIFO (which would block
/// the open) or a device is refused at once.
#[test]
fn capture_writes_only_a_regular_file() {
    let me = std::process::id().to_string();
    let fifo = temp("out-fifo");
    let mut outs = vec![PathBuf::from("/dev/null")];
    if mkfifo(&fifo) {
        outs.push(fifo.clone());
    }
    for out in &outs {
        let r = sim(&["capture", "--pid", &me, "--out", out.to_str().unwrap()]);
        assert_eq!(r.code, Some(2), "{}", r.stderr);
        assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    }
    let _ = std::fs::remove_file(&fifo);
}
