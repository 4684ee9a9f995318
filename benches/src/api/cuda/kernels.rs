//! The CUDA C sources, the signature of every kernel in them, and the
//! packing of launch arguments against those signatures. `cuLaunchKernel`
//! takes an array of pointers to arguments whose sizes the caller must get
//! right; every launch here is packed through [`Args`], which checks each
//! argument against the kernel's declared parameters, and a test compiles
//! the sources with NVRTC and checks the declarations against the PTX.

use std::ffi::c_void;

/// A kernel parameter, as the CUDA C source declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// A device pointer (`T *`): a `CUdeviceptr`, 8 bytes.
    Ptr,
    /// `unsigned int`.
    U32,
    /// `int`.
    I32,
    /// `float`.
    F32,
}

impl Param {
    /// Size of the argument in bytes.
    pub fn size(self) -> usize {
        match self {
            Param::Ptr => 8,
            Param::U32 | Param::I32 | Param::F32 => 4,
        }
    }
}

/// One `extern "C" __global__` function.
#[derive(Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub params: &'static [Param],
}

/// One CUDA C source file: compiled once per process into one module.
#[derive(Debug)]
pub struct Source {
    /// Names the module (and the program in NVRTC's messages).
    pub name: &'static str,
    pub text: &'static str,
    /// `-D` definitions the source needs.
    pub defines: &'static [(&'static str, usize)],
    pub kernels: &'static [Kernel],
    /// `__constant__`/`__device__` globals the host sets, with their sizes.
    pub globals: &'static [(&'static str, usize)],
}

impl Source {
    /// The kernel called `name`.
    pub fn kernel(&'static self, name: &str) -> Option<&'static Kernel> {
        self.kernels.iter().find(|k| k.name == name)
    }
}

use Param::{Ptr, F32, I32, U32};

/// Threads per block of the one-dimensional kernels.
pub const BLOCK: u32 = 256;

pub static VECTOR_ADD: Source = Source {
    name: "vector_add",
    text: include_str!("kernels/vector_add.cu"),
    defines: &[],
    kernels: &[Kernel {
        name: "vector_add",
        params: &[Ptr, Ptr, Ptr, U32],
    }],
    globals: &[],
};

pub static MATRIX_MUL: Source = Source {
    name: "matrix_mul",
    text: include_str!("kernels/matrix_mul.cu"),
    defines: &[("TILE", crate::workload::MATRIX_TILE)],
    kernels: &[Kernel {
        name: "matrix_mul",
        params: &[Ptr, Ptr, Ptr, U32],
    }],
    globals: &[],
};

pub static BLACK_SCHOLES: Source = Source {
    name: "black_scholes",
    text: include_str!("kernels/black_scholes.cu"),
    defines: &[],
    kernels: &[Kernel {
        name: "black_scholes",
        params: &[Ptr, Ptr, Ptr, Ptr, Ptr, F32, F32, U32],
    }],
    globals: &[],
};

pub static FWT: Source = Source {
    name: "fwt",
    text: include_str!("kernels/fwt.cu"),
    defines: &[],
    kernels: &[
        Kernel {
            name: "fwt_stage",
            params: &[Ptr, U32, U32],
        },
        Kernel {
            name: "modulate",
            params: &[Ptr, Ptr, F32, U32],
        },
    ],
    globals: &[],
};

/// The convolution filter's global: 17 floats.
pub const CONV_FILTER: &str = "c_filter";

pub static CONVOLUTION: Source = Source {
    name: "convolution",
    text: include_str!("kernels/convolution.cu"),
    defines: &[("RADIUS", crate::reference::CONV_RADIUS)],
    kernels: &[
        Kernel {
            name: "conv_rows",
            params: &[Ptr, Ptr, U32, U32],
        },
        Kernel {
            name: "conv_cols",
            params: &[Ptr, Ptr, U32, U32],
        },
    ],
    globals: &[(CONV_FILTER, (2 * crate::reference::CONV_RADIUS + 1) * 4)],
};

/// Every alignedTypes kernel has this signature.
const COPY: &[Param] = &[Ptr, Ptr, U32];

pub static ALIGNED_TYPES: Source = Source {
    name: "aligned_types",
    text: include_str!("kernels/aligned_types.cu"),
    defines: &[],
    kernels: &[
        Kernel {
            name: "copy_u8",
            params: COPY,
        },
        Kernel {
            name: "copy_u16",
            params: COPY,
        },
        Kernel {
            name: "copy_rgba8",
            params: COPY,
        },
        Kernel {
            name: "copy_u32",
            params: COPY,
        },
        Kernel {
            name: "copy_la32",
            params: COPY,
        },
        Kernel {
            name: "copy_rgb32",
            params: COPY,
        },
        Kernel {
            name: "copy_rgba32",
            params: COPY,
        },
        Kernel {
            name: "copy_rgba32_2",
            params: COPY,
        },
    ],
    globals: &[],
};

pub static TIMING: Source = Source {
    name: "timing",
    text: include_str!("kernels/timing.cu"),
    defines: &[("GROUP", crate::workload::CLOCK_GROUP_SIZE)],
    kernels: &[
        Kernel {
            name: "increment",
            params: &[Ptr, I32, U32],
        },
        Kernel {
            name: "group_sum",
            params: &[Ptr, Ptr, Ptr],
        },
        Kernel {
            name: "tick",
            params: &[Ptr],
        },
    ],
    globals: &[],
};

/// Every source, for the compile check.
pub static ALL: [&Source; 7] = [
    &VECTOR_ADD,
    &MATRIX_MUL,
    &BLACK_SCHOLES,
    &FWT,
    &CONVOLUTION,
    &ALIGNED_TYPES,
    &TIMING,
];

/// An argument that does not fit the kernel's signature.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("{kernel}: argument {index} is {given:?}, the kernel declares {declared:?}")]
    Kind {
        kernel: &'static str,
        index: usize,
        given: Param,
        declared: Param,
    },
    #[error("{kernel}: {given} arguments, the kernel declares {declared}")]
    Count {
        kernel: &'static str,
        given: usize,
        declared: usize,
    },
}

/// Launch arguments being packed for one kernel, checked as they come.
#[derive(Debug)]
pub struct Args {
    kernel: &'static Kernel,
    /// One 8-byte slot per argument; a 4-byte value sits in the slot's
    /// first bytes (the host is little-endian, as CUDA hosts are).
    slots: Vec<u64>,
    error: Option<ArgError>,
}

impl Args {
    pub fn new(kernel: &'static Kernel) -> Args {
        Args {
            kernel,
            slots: Vec::with_capacity(kernel.params.len()),
            error: None,
        }
    }

    fn push(mut self, given: Param, bits: u64) -> Args {
        let index = self.slots.len();
        match self.kernel.params.get(index) {
            Some(&declared) if declared == given => {}
            Some(&declared) => {
                self.error.get_or_insert(ArgError::Kind {
                    kernel: self.kernel.name,
                    index,
                    given,
                    declared,
                });
            }
            None => {
                self.error.get_or_insert(ArgError::Count {
                    kernel: self.kernel.name,
                    given: index + 1,
                    declared: self.kernel.params.len(),
                });
            }
        }
        self.slots.push(bits);
        self
    }

    /// A device pointer.
    pub fn ptr(self, dptr: u64) -> Args {
        self.push(Ptr, dptr)
    }

    pub fn u32(self, v: u32) -> Args {
        self.push(U32, u64::from(v))
    }

    pub fn i32(self, v: i32) -> Args {
        self.push(I32, u64::from(v as u32))
    }

    pub fn f32(self, v: f32) -> Args {
        self.push(F32, u64::from(v.to_bits()))
    }

    /// The packed arguments, if they match the signature in number and kind.
    pub fn finish(self) -> Result<Packed, ArgError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.slots.len() != self.kernel.params.len() {
            return Err(ArgError::Count {
                kernel: self.kernel.name,
                given: self.slots.len(),
                declared: self.kernel.params.len(),
            });
        }
        let mut slots = self.slots.into_boxed_slice();
        // The slots live on the heap, so these pointers stay valid for as
        // long as `Packed` keeps the box, wherever `Packed` moves.
        let pointers = slots
            .iter_mut()
            .map(|s| std::ptr::from_mut(s).cast::<c_void>())
            .collect();
        Ok(Packed {
            kernel: self.kernel,
            _slots: slots,
            pointers,
        })
    }
}

/// Arguments ready for `cuLaunchKernel`'s `kernelParams`.
#[derive(Debug)]
pub struct Packed {
    pub kernel: &'static Kernel,
    _slots: Box<[u64]>,
    pointers: Vec<*mut c_void>,
}

impl Packed {
    /// The `void **kernelParams` array: one pointer per argument.
    pub fn params(&mut self) -> &mut [*mut c_void] {
        &mut self.pointers
    }
}

/// The number of blocks of `block` threads that cover `n` items.
pub fn blocks(n: usize, block: u32) -> Option<u32> {
    u32::try_from(n.div_ceil(block as usize)).ok()
}

/// NVRTC options for `src` targeting `arch` (e.g. `compute_90`).
pub fn options(src: &Source, arch: &str) -> Vec<String> {
    let mut o = vec![format!("--gpu-architecture={arch}")];
    o.extend(src.defines.iter().map(|(k, v)| format!("-D{k}={v}")));
    o
}

/// `(name, parameter sizes)` of every `.entry` in PTX text.
pub fn ptx_entries(ptx: &str) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut rest = ptx;
    while let Some(at) = rest.find(".entry ") {
        rest = &rest[at + ".entry ".len()..];
        let Some(open) = rest.find('(') else { break };
        let name = rest[..open].trim().to_string();
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let list = &rest[open + 1..open + close];
        let sizes = list
            .split(',')
            .filter(|p| p.contains(".param"))
            .map(ptx_param_size)
            .collect();
        out.push((name, sizes));
        rest = &rest[open + close..];
    }
    out
}

/// Size of one PTX `.param` declaration: `.param .u64 x`, or an array of
/// bytes (`.param .align 4 .b8 x[12]`).
fn ptx_param_size(decl: &str) -> usize {
    if let (Some(l), Some(r)) = (decl.find('['), decl.find(']')) {
        let count: usize = decl[l + 1..r].trim().parse().unwrap_or(0);
        let elem = if decl.contains(".b8") || decl.contains(".u8") {
            1
        } else {
            0
        };
        return count * elem;
    }
    for (ty, size) in [("8 ", 1), ("16 ", 2), ("32 ", 4), ("64 ", 8)] {
        if [".u", ".s", ".b", ".f"]
            .iter()
            .any(|p| decl.contains(&format!("{p}{ty}")))
        {
            return size;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    static K: Kernel = Kernel {
        name: "k",
        params: &[Ptr, F32, U32, I32],
    };

    #[test]
    fn packed_pointers_point_at_each_value_in_order() {
        let mut p = Args::new(&K)
            .ptr(0x7f00_dead_beef)
            .f32(1.5)
            .u32(7)
            .i32(-2)
            .finish()
            .unwrap();
        let ptrs = p.params().to_vec();
        assert_eq!(ptrs.len(), 4);
        // SAFETY: each pointer points at a live slot of the right size.
        unsafe {
            assert_eq!(*ptrs[0].cast::<u64>(), 0x7f00_dead_beef);
            assert_eq!(*ptrs[1].cast::<f32>(), 1.5);
            assert_eq!(*ptrs[2].cast::<u32>(), 7);
            assert_eq!(*ptrs[3].cast::<i32>(), -2);
        }
        // Moving the packed arguments keeps them valid.
        let mut moved = Some(p);
        let again = moved.as_mut().unwrap().params().to_vec();
        assert_eq!(again, ptrs);
    }

    #[test]
    fn wrong_kinds_and_counts_are_refused_before_launch() {
        let e = Args::new(&K).ptr(1).u32(2).finish().unwrap_err();
        assert_eq!(
            e,
            ArgError::Kind {
                kernel: "k",
                index: 1,
                given: U32,
                declared: F32
            }
        );
        let e = Args::new(&K).ptr(1).f32(2.0).finish().unwrap_err();
        assert_eq!(e.to_string(), "k: 2 arguments, the kernel declares 4");
        let e = Args::new(&K)
            .ptr(1)
            .f32(2.0)
            .u32(3)
            .i32(4)
            .u32(5)
            .finish()
            .unwrap_err();
        assert_eq!(
            e,
            ArgError::Count {
                kernel: "k",
                given: 5,
                declared: 4
            }
        );
    }

    #[test]
    fn geometry_and_options() {
        assert_eq!(blocks(1, BLOCK), Some(1));
        assert_eq!(blocks(256, BLOCK), Some(1));
        assert_eq!(blocks(257, BLOCK), Some(2));
        assert_eq!(blocks(16 << 20, BLOCK), Some(65536));
        assert_eq!(blocks(usize::MAX, 1), None);
        assert_eq!(
            options(&TIMING, "compute_90"),
            ["--gpu-architecture=compute_90", "-DGROUP=256"]
        );
        assert_eq!(CONVOLUTION.globals, [("c_filter", 68)]);
    }

    #[test]
    fn the_table_lists_every_kernel_of_each_source() {
        for src in ALL {
            if src.name == "aligned_types" {
                // One `COPY(name, type)` line per kernel, which the macro
                // expands into `copy_name`.
                assert_eq!(src.text.matches("\nCOPY(").count(), src.kernels.len());
                for k in src.kernels {
                    let ty = k.name.trim_start_matches("copy_");
                    assert!(src.text.contains(&format!("\nCOPY({ty}, ")), "{ty}");
                }
                continue;
            }
            assert_eq!(
                src.text.matches("extern \"C\" __global__").count(),
                src.kernels.len(),
                "{}",
                src.name
            );
            for k in src.kernels {
                let decl = format!(" void {}(", k.name);
                assert_eq!(src.text.matches(&decl).count(), 1, "{}: {decl}", src.name);
            }
        }
    }

    #[test]
    fn ptx_signatures_are_read() {
        let ptx = ".visible .entry vector_add(\n\t.param .u64 a,\n\t.param .u64 b,\n\
                   \t.param .u64 c,\n\t.param .u32 n\n)\n{\n}\n\
                   .visible .entry s(\n\t.param .align 4 .b8 s_param_0[12],\n\t.param .f32 x\n)\n{}";
        assert_eq!(
            ptx_entries(ptx),
            [
                ("vector_add".to_string(), vec![8, 8, 8, 4]),
                ("s".to_string(), vec![12, 4]),
            ]
        );
    }
}
