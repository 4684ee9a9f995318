//! The SVG plot: a bar chart of virt/native time per thesis case, and
//! bandwidth versus transfer size, native and virtualized, per direction.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::markdown::gib_s;
use super::{Results, Row, GEOMEAN_TARGET_CPU, GEOMEAN_TARGET_GPU};
use crate::workload::{Case, Direction, HostMem, Unit, FAMILIES};

/// Plot failures.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {detail}")]
pub struct PlotError {
    path: String,
    detail: String,
}

const WIDTH: u32 = 1200;
const BAR_ROW_PX: u32 = 18;
const BANDWIDTH_PX: u32 = 380;

fn family_color(family: &str) -> RGBColor {
    let i = FAMILIES.iter().position(|f| *f == family).unwrap_or(0);
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    palette[i % palette.len()]
}

fn size_label(bytes: f64) -> String {
    let b = bytes.round() as u64;
    if b >= 1 << 20 {
        format!("{}M", b >> 20)
    } else if b >= 1 << 10 {
        format!("{}K", b >> 10)
    } else {
        format!("{b}")
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_ratios(area: &Area, rows: &[&Row], target: f64) -> DrawResult {
    let n = rows.len() as i32;
    let max = rows.iter().map(|r| r.ratio).fold(1.2f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "virtio-compute / native time per case (1.0 = native speed, lower is better)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(330)
        .build_cartesian_2d(0f64..max, (0..n).into_segmented())?;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => rows
            .get((n - 1 - i) as usize)
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&label)
        .x_desc("virt/native")
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        let y = n - 1 - i as i32;
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(y)),
                (r.ratio, SegmentValue::Exact(y + 1)),
            ],
            family_color(r.family).filled(),
        );
        bar.set_margin(2, 2, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        Text::new(
            format!("{:.2}", r.ratio),
            (r.ratio, SegmentValue::CenterOf(n - 1 - i as i32)),
            ("sans-serif", 12),
        )
    }))?;
    for (x, color) in [(1.0, BLACK), (target, RED)] {
        chart.draw_series(LineSeries::new(
            [(x, SegmentValue::Exact(0)), (x, SegmentValue::Last)],
            color.stroke_width(1),
        ))?;
    }
    Ok(())
}

/// (log2 bytes, GiB/s at the median) for the bandwidth rows matching.
fn curve(rows: &[Row], dir: Direction, mem: Option<HostMem>, virt: bool) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| match (r.case.clone(), r.unit) {
            (Case::Bandwidth { dir: d, mem: m, .. }, Unit::Bytes(b)) if d == dir && m == mem => {
                let s = if virt { &r.virt } else { &r.native };
                Some(((b as f64).log2(), gib_s(b, s.summary.median)))
            }
            _ => None,
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// Colour of a bandwidth curve: blue shades native, orange shades
/// virtualized; host-allocated memory is drawn dashed in a darker shade.
fn curve_color(mem: Option<HostMem>, virt: bool) -> RGBColor {
    match (virt, mem == Some(HostMem::HostAlloc)) {
        (false, false) => RGBColor(31, 119, 180),
        (false, true) => RGBColor(17, 60, 110),
        (true, false) => RGBColor(255, 127, 14),
        (true, true) => RGBColor(190, 70, 0),
    }
}

fn draw_bandwidth(area: &Area, rows: &[Row], dir: Direction) -> DrawResult {
    let mems: &[Option<HostMem>] = match dir {
        Direction::D2D => &[None],
        _ => &[Some(HostMem::Pageable), Some(HostMem::HostAlloc)],
    };
    let mut series = Vec::new();
    for &mem in mems {
        for virt in [false, true] {
            let pts = curve(rows, dir, mem, virt);
            if !pts.is_empty() {
                series.push((mem, virt, pts));
            }
        }
    }
    if series.is_empty() {
        return Ok(());
    }
    let all = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut lo, mut hi, mut top) = (f64::MAX, f64::MIN, 0f64);
    for &(x, y) in all {
        lo = lo.min(x);
        hi = hi.max(x);
        top = top.max(y);
    }
    // Whole powers of two on the axis, half a step of room either side.
    let (lo, hi) = (lo.floor() - 0.5, hi.ceil() + 0.5);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("bandwidthTest {dir:?}"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0f64..top * 1.15)?;
    chart
        .configure_mesh()
        .x_labels(((hi - lo) as usize).clamp(2, 12))
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                size_label(v.exp2())
            } else {
                String::new()
            }
        })
        .x_desc("transfer size (bytes, log scale)")
        .y_desc("GiB/s")
        .draw()?;
    for (mem, virt, pts) in series {
        let color = curve_color(mem, virt);
        let style = color.stroke_width(2);
        let name = format!(
            "{}{}",
            if virt { "virtio-compute" } else { "native" },
            match mem {
                Some(HostMem::Pageable) => " pageable",
                Some(HostMem::HostAlloc) => " host-alloc",
                None => "",
            }
        );
        let legend = move |(x, y): (i32, i32)| PathElement::new([(x, y), (x + 20, y)], style);
        if mem == Some(HostMem::HostAlloc) {
            chart
                .draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style))?
                .label(name)
                .legend(legend);
        } else {
            chart
                .draw_series(LineSeries::new(pts.clone(), style))?
                .label(name)
                .legend(legend);
        }
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Draws the plot for `r` into `path` (SVG).
pub fn write_svg(r: &Results, path: &Path) -> Result<(), PlotError> {
    // The thesis cases; a run of micro-benchmarks alone plots those.
    let mut thesis: Vec<&Row> = r.rows.iter().filter(|x| x.in_geomean).collect();
    if thesis.is_empty() {
        thesis = r.rows.iter().collect();
    }
    let has_bw = r.rows.iter().any(|x| x.family == "bandwidthTest");
    let bar_h = if thesis.is_empty() {
        0
    } else {
        80 + BAR_ROW_PX * thesis.len() as u32
    };
    let bw_h = if has_bw { BANDWIDTH_PX } else { 0 };
    let fail = |detail: String| PlotError {
        path: path.display().to_string(),
        detail,
    };
    if bar_h + bw_h == 0 {
        return Err(fail("the run measured nothing".into()));
    }
    let root = SVGBackend::new(path, (WIDTH, bar_h + bw_h)).into_drawing_area();
    let drawn = (|| -> DrawResult {
        root.fill(&WHITE)?;
        let (top, bottom) = root.split_vertically(bar_h);
        if !thesis.is_empty() {
            let target = if r.native_runtime.device_type.contains("GPU") {
                GEOMEAN_TARGET_GPU
            } else {
                GEOMEAN_TARGET_CPU
            };
            draw_ratios(&top, &thesis, target)?;
        }
        if has_bw {
            let panels = bottom.split_evenly((1, 3));
            for (area, dir) in panels
                .iter()
                .zip([Direction::H2D, Direction::D2H, Direction::D2D])
            {
                draw_bandwidth(area, &r.rows, dir)?;
            }
        }
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{bw, row};

    #[test]
    fn curves_pick_their_direction_and_memory_in_size_order() {
        let rows = vec![
            bw(Direction::H2D, 16 << 20, 1e7, 2e7),
            bw(Direction::H2D, 1 << 20, 1e6, 1e6),
            bw(Direction::D2H, 1 << 20, 1e6, 1e6),
            row(Case::NullSync, 1.0, 2.0),
        ];
        let c = curve(&rows, Direction::H2D, Some(HostMem::Pageable), true);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, 20.0);
        assert!((c[1].1 - gib_s(16 << 20, 2e7)).abs() < 1e-9);
        assert!(curve(&rows, Direction::D2D, None, false).is_empty());
        assert_eq!(size_label(65536.0), "64K");
    }
}
