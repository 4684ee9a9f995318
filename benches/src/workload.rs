//! The workload catalogue, shared by every API: what each case is, what it
//! is called in reports, how its samples are read and how many a run takes.
//! An API backend (`api::opencl`, `api::cuda`) implements every [`Case`];
//! naming, verification tolerances and reporting stay the same for all.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Direction of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Host to device.
    H2D,
    /// Device to host.
    D2H,
    /// Device to device.
    D2D,
}

/// Where the host side of a transfer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HostMem {
    /// Ordinary process memory (`malloc`).
    Pageable,
    /// Memory the runtime allocated for the host (OpenCL:
    /// `CL_MEM_ALLOC_HOST_PTR` mapped; CUDA: `cuMemAllocHost`).
    HostAlloc,
}

/// What the images workload times on a 2D RGBA8 image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageOp {
    /// A blocking write of the whole image from host memory.
    Write,
    /// A blocking read of the whole image into host memory.
    Read,
    /// A kernel reading every pixel through a sampler into a buffer.
    Sample,
}

/// Width of the images workload's images, in pixels (RGBA8: 4 KiB rows);
/// the height follows from the size.
pub const IMAGE_WIDTH: usize = 1024;

/// Element types of the alignedTypes workload: sizes 1 to 32 bytes, some
/// naturally aligned vector types and some plain structs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlignedType {
    /// `uchar`, 1 byte.
    U8,
    /// `ushort`, 2 bytes.
    U16,
    /// `uchar4`, 4 bytes.
    Rgba8,
    /// `uint`, 4 bytes.
    U32,
    /// `uint2`, 8 bytes aligned to 8.
    La32,
    /// `struct { uint r, g, b; }`, 12 bytes aligned to 4.
    Rgb32,
    /// `uint4`, 16 bytes aligned to 16.
    Rgba32,
    /// `struct { uint4 a, b; }`, 32 bytes aligned to 16.
    Rgba32x2,
}

impl AlignedType {
    /// Every type, in report order.
    pub const ALL: [AlignedType; 8] = [
        AlignedType::U8,
        AlignedType::U16,
        AlignedType::Rgba8,
        AlignedType::U32,
        AlignedType::La32,
        AlignedType::Rgb32,
        AlignedType::Rgba32,
        AlignedType::Rgba32x2,
    ];

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            AlignedType::U8 => 1,
            AlignedType::U16 => 2,
            AlignedType::Rgba8 | AlignedType::U32 => 4,
            AlignedType::La32 => 8,
            AlignedType::Rgb32 => 12,
            AlignedType::Rgba32 => 16,
            AlignedType::Rgba32x2 => 32,
        }
    }

    /// Short name used in kernels and reports.
    pub fn name(self) -> &'static str {
        match self {
            AlignedType::U8 => "u8",
            AlignedType::U16 => "u16",
            AlignedType::Rgba8 => "rgba8",
            AlignedType::U32 => "u32",
            AlignedType::La32 => "la32",
            AlignedType::Rgb32 => "rgb32",
            AlignedType::Rgba32 => "rgba32",
            AlignedType::Rgba32x2 => "rgba32_2",
        }
    }
}

/// One measured case: a workload at one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "snake_case")]
pub enum Case {
    /// `c = a + b` over `n` floats: upload, kernel, download.
    VectorAdd { n: usize },
    /// `C = A·B`, `n`×`n` floats, tiled: upload, kernel, download.
    MatrixMul { n: usize },
    /// European call and put prices for `options` options.
    BlackScholes { options: usize },
    /// Dyadic convolution of 2^`log2_data` floats with a 2^`log2_kernel`
    /// kernel through forward and inverse Walsh-Hadamard transforms.
    FastWalshTransform { log2_data: u32, log2_kernel: u32 },
    /// Separable 17-tap convolution of a `width`×`height` image: a row pass
    /// then a column pass.
    ConvolutionSeparable { width: usize, height: usize },
    /// One transfer of `bytes`; `mem` is `None` for device to device.
    Bandwidth {
        dir: Direction,
        mem: Option<HostMem>,
        bytes: usize,
    },
    /// Non-blocking upload, kernel and download of `n` ints while the host
    /// counts how often it could do other work before they complete.
    AsyncApi { n: usize },
    /// A per-group reduction over `groups`×`group_size` ints, timed by the
    /// device itself.
    Clock { groups: usize, group_size: usize },
    /// A kernel copying `bytes` worth of `ty` elements.
    AlignedTypes { ty: AlignedType, bytes: usize },
    /// A synchronizing call on an idle queue: the null round trip.
    NullSync,
    /// `launches` empty kernels, then one synchronizing call.
    LaunchRate { launches: usize },
    /// One blocking transfer of `bytes` (a few bytes).
    SmallCopy { dir: Direction, bytes: usize },
    /// `op` on a 2D RGBA8 image of `bytes` ([`IMAGE_WIDTH`] pixels wide);
    /// OpenCL only.
    Image { op: ImageOp, bytes: usize },
}

/// How a case's samples (nanoseconds each) read as a figure of merit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Time per sample; lower is better.
    Time,
    /// Each sample moves this many bytes; shown as GiB/s.
    Bytes(usize),
    /// Each sample performs this many operations; shown as operations/s.
    Ops(usize),
}

/// Workload families, in report order: the thesis workloads, then the
/// micro-benchmarks.
pub const FAMILIES: [&str; 11] = [
    "vectorAdd",
    "matrixMul",
    "BlackScholes",
    "fastWalshTransform",
    "convolutionSeparable",
    "bandwidthTest",
    "asyncAPI",
    "clock",
    "alignedTypes",
    "images",
    "micro",
];

fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

impl Case {
    /// The family (thesis workload name, or `micro`).
    pub fn family(&self) -> &'static str {
        match self {
            Case::VectorAdd { .. } => "vectorAdd",
            Case::MatrixMul { .. } => "matrixMul",
            Case::BlackScholes { .. } => "BlackScholes",
            Case::FastWalshTransform { .. } => "fastWalshTransform",
            Case::ConvolutionSeparable { .. } => "convolutionSeparable",
            Case::Bandwidth { .. } => "bandwidthTest",
            Case::AsyncApi { .. } => "asyncAPI",
            Case::Clock { .. } => "clock",
            Case::AlignedTypes { .. } => "alignedTypes",
            Case::Image { .. } => "images",
            Case::NullSync | Case::LaunchRate { .. } | Case::SmallCopy { .. } => "micro",
        }
    }

    /// Whether the case counts towards the geometric mean of ratios: the
    /// thesis workloads do; the micro-benchmarks measure the bare call
    /// path, whose native cost is near zero, so their ratio is large by
    /// construction and says nothing about applications.
    pub fn in_geomean(&self) -> bool {
        !matches!(self.family(), "micro" | "images")
    }

    /// Whether `api` can run the case: images are OpenCL's alone (CUDA
    /// arrays and textures are not forwarded).
    pub fn runs_on(&self, api: crate::api::Api) -> bool {
        !matches!(self, Case::Image { .. }) || api == crate::api::Api::OpenCl
    }

    /// How samples read.
    pub fn unit(&self) -> Unit {
        match *self {
            Case::Bandwidth { bytes, .. } => Unit::Bytes(bytes),
            // Whole elements only.
            Case::AlignedTypes { ty, bytes } => Unit::Bytes(bytes / ty.size() * ty.size()),
            Case::LaunchRate { launches } => Unit::Ops(launches),
            Case::Image { bytes, .. } => Unit::Bytes(bytes),
            // Small copies are about latency, not bandwidth.
            _ => Unit::Time,
        }
    }

    /// Timed samples per round in a full run: enough for a stable median
    /// within a few seconds per case on a two-core CPU.
    pub fn default_reps(&self) -> usize {
        match *self {
            Case::VectorAdd { n } if n <= 1 << 16 => 200,
            Case::VectorAdd { .. } => 20,
            Case::MatrixMul { n } if n <= 256 => 20,
            Case::MatrixMul { n } if n <= 512 => 5,
            // About a second per run on a two-core CPU.
            Case::MatrixMul { .. } => 3,
            Case::BlackScholes { .. }
            | Case::FastWalshTransform { .. }
            | Case::ConvolutionSeparable { .. }
            | Case::AsyncApi { .. } => 10,
            Case::Bandwidth { bytes, .. } if bytes <= 1 << 20 => 50,
            Case::Bandwidth { .. } => 10,
            Case::Clock { .. } => 50,
            Case::AlignedTypes { .. } => 10,
            Case::Image { .. } => 10,
            Case::NullSync => 2000,
            Case::LaunchRate { .. } => 20,
            Case::SmallCopy { .. } => 1000,
        }
    }

    /// Untimed runs before the samples of each round.
    pub fn default_warmup(&self) -> usize {
        match self {
            Case::NullSync | Case::SmallCopy { .. } => 100,
            _ => 1,
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Case::VectorAdd { n } => write!(f, "vectorAdd {n}"),
            Case::MatrixMul { n } => write!(f, "matrixMul {n}"),
            Case::BlackScholes { options } => write!(f, "BlackScholes {options} options"),
            Case::FastWalshTransform { log2_data, .. } => {
                write!(f, "fastWalshTransform 2^{log2_data}")
            }
            Case::ConvolutionSeparable { width, height } => {
                write!(f, "convolutionSeparable {width}x{height}")
            }
            Case::Bandwidth { dir, mem, bytes } => {
                let mem = match mem {
                    Some(HostMem::Pageable) => " pageable",
                    Some(HostMem::HostAlloc) => " host-alloc",
                    None => "",
                };
                write!(f, "bandwidthTest {dir:?}{mem} {}", size_label(bytes))
            }
            Case::AsyncApi { n } => write!(f, "asyncAPI {n} ints"),
            Case::Clock { groups, group_size } => write!(f, "clock {groups}x{group_size}"),
            Case::AlignedTypes { ty, bytes } => {
                write!(
                    f,
                    "alignedTypes {} ({} B) {}",
                    ty.name(),
                    ty.size(),
                    size_label(bytes)
                )
            }
            Case::NullSync => write!(f, "null sync round trip"),
            Case::LaunchRate { launches } => write!(f, "empty-kernel launches x{launches}"),
            Case::SmallCopy { dir, bytes } => write!(f, "small copy {dir:?} {}", size_label(bytes)),
            Case::Image { op, bytes } => write!(f, "image {op:?} {}", size_label(bytes)),
        }
    }
}

/// Sizes a run uses; `--quick` and the size flags pick them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub vector: Vec<usize>,
    pub matrix: Vec<usize>,
    pub bandwidth: Vec<usize>,
    pub black_scholes_options: usize,
    pub fwt_log2: u32,
    pub conv_side: usize,
    pub async_ints: usize,
    pub clock_groups: usize,
    pub aligned_bytes: usize,
    pub image_bytes: usize,
    pub launches: usize,
}

impl Sizes {
    /// A full run: the thesis sizes and larger.
    pub fn full() -> Sizes {
        Sizes {
            vector: vec![128, 256, 512, 1024, 1 << 16, 1 << 20, 1 << 22],
            matrix: vec![128, 256, 512, 1024],
            bandwidth: vec![64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20],
            black_scholes_options: 1 << 22,
            fwt_log2: 21,
            conv_side: 2048,
            async_ints: 1 << 24,
            clock_groups: 1024,
            aligned_bytes: 16 << 20,
            image_bytes: 16 << 20,
            launches: 1000,
        }
    }

    /// A smoke test: every workload, sizes small enough for CI.
    pub fn quick() -> Sizes {
        Sizes {
            vector: vec![128, 1024],
            matrix: vec![128],
            bandwidth: vec![64 << 10, 1 << 20, 4 << 20],
            black_scholes_options: 1 << 14,
            fwt_log2: 14,
            conv_side: 256,
            async_ints: 1 << 16,
            clock_groups: 64,
            aligned_bytes: 256 << 10,
            image_bytes: 256 << 10,
            launches: 100,
        }
    }
}

/// Side of the square tiles matrixMul works in; its sizes are multiples.
pub const MATRIX_TILE: usize = 16;
/// Length of the fastWalshTransform kernel (log2).
pub const FWT_LOG2_KERNEL: u32 = 7;
/// Work-group size of the clock workload's reduction.
pub const CLOCK_GROUP_SIZE: usize = 256;
/// Bytes moved by a small copy.
pub const SMALL_COPY_BYTES: usize = 64;

/// Every case of the given families (all when `families` is empty), in
/// report order.
pub fn catalogue(sizes: &Sizes, families: &[String]) -> Vec<Case> {
    let wanted =
        |f: &str| families.is_empty() || families.iter().any(|w| w.eq_ignore_ascii_case(f));
    let mut cases = Vec::new();
    if wanted("vectorAdd") {
        cases.extend(sizes.vector.iter().map(|&n| Case::VectorAdd { n }));
    }
    if wanted("matrixMul") {
        cases.extend(sizes.matrix.iter().map(|&n| Case::MatrixMul { n }));
    }
    if wanted("BlackScholes") {
        cases.push(Case::BlackScholes {
            options: sizes.black_scholes_options,
        });
    }
    if wanted("fastWalshTransform") {
        cases.push(Case::FastWalshTransform {
            log2_data: sizes.fwt_log2,
            log2_kernel: FWT_LOG2_KERNEL.min(sizes.fwt_log2),
        });
    }
    if wanted("convolutionSeparable") {
        cases.push(Case::ConvolutionSeparable {
            width: sizes.conv_side,
            height: sizes.conv_side,
        });
    }
    if wanted("bandwidthTest") {
        for mem in [HostMem::Pageable, HostMem::HostAlloc] {
            for dir in [Direction::H2D, Direction::D2H] {
                cases.extend(sizes.bandwidth.iter().map(|&bytes| Case::Bandwidth {
                    dir,
                    mem: Some(mem),
                    bytes,
                }));
            }
        }
        cases.extend(sizes.bandwidth.iter().map(|&bytes| Case::Bandwidth {
            dir: Direction::D2D,
            mem: None,
            bytes,
        }));
    }
    if wanted("asyncAPI") {
        cases.push(Case::AsyncApi {
            n: sizes.async_ints,
        });
    }
    if wanted("clock") {
        cases.push(Case::Clock {
            groups: sizes.clock_groups,
            group_size: CLOCK_GROUP_SIZE,
        });
    }
    if wanted("alignedTypes") {
        cases.extend(AlignedType::ALL.iter().map(|&ty| Case::AlignedTypes {
            ty,
            bytes: sizes.aligned_bytes,
        }));
    }
    if wanted("images") {
        for op in [ImageOp::Write, ImageOp::Read, ImageOp::Sample] {
            cases.push(Case::Image {
                op,
                bytes: sizes.image_bytes,
            });
        }
    }
    if wanted("micro") {
        cases.push(Case::NullSync);
        cases.push(Case::LaunchRate {
            launches: sizes.launches,
        });
        for dir in [Direction::H2D, Direction::D2H] {
            cases.push(Case::SmallCopy {
                dir,
                bytes: SMALL_COPY_BYTES,
            });
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_catalogue_covers_every_family_once_in_order() {
        let cases = catalogue(&Sizes::full(), &[]);
        let mut seen: Vec<&str> = cases.iter().map(Case::family).collect();
        seen.dedup();
        assert_eq!(seen, FAMILIES);
        // The thesis sizes are all there.
        for n in [128, 256, 512, 1024] {
            assert!(cases.contains(&Case::VectorAdd { n }));
            assert!(cases.contains(&Case::MatrixMul { n }));
        }
        // Names are unique: they key the report.
        let mut names: Vec<String> = cases.iter().map(ToString::to_string).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn families_filter_case_insensitively() {
        let cases = catalogue(&Sizes::quick(), &["MICRO".into(), "clock".into()]);
        assert!(cases
            .iter()
            .all(|c| matches!(c.family(), "micro" | "clock")));
        assert_eq!(cases.len(), 5);
        assert!(!cases
            .iter()
            .any(|c| c.in_geomean() && c.family() == "micro"));
    }

    #[test]
    fn bandwidth_names_and_units() {
        let c = Case::Bandwidth {
            dir: Direction::H2D,
            mem: Some(HostMem::HostAlloc),
            bytes: 16 << 20,
        };
        assert_eq!(c.to_string(), "bandwidthTest H2D host-alloc 16 MiB");
        assert_eq!(c.unit(), Unit::Bytes(16 << 20));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Case>(&json).unwrap(), c);
    }

    #[test]
    fn images_are_opencl_only_and_outside_the_geomean() {
        let c = Case::Image {
            op: ImageOp::Sample,
            bytes: 16 << 20,
        };
        assert_eq!(c.to_string(), "image Sample 16 MiB");
        assert_eq!(c.unit(), Unit::Bytes(16 << 20));
        assert!(!c.in_geomean());
        assert!(c.runs_on(crate::api::Api::OpenCl));
        assert!(!c.runs_on(crate::api::Api::Cuda));
        assert!(Case::NullSync.runs_on(crate::api::Api::Cuda));
    }
}
