//! Every bound the wire format enforces, each with the reason for its value.
//!
//! Both peers use these: the guest shim to size what it sends, the daemon to
//! reject what exceeds them before allocating anything.

/// Largest encoded message body. Program sources and binaries travel inline,
/// and real-world OpenCL sources (e.g. generated BLAS kernels) stay well below
/// a few MiB; 16 MiB leaves room without letting one message pin much memory.
pub const MAX_BODY_LEN: usize = 16 << 20;

/// Largest request area (the one descriptor holding a chain's concatenated
/// request frames): one maximal body plus room for a full batch of small
/// fire-and-forget frames. The daemon copies the area before decoding it.
pub const MAX_REQUEST_AREA_LEN: usize = MAX_BODY_LEN + (4 << 20);

/// Most frames one virtqueue chain (one batch) may carry. A batch of
/// fire-and-forget calls is flushed long before this; the bound caps the
/// response area the daemon must write (`MAX_FRAMES_PER_CHAIN * HEADER_LEN`).
pub const MAX_FRAMES_PER_CHAIN: usize = 4096;

/// Most bulk segments (in or out) a single frame may name. A frame moves at
/// most a handful of buffers; 16 is generous and keeps chain walking cheap.
pub const MAX_BULK_PER_FRAME: usize = 16;

/// Most descriptors the daemon walks in one chain. Bounds the work a hostile
/// chain can cause before it is rejected.
pub const MAX_DESCRIPTORS_PER_CHAIN: usize = 8192;

/// Largest single transfer (one bulk segment). Bigger copies are split by the
/// shim; the bound keeps one request from holding a queue for too long.
pub const MAX_TRANSFER_LEN: u64 = 1 << 30;

/// Largest value an info query may return inline. Device and program info
/// values are strings or small arrays; build logs are the largest in practice.
pub const MAX_INFO_LEN: u64 = 1 << 20;

/// Largest response body for one frame (info value plus its framing).
pub const MAX_RESPONSE_BODY: usize = MAX_INFO_LEN as usize + 64;

/// Capacity the shim reserves for the response area of one chain: one header
/// per frame plus one full response body (only the final, synchronous frame of
/// a batch returns a large body).
pub const RESPONSE_AREA_LEN: usize = MAX_FRAMES_PER_CHAIN * crate::HEADER_LEN + MAX_RESPONSE_BODY;

/// Most header files one build sends: real kernels' header sets are tens
/// of files (big libraries' OpenCL headers included).
pub const MAX_HEADER_FILES: usize = 256;

/// Most header bytes one build sends, all files together: a few hundred
/// KiB in practice; the bound keeps a build's request well inside
/// [`MAX_BODY_LEN`] with its source.
pub const MAX_HEADER_BYTES: usize = 8 << 20;

/// Longest string argument (kernel name, build options, client name).
pub const MAX_STRING_LEN: usize = 64 << 10;

/// Most objects in one list argument (event wait lists, device lists, handle
/// arrays). OpenCL implementations themselves cap wait lists far lower.
pub const MAX_LIST_LEN: usize = 4096;

/// Most entries in a property list (context, queue, sub-buffer properties).
pub const MAX_PROPERTIES: usize = 64;

/// OpenCL and CUDA both launch over at most three dimensions.
pub const MAX_WORK_DIM: usize = 3;

/// Largest by-value kernel argument. `CL_DEVICE_MAX_PARAMETER_SIZE` is at
/// least 1 KiB and rarely above 4 KiB on real devices.
pub const MAX_KERNEL_ARG_LEN: usize = 64 << 10;

/// Largest fill pattern: `clEnqueueFillBuffer` allows at most a `double16`.
pub const MAX_FILL_PATTERN_LEN: usize = 128;

/// Largest specialization constant value: constants are scalars, at
/// most a `double` or `long` (8 bytes); the bound leaves room for vector
/// types without letting the value grow.
pub const MAX_SPEC_CONSTANT_LEN: usize = 64;

/// Longest one bounded event wait may block the session: a guest that
/// waits longer asks again, and its other threads' calls go in between.
pub const MAX_WAIT_SLICE_US: u64 = 100_000;

/// Most program binaries in one call (one per device of the context).
pub const MAX_DEVICES: usize = 64;

/// Largest CUDA module image (PTX, cubin or fatbin). Images travel as bulk
/// segments and the daemon keeps one copy while the driver loads it; fat
/// binaries of large libraries carrying many architectures reach a few
/// hundred MiB, so 512 MiB admits them while bounding that copy.
pub const MAX_MODULE_IMAGE_LEN: u64 = 512 << 20;

/// Most JIT options in one module load. `CUjit_option` has about 30 values
/// and each may appear once.
pub const MAX_JIT_OPTIONS: usize = 64;

/// Largest JIT info or error log returned by a module load. Both logs share
/// one response body (see [`MAX_RESPONSE_BODY`]); real logs are a few KiB
/// and tools ask for buffers of 1 to 64 KiB.
pub const MAX_JIT_LOG_LEN: u64 = 256 << 10;

const _: () = assert!(2 * MAX_JIT_LOG_LEN as usize + 64 <= MAX_RESPONSE_BODY);

/// Largest packed kernel parameter buffer: the driver's own limit since
/// CUDA 12.1 on Volta and later (32,764 bytes; 4 KiB before).
pub const MAX_KERNEL_PARAM_BYTES: usize = 32764;

/// Most entries in a tabulated block-size-to-shared-memory function: one per
/// warp of a block of at most 1024 threads, the limit of every CUDA device.
pub const MAX_OCCUPANCY_TABLE: usize = 32;

/// Most device attributes the daemon reports per device. `CUdevice_attribute`
/// numbers stop below 200 in current drivers; the bound leaves room for new
/// ones while keeping [`crate::cuda::DeviceInfo`] small.
pub const MAX_DEVICE_ATTRIBUTES: usize = 512;

/// Most bulk bytes (readable and writable together) one stream record may
/// carry. A peer buffers a whole record before acting on it, so this bounds
/// the memory one stream connection can make the daemon hold; the shim
/// splits larger transfers (as it does for a chain's staging area).
pub const MAX_STREAM_BULK: usize = 16 << 20;

/// Largest stream record body: a full request area plus a full bulk
/// allowance plus the length prefixes of every segment that could carry.
pub const MAX_STREAM_RECORD_LEN: usize = MAX_REQUEST_AREA_LEN
    + MAX_STREAM_BULK
    + MAX_FRAMES_PER_CHAIN * MAX_BULK_PER_FRAME * 2 * 4
    + RESPONSE_AREA_LEN;
