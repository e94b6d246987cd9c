//! Running a scenario: boot the kernel, execute the steps, snapshot the
//! counters, check the expectations, verify, and decide the exit code.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use kbase::{Error, PAGE_SIZE};
use serde::Serialize;

use crate::expect::Checked;
use crate::kernel::{Kernel, KernelConfig};
use crate::scenario::{Action, Scenario, ScenarioError};
use crate::stats::{Num, Snapshot, StatMap};

/// How a run ended; the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCode {
    /// Every step had its expected result, every expectation held, every
    /// page read back intact.
    Passed = 0,
    /// A failed expectation, an unexpected step result, a content mismatch
    /// or a leak.
    Failed = 1,
    /// A bad scenario or argument.
    BadScenario = 2,
    /// A recursive wait on a swap slot was detected.
    Deadlock = 3,
}

impl ExitCode {
    /// The numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Options from the command line.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// `--no-skip-if-exists`: overrides the scenario's `skip_if_exists`.
    pub no_skip_if_exists: bool,
    /// Called with (pages done, pages total) while steps run.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// Samples time series during the run (`--plot`, `--trace`).
    pub timeline: Option<Arc<crate::timeline::Recorder>>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("no_skip_if_exists", &self.no_skip_if_exists)
            .field("progress", &self.progress.is_some())
            .field("timeline", &self.timeline.is_some())
            .finish()
    }
}

/// One step's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// 0-based index.
    pub index: usize,
    /// Label, if any.
    pub label: Option<String>,
    /// What it did.
    pub action: String,
    /// Line in the scenario file.
    pub line: usize,
    /// `ok` or an errno name.
    pub result: String,
    /// What the scenario expected.
    pub expected_result: String,
    /// Each expectation.
    pub expectations: Vec<Checked>,
    /// Counters right after the step.
    pub stats: Snapshot,
    /// Wall time of the step, seconds.
    pub seconds: f64,
}

/// Content verification totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// Pages read back and compared.
    pub pages_checked: u64,
    /// Pages whose content was wrong.
    pub mismatches: u64,
    /// What was still held after every region was freed (all must be 0).
    pub leaks: BTreeMap<String, u64>,
}

/// Speed and memory of the simulator itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Performance {
    /// Wall time of the whole run, seconds.
    pub wall_seconds: f64,
    /// Pages swapped out (to zswap or the device) plus pages swapped in.
    pub pages_swapped: u64,
    /// `pages_swapped / wall_seconds`.
    pub pages_swapped_per_second: f64,
    /// Simulated RAM, bytes.
    pub simulated_ram_bytes: u64,
    /// Peak RSS of this process (VmHWM), bytes; 0 where unknown.
    pub peak_rss_bytes: u64,
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub file: String,
    /// The exit code.
    pub outcome: ExitCode,
    /// Numeric exit code.
    pub exit_code: i32,
    /// Steps executed.
    pub steps: Vec<StepReport>,
    /// Counters at the end (before regions were freed).
    #[serde(rename = "final")]
    pub final_stats: Snapshot,
    /// Verification totals.
    pub verification: Verification,
    /// Why the run failed, one line each.
    pub failures: Vec<String>,
    /// The deadlock detected, if any.
    pub deadlock: Option<String>,
    /// A scenario error found while running (exit 2).
    pub scenario_error: Option<String>,
    /// Simulator speed and memory.
    pub performance: Performance,
}

impl RunReport {
    fn new(sc: &Scenario) -> RunReport {
        RunReport {
            scenario: sc.name.clone(),
            file: sc.file.clone(),
            outcome: ExitCode::Passed,
            exit_code: 0,
            steps: Vec::new(),
            final_stats: Snapshot::default(),
            verification: Verification::default(),
            failures: Vec::new(),
            deadlock: None,
            scenario_error: None,
            performance: Performance::default(),
        }
    }

    fn fail_scenario(mut self, e: ScenarioError) -> RunReport {
        self.scenario_error = Some(e.to_string());
        self.outcome = ExitCode::BadScenario;
        self.exit_code = 2;
        self
    }
}

/// Peak RSS of this process (VmHWM), bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs a scenario to the end (or to a deadlock).
pub fn run_scenario(sc: &Scenario, opts: &RunOptions) -> RunReport {
    let start = Instant::now();
    let mut report = RunReport::new(sc);
    let cfg = KernelConfig {
        ram_pages: sc.machine.ram_pages,
        swap_pages: sc.machine.swap_pages,
        swap_dir: sc.machine.swap_file.clone(),
        cpus: sc.machine.cpus,
        seed: sc.machine.seed,
        zswap_params: Vec::new(),
        skip_if_exists: sc.zswap.skip_if_exists && !opts.no_skip_if_exists,
    };
    if let Err(e) = check_machine(sc) {
        return report.fail_scenario(e);
    }
    let k = match Kernel::boot(&cfg) {
        Ok(k) => k,
        Err(e) => {
            // Name the value the failure comes from.
            let m = &sc.machine;
            let at = if e.starts_with("swap_file") {
                m.at.swap_file
            } else if e.contains("swapon") {
                m.at.swap
            } else if e.contains("RAM") {
                m.at.ram
            } else {
                (0, 0)
            };
            return report.fail_scenario(sc.error_at_pos(at, e));
        }
    };
    for (name, value, line) in &sc.zswap.params {
        if let Err(e) = k.zswap.set_param(name, value) {
            return report.fail_scenario(
                sc.error_at(*line, format!("zswap parameter {name} = {value}: {e}")),
            );
        }
    }
    for c in &sc.cgroups {
        let settings = match resolve_settings(sc, &k, &c.settings, &HashMap::new()) {
            Ok(s) => s,
            Err(e) => return finish(report, &k, start).fail_scenario(e),
        };
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect();
        if let Err(e) = k.create_cgroup(&c.path, &settings) {
            return report.fail_scenario(sc.error_at(c.line, format!("cgroup {}: {e}", c.path)));
        }
    }

    // Progress: total pages of work.
    let mut region_pages: BTreeMap<String, u64> = BTreeMap::new();
    let mut total_work = 0u64;
    for s in &sc.steps {
        total_work += s.action.work(&region_pages);
        if let Action::Alloc { region, pages, .. } = &s.action {
            region_pages.insert(region.clone(), *pages);
        }
    }
    let mut done = 0u64;

    let mut labelled: HashMap<String, Snapshot> = HashMap::new();
    for step in &sc.steps {
        let t0 = Instant::now();
        let progress = opts.progress.clone();
        let base_done = done;
        let mut n = 0u64;
        let timeline = opts.timeline.clone();
        let mut tick = || {
            n += 1;
            if let Some(t) = &timeline {
                t.tick(&k, step.index);
            }
            if let Some(p) = &progress
                && n.is_multiple_of(256)
            {
                p(base_done + n, total_work);
            }
        };
        let result = match resolve_values(sc, &k, &step.action, &labelled) {
            Ok(a) => execute(&k, &a, &mut tick),
            Err(err) => return finish(report, &k, start).fail_scenario(err),
        };
        done += step.action.work(&region_pages_now(&k, &step.action));
        if let Some(p) = &opts.progress {
            p(done.min(total_work), total_work);
        }
        let mut result_name = match result {
            Ok(()) => "ok".to_string(),
            Err(e) => e.name().to_string(),
        };
        let deadlock = k.deadlock();
        if deadlock.is_some() {
            result_name = Error::EDEADLK.name().to_string();
        }
        let expected = step
            .expect_result
            .map_or("ok".to_string(), |e| e.name().to_string());
        let snap = snapshot(&k);
        if let Some(t) = &opts.timeline {
            let label = step.label.clone().unwrap_or_else(|| step.action.describe());
            t.step_end(step.index, &label, &snap);
        }
        let mut checked = Vec::new();
        if deadlock.is_none() {
            if result_name != expected {
                report.failures.push(format!(
                    "{}:{}: step {} ({}): result {result_name}, expected {expected}",
                    sc.file,
                    step.line,
                    step.index,
                    step.action.describe()
                ));
            }
            for (e, line) in &step.expect {
                match e.check(&snap, &labelled) {
                    Ok(c) => {
                        if !c.ok {
                            report.failures.push(format!(
                                "{}:{line}: expectation failed: {} (left {}, right {})",
                                sc.file,
                                c.expect,
                                fmt_f(c.lhs),
                                fmt_f(c.rhs)
                            ));
                        }
                        checked.push(c);
                    }
                    Err(reason) => {
                        let err = sc.error_at(
                            *line,
                            format!(
                                "expectation {}: {reason}",
                                crate::expect::quote_short(&e.text)
                            ),
                        );
                        report.steps.push(step_report(
                            step,
                            result_name,
                            expected,
                            checked,
                            snap,
                            t0,
                        ));
                        return finish(report, &k, start).fail_scenario(err);
                    }
                }
            }
        }
        if let Some(l) = &step.label {
            labelled.insert(l.clone(), snap.clone());
        }
        report
            .steps
            .push(step_report(step, result_name, expected, checked, snap, t0));
        if let Some(d) = deadlock {
            report.deadlock = Some(format!(
                "{}:{}: step {}: {d}",
                sc.file, step.line, step.index
            ));
            break;
        }
    }
    finish(report, &k, start)
}

fn region_pages_now(k: &Kernel, a: &Action) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Action::Read { region } | Action::Write { region, .. } = a
        && let Some(n) = k.region_pages(region)
    {
        m.insert(region.clone(), n);
    }
    m
}

fn fmt_f(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

fn step_report(
    step: &crate::scenario::Step,
    result: String,
    expected: String,
    expectations: Vec<Checked>,
    stats: Snapshot,
    t0: Instant,
) -> StepReport {
    StepReport {
        index: step.index,
        label: step.label.clone(),
        action: step.action.describe(),
        line: step.line,
        result,
        expected_result: expected,
        expectations,
        stats,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Final snapshot, teardown, leak check, outcome.
fn finish(mut report: RunReport, k: &Arc<Kernel>, start: Instant) -> RunReport {
    report.final_stats = snapshot(k);
    let c = &k.counters;
    use std::sync::atomic::Ordering::Relaxed;
    let deadlocked = report.deadlock.is_some();
    if !deadlocked {
        // Unmap everything: every page, slot, entry and charge must go back.
        k.teardown();
        k.safe_point();
        let mut leaks = BTreeMap::new();
        let zs = k.zswap.stats();
        leaks.insert("zswap.stored_pages".to_string(), zs.stored_pages);
        leaks.insert("zswap.pool_pages".to_string(), k.zswap.total_pages() as u64);
        leaks.insert(
            "swap.inuse_pages".to_string(),
            k.swap.inuse_pages(k.swap_type).unwrap_or(0),
        );
        leaks.insert("ram.used_pages".to_string(), k.alloc.used_pages());
        for (p, m) in k.cgroups() {
            leaks.insert(format!("{p}.memory.current"), m.memory_current());
            leaks.insert(format!("{p}.memory.swap.current"), m.swap_current());
        }
        let root = k.memcgs.root();
        leaks.insert("root.memory.current".into(), root.memory_current());
        leaks.insert("root.memory.swap.current".into(), root.swap_current());
        leaks.retain(|_, v| *v != 0);
        for (what, v) in &leaks {
            report
                .failures
                .push(format!("leak after freeing every region: {what} = {v}"));
        }
        report.verification.leaks = leaks;
    }
    // Give the RAM block back to the host (only possible if nothing leaked).
    k.alloc.release();
    report.verification.pages_checked = c.pages_checked.load(Relaxed);
    report.verification.mismatches = c.mismatches.load(Relaxed);
    if report.verification.mismatches > 0 {
        report.failures.push(format!(
            "verification: {} of {} pages read back with the wrong content",
            report.verification.mismatches, report.verification.pages_checked
        ));
    }
    let wall = start.elapsed().as_secs_f64();
    let swapped = c.pgsteal.load(Relaxed) + c.faults.load(Relaxed);
    report.performance = Performance {
        wall_seconds: wall,
        pages_swapped: swapped,
        pages_swapped_per_second: if wall > 0.0 {
            swapped as f64 / wall
        } else {
            0.0
        },
        simulated_ram_bytes: k.ram_pages * PAGE_SIZE as u64,
        peak_rss_bytes: peak_rss_bytes(),
    };
    report.outcome = if deadlocked {
        ExitCode::Deadlock
    } else if report.failures.is_empty() {
        ExitCode::Passed
    } else {
        ExitCode::Failed
    };
    report.exit_code = report.outcome.code();
    report
}

/// Checks the host can run the machine: RAM it can back, a swap folder
/// that exists and takes files. Each error names the value's line.
fn check_machine(sc: &Scenario) -> Result<(), ScenarioError> {
    let m = &sc.machine;
    crate::host::check_ram(
        m.ram_pages.saturating_mul(PAGE_SIZE as u64),
        crate::host::available_memory(),
    )
    .map_err(|e| sc.error_at_pos(m.at.ram, e))?;
    if let Some(dir) = &m.swap_file {
        // The machine has one swap device, type 0: `swap.0` in the folder.
        crate::host::check_swap_folder(dir, "swap.0")
            .map_err(|e| sc.error_at_pos(m.at.swap_file, e))?;
    }
    Ok(())
}

/// Evaluates the computed values (`"= EXPR"`, in bytes) of cgroup
/// settings `(memcg file, value, line)` into what the file takes; an
/// error names the value's line.
fn resolve_settings(
    sc: &Scenario,
    k: &Kernel,
    values: &[(String, String, usize)],
    labelled: &HashMap<String, Snapshot>,
) -> Result<Vec<(String, String, usize)>, ScenarioError> {
    if !values.iter().any(|(_, v, _)| v.starts_with('=')) {
        return Ok(values.to_vec());
    }
    let now = snapshot(k);
    let mut out = Vec::new();
    for (f, v, line) in values {
        let v = match v.strip_prefix('=') {
            Some(e) => {
                let err = |r: String| {
                    sc.error_at_value(
                        *line,
                        v,
                        format!("{f} = {}: {r}", crate::expect::quote_short(v)),
                    )
                };
                let expr = crate::expect::parse_expr(e).map_err(err)?;
                let x = crate::expect::eval_expr(&expr, &now, labelled).map_err(err)?;
                computed_value(f, x).map_err(err)?
            }
            None => v.clone(),
        };
        out.push((f.clone(), v, *line));
    }
    Ok(out)
}

/// What memcg file `file` takes for a computed value `x`.
fn computed_value(file: &str, x: f64) -> Result<String, String> {
    if file == "memory.zswap.writeback" {
        return if x == 0.0 || x == 1.0 {
            Ok((x as u64).to_string())
        } else {
            Err(format!(
                "gives {}; memory.zswap.writeback takes 0 or 1",
                fmt_f(x)
            ))
        };
    }
    if !(0.0..1e18).contains(&x) {
        return Err(format!("gives {}, not a size in bytes", fmt_f(x)));
    }
    Ok((x as u64).to_string())
}

/// Evaluates the computed values of a `set` or `create_cgroup` step.
fn resolve_values(
    sc: &Scenario,
    k: &Kernel,
    a: &Action,
    labelled: &HashMap<String, Snapshot>,
) -> Result<Action, ScenarioError> {
    Ok(match a {
        Action::Set {
            cgroup: Some(c),
            values,
        } => Action::Set {
            cgroup: Some(c.clone()),
            values: resolve_settings(sc, k, values, labelled)?,
        },
        Action::CreateCgroup { path, settings } => Action::CreateCgroup {
            path: path.clone(),
            settings: resolve_settings(sc, k, settings, labelled)?,
        },
        _ => a.clone(),
    })
}

/// Executes one action.
fn execute(k: &Kernel, a: &Action, tick: &mut dyn FnMut()) -> kbase::Result<()> {
    match a {
        Action::Alloc {
            cgroup,
            region,
            pages,
            fill,
        } => k.alloc_region(cgroup, region, *pages, fill.clone(), tick),
        Action::Read { region } => k.read_region(region, tick),
        Action::Write { region, fill } => k.write_region(region, fill.clone(), tick),
        Action::Free { region } => k.free_region(region),
        Action::Reclaim { cgroup, bytes } => {
            let m = k.cgroup(cgroup)?;
            let r = k
                .memcgs
                .memory_reclaim(&m, *bytes, &crate::platform::Reclaimer(k));
            k.safe_point();
            r
        }
        Action::Set {
            cgroup: Some(c),
            values,
        } => {
            for (f, v, _) in values {
                k.set_cgroup_file(c, f, v)?;
            }
            k.safe_point();
            Ok(())
        }
        Action::Set {
            cgroup: None,
            values,
        } => {
            for (name, v, _) in values {
                k.zswap.set_param(name, v)?;
            }
            Ok(())
        }
        Action::CreateCgroup { path, settings } => {
            let s: Vec<(String, String)> = settings
                .iter()
                .map(|(a, b, _)| (a.clone(), b.clone()))
                .collect();
            k.create_cgroup(path, &s)
        }
        Action::RemoveCgroup { path } => k.remove_cgroup(path),
        Action::Shrink { cgroup: None } => {
            k.run_shrink_worker();
            Ok(())
        }
        Action::Shrink { cgroup: Some(c) } => {
            let m = k.cgroup(c)?;
            let r = k.zswap.shrink_memcg(&m);
            k.safe_point();
            r
        }
        Action::Swapoff => {
            let r = k.swapoff();
            k.safe_point();
            r
        }
    }
}

/// Takes a snapshot of every counter.
pub fn snapshot(k: &Kernel) -> Snapshot {
    use std::sync::atomic::Ordering::Relaxed;
    let mut g = StatMap::new();
    let zs = k.zswap.stats();
    for (name, v) in zs.iter() {
        g.insert(name.to_string(), Num::Int(v));
    }
    let ratio = if zs.pool_total_size > 0 {
        zs.stored_pages as f64 * PAGE_SIZE as f64 / zs.pool_total_size as f64
    } else {
        0.0
    };
    g.insert("compression_ratio".into(), Num::Float(ratio));
    g.insert("pool_pages".into(), Num::Int(k.zswap.total_pages() as u64));
    g.insert("max_pool_pages".into(), Num::Int(k.zswap.max_pool_pages()));
    g.insert(
        "accept_thr_pages".into(),
        Num::Int(k.zswap.accept_thr_pages()),
    );
    g.insert("nr_pools".into(), Num::Int(k.zswap.nr_pools() as u64));
    let p = k.zswap.params();
    g.insert("enabled".into(), Num::Int(p.enabled as u64));
    g.insert(
        "max_pool_percent".into(),
        Num::Int(p.max_pool_percent as u64),
    );
    g.insert(
        "accept_threshold_percent".into(),
        Num::Int(p.accept_threshold_percent as u64),
    );
    g.insert(
        "shrinker_enabled".into(),
        Num::Int(p.shrinker_enabled as u64),
    );
    g.insert("ram_pages".into(), Num::Int(k.ram_pages));
    g.insert("free_pages".into(), Num::Int(k.alloc.free_pages()));
    g.insert("used_pages".into(), Num::Int(k.alloc.used_pages()));
    g.insert("peak_used_pages".into(), Num::Int(k.alloc.peak_pages()));
    g.insert("resident_pages".into(), Num::Int(k.resident_pages()));
    g.insert(
        "swap_pages".into(),
        Num::Int(k.swap.nr_pages(k.swap_type).unwrap_or(0)),
    );
    g.insert(
        "swap_inuse_pages".into(),
        Num::Int(k.swap.inuse_pages(k.swap_type).unwrap_or(0)),
    );
    // The swap core's zeromap (vmstat swpin_zero / swpout_zero).
    let vm = k.swap.stats();
    g.insert("swpin_zero".into(), Num::Int(vm.swpin_zero));
    g.insert("swpout_zero".into(), Num::Int(vm.swpout_zero));
    let c = &k.counters;
    for (name, v) in [
        ("pswpin", &c.pswpin),
        ("pswpout", &c.pswpout),
        ("faults", &c.faults),
        ("pgsteal", &c.pgsteal),
        ("pages_checked", &c.pages_checked),
        ("mismatches", &c.mismatches),
        ("kept_wb_disabled", &c.pgactivate_wb_disabled),
        ("global_reclaims", &c.global_reclaims),
        ("shrink_worker_runs", &c.shrink_worker_runs),
        ("swap_full", &c.swap_full),
        ("oom", &c.oom),
    ] {
        g.insert(name.into(), Num::Int(v.load(Relaxed)));
    }

    let anon = k.anon_pages();
    let mut cgroups = BTreeMap::new();
    let mut all = vec![("root".to_string(), k.memcgs.root())];
    all.extend(k.cgroups());
    for (path, m) in &all {
        let mut s = StatMap::new();
        let st = m.stat();
        let int = |v: u64| Num::Int(v);
        s.insert("memory.current".into(), int(m.memory_current()));
        s.insert("memory.max".into(), int(m.memory_max()));
        s.insert("memory.swap.current".into(), int(st.swap_current));
        s.insert("memory.swap.peak".into(), int(st.swap_peak));
        s.insert("memory.zswap.current".into(), int(m.zswap_current()));
        s.insert(
            "memory.zswap.max".into(),
            int(m.zswap_max_pages().saturating_mul(PAGE_SIZE as u64)),
        );
        s.insert(
            "memory.zswap.writeback".into(),
            int(m.zswap_writeback() as u64),
        );
        s.insert(
            "zswap_writeback_effective".into(),
            int(m.zswap_writeback_enabled() as u64),
        );
        // memory.stat (hierarchical, as cgroup v2 shows it).
        let anon_pages: u64 = anon
            .iter()
            .filter(|(id, _)| k.memcgs.get(**id).is_some_and(|c| c.is_descendant_of(m)))
            .map(|(_, n)| *n)
            .sum();
        s.insert("anon".into(), int(anon_pages * PAGE_SIZE as u64));
        s.insert("zswap".into(), int(st.zswap));
        s.insert("zswapped".into(), int(st.zswapped));
        s.insert("zswap_incomp".into(), int(st.zswap_incomp));
        s.insert("zswpin".into(), int(st.zswpin));
        s.insert("zswpout".into(), int(st.zswpout));
        s.insert("zswpwb".into(), int(st.zswpwb));
        s.insert("pswpin".into(), int(st.pswpin));
        s.insert("pswpout".into(), int(st.pswpout));
        s.insert("swpin_zero".into(), int(st.swpin_zero));
        s.insert("swpout_zero".into(), int(st.swpout_zero));
        cgroups.insert(path.clone(), s);
    }
    Snapshot { global: g, cgroups }
}
