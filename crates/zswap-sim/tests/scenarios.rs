//! Runs every scenario of `tests/scenarios/*.toml` (at the workspace root)
//! through the built `zswap-sim` binary and checks its exit code.
//!
//! A scenario file may say how to run it, in comment lines:
//!
//! ```text
//! # test: exit=0
//! # test: args=--no-skip-if-exists exit=3
//! ```
//!
//! Each line is one run (default: one run, no arguments, exit 0).
#![cfg(not(loom))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_zswap-sim");

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

/// One run: extra arguments and the expected exit code.
#[derive(Debug, Clone)]
struct Run {
    args: Vec<String>,
    exit: i32,
}

fn runs_of(text: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    for line in text.lines() {
        let Some(spec) = line.trim().strip_prefix("# test:") else {
            continue;
        };
        let mut run = Run {
            args: Vec::new(),
            exit: 0,
        };
        for word in spec.split_whitespace() {
            if let Some(a) = word.strip_prefix("args=") {
                run.args.extend(a.split(',').map(str::to_string));
            } else if let Some(e) = word.strip_prefix("exit=") {
                run.exit = e.parse().expect("exit=N");
            } else {
                panic!("bad test line: {line}");
            }
        }
        runs.push(run);
    }
    if runs.is_empty() {
        runs.push(Run {
            args: Vec::new(),
            exit: 0,
        });
    }
    runs
}

fn run(path: &Path, r: &Run) -> Result<(), String> {
    let out = Command::new(BIN)
        .arg("run")
        .arg(path)
        .args(&r.args)
        .output()
        .map_err(|e| format!("cannot run {BIN}: {e}"))?;
    let code = out.status.code().unwrap_or(-1);
    if code == r.exit {
        Ok(())
    } else {
        Err(format!(
            "{} {:?}: exit {code}, expected {}\n--- stdout\n{}\n--- stderr\n{}",
            path.display(),
            r.args,
            r.exit,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_shipped_scenario_has_its_expected_exit_code() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())
        .expect("tests/scenarios")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 11,
        "expected the shipped scenarios, found {files:?}"
    );
    let jobs: Vec<(PathBuf, Run)> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            runs_of(&text).into_iter().map(move |r| (f.clone(), r))
        })
        .collect();
    // Two at a time (the machine has two cores).
    let failures: Vec<String> = std::thread::scope(|s| {
        let chunks: Vec<Vec<(PathBuf, Run)>> = (0..2)
            .map(|i| jobs.iter().skip(i).step_by(2).cloned().collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(p, r)| run(p, r).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} run(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn temp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("zswap-sim-test-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs the scenario file `p` (then `args`), asserting that it passes (exit
/// code 0, its output in the message); its output.
fn run_passing(p: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("run")
        .arg(p)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

#[test]
fn bad_scenario_exits_2_with_file_line_and_reason() {
    let p = temp(
        "bad.toml",
        "[machine]\nram = \"64M\"\n\n[[step]]\nread = \"nowhere\"\n",
    );
    let out = Command::new(BIN).arg("run").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5:", p.display())), "{err}");
    assert!(err.contains("unknown region"), "{err}");
    let _ = std::fs::remove_file(&p);

    let out = Command::new(BIN)
        .args(["run", "/nonexistent/scenario.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["run", "--bogus-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn failed_expectation_and_unexpected_result_exit_1() {
    let p = temp(
        "fail.toml",
        r#"
[[cgroup]]
name = "a"
memory_max = "1M"
[[step]]
cgroup = "a"
alloc = "2M"
region = "r"
expect = ["a.zswpout == 0"]
"#,
    );
    let out = Command::new(BIN).arg("run").arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("expectation failed: a.zswpout == 0"),
        "{text}"
    );
    let _ = std::fs::remove_file(&p);
}

#[test]
fn json_report_has_the_documented_shape() {
    let p = temp(
        "json.toml",
        r#"
[[cgroup]]
name = "a"
memory_max = "1M"
[[step]]
cgroup = "a"
alloc = "2M"
region = "r"
label = "after-alloc"
[[step]]
read = "r"
expect = ["a.zswpin > 0"]
"#,
    );
    let out = run_passing(&p, &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["steps"][0]["index"], 0);
    assert_eq!(v["steps"][0]["label"], "after-alloc");
    assert_eq!(v["steps"][0]["result"], "ok");
    assert!(
        v["steps"][0]["stats"]["global"]["stored_pages"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        v["steps"][0]["stats"]["cgroups"]["a"]["zswpout"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        v["steps"][0]["stats"]["cgroups"]["a"]["memory.current"]
            .as_u64()
            .unwrap()
            <= 1 << 20
    );
    assert!(v["final"]["global"].is_object());
    assert!(v["final"]["cgroups"]["a"].is_object());
    assert_eq!(v["verification"]["pages_checked"], 512);
    assert_eq!(v["verification"]["mismatches"], 0);
    assert_eq!(v["exit_code"], 0);
    let _ = std::fs::remove_file(&p);
}

/// The same scenario over real memory pages, when the corpus is there.
#[test]
fn corpus_pages_round_trip_when_present() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/python.bin");
    let pages = std::fs::metadata(&corpus)
        .ok()
        .map(|m| m.len() as usize / kbase::PAGE_SIZE);
    if !kbase::testing::corpus_test("corpus_pages_round_trip_when_present", pages) {
        return;
    }
    let p = temp(
        "corpus.toml",
        &format!(
            r#"
[zswap]
shrinker_enabled = true
[[cgroup]]
name = "a"
memory_max = "4M"
[[step]]
cgroup = "a"
alloc = "8M"
region = "r"
fill = "pages:{}"
[[step]]
read = "r"
expect = ["global.mismatches == 0", "a.zswpin > 0", "global.compression_ratio > 2"]
"#,
            corpus.display()
        ),
    );
    run_passing(&p, &[]);
    let _ = std::fs::remove_file(&p);
}

/// README's first command: the embedded default scenario passes.
#[test]
fn default_scenario_passes() {
    let out = Command::new(BIN).arg("run").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 mismatches"), "{text}");
    assert!(text.contains("result: passed"), "{text}");
    let printed = Command::new(BIN)
        .args(["run", "--print-default"])
        .output()
        .unwrap();
    assert_eq!(printed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&printed.stdout).contains("[[cgroup]]"));
}

/// The swap device in files (`swap_file`): pages written back and read again.
#[test]
fn swap_device_in_files() {
    let dir = std::env::temp_dir().join(format!("zswap-sim-test-{}-swapdir", std::process::id()));
    // The folder must exist (the simulator creates nothing outside it).
    std::fs::create_dir_all(&dir).unwrap();
    let p = temp(
        "file.toml",
        &format!(
            r#"
[machine]
swap_file = "{}"
[[cgroup]]
name = "a"
memory_max = "1M"
zswap_max = "0"
[[step]]
cgroup = "a"
alloc = "4M"
region = "r"
fill = "mix"
[[step]]
read = "r"
expect = ["a.pswpout > 0", "a.pswpin > 0", "global.mismatches == 0"]
"#,
            dir.display()
        ),
    );
    run_passing(&p, &[]);
    assert!(dir.join("swap.0").metadata().unwrap().len() > 0);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&p);
}
