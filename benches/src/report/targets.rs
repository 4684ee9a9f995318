//! Where a run stands against the performance targets the harness is used
//! to judge: the geometric mean and large-transfer bandwidth (for every
//! API), and for CUDA the driver-API targets of the shim: asynchronous
//! launch throughput, the synchronous round trip, and bandwidth from
//! host-allocated and from pageable memory.

use serde::Serialize;

use super::{Geomeans, Row};
use crate::api::Api;
use crate::workload::{Case, HostMem, Unit};

/// Where the run stands against one performance target.
#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    /// `None` when this run cannot judge it (nothing measured at the sizes
    /// the target names).
    pub met: Option<bool>,
}

/// Bandwidth targets count transfers of at least this many bytes…
pub const BANDWIDTH_TARGET_MIN_BYTES: usize = 16 << 20;
/// …which reach at least this fraction of native bandwidth.
pub const BANDWIDTH_TARGET: f64 = 0.9;
/// OpenCL: image writes, reads and sampler kernels on images of at least
/// [`BANDWIDTH_TARGET_MIN_BYTES`] reach this fraction of native.
pub const IMAGE_TARGET: f64 = 0.9;
/// Geometric-mean target on a CPU runtime, and on a GPU.
pub const GEOMEAN_TARGET_CPU: f64 = 1.10;
pub const GEOMEAN_TARGET_GPU: f64 = 1.05;
/// CUDA: asynchronous launches reach at least this fraction of the
/// native launch rate…
pub const LAUNCH_RATE_TARGET: f64 = 0.9;
/// …a synchronous round trip costs at most this much more than native…
pub const SYNC_EXTRA_TARGET_NS: f64 = 5_000.0;
/// …and large transfers from pageable memory reach this fraction of
/// native (from host-allocated memory, [`BANDWIDTH_TARGET`]).
pub const PAGEABLE_BANDWIDTH_TARGET: f64 = 0.8;

/// The lowest virtualized/native rate among `rows` (1/ratio: for a
/// bandwidth or a launch rate, the fraction of native reached), with the
/// row's name.
fn worst_fraction<'a>(rows: impl Iterator<Item = &'a Row>) -> Option<(f64, &'a str)> {
    rows.map(|r| (1.0 / r.ratio, r.name.as_str()))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// A "reach at least `min` of native" target over `rows`.
fn fraction_target<'a>(
    target: String,
    rows: impl Iterator<Item = &'a Row>,
    min: f64,
    none: &str,
) -> TargetCheck {
    let worst = worst_fraction(rows);
    TargetCheck {
        target,
        measured: match worst {
            Some((frac, name)) => format!("lowest {frac:.2}× ({name})"),
            None => none.into(),
        },
        met: worst.map(|(frac, _)| frac >= min),
    }
}

/// Bandwidth rows of at least [`BANDWIDTH_TARGET_MIN_BYTES`] whose host
/// memory `mem` accepts.
fn big_transfers(
    rows: &[Row],
    mem: impl Fn(Option<HostMem>) -> bool,
) -> impl Iterator<Item = &Row> {
    rows.iter().filter(move |r| match (&r.case, r.unit) {
        (Case::Bandwidth { mem: m, .. }, Unit::Bytes(b)) => {
            b >= BANDWIDTH_TARGET_MIN_BYTES && mem(*m)
        }
        _ => false,
    })
}

/// Judges `rows` (with their geometric means `g`) for a run of `api` on a
/// GPU (`gpu`) or a CPU runtime.
pub fn judge(rows: &[Row], g: &Geomeans, api: Api, gpu: bool) -> Vec<TargetCheck> {
    let limit = if gpu {
        GEOMEAN_TARGET_GPU
    } else {
        GEOMEAN_TARGET_CPU
    };
    let mib = BANDWIDTH_TARGET_MIN_BYTES >> 20;
    let mut out = vec![
        TargetCheck {
            target: format!(
                "geometric mean of virt/native over the thesis workloads ≤ {limit:.2} ({})",
                if gpu { "GPU" } else { "CPU" }
            ),
            measured: if g.per_workload.is_empty() {
                "no thesis workload measured".into()
            } else {
                format!("{:.3} over {} workloads", g.workloads, g.per_workload.len())
            },
            met: (!g.per_workload.is_empty()).then_some(g.workloads <= limit),
        },
        fraction_target(
            format!("bandwidthTest at ≥ {mib} MiB: ≥ {BANDWIDTH_TARGET:.1}× native bandwidth"),
            big_transfers(rows, |_| true),
            BANDWIDTH_TARGET,
            "no transfer that large in this run",
        ),
    ];
    if api == Api::OpenCl {
        out.push(fraction_target(
            format!(
                "OpenCL: images at ≥ {mib} MiB (write, read, sampler kernel) ≥ \
                 {IMAGE_TARGET:.1}× native"
            ),
            rows.iter().filter(|r| {
                matches!(r.case, Case::Image { bytes, .. } if bytes >= BANDWIDTH_TARGET_MIN_BYTES)
            }),
            IMAGE_TARGET,
            "no image that large in this run",
        ));
    }
    if api != Api::Cuda {
        return out;
    }
    out.push(fraction_target(
        format!(
            "CUDA: asynchronous empty-kernel launches ≥ {LAUNCH_RATE_TARGET:.1}× the native rate"
        ),
        rows.iter()
            .filter(|r| matches!(r.case, Case::LaunchRate { .. })),
        LAUNCH_RATE_TARGET,
        "no launch-rate case in this run",
    ));
    let sync = rows.iter().find(|r| r.case == Case::NullSync);
    out.push(TargetCheck {
        target: format!(
            "CUDA: cuCtxSynchronize round trip ≤ {:.0} µs above native (p50)",
            SYNC_EXTRA_TARGET_NS / 1e3
        ),
        measured: match sync {
            Some(r) => format!(
                "{:+.2} µs ({:.2} µs vs {:.2} µs)",
                (r.virt.summary.median - r.native.summary.median) / 1e3,
                r.virt.summary.median / 1e3,
                r.native.summary.median / 1e3
            ),
            None => "no null round trip in this run".into(),
        },
        met: sync.map(|r| r.virt.summary.median - r.native.summary.median <= SYNC_EXTRA_TARGET_NS),
    });
    out.push(fraction_target(
        format!(
            "CUDA: H2D/D2H from host-allocated memory at ≥ {mib} MiB ≥ {BANDWIDTH_TARGET:.1}× \
             native pinned bandwidth"
        ),
        big_transfers(rows, |m| m == Some(HostMem::HostAlloc)),
        BANDWIDTH_TARGET,
        "no host-allocated transfer that large in this run",
    ));
    out.push(fraction_target(
        format!(
            "CUDA: H2D/D2H from pageable memory at ≥ {mib} MiB ≥ \
             {PAGEABLE_BANDWIDTH_TARGET:.1}× native pageable bandwidth"
        ),
        big_transfers(rows, |m| m == Some(HostMem::Pageable)),
        PAGEABLE_BANDWIDTH_TARGET,
        "no pageable transfer that large in this run",
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::geomeans;
    use crate::report::tests::{bw, row};
    use crate::workload::Direction;

    #[test]
    fn targets_judge_only_what_was_measured() {
        let rows = vec![
            bw(Direction::H2D, 1 << 20, 100.0, 300.0),
            bw(Direction::H2D, 16 << 20, 100.0, 105.0),
            bw(Direction::D2H, 64 << 20, 100.0, 125.0),
        ];
        let g = geomeans(&rows);
        let t = judge(&rows, &g, Api::OpenCl, false);
        assert_eq!(t.len(), 3, "no CUDA targets for OpenCL");
        assert_eq!(t[2].met, None, "no image in this run");
        assert_eq!(t[1].met, Some(false));
        assert!(
            t[1].measured
                .contains("0.80× (bandwidthTest D2H pageable 64 MiB)"),
            "{t:?}"
        );
        assert_eq!(t[0].met, Some(false));
        let small = vec![bw(Direction::H2D, 1 << 20, 100.0, 100.0)];
        let t = judge(&small, &geomeans(&small), Api::OpenCl, true);
        assert_eq!(t[1].met, None);
        assert_eq!(t[0].met, Some(true));
        assert!(t[0].target.contains("1.05"));
    }

    #[test]
    fn opencl_images_are_judged_at_sixteen_mebibytes() {
        use crate::workload::ImageOp;
        let image = |op, bytes, n: f64, v: f64| row(Case::Image { op, bytes }, n, v);
        let rows = vec![
            image(ImageOp::Write, 16 << 20, 100.0, 105.0),
            image(ImageOp::Sample, 16 << 20, 100.0, 120.0),
            image(ImageOp::Read, 1 << 20, 100.0, 400.0),
        ];
        let t = judge(&rows, &geomeans(&rows), Api::OpenCl, false);
        let img = t.iter().find(|c| c.target.contains("images")).unwrap();
        assert_eq!(img.met, Some(false));
        assert!(img.measured.contains("image Sample 16 MiB"), "{img:?}");
    }

    #[test]
    fn cuda_runs_are_judged_on_the_driver_api_targets() {
        let host_alloc = |dir, bytes, n: f64, v: f64| {
            row(
                Case::Bandwidth {
                    dir,
                    mem: Some(HostMem::HostAlloc),
                    bytes,
                },
                n,
                v,
            )
        };
        let rows = vec![
            // 4.2 µs above native: met.
            row(Case::NullSync, 3_000.0, 7_200.0),
            // 0.95× the native rate: met.
            row(Case::LaunchRate { launches: 1000 }, 950.0, 1000.0),
            // Pageable at 0.85× (met, ≥ 0.8×) but host-allocated at
            // 0.88× (missed, < 0.9×); small transfers do not count.
            bw(Direction::H2D, 64 << 20, 85.0, 100.0),
            host_alloc(Direction::D2H, 64 << 20, 88.0, 100.0),
            host_alloc(Direction::H2D, 64 << 10, 10.0, 100.0),
        ];
        let t = judge(&rows, &geomeans(&rows), Api::Cuda, true);
        assert_eq!(t.len(), 6, "no image target for CUDA: {t:?}");
        let find = |s: &str| t.iter().find(|c| c.target.contains(s)).unwrap();
        let sync = find("cuCtxSynchronize");
        assert_eq!(sync.met, Some(true));
        assert_eq!(sync.measured, "+4.20 µs (7.20 µs vs 3.00 µs)");
        assert_eq!(find("launches").met, Some(true));
        let pinned = find("host-allocated");
        assert_eq!(pinned.met, Some(false));
        assert!(pinned
            .measured
            .contains("0.88× (bandwidthTest D2H host-alloc 64 MiB)"));
        assert_eq!(find("pageable memory").met, Some(true));
        // The general bandwidth target sees both large rows.
        assert_eq!(t[1].met, Some(false));
        // A run of bandwidth alone cannot judge the micro targets.
        let only_bw = &rows[2..];
        let t = judge(only_bw, &geomeans(only_bw), Api::Cuda, true);
        assert_eq!(t[2].met, None);
        assert_eq!(t[3].met, None);
        assert_eq!(t[3].measured, "no null round trip in this run");
        // Slower than 5 µs above native: missed.
        let slow = vec![row(Case::NullSync, 3_000.0, 9_000.0)];
        let t = judge(&slow, &geomeans(&slow), Api::Cuda, true);
        assert_eq!(t[3].met, Some(false));
    }
}
