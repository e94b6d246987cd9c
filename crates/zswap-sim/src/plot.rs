//! `zswap-sim run --plot FILE.svg`: the [`Timeline`] of a run as an SVG.
//!
//! Two panels over the same x axis (simulated events, with each step's
//! start marked and labelled):
//!
//! 1. memory, in 4 KiB pages: zswap's `stored_pages`, the pool's pages
//!    (`pool_total_size / 4096`), `written_back_pages`, and for each cgroup
//!    `memory.current` and `memory.zswap.current` (bytes / 4096);
//! 2. the compression ratio (`stored_pages * 4096 / pool_total_size`).
//!
//! Every series has one line in its panel's legend (right of the panel). Rendering uses
//! plotters' SVG backend only: text is written as SVG `<text>` and laid out
//! by the viewer, so no font or system library is needed.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::timeline::Timeline;

/// Width and height of the picture, pixels.
pub const SIZE: (u32, u32) = (1400, 860);

/// Stroke width of the series lines, pixels (axes and ticks are 1 px).
pub const SERIES_WIDTH: u32 = 2;

/// One line of a panel: legend text and points.
pub struct Series {
    /// The legend line.
    pub label: String,
    /// (event, value) points.
    pub points: Vec<(f64, f64)>,
}

/// The series of the memory panel, in legend order.
pub fn memory_series(t: &Timeline) -> Vec<Series> {
    let page = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        pts.into_iter().map(|(x, y)| (x, y / 4096.0)).collect()
    };
    let mut v = vec![
        Series {
            label: "stored_pages".into(),
            points: t.series("stored_pages"),
        },
        Series {
            label: "pool pages (pool_total_size)".into(),
            points: t.series("pool_pages"),
        },
        Series {
            label: "written_back_pages".into(),
            points: t.series("written_back_pages"),
        },
    ];
    for g in &t.cgroups {
        for n in ["memory.current", "memory.zswap.current"] {
            v.push(Series {
                label: format!("{g} {n}"),
                points: page(t.series(&format!("{g}.{n}"))),
            });
        }
    }
    v
}

/// The series of the ratio panel.
pub fn ratio_series(t: &Timeline) -> Vec<Series> {
    vec![Series {
        label: "compression ratio (stored / pool bytes)".into(),
        points: t.series("compression_ratio"),
    }]
}

/// Renders the timeline of scenario `name` as an SVG document.
pub fn svg(t: &Timeline, name: &str) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root, t, name).map_err(|e| format!("plot: {e}"))?;
        root.present().map_err(|e| format!("plot: {e}"))?;
    }
    Ok(out)
}

/// Width of the legend column right of each panel, pixels.
const LEGEND_WIDTH: u32 = 290;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// The largest y of `series`, with some head room.
fn y_top(series: &[Series], room: f64) -> f64 {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * room
}

fn draw(root: &Area<'_>, t: &Timeline, name: &str) -> DrawResult {
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("zswap-sim: scenario \"{name}\""),
        ("sans-serif", 24),
    )?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 64 / 100);
    let x_max = t.samples.last().map_or(1.0, |s| (s.event as f64).max(1.0));
    let mem = memory_series(t);
    let ratio = ratio_series(t);
    let (chart, legend) = top.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let memory = Panel {
        title: "Memory over the run",
        y_desc: "pages (4 KiB)",
        x_max,
        y_max: y_top(&mem, 1.08),
        step_labels: true,
    };
    memory.draw(&chart, t, &mem)?;
    draw_legend(&legend, &mem, 0)?;
    let (chart, legend) = bottom.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let panel = Panel {
        title: "Compression ratio",
        y_desc: "ratio (x)",
        x_max,
        y_max: y_top(&ratio, 1.15),
        step_labels: false,
    };
    panel.draw(&chart, t, &ratio)?;
    draw_legend(&legend, &ratio, 0)?;
    Ok(())
}

/// The colour of series `i` of a panel.
fn color(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// The legend: one line per series (a colour swatch and the label).
fn draw_legend(area: &Area<'_>, series: &[Series], first_color: usize) -> DrawResult {
    let style = ("sans-serif", 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, s) in series.iter().enumerate() {
        let y = 60 + 20 * i as i32;
        area.draw(&Rectangle::new(
            [(8, y - 5), (26, y + 5)],
            color(first_color + i).filled(),
        ))?;
        area.draw(&Text::new(s.label.clone(), (34, y), style.clone()))?;
    }
    Ok(())
}

/// A step's label for the x axis: the scenario's label, or the start of
/// what the step did (`alloc db-cache`).
fn short_label(label: &str) -> String {
    let cut = [" = ", " ("]
        .iter()
        .filter_map(|p| label.find(p))
        .min()
        .unwrap_or(label.len());
    label[..cut].to_string()
}

struct Panel<'a> {
    title: &'a str,
    y_desc: &'a str,
    x_max: f64,
    y_max: f64,
    step_labels: bool,
}

impl Panel<'_> {
    fn draw(&self, area: &Area<'_>, t: &Timeline, series: &[Series]) -> DrawResult {
        let (x_max, y_max) = (self.x_max, self.y_max);
        let mut chart = ChartBuilder::on(area)
            .caption(self.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("simulated events (pages touched by the steps)")
            .y_desc(self.y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 100.0 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.1}")
                }
            })
            .draw()?;
        // Step starts: a thin bar at each boundary, labelled in the memory
        // panel. Steps that touch no page (free, reclaim) start where the
        // next one does: their labels are moved apart.
        let plot_px = f64::from(area.dim_in_pixel().0.saturating_sub(100).max(1));
        let min_dx = x_max * 14.0 / plot_px;
        let mut last_x = f64::NEG_INFINITY;
        for s in &t.steps {
            let x = s.start as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, 0.0), (x + x_max / 1500.0, y_max)],
                BLACK.mix(0.3).filled(),
            )))?;
            if self.step_labels {
                let lx = (x + min_dx * 0.7).max(last_x + min_dx);
                last_x = lx;
                chart.draw_series(std::iter::once(Text::new(
                    format!("{} {}", s.index, short_label(&s.label)),
                    (lx, y_max * 0.99),
                    ("sans-serif", 12)
                        .into_font()
                        .transform(FontTransform::Rotate90)
                        .color(&BLACK.mix(0.75)),
                )))?;
            }
        }
        for (i, s) in series.iter().enumerate() {
            let style = color(i).stroke_width(SERIES_WIDTH);
            chart.draw_series(LineSeries::new(s.points.iter().copied(), style))?;
        }
        Ok(())
    }
}

/// Writes the `--plot` SVG and the `--trace` CSV of a run, when asked.
/// The error names the file.
pub fn write_outputs(
    t: &Timeline,
    scenario: &str,
    plot: Option<&std::path::Path>,
    trace: Option<&std::path::Path>,
) -> Result<(), String> {
    if let Some(p) = plot {
        let svg = svg(t, scenario)?;
        std::fs::write(p, svg).map_err(|e| format!("--plot {}: {e}", p.display()))?;
    }
    if let Some(p) = trace {
        std::fs::write(p, t.csv()).map_err(|e| format!("--trace {}: {e}", p.display()))?;
    }
    Ok(())
}
