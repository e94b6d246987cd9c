//! `--plot` and `--trace`: the SVG is well-formed XML with one line per
//! legend entry, the CSV has the documented columns and one row per sample.
#![cfg(not(loom))]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use zswap_sim::timeline::{CGROUP_COLUMNS, GLOBAL_COLUMNS, Recorder, Timeline};
use zswap_sim::{RunOptions, Scenario, plot, run_scenario};

const SCENARIO: &str = r#"
name = "plot-small"

[machine]
ram = "16M"
swap = "32M"
seed = 7

[zswap]
shrinker_enabled = true
max_pool_percent = 10

[[cgroup]]
name = "a"
memory_max = "4M"

[[cgroup]]
name = "b"
memory_max = "4M"
zswap_max = "512K"

[[step]]
cgroup = "a"
alloc = "6M"
region = "ra"
fill = "mix"
label = "a-up"

[[step]]
cgroup = "b"
alloc = "6M"
region = "rb"
fill = "mix"

[[step]]
read = "ra"
label = "read-a"

[[step]]
free = "rb"
"#;

fn record() -> (Timeline, Scenario) {
    let sc = Scenario::parse(SCENARIO, "<test>", Path::new("."), "plot-small").unwrap();
    let rec = Arc::new(Recorder::new());
    let opts = RunOptions {
        timeline: Some(rec.clone()),
        ..RunOptions::default()
    };
    let r = run_scenario(&sc, &opts);
    assert_eq!(r.exit_code, 0, "{:?}", r.failures);
    (rec.timeline(), sc)
}

#[test]
fn timeline_covers_every_step_and_event() {
    let (t, sc) = record();
    assert_eq!(t.steps.len(), sc.steps.len());
    assert_eq!(t.steps[0].label, "a-up");
    assert_eq!(t.steps[2].label, "read-a");
    // alloc 6M + alloc 6M + read 6M = 4608 page events.
    assert_eq!(t.steps.last().unwrap().end, 3 * 1536);
    assert!(t.samples.len() > 20, "{} samples", t.samples.len());
    assert!(t.samples.windows(2).all(|w| w[0].event <= w[1].event));
    // The pool filled and was written back at some point.
    let stored = t.series("stored_pages");
    assert!(stored.iter().any(|p| p.1 > 0.0));
    assert!(t.series("written_back_pages").last().unwrap().1 > 0.0);
    assert_eq!(t.cgroups, ["a", "b", "root"]);
}

#[test]
fn csv_has_the_documented_columns_and_one_row_per_sample() {
    let (t, _) = record();
    let csv = t.csv();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut want = vec!["event", "step"];
    want.extend(GLOBAL_COLUMNS);
    let cg: Vec<String> = ["a", "b", "root"]
        .iter()
        .flat_map(|g| CGROUP_COLUMNS.iter().map(move |c| format!("{g}.{c}")))
        .collect();
    want.extend(cg.iter().map(String::as_str));
    assert_eq!(header, want);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), t.samples.len());
    for (row, s) in rows.iter().zip(&t.samples) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{row}");
        assert_eq!(cells[0].parse::<u64>().unwrap(), s.event);
        assert_eq!(cells[1].parse::<usize>().unwrap(), s.step);
        let stored: f64 = cells[2].parse().unwrap();
        assert_eq!(stored, s.values["stored_pages"]);
    }
}

fn legend_and_lines(svg: &str) -> (usize, Vec<String>) {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // Series are drawn 2 px wide (plot::SERIES_WIDTH); axes and ticks are
    // 1 px polylines.
    let width = plot::SERIES_WIDTH.to_string();
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| n.attribute("stroke-width") == Some(width.as_str()))
        .count();
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|s| s.trim().to_string())
        .collect();
    (lines, texts)
}

#[test]
fn svg_is_xml_with_one_line_per_legend_entry() {
    let (t, _) = record();
    let svg = plot::svg(&t, "plot-small").unwrap();
    let (lines, texts) = legend_and_lines(&svg);
    let mut labels: Vec<String> = plot::memory_series(&t)
        .into_iter()
        .chain(plot::ratio_series(&t))
        .map(|s| s.label)
        .collect();
    // 3 global series + 2 per cgroup (a, b, root) + the ratio.
    assert_eq!(labels.len(), 3 + 2 * 3 + 1);
    assert_eq!(lines, labels.len(), "one drawn line per series");
    for l in &labels {
        assert_eq!(
            texts.iter().filter(|t| *t == l).count(),
            1,
            "legend line {l:?} appears once"
        );
    }
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), 3 + 2 * 3 + 1, "legend lines are distinct");
    // Titles, axis descriptions and step labels are there.
    for want in [
        "Memory over the run",
        "Compression ratio",
        "pages (4 KiB)",
        "0 a-up",
        "1 alloc rb",
        "2 read-a",
    ] {
        assert!(texts.iter().any(|t| t == want), "missing text {want:?}");
    }
}

#[test]
fn command_line_writes_both_files() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plot_trace");
    std::fs::create_dir_all(&dir).unwrap();
    let sc = dir.join("small.toml");
    std::fs::write(&sc, SCENARIO).unwrap();
    let svg = dir.join("out.svg");
    let csv = dir.join("out.csv");
    let _ = std::fs::remove_file(&svg);
    let _ = std::fs::remove_file(&csv);
    let out = Command::new(env!("CARGO_BIN_EXE_zswap-sim"))
        .arg("run")
        .arg(&sc)
        .arg("--plot")
        .arg(&svg)
        .arg("--trace")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    let (lines, _) = legend_and_lines(&svg);
    assert_eq!(lines, 3 + 2 * 3 + 1);
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(csv.starts_with("event,step,stored_pages,pool_total_size,"));
    assert!(csv.lines().count() > 20);

    // An unwritable path is a bad argument (exit 2), after the run.
    let bad = Command::new(env!("CARGO_BIN_EXE_zswap-sim"))
        .arg("run")
        .arg(&sc)
        .arg("--plot")
        .arg(dir.join("no/such/dir/out.svg"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
