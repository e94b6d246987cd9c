//! Reports: readable text, or one JSON document.

use std::fmt::Write;

use crate::run::{ExitCode, RunReport};
use crate::size::human;
use crate::stats::{Num, StatMap};

/// The JSON document (`--json`).
pub fn json(r: &RunReport) -> String {
    serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn get(m: &StatMap, k: &str) -> u64 {
    match m.get(k) {
        Some(Num::Int(v)) => *v,
        Some(Num::Float(v)) => *v as u64,
        None => 0,
    }
}

fn limit(v: u64) -> String {
    // memcg reports "max" as a huge page count times PAGE_SIZE.
    if v >= (1u64 << 52) {
        "max".into()
    } else {
        human(v)
    }
}

/// The readable report.
pub fn text(r: &RunReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "zswap-sim: scenario {} ({})", r.scenario, r.file);
    if let Some(e) = &r.scenario_error {
        let _ = writeln!(o, "\nbad scenario: {e}");
    }
    if !r.steps.is_empty() {
        let _ = writeln!(o, "\nsteps:");
    }
    for s in &r.steps {
        let mark = if s.result == s.expected_result {
            "ok "
        } else {
            "ERR"
        };
        let label = s
            .label
            .as_ref()
            .map_or(String::new(), |l| format!(" [{l}]"));
        let res = if s.result == s.expected_result {
            s.result.clone()
        } else {
            format!("{} (expected {})", s.result, s.expected_result)
        };
        let _ = writeln!(
            o,
            "  {mark} #{:<2} line {:<4} {}{label}: {res}  ({:.2} s)",
            s.index, s.line, s.action, s.seconds
        );
        for c in &s.expectations {
            let _ = writeln!(
                o,
                "        {} {}   [{} vs {}]",
                if c.ok { "pass" } else { "FAIL" },
                c.expect,
                short(c.lhs),
                short(c.rhs)
            );
        }
    }
    let g = &r.final_stats.global;
    if !g.is_empty() {
        let _ = writeln!(o, "\nzswap (global, at the end):");
        let ratio = g.get("compression_ratio").map_or(0.0, |n| n.as_f64());
        let _ = writeln!(
            o,
            "  stored_pages {}  (incompressible {})  pool {} in {} pages  compression ratio {:.2}",
            get(g, "stored_pages"),
            get(g, "stored_incompressible_pages"),
            human(get(g, "pool_total_size")),
            get(g, "pool_pages"),
            ratio
        );
        let _ = writeln!(
            o,
            "  zswpout {}  zswpin {}  written_back_pages {}  writeback_skip_exists {}  pool_limit_hit {}  pages_compacted {}",
            get(g, "zswpout"),
            get(g, "zswpin"),
            get(g, "written_back_pages"),
            get(g, "writeback_skip_exists"),
            get(g, "pool_limit_hit"),
            get(g, "pages_compacted")
        );
        let rejects: Vec<String> = g
            .iter()
            .filter(|(k, v)| {
                (k.starts_with("reject_") || *k == "decompress_fail") && v.as_f64() > 0.0
            })
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            o,
            "  rejects: {}",
            if rejects.is_empty() {
                "none".into()
            } else {
                rejects.join("  ")
            }
        );
        let _ = writeln!(
            o,
            "machine: RAM {} ({} free)  swap device: pswpout {} pswpin {}  zeromap: swpout_zero {} swpin_zero {}  faults {}  reclaimed {}",
            human(get(g, "ram_pages") * 4096),
            human(get(g, "free_pages") * 4096),
            get(g, "pswpout"),
            get(g, "pswpin"),
            get(g, "swpout_zero"),
            get(g, "swpin_zero"),
            get(g, "faults"),
            get(g, "pgsteal")
        );
    }
    if !r.final_stats.cgroups.is_empty() {
        let _ = writeln!(o, "\ncgroups (memory.* files and memory.stat, at the end):");
        let _ = writeln!(
            o,
            "  {:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>3} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "cgroup",
            "current",
            "max",
            "swap",
            "swap.peak",
            "zswap.cur",
            "zswap.max",
            "wb",
            "zswapped",
            "zswpout",
            "zswpin",
            "zswpwb",
            "pswpout",
            "pswpin",
            "incomp"
        );
        for (p, m) in &r.final_stats.cgroups {
            let _ = writeln!(
                o,
                "  {:<14} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>3} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                p,
                human(get(m, "memory.current")),
                limit(get(m, "memory.max")),
                human(get(m, "memory.swap.current")),
                human(get(m, "memory.swap.peak")),
                human(get(m, "memory.zswap.current")),
                limit(get(m, "memory.zswap.max")),
                get(m, "memory.zswap.writeback"),
                human(get(m, "zswapped")),
                get(m, "zswpout"),
                get(m, "zswpin"),
                get(m, "zswpwb"),
                get(m, "pswpout"),
                get(m, "pswpin"),
                human(get(m, "zswap_incomp")),
            );
        }
    }
    let v = &r.verification;
    let _ = writeln!(
        o,
        "\nverification: {} pages read back, {} mismatches{}",
        v.pages_checked,
        v.mismatches,
        if v.leaks.is_empty() {
            ", nothing leaked"
        } else {
            ""
        }
    );
    let p = &r.performance;
    let _ = writeln!(
        o,
        "simulator: {:.2} s, {} pages swapped ({:.0}/s), peak RSS {} for {} of simulated RAM",
        p.wall_seconds,
        p.pages_swapped,
        p.pages_swapped_per_second,
        human(p.peak_rss_bytes),
        human(p.simulated_ram_bytes)
    );
    if let Some(d) = &r.deadlock {
        let _ = writeln!(o, "\nDEADLOCK: {d}");
    }
    for f in &r.failures {
        let _ = writeln!(o, "FAILED: {f}");
    }
    let _ = writeln!(
        o,
        "\nresult: {}",
        match r.outcome {
            ExitCode::Passed => "passed",
            ExitCode::Failed => "FAILED",
            ExitCode::BadScenario => "bad scenario",
            ExitCode::Deadlock => "deadlock detected",
        }
    );
    o
}

fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}
