use super::build::{fatbin, Spec};
use super::*;

/// Fat binaries nvFatbin 12.9 made of one kernel source compiled by NVRTC
/// for sm_80, as PTX and as a cubin: default options (the PTX entry
/// LZ4-compressed), `-compress-all` (both LZ4) and
/// `-compress-all -compress-mode=size` (both Zstd).
const PLAIN: &[u8] = include_bytes!("../tests/data/plain.fatbin");
const LZ4: &[u8] = include_bytes!("../tests/data/lz4.fatbin");
const ZSTD: &[u8] = include_bytes!("../tests/data/zstd.fatbin");

fn contents(img: &[u8]) -> Vec<(u16, Vec<u8>)> {
    entries(img)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e.kind,
                e.contents().map(|c| c.into_owned()).unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn real_fat_binaries_decode_to_the_same_ptx_and_cubin() {
    let plain = contents(PLAIN);
    assert_eq!(plain.len(), 2);
    assert_eq!(plain[0].0, KIND_PTX);
    assert!(plain[0].1.windows(8).any(|w| w == b".version"), "PTX text");
    assert_eq!(plain[1].0, KIND_CUBIN);
    assert!(plain[1].1.starts_with(b"\x7fELF"));
    for img in [LZ4, ZSTD] {
        assert_eq!(image_len(img), Ok(img.len() as u64));
        assert_eq!(validate(img), Ok(()));
        let es = entries(img).unwrap_or_default();
        assert!(es.iter().all(|e| e.compression != Compression::None));
        assert!(es.iter().all(|e| e.sm == 80));
        let got = contents(img);
        assert_eq!(got[0], plain[0], "PTX decodes to the same text");
        assert_eq!(&got[1].1[..], &plain[1].1[..got[1].1.len()], "same cubin");
        assert_eq!(got[1].1.len() as u64, es[1].declared_len);
    }
    assert_eq!(
        entries(ZSTD).map(|e| e[0].compression),
        Ok(Compression::Zstd)
    );
    assert_eq!(entries(LZ4).map(|e| e[1].compression), Ok(Compression::Lz4));
}

#[test]
fn wrappers_are_read_by_magic_and_version() {
    let mut w = [0u8; WRAPPER_LEN];
    w[..4].copy_from_slice(&WRAPPER_MAGIC.to_le_bytes());
    w[4..8].copy_from_slice(&2u32.to_le_bytes());
    w[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
    assert_eq!(
        Wrapper::parse(&w),
        Some(Wrapper {
            version: 2,
            data: 0x1234,
            extra: 0
        })
    );
    w[4] = 3;
    assert_eq!(Wrapper::parse(&w), None, "unknown version");
    assert_eq!(Wrapper::parse(&w[..8]), None, "truncated");
}

#[test]
fn forged_headers_are_refused() {
    let mut bad = PLAIN.to_vec();
    bad[0] ^= 1;
    assert_eq!(image_len(&bad), Err(FatbinError::BadMagic));
    let mut bad = PLAIN.to_vec();
    bad[4] = 2;
    assert_eq!(image_len(&bad), Err(FatbinError::BadMagic), "version");
    let mut bad = PLAIN.to_vec();
    bad[6..8].copy_from_slice(&8u16.to_le_bytes());
    assert_eq!(image_len(&bad), Err(FatbinError::BadMagic), "header size");
    let mut bad = PLAIN.to_vec();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(image_len(&bad), Err(FatbinError::TooLarge));
    // Entries claiming more bytes than the image holds.
    let mut bad = PLAIN.to_vec();
    bad[8..16].copy_from_slice(&(PLAIN.len() as u64).to_le_bytes());
    assert_eq!(entries(&bad).err(), Some(FatbinError::Truncated));
    assert_eq!(image_len(&PLAIN[..10]), Err(FatbinError::Truncated));
}

#[test]
fn lying_entry_sizes_are_refused() {
    let elf = b"\x7fELF plus some bytes";
    let good = fatbin(&[Spec::plain(KIND_CUBIN, elf)]);
    assert_eq!(entries(&good).map(|e| e.len()), Ok(1));
    // The payload size runs past the region.
    let mut bad = good.clone();
    bad[16 + 8..16 + 16].copy_from_slice(&4096u64.to_le_bytes());
    assert_eq!(entries(&bad).err(), Some(FatbinError::BadEntry));
    // A header size smaller than the fields, or past the region.
    for hsize in [16u32, 1 << 20] {
        let mut bad = good.clone();
        bad[16 + 4..16 + 8].copy_from_slice(&hsize.to_le_bytes());
        assert_eq!(entries(&bad).err(), Some(FatbinError::BadEntry), "{hsize}");
    }
    // Both compression flags at once.
    let mut bad = good.clone();
    bad[16 + 40..16 + 48].copy_from_slice(&(FLAG_LZ4 | FLAG_ZSTD).to_le_bytes());
    assert_eq!(entries(&bad).err(), Some(FatbinError::BadEntry));
    // A compressed size past the stored payload.
    let packed = lz4_flex::block::compress(b"hello hello hello hello");
    let spec = Spec {
        kind: KIND_PTX,
        sm: 80,
        stored: &packed,
        flags: FLAG_LZ4,
        declared_len: 23,
    };
    let img = fatbin(std::slice::from_ref(&spec));
    assert_eq!(validate(&img), Ok(()));
    let mut bad = img.clone();
    bad[16 + 16..16 + 20].copy_from_slice(&4096u32.to_le_bytes());
    assert_eq!(entries(&bad).err(), Some(FatbinError::BadEntry));
}

#[test]
fn compressed_entries_must_decode_to_exactly_their_declared_size() {
    let text = b"a kernel that compresses well, well, well, well, well, well".repeat(4);
    let packed = lz4_flex::block::compress(&text);
    let spec = |declared_len, flags, stored| Spec {
        kind: KIND_PTX,
        sm: 80,
        stored,
        flags,
        declared_len,
    };
    let n = text.len() as u64;
    assert_eq!(validate(&fatbin(&[spec(n, FLAG_LZ4, &packed)])), Ok(()));
    // Expands past what it declares, or stops short of it.
    for declared in [n - 1, n + 1, 1] {
        assert_eq!(
            validate(&fatbin(&[spec(declared, FLAG_LZ4, &packed)])),
            Err(FatbinError::Decompress),
            "{declared}"
        );
    }
    // A declared size no compression reaches, or none at all.
    let huge = packed.len() as u64 * MAX_DECOMPRESSION_RATIO + 1;
    assert_eq!(
        validate(&fatbin(&[spec(huge, FLAG_LZ4, &packed)])),
        Err(FatbinError::TooLarge)
    );
    assert_eq!(
        validate(&fatbin(&[spec(0, FLAG_LZ4, &packed)])),
        Err(FatbinError::TooLarge)
    );
    // The Zstd entries of the real image, with the declared size moved.
    let es = entries(ZSTD).unwrap_or_default();
    let z = spec(es[1].declared_len, FLAG_ZSTD, es[1].stored);
    assert_eq!(validate(&fatbin(std::slice::from_ref(&z))), Ok(()));
    for declared in [z.declared_len - 1, z.declared_len + 7] {
        let z = Spec {
            declared_len: declared,
            ..z.clone()
        };
        assert_eq!(validate(&fatbin(&[z])), Err(FatbinError::Decompress));
    }
    // Garbage under either flag.
    let junk = [0x28u8, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8];
    for flag in [FLAG_LZ4, FLAG_ZSTD] {
        assert!(validate(&fatbin(&[spec(64, flag, &junk)])).is_err());
    }
}

#[test]
fn trailing_zero_padding_ends_the_entries() {
    let mut img = fatbin(&[Spec::plain(KIND_PTX, b".version 8.0\n")]);
    let grown = u64::from_le_bytes(img[8..16].try_into().unwrap_or_default()) + 64;
    img[8..16].copy_from_slice(&grown.to_le_bytes());
    img.resize(img.len() + 64, 0);
    assert_eq!(entries(&img).map(|e| e.len()), Ok(1));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            at in 0usize..512,
            v in any::<u64>(),
        ) {
            let _ = validate(&bytes);
            let mut img = LZ4.to_vec();
            let at = at % (img.len() - 8);
            img[at..at + 8].copy_from_slice(&v.to_le_bytes());
            let _ = validate(&img);
            for e in entries(&img).unwrap_or_default() {
                if let Ok(c) = e.contents() {
                    prop_assert!(c.len() as u64 <= MAX_ENTRY_LEN);
                }
            }
        }
    }
}
