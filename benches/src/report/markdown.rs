//! The Markdown report printed on stdout.

use std::fmt::Write;

use super::{Results, Row};
use crate::stats::{summarize, Summary};
use crate::workload::Unit;

/// A duration in the unit that reads best.
pub fn fmt_time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Bytes per second as GiB/s.
pub fn gib_s(bytes: usize, ns: f64) -> f64 {
    bytes as f64 / ns * 1e9 / f64::from(1u32 << 30)
}

/// One sample value (nanoseconds) as the case's figure of merit.
pub fn fmt_value(unit: Unit, ns: f64) -> String {
    match unit {
        Unit::Time => fmt_time(ns),
        Unit::Bytes(b) => format!("{:.2} GiB/s", gib_s(b, ns)),
        Unit::Ops(n) => format!("{:.0} k/s", n as f64 / ns * 1e6),
    }
}

/// The p10–p90 range, low value first whichever way the unit reads.
fn spread(unit: Unit, s: &Summary) -> String {
    let (a, b) = match unit {
        Unit::Time => (s.p10, s.p90),
        Unit::Bytes(_) | Unit::Ops(_) => (s.p90, s.p10),
    };
    format!("{}–{}", fmt_value(unit, a), fmt_value(unit, b))
}

fn ratio_cell(r: &Row) -> String {
    match r.unit {
        Unit::Time => format!("{:.2}×", r.ratio),
        Unit::Bytes(_) => format!("{:.2}× ({:.2}× bandwidth)", r.ratio, 1.0 / r.ratio),
        Unit::Ops(_) => format!("{:.2}× ({:.2}× rate)", r.ratio, 1.0 / r.ratio),
    }
}

fn extra_median(row: &Row, key: &str) -> Option<(f64, f64)> {
    let n = row.native.extra.get(key)?;
    let v = row.virt.extra.get(key)?;
    Some((summarize(n).median, summarize(v).median))
}

/// The notes under the tables for one row (asyncAPI's issue time, how
/// clock was timed), one line each.
fn notes_of(x: &Row) -> String {
    let mut o = String::new();
    if let Some((n, v)) = extra_median(x, "issue_ns") {
        let _ = writeln!(
            o,
            "- {}: the host spent {} (native) and {} (virtio-compute) inside the \
             calls that issue the work, of {} and {} in all.",
            x.name,
            fmt_time(n),
            fmt_time(v),
            fmt_time(x.native.summary.median),
            fmt_time(x.virt.summary.median)
        );
    }
    if let Some((n, v)) = extra_median(x, "host_wall_ns") {
        let how = match (
            extra_median(x, "device_cycles"),
            extra_median(x, "clock_khz"),
        ) {
            (Some((nc, vc)), Some((khz, _))) => format!(
                "clock64() in the kernel, mean per block: {nc:.0} (native) and {vc:.0} \
                 (virtio-compute) cycles at {:.0} MHz",
                khz / 1e3
            ),
            _ => "event profiling".into(),
        };
        let _ = writeln!(
            o,
            "- {}: device-timed ({how}); host wall time around the \
             launch {} (native) and {} (virtio-compute).",
            x.name,
            fmt_time(n),
            fmt_time(v)
        );
    }
    o
}

/// Renders the whole report.
pub fn render(r: &Results) -> String {
    let mut o = String::new();
    let n = &r.native_runtime;
    let _ = writeln!(o, "## {}: native vs virtio-compute\n", n.api);
    let m = &r.machine;
    let _ = writeln!(
        o,
        "Native: {} ({}), device {} ({}, driver {}). Virtualized: platform \"{}\" \
         through the shim to the daemon at `{}`. {} round(s), sides interleaved; \
         every result verified against a CPU reference. Machine: {}, {} logical \
         CPUs, {} GiB, {}; load average at the end {}. {}.\n",
        n.platform_name,
        n.platform_version,
        n.device_name,
        n.device_type,
        n.driver_version,
        r.virtual_runtime.platform_name,
        r.endpoint,
        r.rounds,
        m.cpu,
        m.logical_cpus,
        m.memory_bytes >> 30,
        m.os,
        m.load_average,
        r.date_utc
    );
    if r.quick {
        let _ = writeln!(
            o,
            "**Quick run**: small sizes and few repetitions, a smoke test of \
             correctness. These numbers are not measurements.\n"
        );
    }
    let (thesis, micro): (Vec<&Row>, Vec<&Row>) = r.rows.iter().partition(|x| x.in_geomean);
    if !thesis.is_empty() {
        let _ = writeln!(
            o,
            "| workload | native median | native p10–p90 | virtio-compute median | \
             virtio-compute p10–p90 | virt/native time |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
        for x in &thesis {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                x.name,
                fmt_value(x.unit, x.native.summary.median),
                spread(x.unit, &x.native.summary),
                fmt_value(x.unit, x.virt.summary.median),
                spread(x.unit, &x.virt.summary),
                ratio_cell(x)
            );
        }
        let g = &r.geomean;
        let _ = writeln!(
            o,
            "\n**Geometric mean of virt/native time: {:.3}** over {} thesis workloads, \
             each weighed once ({:.3} over all {} rows).",
            g.workloads,
            g.per_workload.len(),
            g.rows,
            g.n_rows
        );
        let per: Vec<String> = g
            .per_workload
            .iter()
            .map(|(f, v)| format!("{f} {v:.3}"))
            .collect();
        let _ = writeln!(o, "Per workload: {}.\n", per.join(", "));
    }
    if !micro.is_empty() {
        let _ = writeln!(
            o,
            "| micro-benchmark | native p50 | native p99 | virtio-compute p50 | \
             virtio-compute p99 | virt/native time |"
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
        for x in &micro {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                x.name,
                fmt_value(x.unit, x.native.summary.median),
                fmt_value(x.unit, x.native.summary.p99),
                fmt_value(x.unit, x.virt.summary.median),
                fmt_value(x.unit, x.virt.summary.p99),
                ratio_cell(x)
            );
        }
        let _ = writeln!(o);
    }
    let notes: String = r.rows.iter().map(notes_of).collect();
    if !notes.is_empty() {
        let _ = writeln!(o, "{notes}");
    }
    let _ = writeln!(o, "| target | measured | status |");
    let _ = writeln!(o, "|---|---|---|");
    for t in &r.targets {
        let status = match (t.met, r.quick) {
            (_, true) => "not judged (quick run)",
            (None, false) => "not measured",
            (Some(true), false) => "met",
            (Some(false), false) => "missed",
        };
        let _ = writeln!(o, "| {} | {} | {status} |", t.target, t.measured);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{bw, row};
    use crate::workload::{Case, Direction};

    #[test]
    fn clock_notes_say_how_the_device_timed_itself() {
        let mut r = row(
            Case::Clock {
                groups: 4,
                group_size: 256,
            },
            1000.0,
            1000.0,
        );
        let extra = |k: &str, v: f64| (k.to_string(), vec![v; 3]);
        r.native.extra = [extra("host_wall_ns", 9000.0)].into();
        r.virt.extra = r.native.extra.clone();
        assert!(
            notes_of(&r).contains("device-timed (event profiling)"),
            "{}",
            notes_of(&r)
        );
        for side in [&mut r.native, &mut r.virt] {
            side.extra.extend([
                extra("device_cycles", 1980.0),
                extra("clock_khz", 1_980_000.0),
            ]);
        }
        let n = notes_of(&r);
        assert!(
            n.contains(
                "clock64() in the kernel, mean per block: 1980 (native) and 1980 \
                        (virtio-compute) cycles at 1980 MHz"
            ),
            "{n}"
        );
        assert!(notes_of(&row(Case::NullSync, 1.0, 1.0)).is_empty());
    }

    #[test]
    fn units_read_naturally() {
        assert_eq!(fmt_time(812.0), "812 ns");
        assert_eq!(fmt_time(12_345.0), "12.35 µs");
        assert_eq!(fmt_time(4.5e6), "4.50 ms");
        assert_eq!(fmt_value(Unit::Bytes(1 << 30), 5e8), "2.00 GiB/s");
        assert_eq!(fmt_value(Unit::Ops(1000), 1e6), "1000 k/s");
    }

    #[test]
    fn bandwidth_rows_show_rates_and_both_ratios() {
        let r = bw(Direction::H2D, 1 << 30, 1e9, 2e9);
        assert_eq!(ratio_cell(&r), "2.00× (0.50× bandwidth)");
        assert_eq!(spread(r.unit, &r.native.summary), "1.00 GiB/s–1.00 GiB/s");
        let t = row(Case::MatrixMul { n: 128 }, 1000.0, 1100.0);
        assert_eq!(ratio_cell(&t), "1.10×");
    }
}
