//! `zswap-sim`: run zswap end to end on a simulated kernel.
//!
//! ```text
//! zswap-sim run [SCENARIO.toml] [--json] [--no-skip-if-exists] [--plot FILE.svg] [--trace FILE.csv]
//! zswap-sim capture --pid PID --out FILE [--max-pages N]
//! ```
//!
//! Exit codes: 0 success, 1 a failed expectation or verification, 2 a bad
//! scenario or argument, 3 deadlock detected.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use zswap_sim::{RunOptions, Scenario, report, run_scenario};

#[derive(Parser)]
#[command(
    name = "zswap-sim",
    version,
    about = "Run zswap end to end on a simulated kernel"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario (the embedded default one without a file).
    Run {
        /// Scenario file (TOML).
        scenario: Option<PathBuf>,
        /// Print one JSON document on stdout instead of the readable report.
        #[arg(long)]
        json: bool,
        /// Make zswap writeback wait on busy swap slots (skip_if_exists =
        /// false) to show the recursion deadlock it exists to prevent.
        #[arg(long)]
        no_skip_if_exists: bool,
        /// Print the embedded default scenario and exit.
        #[arg(long, conflicts_with = "scenario")]
        print_default: bool,
        /// Write an SVG plot of the run: pool and cgroup memory over the
        /// simulated events, and the compression ratio.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Write the same time series as CSV (one row per sample, Linux's
        /// names as columns).
        #[arg(long, value_name = "FILE.csv")]
        trace: Option<PathBuf>,
    },
    /// Save a sample of a running process's resident anonymous pages as a
    /// page file (for `fill = "pages:FILE"`).
    Capture {
        /// Process id.
        #[arg(long)]
        pid: u32,
        /// Output page file.
        #[arg(long)]
        out: PathBuf,
        /// At most this many pages (spread over the whole address space).
        #[arg(long, default_value_t = 4096)]
        max_pages: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run {
            scenario,
            json,
            no_skip_if_exists,
            print_default,
            plot,
            trace,
        } => {
            if print_default {
                print!("{}", zswap_sim::scenario::DEFAULT_SCENARIO);
                0
            } else {
                run(scenario, json, no_skip_if_exists, (plot, trace))
            }
        }
        Cmd::Capture {
            pid,
            out,
            max_pages,
        } => match zswap_sim::capture::capture(pid, &out, max_pages) {
            Ok(s) => {
                eprintln!(
                    "captured {} pages ({} MiB) of {} {}candidate pages in {} anonymous mappings into {}{}",
                    s.written,
                    (s.written * 4096) >> 20,
                    s.candidates,
                    if s.used_pagemap { "resident " } else { "" },
                    s.mappings,
                    out.display(),
                    if s.unreadable > 0 {
                        format!(" ({} unreadable pages skipped)", s.unreadable)
                    } else {
                        String::new()
                    }
                );
                0
            }
            Err(e) => {
                eprintln!("zswap-sim capture: {e}");
                2
            }
        },
    };
    std::process::exit(code);
}

fn run(
    path: Option<PathBuf>,
    json: bool,
    no_skip_if_exists: bool,
    (plot, trace): (Option<PathBuf>, Option<PathBuf>),
) -> i32 {
    let sc = match &path {
        Some(p) => match Scenario::load(p) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("zswap-sim: bad scenario: {e}");
                return 2;
            }
        },
        None => match Scenario::default_scenario() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("zswap-sim: bad embedded scenario: {e}");
                return 2;
            }
        },
    };
    let mut opts = RunOptions {
        no_skip_if_exists,
        progress: None,
        timeline: (plot.is_some() || trace.is_some())
            .then(|| Arc::new(zswap_sim::timeline::Recorder::new())),
    };
    // A progress bar on a terminal only, and only once a run is long enough
    // to need one (it appears after a second).
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::hidden();
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {wide_bar} {pos}/{len} pages {per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    if let Some(b) = &bar {
        let b = b.clone();
        let start = std::time::Instant::now();
        opts.progress = Some(Arc::new(move |done, total| {
            if b.is_hidden() && start.elapsed().as_secs_f64() > 1.0 && done < total {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            b.set_length(total);
            b.set_position(done);
        }));
    }
    let r = run_scenario(&sc, &opts);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json {
        println!("{}", report::json(&r));
    } else {
        print!("{}", report::text(&r));
    }
    if let Some(e) = &r.scenario_error {
        eprintln!("zswap-sim: bad scenario: {e}");
    }
    if let Some(t) = &opts.timeline {
        let t = t.timeline();
        if let Err(e) =
            zswap_sim::plot::write_outputs(&t, &r.scenario, plot.as_deref(), trace.as_deref())
        {
            eprintln!("zswap-sim: {e}");
            return 2;
        }
    }
    r.exit_code
}
