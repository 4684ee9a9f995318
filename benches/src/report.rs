//! The Markdown report.

use std::fmt::Write;

use crate::stats::Summary;

/// How a workload's samples are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Latency in nanoseconds per sample; lower is better.
    Latency,
    /// Nanoseconds per transfer of `bytes`; shown as GiB/s, higher is better.
    Bandwidth { bytes: usize },
}

/// One row: a workload measured on both sides.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub unit: Unit,
    pub native: Summary,
    pub virt: Summary,
}

impl Row {
    /// Virtualized cost over native cost at the median (1.0 = native speed).
    pub fn ratio(&self) -> f64 {
        self.virt.p50 / self.native.p50
    }
}

fn gib_s(bytes: usize, ns: f64) -> f64 {
    bytes as f64 / ns * 1e9 / f64::from(1u32 << 30)
}

/// Renders rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | native p50 | native p99 | virtio-compute p50 | virtio-compute p99 | virt/native |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let cell = |s: &Summary, v: f64| match r.unit {
            Unit::Latency => format!("{:.2} µs", v / 1e3),
            Unit::Bandwidth { bytes } => {
                let _ = s;
                format!("{:.2} GiB/s", gib_s(bytes, v))
            }
        };
        // For bandwidth, p99 of time is the slow tail: show it as the low rate.
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2}× {} |",
            r.name,
            cell(&r.native, r.native.p50),
            cell(&r.native, r.native.p99),
            cell(&r.virt, r.virt.p50),
            cell(&r.virt, r.virt.p99),
            match r.unit {
                Unit::Latency => r.ratio(),
                Unit::Bandwidth { .. } => 1.0 / r.ratio(),
            },
            match r.unit {
                Unit::Latency => "time",
                Unit::Bandwidth { .. } => "bandwidth",
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    #[test]
    fn bandwidth_ratio_is_inverted_time_ratio() {
        let row = Row {
            name: "write".into(),
            unit: Unit::Bandwidth { bytes: 1 << 30 },
            native: summarize(&[1e9]),
            virt: summarize(&[2e9]),
        };
        let md = markdown(&[row]);
        assert!(
            md.contains("| write | 1.00 GiB/s | 1.00 GiB/s | 0.50 GiB/s"),
            "{md}"
        );
        assert!(md.contains("0.50× bandwidth"), "{md}");
    }
}
