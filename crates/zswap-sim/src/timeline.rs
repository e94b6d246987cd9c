//! Time series over a run: zswap's pool and each cgroup's memory sampled as
//! the steps execute, for `zswap-sim run --trace FILE.csv` and `--plot
//! FILE.svg` ([`crate::plot`]).
//!
//! The x axis is the simulated event count: one event per page a step
//! touches (a page allocated, read or written; `reclaim` and the other
//! steps count as described in the scenario reference). A [`Recorder`]
//! samples every `every` events and once at the end of every step, so each
//! step boundary is exact. It keeps at most [`MAX_SAMPLES`] samples within
//! steps: when it would hold more, it drops every second one and samples
//! half as often from then on, so a run of any length gives a plot of the
//! same density.
//!
//! ## Columns (the CSV header, in this order)
//!
//! | column | meaning |
//! |---|---|
//! | `event` | simulated events so far |
//! | `step` | 0-based index of the step running (or just finished) |
//! | `stored_pages` | zswap's entries (Linux debugfs name) |
//! | `pool_total_size` | bytes of pool memory |
//! | `pool_pages` | pages of pool memory (`pool_total_size / 4096`) |
//! | `written_back_pages` | pages written back to the swap device so far |
//! | `compression_ratio` | `stored_pages * 4096 / pool_total_size` (0 while the pool is empty) |
//! | `CGROUP.memory.current` | each cgroup's `memory.current`, bytes (`root` first, then by path) |
//! | `CGROUP.memory.zswap.current` | each cgroup's `memory.zswap.current`, bytes |
//!
//! The cgroup columns come in pairs, one pair per cgroup, in the order the
//! cgroups first appear; a cell is empty while its cgroup does not exist.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::kernel::Kernel;
use crate::stats::Snapshot;

/// The most samples taken within steps (step ends come on top).
pub const MAX_SAMPLES: usize = 512;

/// The global columns, after `event` and `step`.
pub const GLOBAL_COLUMNS: [&str; 5] = [
    "stored_pages",
    "pool_total_size",
    "pool_pages",
    "written_back_pages",
    "compression_ratio",
];

/// The per-cgroup columns (`CGROUP.` in front).
pub const CGROUP_COLUMNS: [&str; 2] = ["memory.current", "memory.zswap.current"];

/// One sample: the values of the columns at one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Simulated events so far.
    pub event: u64,
    /// Index of the step running (or just finished).
    pub step: usize,
    /// Is this the sample taken at the end of the step?
    pub step_end: bool,
    /// Values by column name (global and `CGROUP.name`).
    pub values: BTreeMap<String, f64>,
}

/// One step of the run, for labels on the x axis.
#[derive(Clone, Debug, PartialEq)]
pub struct StepMark {
    /// 0-based index.
    pub index: usize,
    /// The scenario's label, else what the step did.
    pub label: String,
    /// Event count when the step started.
    pub start: u64,
    /// Event count when it ended.
    pub end: u64,
}

/// Everything sampled over one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// Samples in event order.
    pub samples: Vec<Sample>,
    /// Steps in order.
    pub steps: Vec<StepMark>,
    /// Cgroup paths in the order they first appeared.
    pub cgroups: Vec<String>,
}

impl Timeline {
    /// The CSV header columns, in order.
    pub fn columns(&self) -> Vec<String> {
        let mut c = vec!["event".to_string(), "step".to_string()];
        c.extend(GLOBAL_COLUMNS.iter().map(|s| s.to_string()));
        for g in &self.cgroups {
            c.extend(CGROUP_COLUMNS.iter().map(|n| format!("{g}.{n}")));
        }
        c
    }

    /// The series of `column` as (event, value) points (missing cells
    /// skipped).
    pub fn series(&self, column: &str) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .filter_map(|s| s.values.get(column).map(|v| (s.event as f64, *v)))
            .collect()
    }

    /// The CSV text: the header, then one row per sample.
    pub fn csv(&self) -> String {
        let cols = self.columns();
        let mut out = cols.join(",");
        out.push('\n');
        for s in &self.samples {
            let _ = write!(out, "{},{}", s.event, s.step);
            for c in &cols[2..] {
                out.push(',');
                if let Some(v) = s.values.get(c) {
                    if v.fract() == 0.0 && v.abs() < 1e15 {
                        let _ = write!(out, "{}", *v as i64);
                    } else {
                        let _ = write!(out, "{v:.4}");
                    }
                }
            }
            out.push('\n');
        }
        out
    }
}

/// The values of one snapshot, by column name.
fn values(snap: &Snapshot) -> BTreeMap<String, f64> {
    let mut v = BTreeMap::new();
    let g = |n: &str| snap.get("global", n).map_or(0.0, |x| x.as_f64());
    let stored = g("stored_pages");
    let pool = g("pool_total_size");
    v.insert("stored_pages".into(), stored);
    v.insert("pool_total_size".into(), pool);
    v.insert("pool_pages".into(), (pool / 4096.0).floor());
    v.insert("written_back_pages".into(), g("written_back_pages"));
    let ratio = if pool > 0.0 {
        stored * 4096.0 / pool
    } else {
        0.0
    };
    v.insert("compression_ratio".into(), ratio);
    for (path, m) in &snap.cgroups {
        for n in CGROUP_COLUMNS {
            if let Some(x) = m.get(n) {
                v.insert(format!("{path}.{n}"), x.as_f64());
            }
        }
    }
    v
}

struct State {
    timeline: Timeline,
    /// Events seen.
    events: u64,
    /// Sample every this many events.
    every: u64,
    /// Samples within steps held now.
    within: usize,
    /// Event count when the current step started.
    step_start: u64,
}

/// Collects a [`Timeline`] while a run executes. `RunOptions::timeline`
/// hands it to the run, which calls [`Recorder::tick`] once per event (at
/// the kernel's safe points, no lock held) and [`Recorder::step_end`] after
/// each step.
pub struct Recorder {
    state: Mutex<State>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder that starts by sampling every 16 events.
    pub fn new() -> Recorder {
        Recorder {
            state: Mutex::new(State {
                timeline: Timeline::default(),
                events: 0,
                every: 16,
                within: 0,
                step_start: 0,
            }),
        }
    }

    fn push(st: &mut State, snap: &Snapshot, step: usize, step_end: bool) {
        for path in snap.cgroups.keys() {
            if !st.timeline.cgroups.contains(path) {
                st.timeline.cgroups.push(path.clone());
            }
        }
        st.timeline.samples.push(Sample {
            event: st.events,
            step,
            step_end,
            values: values(snap),
        });
    }

    /// One event of step `step`: samples every `every` events (and at the
    /// very first one, so the plot starts at the beginning).
    pub fn tick(&self, k: &Kernel, step: usize) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.events += 1;
        let first = st.timeline.samples.is_empty();
        if !first && !st.events.is_multiple_of(st.every) {
            return;
        }
        let snap = crate::run::snapshot(k);
        Self::push(&mut st, &snap, step, false);
        st.within += 1;
        if st.within > MAX_SAMPLES {
            // Keep every second sample within steps; sample half as often.
            let mut keep = false;
            st.timeline.samples.retain(|s| {
                keep = !keep;
                s.step_end || keep
            });
            st.within = st.timeline.samples.iter().filter(|s| !s.step_end).count();
            st.every = st.every.saturating_mul(2);
        }
    }

    /// Step `index` (labelled `label`) ended with counters `snap`.
    pub fn step_end(&self, index: usize, label: &str, snap: &Snapshot) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        Self::push(&mut st, snap, index, true);
        let start = st.step_start;
        let end = st.events;
        st.timeline.steps.push(StepMark {
            index,
            label: label.to_string(),
            start,
            end,
        });
        st.step_start = end;
    }

    /// What was recorded.
    pub fn timeline(&self) -> Timeline {
        self.state
            .lock()
            .map(|s| s.timeline.clone())
            .unwrap_or_default()
    }
}
