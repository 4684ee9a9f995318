//! Fat binaries: the container nvcc and nvFatbin put device code in, as
//! the guest's program hands it to the driver. Parsed by the shim (to
//! measure and check an image before it keeps or sends it) and by the
//! daemon (to check it again and find its kernels), so the rules live
//! here, once.
//!
//! # Layout (little-endian)
//! - A **wrapper** (`__fatBinC_Wrapper_t`, 24 bytes: magic
//!   [`WRAPPER_MAGIC`], version 1 or 2, a pointer to the fat binary, and
//!   for version 2 a pointer to prelinked fat binaries) is what nvcc's
//!   host code registers and what the runtime passes to
//!   `cuLibraryLoadData`. Only the shim can follow its pointers;
//!   [`Wrapper::parse`] reads the fields.
//! - The **fat binary** starts with a 16-byte header: magic
//!   [`FATBIN_MAGIC`], version 1, header size (≥ 16), and the size of the
//!   entries that follow the header.
//! - Each **entry** has a header of at least [`ENTRY_HEADER_MIN`] bytes:
//!   kind (1 PTX, 2 cubin), version, header size, the payload's size in the
//!   file (padded), the compressed size, the target `sm` version, flags
//!   ([`FLAG_LZ4`], [`FLAG_ZSTD`]) and, for a compressed entry, the size
//!   of its contents once decompressed. Entries tile the region, which may
//!   end in zero padding.
//!
//! # Hostile input
//! Every size is checked against the bytes present before it is used;
//! nothing here panics or allocates more than [`MAX_ENTRY_LEN`] for one
//! entry. A compressed entry must declare its decompressed size (at most
//! [`MAX_DECOMPRESSION_RATIO`] times its compressed size) and decompress
//! to exactly that size: an entry that would expand past it, or stop
//! short, is refused. A refused image is `CUDA_ERROR_INVALID_IMAGE` to
//! both peers.

use std::borrow::Cow;
use std::io::Read;

use crate::limits::MAX_MODULE_IMAGE_LEN;

/// First word of a `__fatBinC_Wrapper_t`.
pub const WRAPPER_MAGIC: u32 = 0x4662_43b1;
/// Bytes of a wrapper on a 64-bit host.
pub const WRAPPER_LEN: usize = 24;
/// First word of a fat binary.
pub const FATBIN_MAGIC: u32 = 0xba55_ed50;
/// Bytes of the fat binary header.
pub const HEADER_LEN: usize = 16;
/// Smallest entry header that holds every field read here (nvFatbin
/// writes 72 for cubins and 88 for PTX).
pub const ENTRY_HEADER_MIN: usize = 64;
/// Entry kind: PTX text.
pub const KIND_PTX: u16 = 1;
/// Entry kind: an ELF cubin.
pub const KIND_CUBIN: u16 = 2;
/// Entry flag: the payload is one raw LZ4 block.
pub const FLAG_LZ4: u64 = 0x2000;
/// Entry flag: the payload is one Zstandard frame.
pub const FLAG_ZSTD: u64 = 0x8000;
/// Largest decompressed entry. One entry is one architecture's code of one
/// translation unit; the whole image's bound applies to it as well.
pub const MAX_ENTRY_LEN: u64 = MAX_MODULE_IMAGE_LEN;
/// Largest ratio of decompressed to compressed size accepted. LZ4 cannot
/// exceed about 255:1; device code compresses 3 to 20 times. The bound
/// keeps a few hostile bytes from making a peer allocate a large buffer.
pub const MAX_DECOMPRESSION_RATIO: u64 = 256;

/// Why a fat binary was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FatbinError {
    /// Fewer bytes than a header or entry needs.
    #[error("fat binary truncated")]
    Truncated,
    /// A magic number or version that is not a fat binary's.
    #[error("not a fat binary (magic or version)")]
    BadMagic,
    /// An entry whose sizes do not fit the region they claim to lie in.
    #[error("fat binary entry sizes do not fit")]
    BadEntry,
    /// A size past the bounds of this module.
    #[error("fat binary larger than allowed")]
    TooLarge,
    /// A compressed entry that does not decompress to its declared size.
    #[error("compressed fat binary entry is corrupt")]
    Decompress,
}

/// The fields of a `__fatBinC_Wrapper_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wrapper {
    /// 1 or 2.
    pub version: u32,
    /// Address of the fat binary.
    pub data: u64,
    /// Version 2: address of a NULL-terminated array of prelinked fat
    /// binaries (0 when there are none); version 1: a file name.
    pub extra: u64,
}

impl Wrapper {
    /// Reads a wrapper's fields; `None` unless the magic and version are a
    /// wrapper's.
    pub fn parse(b: &[u8]) -> Option<Wrapper> {
        let version = u32_at(b, 4)?;
        (u32_at(b, 0)? == WRAPPER_MAGIC && (version == 1 || version == 2)).then_some(Wrapper {
            version,
            data: u64_at(b, 8)?,
            extra: u64_at(b, 16)?,
        })
    }
}

/// The length of the fat binary whose header is `header` (its first
/// [`HEADER_LEN`] bytes or more), header included.
pub fn image_len(header: &[u8]) -> Result<u64, FatbinError> {
    if header.len() < HEADER_LEN {
        return Err(FatbinError::Truncated);
    }
    if u32_at(header, 0) != Some(FATBIN_MAGIC) || u16_at(header, 4) != Some(1) {
        return Err(FatbinError::BadMagic);
    }
    let hsize = u64::from(u16_at(header, 6).ok_or(FatbinError::Truncated)?);
    let size = u64_at(header, 8).ok_or(FatbinError::Truncated)?;
    if hsize < HEADER_LEN as u64 {
        return Err(FatbinError::BadMagic);
    }
    let len = hsize.checked_add(size).ok_or(FatbinError::TooLarge)?;
    if len > MAX_MODULE_IMAGE_LEN {
        return Err(FatbinError::TooLarge);
    }
    Ok(len)
}

/// How an entry's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// As is.
    None,
    /// One raw LZ4 block.
    Lz4,
    /// One Zstandard frame.
    Zstd,
}

/// One entry of a fat binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// [`KIND_PTX`], [`KIND_CUBIN`] or another kind.
    pub kind: u16,
    /// The target architecture (`sm_80` is 80).
    pub sm: u32,
    /// The entry's flags.
    pub flags: u64,
    /// How the payload is stored.
    pub compression: Compression,
    /// The stored bytes: the compressed bytes of a compressed entry, the
    /// padded payload otherwise.
    pub stored: &'a [u8],
    /// The declared decompressed size (0 for an uncompressed entry).
    pub declared_len: u64,
}

impl Entry<'_> {
    /// The entry's contents, decompressed when it is compressed (to
    /// exactly its declared size, or an error). PTX keeps its padding
    /// NULs; callers stop at the first.
    pub fn contents(&self) -> Result<Cow<'_, [u8]>, FatbinError> {
        let want = usize::try_from(self.declared_len).map_err(|_| FatbinError::TooLarge)?;
        match self.compression {
            Compression::None => Ok(Cow::Borrowed(self.stored)),
            Compression::Lz4 => {
                let mut out = vec![0u8; want];
                match lz4_flex::block::decompress_into(self.stored, &mut out) {
                    Ok(n) if n == want => Ok(Cow::Owned(out)),
                    _ => Err(FatbinError::Decompress),
                }
            }
            Compression::Zstd => zstd_exact(self.stored, want).map(Cow::Owned),
        }
    }
}

/// Decodes one Zstandard frame that must hold exactly `want` bytes.
fn zstd_exact(stored: &[u8], want: usize) -> Result<Vec<u8>, FatbinError> {
    // The decoder reserves its window up front: no larger than the output.
    let window = zstd_window(stored).ok_or(FatbinError::Decompress)?;
    if window > (want as u64).max(1 << 20) {
        return Err(FatbinError::Decompress);
    }
    let mut dec =
        ruzstd::decoding::StreamingDecoder::new(stored).map_err(|_| FatbinError::Decompress)?;
    let mut out = Vec::with_capacity(want);
    // One byte more than declared tells an over-long frame apart.
    let n = (&mut dec)
        .take(want as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| FatbinError::Decompress)?;
    if n != want {
        return Err(FatbinError::Decompress);
    }
    Ok(out)
}

/// The window size a Zstandard frame header declares (RFC 8878, 3.1.1.1):
/// the window descriptor, or for a single-segment frame its content size.
fn zstd_window(b: &[u8]) -> Option<u64> {
    const ZSTD_MAGIC: u32 = 0xfd2f_b528;
    if u32_at(b, 0)? != ZSTD_MAGIC {
        return None;
    }
    let fhd = *b.get(4)?;
    let single = fhd & 0x20 != 0;
    if !single {
        let wd = *b.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    let dict_len = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let at = 5 + dict_len;
    Some(match fhd >> 6 {
        0 => u64::from(*b.get(at)?),
        1 => u64::from(u16_at(b, at)?) + 256,
        2 => u64::from(u32_at(b, at)?),
        _ => u64_at(b, at)?,
    })
}

/// The entries of the fat binary `b` (exactly [`image_len`] bytes or
/// more), every size checked; compressed payloads are not decoded.
pub fn entries(b: &[u8]) -> Result<Vec<Entry<'_>>, FatbinError> {
    let len = usize::try_from(image_len(b)?).map_err(|_| FatbinError::TooLarge)?;
    let region = b.get(..len).ok_or(FatbinError::Truncated)?;
    let start = usize::from(u16_at(b, 6).ok_or(FatbinError::Truncated)?);
    let mut at = start;
    let mut out = Vec::new();
    while at < len {
        let rest = region.get(at..).ok_or(FatbinError::BadEntry)?;
        if rest.iter().all(|&c| c == 0) {
            break; // zero padding to the end
        }
        let e = entry(rest)?;
        at = at.checked_add(e.1).ok_or(FatbinError::BadEntry)?;
        out.push(e.0);
    }
    Ok(out)
}

/// One entry at the start of `rest` and the bytes it spans.
fn entry(rest: &[u8]) -> Result<(Entry<'_>, usize), FatbinError> {
    if rest.len() < ENTRY_HEADER_MIN {
        return Err(FatbinError::Truncated);
    }
    let field32 = |at| u32_at(rest, at).ok_or(FatbinError::Truncated);
    let kind = u16_at(rest, 0).ok_or(FatbinError::Truncated)?;
    let hsize = field32(4)? as usize;
    let padded = u64_at(rest, 8).ok_or(FatbinError::Truncated)?;
    let compressed = u64::from(field32(16)?);
    let sm = field32(28)?;
    let flags = u64_at(rest, 40).ok_or(FatbinError::Truncated)?;
    let declared = u64_at(rest, 56).ok_or(FatbinError::Truncated)?;
    if hsize < ENTRY_HEADER_MIN {
        return Err(FatbinError::BadEntry);
    }
    let span = usize::try_from(padded)
        .ok()
        .and_then(|p| p.checked_add(hsize))
        .filter(|&s| s <= rest.len())
        .ok_or(FatbinError::BadEntry)?;
    let payload = rest.get(hsize..span).ok_or(FatbinError::BadEntry)?;
    let compression = match (flags & FLAG_LZ4 != 0, flags & FLAG_ZSTD != 0) {
        (false, false) => Compression::None,
        (true, false) => Compression::Lz4,
        (false, true) => Compression::Zstd,
        (true, true) => return Err(FatbinError::BadEntry),
    };
    let (stored, declared_len) = match compression {
        Compression::None => (payload, 0),
        _ => {
            let c = usize::try_from(compressed).map_err(|_| FatbinError::BadEntry)?;
            let stored = payload.get(..c).ok_or(FatbinError::BadEntry)?;
            if declared == 0 || declared > MAX_ENTRY_LEN {
                return Err(FatbinError::TooLarge);
            }
            if declared > compressed.saturating_mul(MAX_DECOMPRESSION_RATIO) {
                return Err(FatbinError::TooLarge);
            }
            (stored, declared)
        }
    };
    Ok((
        Entry {
            kind,
            sm,
            flags,
            compression,
            stored,
            declared_len,
        },
        span,
    ))
}

/// Checks a whole fat binary: its entries, and that every compressed one
/// decompresses to its declared size (decoded one at a time, so at most
/// one entry's contents are held at once). The total decompressed size is
/// bounded by [`MAX_MODULE_IMAGE_LEN`].
pub fn validate(b: &[u8]) -> Result<(), FatbinError> {
    let mut total = 0u64;
    for e in entries(b)? {
        if e.compression != Compression::None {
            total = total.saturating_add(e.declared_len);
            if total > MAX_MODULE_IMAGE_LEN {
                return Err(FatbinError::TooLarge);
            }
            e.contents()?;
        }
    }
    Ok(())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Builds fat binaries for tests (of this crate and its users).
pub mod build {
    use super::*;

    /// One entry to build: kind, sm, and its stored payload with the
    /// compression flag and declared size it claims.
    #[derive(Clone, Debug)]
    pub struct Spec<'a> {
        /// Entry kind.
        pub kind: u16,
        /// Target architecture.
        pub sm: u32,
        /// The stored bytes.
        pub stored: &'a [u8],
        /// Flags (compression bits included).
        pub flags: u64,
        /// Declared decompressed size.
        pub declared_len: u64,
    }

    impl<'a> Spec<'a> {
        /// An uncompressed entry.
        pub fn plain(kind: u16, payload: &'a [u8]) -> Self {
            Spec {
                kind,
                sm: 80,
                stored: payload,
                flags: 0x11,
                declared_len: 0,
            }
        }
    }

    /// A fat binary of `entries`, each 64-byte entry header followed by its
    /// payload padded to 8 bytes.
    pub fn fatbin(entries: &[Spec<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for e in entries {
            let padded = e.stored.len().div_ceil(8) * 8;
            let mut h = [0u8; ENTRY_HEADER_MIN];
            h[0..2].copy_from_slice(&e.kind.to_le_bytes());
            h[2..4].copy_from_slice(&0x0101u16.to_le_bytes());
            h[4..8].copy_from_slice(&(ENTRY_HEADER_MIN as u32).to_le_bytes());
            h[8..16].copy_from_slice(&(padded as u64).to_le_bytes());
            h[16..20].copy_from_slice(&(e.stored.len() as u32).to_le_bytes());
            h[28..32].copy_from_slice(&e.sm.to_le_bytes());
            h[32..36].copy_from_slice(&64u32.to_le_bytes());
            h[40..48].copy_from_slice(&e.flags.to_le_bytes());
            h[56..64].copy_from_slice(&e.declared_len.to_le_bytes());
            body.extend_from_slice(&h);
            body.extend_from_slice(e.stored);
            body.resize(body.len() + padded - e.stored.len(), 0);
        }
        let mut out = FATBIN_MAGIC.to_le_bytes().to_vec();
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend(body);
        out
    }
}

#[cfg(test)]
#[path = "fatbin_tests.rs"]
mod tests;
