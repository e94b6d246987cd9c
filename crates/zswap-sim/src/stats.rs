//! Snapshots of every counter the simulator shows: zswap's global stats and
//! each cgroup's memory.stat and memory.* files, taken after every step.

use std::collections::BTreeMap;

use serde::Serialize;

/// A counter value: most are exact integers, a few (ratios) are not.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Num {
    /// An exact count or size.
    Int(u64),
    /// A derived figure (compression ratio).
    Float(f64),
}

impl Num {
    /// The value as a float, for comparisons.
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Int(v) => write!(f, "{v}"),
            Num::Float(v) => write!(f, "{v:.3}"),
        }
    }
}

/// Named values of one scope (`global` or one cgroup).
pub type StatMap = BTreeMap<String, Num>;

/// All counters at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    /// zswap's global stats (Linux debugfs names) plus the simulated
    /// machine's own (`ram_pages`, `free_pages`, `pswpin`, ...).
    pub global: StatMap,
    /// Per cgroup path: memory.stat keys and the memory.* files.
    pub cgroups: BTreeMap<String, StatMap>,
}

impl Snapshot {
    /// Looks up `scope.name` (`global.stored_pages`, `a/b.zswpout`).
    pub fn get(&self, scope: &str, name: &str) -> Option<Num> {
        if scope == "global" {
            self.global.get(name).copied()
        } else {
            self.cgroups.get(scope)?.get(name).copied()
        }
    }
}
