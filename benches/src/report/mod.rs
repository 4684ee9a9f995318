//! Results: every sample with its summary, the ratios, the geometric means,
//! where the run stands against the performance targets (`targets`), and
//! the machine. Rendered as a Markdown table (`markdown`), JSON (serde)
//! and an SVG plot (`plot`).

pub mod markdown;
pub mod plot;
pub mod targets;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::api::Api;
use crate::ipc::{Measurement, RuntimeInfo};
use crate::machine::Machine;
use crate::runner::Outcome;
use crate::stats::{geomean, summarize, Summary};
use crate::workload::{Case, Unit, FAMILIES};

pub use targets::{TargetCheck, GEOMEAN_TARGET_CPU, GEOMEAN_TARGET_GPU};

/// One side of one case.
#[derive(Clone, Debug, Serialize)]
pub struct SideResult {
    pub summary: Summary,
    pub samples_ns: Vec<f64>,
    /// Secondary per-run figures (see `ipc::Measurement::extra`).
    pub extra: BTreeMap<String, Vec<f64>>,
}

impl From<Measurement> for SideResult {
    fn from(m: Measurement) -> SideResult {
        SideResult {
            summary: summarize(&m.samples_ns),
            samples_ns: m.samples_ns,
            extra: m.extra,
        }
    }
}

/// One case measured on both sides.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub family: &'static str,
    pub case: Case,
    pub unit: Unit,
    pub in_geomean: bool,
    pub native: SideResult,
    pub virt: SideResult,
    /// Virtualized over native median time: 1.0 is native speed, above is
    /// slower. For a bandwidth, the virtualized bandwidth is 1/ratio of
    /// native.
    pub ratio: f64,
}

/// Geometric means of the ratios.
#[derive(Clone, Debug, Serialize)]
pub struct Geomeans {
    /// Over the thesis workloads, each weighed once: the mean of each
    /// family's own geometric mean. The headline figure.
    pub workloads: f64,
    /// Each thesis family's geometric mean over its rows.
    pub per_workload: Vec<(String, f64)>,
    /// Over every thesis row (families with many sizes weigh more).
    pub rows: f64,
    pub n_rows: usize,
}

/// Everything a run produced; serialized as the JSON file.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub harness: String,
    pub command: Vec<String>,
    pub date_utc: String,
    pub api: Api,
    pub quick: bool,
    pub rounds: usize,
    pub endpoint: String,
    pub machine: Machine,
    pub native_runtime: RuntimeInfo,
    pub virtual_runtime: RuntimeInfo,
    pub rows: Vec<Row>,
    pub geomean: Geomeans,
    pub targets: Vec<TargetCheck>,
}

pub(crate) fn geomeans(rows: &[Row]) -> Geomeans {
    let thesis: Vec<&Row> = rows.iter().filter(|r| r.in_geomean).collect();
    let per_workload: Vec<(String, f64)> = FAMILIES
        .iter()
        .filter_map(|f| {
            let r: Vec<f64> = thesis
                .iter()
                .filter(|r| r.family == *f)
                .map(|r| r.ratio)
                .collect();
            (!r.is_empty()).then(|| (f.to_string(), geomean(&r)))
        })
        .collect();
    let fam: Vec<f64> = per_workload.iter().map(|(_, g)| *g).collect();
    let all: Vec<f64> = thesis.iter().map(|r| r.ratio).collect();
    Geomeans {
        workloads: geomean(&fam),
        per_workload,
        rows: geomean(&all),
        n_rows: all.len(),
    }
}

impl Results {
    /// Assembles the results of a finished run.
    pub fn new(
        outcome: Outcome,
        api: Api,
        quick: bool,
        rounds: usize,
        machine: Machine,
        date_utc: String,
    ) -> Results {
        let rows: Vec<Row> = outcome
            .measurements
            .into_iter()
            .map(|(case, n, v)| {
                let (native, virt) = (SideResult::from(n), SideResult::from(v));
                Row {
                    name: case.to_string(),
                    family: case.family(),
                    unit: case.unit(),
                    in_geomean: case.in_geomean(),
                    ratio: virt.summary.median / native.summary.median,
                    case,
                    native,
                    virt,
                }
            })
            .collect();
        let geomean = geomeans(&rows);
        let gpu = outcome.native_runtime.device_type.contains("GPU");
        let targets = targets::judge(&rows, &geomean, api, gpu);
        Results {
            harness: format!("vcompute-bench {}", env!("CARGO_PKG_VERSION")),
            command: std::env::args().collect(),
            date_utc,
            api,
            quick,
            rounds,
            endpoint: outcome.endpoint,
            machine,
            native_runtime: outcome.native_runtime,
            virtual_runtime: outcome.virtual_runtime,
            rows,
            geomean,
            targets,
        }
    }

    /// Writes the JSON file.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text + "\n")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::workload::{Direction, HostMem};

    /// A row whose samples are all `native` and `virt` nanoseconds.
    pub fn row(case: Case, native: f64, virt: f64) -> Row {
        let m = |ns: f64| {
            SideResult::from(Measurement {
                samples_ns: vec![ns; 5],
                extra: BTreeMap::new(),
            })
        };
        Row {
            name: case.to_string(),
            family: case.family(),
            unit: case.unit(),
            in_geomean: case.in_geomean(),
            ratio: virt / native,
            case,
            native: m(native),
            virt: m(virt),
        }
    }

    pub fn bw(dir: Direction, bytes: usize, native: f64, virt: f64) -> Row {
        let mem = (dir != Direction::D2D).then_some(HostMem::Pageable);
        row(Case::Bandwidth { dir, mem, bytes }, native, virt)
    }

    fn results(rows: Vec<(Case, f64, f64)>, quick: bool) -> Results {
        let m = |ns: f64| Measurement {
            samples_ns: vec![ns, ns * 1.1, ns * 0.9],
            extra: BTreeMap::new(),
        };
        let outcome = Outcome {
            native_runtime: RuntimeInfo {
                api: "OpenCL".into(),
                device_type: "CPU".into(),
                ..RuntimeInfo::default()
            },
            virtual_runtime: RuntimeInfo::default(),
            endpoint: "vhost-user:/x".into(),
            measurements: rows.into_iter().map(|(c, n, v)| (c, m(n), m(v))).collect(),
        };
        Results::new(
            outcome,
            Api::OpenCl,
            quick,
            1,
            Machine::default(),
            "now".into(),
        )
    }

    #[test]
    fn reports_render_for_mixed_and_micro_only_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mixed = results(
            vec![
                (Case::VectorAdd { n: 128 }, 100.0, 110.0),
                (
                    Case::Bandwidth {
                        dir: Direction::H2D,
                        mem: Some(HostMem::HostAlloc),
                        bytes: 16 << 20,
                    },
                    1e6,
                    1e6,
                ),
                (Case::NullSync, 40.0, 1000.0),
            ],
            false,
        );
        let md = markdown::render(&mixed);
        assert!(
            md.contains("| vectorAdd 128 | 100 ns | 90 ns–110 ns | 110 ns |"),
            "{md}"
        );
        assert!(
            md.contains("**Geometric mean of virt/native time: 1.049** over 2"),
            "{md}"
        );
        assert!(
            md.contains("| null sync round trip | 40 ns | 44 ns | 1.00 µs | 1.10 µs | 25.00× |"),
            "{md}"
        );
        assert!(md.contains("| met |"), "{md}");
        let svg = dir.path().join("mixed.svg");
        plot::write_svg(&mixed, &svg).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("vectorAdd 128"),
            "{text}"
        );
        assert!(text.contains("bandwidthTest H2D"));
        let json = dir.path().join("r.json");
        mixed.write_json(&json).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["rows"][0]["native"]["samples_ns"][1], 110.0);
        assert_eq!(v["rows"][0]["case"]["workload"], "vector_add");

        let micro = results(vec![(Case::NullSync, 40.0, 1000.0)], true);
        let md = markdown::render(&micro);
        assert!(md.contains("not judged (quick run)"), "{md}");
        assert!(!md.contains("Geometric mean"), "{md}");
        let svg = dir.path().join("micro.svg");
        plot::write_svg(&micro, &svg).unwrap();
        assert!(std::fs::read_to_string(&svg)
            .unwrap()
            .contains("null sync round trip"));
    }

    #[test]
    fn each_workload_weighs_once_and_micro_not_at_all() {
        let rows = vec![
            row(Case::VectorAdd { n: 128 }, 100.0, 200.0),
            row(Case::VectorAdd { n: 256 }, 100.0, 200.0),
            row(Case::MatrixMul { n: 128 }, 100.0, 50.0),
            row(Case::NullSync, 40.0, 4000.0),
        ];
        let g = geomeans(&rows);
        assert!((g.workloads - 1.0).abs() < 1e-12, "{g:?}");
        assert_eq!(g.n_rows, 3);
        assert!((g.rows - 2f64.powf(1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(g.per_workload.len(), 2);
    }
}
