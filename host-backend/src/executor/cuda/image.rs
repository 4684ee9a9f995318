//! What a module image declares: its kernels with their parameter layouts,
//! and its globals with their sizes. Pure parsing, no driver needed.
//!
//! - **PTX**: each `.entry` signature gives its parameters' types, array
//!   lengths and alignments, from which the packed layout follows (each
//!   parameter at the next offset aligned to its alignment). Module-scope
//!   `.global` and `.const` declarations give the globals.
//! - **cubin** (ELF): kernels are the `.text.<name>` sections that have a
//!   `.nv.info.<name>` or `.nv.constant0.<name>` companion; the
//!   `EIATTR_KPARAM_INFO` records of `.nv.info.<name>` give each parameter's
//!   ordinal, offset and size. Globals are the symbol table's objects in
//!   `.nv.global*` and `.nv.constant<N>` (N > 0) sections.
//! - **fatbin**: the uncompressed PTX and ELF entries of the container,
//!   merged (compressed entries are skipped).
//!
//! The image is guest data: every offset and length is checked, nothing
//! here panics or allocates more than the image's own size. A layout that
//! cannot be determined is reported as unknown (`None`), never guessed.

use std::collections::BTreeMap;

use protocol::cuda::{ImageKind, ParamInfo};

/// First bytes of an ELF file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// First word of a fat binary container (little-endian).
const FATBIN_MAGIC: u32 = 0xBA55_ED50;
/// `EIFMT_SVAL`: an `.nv.info` record with a sized payload.
const EIFMT_SVAL: u8 = 0x04;
/// `EIATTR_KPARAM_INFO`: one kernel parameter's ordinal, offset and size.
const EIATTR_KPARAM_INFO: u8 = 0x17;
/// `EIATTR_CBANK_PARAM_SIZE`: total parameter bytes (an `EIFMT_HVAL`).
const EIATTR_CBANK_PARAM_SIZE: u8 = 0x19;

/// A kernel's parameter layout; `None` when the image does not say.
pub type Layout = Option<Vec<ParamInfo>>;

/// What an image declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// Kernel name to parameter layout.
    pub kernels: BTreeMap<String, Layout>,
    /// Global name to size in bytes.
    pub globals: BTreeMap<String, u64>,
}

impl ImageInfo {
    /// Adds what `other` knows and `self` does not.
    fn merge(&mut self, other: ImageInfo) {
        for (name, layout) in other.kernels {
            let slot = self.kernels.entry(name).or_insert(None);
            if slot.is_none() {
                *slot = layout;
            }
        }
        for (name, size) in other.globals {
            self.globals.entry(name).or_insert(size);
        }
    }
}

/// True when `bytes` starts the way an image of `kind` must.
pub fn magic_matches(kind: ImageKind, bytes: &[u8]) -> bool {
    match kind {
        ImageKind::Ptx => !bytes.is_empty() && !bytes.contains(&0),
        ImageKind::Cubin => bytes.starts_with(ELF_MAGIC),
        ImageKind::Fatbin => read_u32(bytes, 0) == Some(FATBIN_MAGIC),
    }
}

/// Parses an image whose magic already matched its kind.
pub fn parse(kind: ImageKind, bytes: &[u8]) -> ImageInfo {
    match kind {
        ImageKind::Ptx => parse_ptx(&String::from_utf8_lossy(bytes)),
        ImageKind::Cubin => parse_cubin(bytes),
        ImageKind::Fatbin => parse_fatbin(bytes),
    }
}

// ---- PTX ----

/// Splits PTX into tokens: comments and quoted strings dropped, the
/// punctuation that matters here as tokens of its own.
fn tokens(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let (mut i, mut start) = (0, None::<usize>);
    fn flush<'a>(src: &'a str, out: &mut Vec<&'a str>, start: &mut Option<usize>, end: usize) {
        if let Some(s) = start.take() {
            out.push(&src[s..end]);
        }
    }
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            flush(src, &mut out, &mut start, i);
            i = src[i..].find('\n').map_or(b.len(), |n| i + n);
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            flush(src, &mut out, &mut start, i);
            i = src[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
        } else if c == b'"' {
            flush(src, &mut out, &mut start, i);
            i = src[i + 1..].find('"').map_or(b.len(), |n| i + 1 + n + 1);
        } else if c.is_ascii_whitespace() {
            flush(src, &mut out, &mut start, i);
            i += 1;
        } else if b"(){}[],;=".contains(&c) {
            flush(src, &mut out, &mut start, i);
            out.push(&src[i..i + 1]);
            i += 1;
        } else {
            if start.is_none() {
                start = Some(i);
            }
            i += 1;
        }
    }
    flush(src, &mut out, &mut start, b.len());
    out
}

/// Size in bytes of a PTX fundamental type such as `.u64` or `.f16x2`.
fn type_size(t: &str) -> Option<u64> {
    Some(match t {
        ".b8" | ".s8" | ".u8" => 1,
        ".b16" | ".s16" | ".u16" | ".f16" | ".bf16" => 2,
        ".b32" | ".s32" | ".u32" | ".f32" | ".f16x2" | ".bf16x2" => 4,
        ".b64" | ".s64" | ".u64" | ".f64" => 8,
        ".b128" => 16,
        _ => return None,
    })
}

fn parse_u64(t: &str) -> Option<u64> {
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// A declaration's type, alignment and array length, read from tokens such
/// as `.align 8 .b8 name [ 24 ]`.
#[derive(Default)]
struct Decl<'a> {
    name: Option<&'a str>,
    elem: Option<u64>,
    align: Option<u64>,
    count: u64,
}

impl Decl<'_> {
    fn size(&self) -> Option<u64> {
        self.elem?.checked_mul(self.count)
    }
}

/// Reads one declaration from `toks` (up to, not including, the `stop`
/// tokens). An `.align` after `.ptr` is the pointee's, not the parameter's.
fn declaration<'a>(toks: &[&'a str]) -> Decl<'a> {
    let mut d = Decl {
        count: 1,
        ..Decl::default()
    };
    let mut after_ptr = false;
    let mut i = 0;
    while let Some(&t) = toks.get(i) {
        match t {
            ".align" => {
                let v = toks.get(i + 1).and_then(|v| parse_u64(v));
                if !after_ptr && d.elem.is_none() {
                    d.align = v;
                }
                i += 1;
            }
            ".ptr" => after_ptr = true,
            "[" => {
                match toks.get(i + 1).and_then(|v| parse_u64(v)) {
                    Some(n) if toks.get(i + 2) == Some(&"]") => {
                        d.count = d.count.saturating_mul(n);
                        i += 2;
                    }
                    // `[]`: an unsized array, no size to report.
                    _ => d.count = 0,
                }
            }
            t if t.starts_with('.') => {
                if let Some(s) = type_size(t) {
                    d.elem.get_or_insert(s);
                }
            }
            t if d.name.is_none() && !t.starts_with(|c: char| c.is_ascii_digit()) => {
                d.name = Some(t)
            }
            _ => {}
        }
        i += 1;
    }
    d
}

/// Lays out parameters declared as `decls`, in order.
fn layout(decls: &[Decl<'_>]) -> Layout {
    let mut out = Vec::with_capacity(decls.len());
    let mut at = 0u64;
    for d in decls {
        let size = d.size().filter(|&s| s > 0)?;
        let align = d.align.or(d.elem)?.max(1);
        if !align.is_power_of_two() {
            return None;
        }
        let offset = at.checked_add(align - 1)? & !(align - 1);
        at = offset.checked_add(size)?;
        out.push(ParamInfo {
            offset: u32::try_from(offset).ok()?,
            size: u32::try_from(size).ok()?,
        });
    }
    u32::try_from(at).ok()?;
    Some(out)
}

/// Parses an `.entry` starting after the `.entry` token; returns the kernel
/// and the index of the first token after its parameter list.
fn entry<'a>(toks: &[&'a str], at: usize) -> Option<(&'a str, Layout, usize)> {
    let name = *toks.get(at)?;
    if toks.get(at + 1) != Some(&"(") {
        return Some((name, Some(Vec::new()), at + 1));
    }
    let close = at + 1 + toks.get(at + 1..)?.iter().position(|t| *t == ")")?;
    let params = toks.get(at + 2..close)?;
    let decls: Vec<Decl<'_>> = params
        .split(|t| *t == ",")
        .filter(|p| !p.is_empty())
        .map(declaration)
        .collect();
    Some((name, layout(&decls), close + 1))
}

/// Kernels and module-scope globals of PTX text.
pub fn parse_ptx(src: &str) -> ImageInfo {
    let toks = tokens(src);
    let mut info = ImageInfo::default();
    let (mut braces, mut parens) = (0usize, 0usize);
    let mut i = 0;
    while let Some(&t) = toks.get(i) {
        let top = braces == 0 && parens == 0;
        match t {
            "{" => braces += 1,
            "}" => braces = braces.saturating_sub(1),
            "(" => parens += 1,
            ")" => parens = parens.saturating_sub(1),
            ".entry" if top => {
                if let Some((name, layout, next)) = entry(&toks, i + 1) {
                    info.kernels.insert(name.to_owned(), layout);
                    i = next;
                    continue;
                }
            }
            ".global" | ".const" if top => {
                // Linkage directives just before: `.extern` declares storage
                // that lives elsewhere.
                let linkage = toks[..i]
                    .iter()
                    .rev()
                    .take_while(|l| matches!(**l, ".visible" | ".weak" | ".common" | ".extern"));
                let external = linkage.clone().any(|l| *l == ".extern");
                let end = toks
                    .get(i..)
                    .and_then(|r| r.iter().position(|t| *t == ";" || *t == "="))
                    .map_or(toks.len(), |n| i + n);
                if !external {
                    let d = declaration(toks.get(i + 1..end).unwrap_or_default());
                    if let (Some(name), Some(size)) = (d.name, d.size()) {
                        info.globals.insert(name.to_owned(), size);
                    }
                }
                // Skip the declaration, initializer braces included.
                let mut j = end;
                let mut depth = 0usize;
                while let Some(&t) = toks.get(j) {
                    match t {
                        "{" => depth += 1,
                        "}" => depth = depth.saturating_sub(1),
                        ";" if depth == 0 => break,
                        _ => {}
                    }
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    info
}

// ---- ELF (cubin) ----

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

struct Section<'a> {
    name: &'a str,
    kind: u32,
    data: &'a [u8],
    link: u32,
}

/// The sections of a little-endian ELF64 image, or `None` if malformed.
fn sections(b: &[u8]) -> Option<Vec<Section<'_>>> {
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian.
    if !b.starts_with(ELF_MAGIC) || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return None;
    }
    let shoff = usize::try_from(read_u64(b, 0x28)?).ok()?;
    let shentsize = usize::from(read_u16(b, 0x3a)?);
    let shnum = usize::from(read_u16(b, 0x3c)?);
    let shstrndx = usize::from(read_u16(b, 0x3e)?);
    if shentsize < 64 {
        return None;
    }
    let header = |i: usize| -> Option<(u32, u32, &[u8], u32)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let name = read_u32(b, at)?;
        let kind = read_u32(b, at + 4)?;
        let off = usize::try_from(read_u64(b, at + 24)?).ok()?;
        let size = usize::try_from(read_u64(b, at + 32)?).ok()?;
        let link = read_u32(b, at + 40)?;
        // SHT_NOBITS (8) has no bytes in the file.
        let data = if kind == 8 {
            &[][..]
        } else {
            b.get(off..off.checked_add(size)?)?
        };
        Some((name, kind, data, link))
    };
    let (_, _, strtab, _) = header(shstrndx)?;
    let mut out = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let (name, kind, data, link) = header(i)?;
        out.push(Section {
            name: c_str(strtab, name as usize).unwrap_or(""),
            kind,
            data,
            link,
        });
    }
    Some(out)
}

/// The NUL-terminated string at `at` in a string table.
fn c_str(table: &[u8], at: usize) -> Option<&str> {
    let rest = table.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

/// The parameter layout in one kernel's `.nv.info.<name>` records.
fn kparam_layout(info: &[u8]) -> Layout {
    let mut params: Vec<(u16, ParamInfo)> = Vec::new();
    let mut cbank_size = None;
    let mut at = 0;
    while let (Some(&fmt), Some(&attr), Some(val)) =
        (info.get(at), info.get(at + 1), read_u16(info, at + 2))
    {
        at += 4;
        if fmt != EIFMT_SVAL {
            if attr == EIATTR_CBANK_PARAM_SIZE {
                cbank_size = Some(val);
            }
            continue;
        }
        let payload = info.get(at..at + usize::from(val))?;
        at += usize::from(val);
        if attr == EIATTR_KPARAM_INFO {
            // u32 index, u16 ordinal, u16 offset, u32 flags whose bits
            // 18..32 are the size.
            let ordinal = read_u16(payload, 4)?;
            let offset = read_u16(payload, 6)?;
            let size = read_u32(payload, 8)? >> 18;
            params.push((
                ordinal,
                ParamInfo {
                    offset: u32::from(offset),
                    size,
                },
            ));
        }
    }
    if params.is_empty() {
        // Without records, only a declared total of zero says "no params".
        return (cbank_size == Some(0)).then(Vec::new);
    }
    params.sort_by_key(|(o, _)| *o);
    let ordered = params
        .iter()
        .enumerate()
        .all(|(i, (o, _))| usize::from(*o) == i);
    ordered.then(|| params.into_iter().map(|(_, p)| p).collect())
}

/// Kernels and globals of a cubin.
pub fn parse_cubin(b: &[u8]) -> ImageInfo {
    let mut info = ImageInfo::default();
    let Some(secs) = sections(b) else {
        return info;
    };
    let named = |n: &str| secs.iter().find(|s| s.name == n);
    for s in &secs {
        let Some(kernel) = s.name.strip_prefix(".text.") else {
            continue;
        };
        let nv_info = named(&format!(".nv.info.{kernel}"));
        if nv_info.is_none() && named(&format!(".nv.constant0.{kernel}")).is_none() {
            continue; // a device function, not a kernel
        }
        let layout = nv_info.and_then(|s| kparam_layout(s.data));
        info.kernels.insert(kernel.to_owned(), layout);
    }
    // SHT_SYMTAB (2): 24-byte entries, names in the linked string table.
    for symtab in secs.iter().filter(|s| s.kind == 2) {
        let Some(strtab) = secs.get(symtab.link as usize) else {
            continue;
        };
        for sym in symtab.data.chunks_exact(24) {
            let (Some(name), Some(&st_info), Some(shndx), Some(size)) = (
                read_u32(sym, 0),
                sym.get(4),
                read_u16(sym, 6),
                read_u64(sym, 16),
            ) else {
                continue;
            };
            // STT_OBJECT
            if st_info & 0xf != 1 {
                continue;
            }
            let in_global = secs.get(usize::from(shndx)).is_some_and(|s| {
                s.name.starts_with(".nv.global")
                    || (s.name.starts_with(".nv.constant") && !s.name.starts_with(".nv.constant0"))
            });
            if let (true, Some(n)) = (in_global, c_str(strtab.data, name as usize)) {
                info.globals.insert(n.to_owned(), size);
            }
        }
    }
    info
}

// ---- fat binaries ----

/// Kernels and globals of every uncompressed entry of a fat binary.
pub fn parse_fatbin(b: &[u8]) -> ImageInfo {
    let mut info = ImageInfo::default();
    // Header: u32 magic, u16 version, u16 header size, u64 size of entries.
    let (Some(hsize), Some(total)) = (read_u16(b, 6), read_u64(b, 8)) else {
        return info;
    };
    let start = usize::from(hsize);
    let end = usize::try_from(total)
        .ok()
        .and_then(|t| start.checked_add(t))
        .map_or(b.len(), |e| e.min(b.len()));
    let mut at = start;
    // Entry: u16 kind, u16 version, u32 header size, u64 payload size.
    while let (Some(kind), Some(ehsize), Some(psize)) =
        (read_u16(b, at), read_u32(b, at + 4), read_u64(b, at + 8))
    {
        let (Ok(ehsize), Ok(psize)) = (usize::try_from(ehsize), usize::try_from(psize)) else {
            break;
        };
        let Some(data_at) = at.checked_add(ehsize).filter(|&d| ehsize > 0 && d <= end) else {
            break;
        };
        let Some(next) = data_at.checked_add(psize).filter(|&n| n <= end) else {
            break;
        };
        let payload = &b[data_at..next];
        match kind {
            // Compressed payloads start with neither ELF nor PTX text.
            2 | 0x10 if payload.starts_with(ELF_MAGIC) => info.merge(parse_cubin(payload)),
            1 if looks_like_ptx(payload) => {
                let text = payload.split(|&c| c == 0).next().unwrap_or_default();
                info.merge(parse_ptx(&String::from_utf8_lossy(text)));
            }
            _ => {}
        }
        at = next;
    }
    info
}

fn looks_like_ptx(payload: &[u8]) -> bool {
    let head = &payload[..payload.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    text.contains(".version") || text.contains(".target") || text.contains(".entry")
}

#[cfg(test)]
#[path = "image_tests.rs"]
pub(crate) mod tests;
