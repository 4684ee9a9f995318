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
//! - **fatbin**: the PTX and ELF entries of the container, merged;
//!   compressed entries (LZ4, Zstd) are decompressed by the shared parser
//!   ([`protocol::fatbin`]), which also does the extent checks.
//!
//! The image is guest data (up to `MAX_MODULE_IMAGE_LEN`): every offset
//! and length is checked, nothing here panics, and what a parse costs is
//! bounded by the image's own size. PTX is read token by token without a
//! copy; a cubin's walk is charged against a budget of reads, so that
//! section headers aliasing one region, or names without a terminator,
//! cannot make it quadratic; at most [`MAX_IMAGE_SYMBOLS`] kernels and as
//! many globals are recorded. A layout that cannot be determined is
//! reported as unknown (`None`), never guessed.

use std::collections::{BTreeMap, HashMap};

use protocol::cuda::{ImageKind, ParamInfo};
use protocol::fatbin;
use protocol::limits::{MAX_KERNEL_PARAM_BYTES, MAX_STRING_LEN};

/// First bytes of an ELF file.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `EIFMT_SVAL`: an `.nv.info` record with a sized payload.
const EIFMT_SVAL: u8 = 0x04;
/// `EIATTR_KPARAM_INFO`: one kernel parameter's ordinal, offset and size.
const EIATTR_KPARAM_INFO: u8 = 0x17;
/// `EIATTR_CBANK_PARAM_SIZE`: total parameter bytes (an `EIFMT_HVAL`).
const EIATTR_CBANK_PARAM_SIZE: u8 = 0x19;

/// Most kernels, and most globals, recorded for one image. Large
/// libraries' modules declare a few thousand; a recorded name costs more
/// than its text, so an image of many tiny entries must not make the
/// daemon hold more than the image. Names past the bound are not recorded
/// (their layouts are unknown, as for an image that does not say).
pub const MAX_IMAGE_SYMBOLS: usize = 1 << 16;

/// Bytes a cubin's walk may read per byte of image (plus
/// [`WALK_SLACK`]): string scans, symbol tables and `.nv.info` records
/// all count. A well-formed cubin's sections do not overlap, so one walk
/// reads each byte about once.
const WALK_FACTOR: usize = 4;
/// Reads every cubin walk may make whatever its size.
const WALK_SLACK: usize = 1 << 20;

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
    /// Records a kernel, keeping a layout already known for the name; past
    /// [`MAX_IMAGE_SYMBOLS`] new names are dropped.
    fn add_kernel(&mut self, name: &[u8], layout: Layout) {
        let name = String::from_utf8_lossy(name);
        let full = self.kernels.len() >= MAX_IMAGE_SYMBOLS;
        match self.kernels.get_mut(name.as_ref()) {
            Some(slot) if slot.is_none() => *slot = layout,
            Some(_) => {}
            None if !full => {
                self.kernels.insert(name.into_owned(), layout);
            }
            None => {}
        }
    }

    /// Records a global (the first size seen for a name wins); past
    /// [`MAX_IMAGE_SYMBOLS`] new names are dropped.
    fn add_global(&mut self, name: &[u8], size: u64) {
        let name = String::from_utf8_lossy(name);
        if !self.globals.contains_key(name.as_ref()) && self.globals.len() < MAX_IMAGE_SYMBOLS {
            self.globals.insert(name.into_owned(), size);
        }
    }

    /// Adds what `other` knows and `self` does not.
    fn merge(&mut self, other: ImageInfo) {
        for (name, layout) in other.kernels {
            self.add_kernel(name.as_bytes(), layout);
        }
        for (name, size) in other.globals {
            self.add_global(name.as_bytes(), size);
        }
    }
}

/// True when `bytes` starts the way an image of `kind` must.
pub fn magic_matches(kind: ImageKind, bytes: &[u8]) -> bool {
    match kind {
        ImageKind::Ptx => !bytes.is_empty() && !bytes.contains(&0),
        ImageKind::Cubin => bytes.starts_with(ELF_MAGIC),
        ImageKind::Fatbin => read_u32(bytes, 0) == Some(fatbin::FATBIN_MAGIC),
    }
}

/// True when everything the image's own headers point at lies inside it.
///
/// The driver takes an image by address alone and finds its extent from
/// those headers (`cuModuleLoadData` has no length), so a cubin whose
/// section or program headers, or a fat binary whose entries, reach past
/// the bytes the guest sent would make the driver read daemon memory
/// beyond the copy. PTX is NUL-terminated by the session and has no
/// interior NUL (see [`magic_matches`]).
pub fn extent_fits(kind: ImageKind, bytes: &[u8]) -> bool {
    match kind {
        ImageKind::Ptx => true,
        ImageKind::Cubin => elf_fits(bytes),
        ImageKind::Fatbin => fatbin_fits(bytes),
    }
}

/// True when `off..off + len` lies inside `b`.
fn range_fits(b: &[u8], off: Option<u64>, len: Option<u64>) -> bool {
    match (off, len) {
        (Some(o), Some(n)) => o.checked_add(n).is_some_and(|e| e <= b.len() as u64),
        _ => false,
    }
}

/// Header table offsets and the offsets of one field in each entry: the
/// entries that lie in `b`, or `None` if the table does not.
fn table(b: &[u8], off: u64, num: u16, entsize: u16, min: u16) -> Option<Vec<usize>> {
    if num == 0 {
        return Some(Vec::new());
    }
    let len = u64::from(num) * u64::from(entsize);
    if entsize < min || !range_fits(b, Some(off), Some(len)) {
        return None;
    }
    let off = usize::try_from(off).ok()?;
    Some(
        (0..usize::from(num))
            .map(|i| off + i * usize::from(entsize))
            .collect(),
    )
}

fn elf_fits(b: &[u8]) -> bool {
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian, as every cubin is.
    if b.len() < 64 || !b.starts_with(ELF_MAGIC) || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return false;
    }
    let field16 = |at| read_u16(b, at).unwrap_or(0);
    let (phoff, shoff) = (
        read_u64(b, 0x20).unwrap_or(0),
        read_u64(b, 0x28).unwrap_or(0),
    );
    let (phentsize, phnum) = (field16(0x36), field16(0x38));
    let (shentsize, shnum, shstrndx) = (field16(0x3a), field16(0x3c), field16(0x3e));
    // Extended numbering (a count of 0 with a table, or an index of
    // SHN_XINDEX) keeps the real numbers elsewhere; no cubin uses it.
    if (shnum == 0 && shoff != 0) || (shnum > 0 && shstrndx >= shnum) {
        return false;
    }
    let (Some(shdrs), Some(phdrs)) = (
        table(b, shoff, shnum, shentsize, 64),
        table(b, phoff, phnum, phentsize, 56),
    ) else {
        return false;
    };
    // SHT_NOBITS (8) has no bytes in the file.
    let sections = shdrs.iter().all(|&at| {
        read_u32(b, at + 4) == Some(8) || range_fits(b, read_u64(b, at + 24), read_u64(b, at + 32))
    });
    // p_offset at 8, p_filesz at 32.
    let segments = phdrs
        .iter()
        .all(|&at| range_fits(b, read_u64(b, at + 8), read_u64(b, at + 32)));
    sections && segments
}

fn fatbin_fits(b: &[u8]) -> bool {
    // The shared parser checks the header, every entry's extent and every
    // compressed entry's decompression; the cubins inside (as the driver
    // will see them, decompressed) must fit themselves too.
    if fatbin::validate(b).is_err() {
        return false;
    }
    fatbin::entries(b).is_ok_and(|es| {
        es.iter().all(|e| match e.contents() {
            Ok(c) => !c.starts_with(ELF_MAGIC) || elf_fits(&c),
            Err(_) => false,
        })
    })
}

/// Parses an image whose magic already matched its kind.
pub fn parse(kind: ImageKind, bytes: &[u8]) -> ImageInfo {
    match kind {
        ImageKind::Ptx => parse_ptx_bytes(bytes),
        ImageKind::Cubin => parse_cubin(bytes),
        ImageKind::Fatbin => parse_fatbin(bytes),
    }
}

// ---- PTX ----

/// PTX split into tokens as it is read: comments and quoted strings
/// dropped, the punctuation that matters here as tokens of its own. Holds
/// no copy of the text and no list of tokens.
struct Tokens<'a> {
    src: &'a [u8],
    at: usize,
}

impl<'a> Tokens<'a> {
    fn new(src: &'a [u8]) -> Self {
        Tokens { src, at: 0 }
    }

    /// The index of `pat` in the text from `from` on, if any.
    fn find_from(&self, from: usize, pat: &[u8]) -> Option<usize> {
        self.src
            .get(from..)?
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|n| from + n)
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let b = self.src;
        let mut start = None;
        while let Some(&c) = b.get(self.at) {
            let i = self.at;
            let comment = c == b'/' && matches!(b.get(i + 1), Some(b'/' | b'*'));
            let ends = comment || c == b'"' || c.is_ascii_whitespace() || PUNCT.contains(&c);
            if let (true, Some(s)) = (ends, start) {
                return b.get(s..i);
            }
            if comment && b.get(i + 1) == Some(&b'/') {
                self.at = self.find_from(i, b"\n").unwrap_or(b.len());
            } else if comment {
                self.at = self.find_from(i + 2, b"*/").map_or(b.len(), |n| n + 2);
            } else if c == b'"' {
                self.at = self.find_from(i + 1, b"\"").map_or(b.len(), |n| n + 1);
            } else if c.is_ascii_whitespace() {
                self.at += 1;
            } else if PUNCT.contains(&c) {
                self.at += 1;
                return b.get(i..i + 1);
            } else {
                start.get_or_insert(i);
                self.at += 1;
            }
        }
        start.and_then(|s| b.get(s..))
    }
}

/// Characters that are tokens of their own.
const PUNCT: &[u8] = b"(){}[],;=";

/// Size in bytes of a PTX fundamental type such as `.u64` or `.f16x2`.
fn type_size(t: &[u8]) -> Option<u64> {
    Some(match t {
        b".b8" | b".s8" | b".u8" => 1,
        b".b16" | b".s16" | b".u16" | b".f16" | b".bf16" => 2,
        b".b32" | b".s32" | b".u32" | b".f32" | b".f16x2" | b".bf16x2" => 4,
        b".b64" | b".s64" | b".u64" | b".f64" => 8,
        b".b128" => 16,
        _ => return None,
    })
}

fn parse_u64(t: &[u8]) -> Option<u64> {
    let t = std::str::from_utf8(t).ok()?;
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// A declaration's type, alignment and array length, read from tokens such
/// as `.align 8 .b8 name [ 24 ]`.
struct Decl<'a> {
    name: Option<&'a [u8]>,
    elem: Option<u64>,
    align: Option<u64>,
    count: u64,
}

impl Decl<'_> {
    fn size(&self) -> Option<u64> {
        self.elem?.checked_mul(self.count)
    }
}

/// Where [`DeclReader`] is within a declaration.
enum DeclState<'a> {
    /// Between items.
    Plain,
    /// After `.align`: the next token is its value.
    Align,
    /// After `[`: a length or `]` follows.
    Open,
    /// After `[` and a number: `]` closes the dimension.
    OpenNum(u64, &'a [u8]),
}

/// Reads one declaration a token at a time. An `.align` after `.ptr` is
/// the pointee's, not the parameter's.
struct DeclReader<'a> {
    decl: Decl<'a>,
    state: DeclState<'a>,
    after_ptr: bool,
    tokens: usize,
}

impl<'a> DeclReader<'a> {
    fn new() -> Self {
        DeclReader {
            decl: Decl {
                name: None,
                elem: None,
                align: None,
                count: 1,
            },
            state: DeclState::Plain,
            after_ptr: false,
            tokens: 0,
        }
    }

    fn set_align(&mut self, v: Option<u64>) {
        if !self.after_ptr && self.decl.elem.is_none() {
            self.decl.align = v;
        }
    }

    fn push(&mut self, t: &'a [u8]) {
        self.tokens += 1;
        match std::mem::replace(&mut self.state, DeclState::Plain) {
            DeclState::Plain => self.plain(t),
            DeclState::Align => self.set_align(parse_u64(t)),
            DeclState::Open => match parse_u64(t) {
                Some(n) => self.state = DeclState::OpenNum(n, t),
                None => {
                    // `[]`: an unsized array, no size to report.
                    self.decl.count = 0;
                    self.plain(t);
                }
            },
            DeclState::OpenNum(n, num) => {
                if t == b"]" {
                    self.decl.count = self.decl.count.saturating_mul(n);
                } else {
                    self.decl.count = 0;
                    self.plain(num);
                    self.plain(t);
                }
            }
        }
    }

    fn plain(&mut self, t: &'a [u8]) {
        match t {
            b".align" => self.state = DeclState::Align,
            b".ptr" => self.after_ptr = true,
            b"[" => self.state = DeclState::Open,
            t if t.starts_with(b".") => {
                if let Some(s) = type_size(t) {
                    self.decl.elem.get_or_insert(s);
                }
            }
            t if self.decl.name.is_none() && !t.first().is_some_and(u8::is_ascii_digit) => {
                self.decl.name = Some(t)
            }
            _ => {}
        }
    }

    fn finish(mut self) -> Decl<'a> {
        match std::mem::replace(&mut self.state, DeclState::Plain) {
            DeclState::Plain => {}
            DeclState::Align => self.set_align(None),
            DeclState::Open => self.decl.count = 0,
            DeclState::OpenNum(_, num) => {
                self.decl.count = 0;
                self.plain(num);
            }
        }
        self.decl
    }
}

/// Lays out parameters one declaration at a time, each at the next offset
/// aligned to its alignment.
struct LayoutBuilder {
    params: Option<Vec<ParamInfo>>,
    at: u64,
}

impl LayoutBuilder {
    fn new() -> Self {
        LayoutBuilder {
            params: Some(Vec::new()),
            at: 0,
        }
    }

    fn push(&mut self, d: &Decl<'_>) {
        let Some(params) = &mut self.params else {
            return;
        };
        let placed = (|| {
            let size = d.size().filter(|&s| s > 0)?;
            let align = d.align.or(d.elem)?.max(1);
            if !align.is_power_of_two() {
                return None;
            }
            let offset = self.at.checked_add(align - 1)? & !(align - 1);
            let end = offset.checked_add(size)?;
            Some((
                ParamInfo {
                    offset: u32::try_from(offset).ok()?,
                    size: u32::try_from(size).ok()?,
                },
                end,
            ))
        })();
        match placed {
            // A kernel whose parameters pass the driver's limit cannot be
            // launched; its layout is not worth holding.
            Some((p, end)) if end <= MAX_KERNEL_PARAM_BYTES as u64 => {
                params.push(p);
                self.at = end;
            }
            _ => self.params = None,
        }
    }

    fn finish(self) -> Layout {
        self.params
    }
}

/// Reads an `.entry`'s parameter list after its `(`, through the `)`.
/// `None` when the text ends first.
fn entry_params<'a>(toks: &mut impl Iterator<Item = &'a [u8]>) -> Option<Layout> {
    let mut layout = LayoutBuilder::new();
    let mut decl = DeclReader::new();
    for t in toks {
        if t == b"," || t == b")" {
            let d = std::mem::replace(&mut decl, DeclReader::new());
            if d.tokens > 0 {
                layout.push(&d.finish());
            }
            if t == b")" {
                return Some(layout.finish());
            }
        } else {
            decl.push(t);
        }
    }
    None
}

/// Kernels and module-scope globals of PTX text.
pub fn parse_ptx(src: &str) -> ImageInfo {
    parse_ptx_bytes(src.as_bytes())
}

/// [`parse_ptx`] on bytes: names that are not UTF-8 are read lossily,
/// one name at a time.
fn parse_ptx_bytes(src: &[u8]) -> ImageInfo {
    let mut toks = Tokens::new(src).peekable();
    let mut info = ImageInfo::default();
    let (mut braces, mut parens) = (0usize, 0usize);
    // Whether the linkage directives just before include `.extern`, which
    // declares storage that lives elsewhere.
    let mut external = false;
    while let Some(t) = toks.next() {
        let top = braces == 0 && parens == 0;
        match t {
            b"{" => braces += 1,
            b"}" => braces = braces.saturating_sub(1),
            b"(" => parens += 1,
            b")" => parens = parens.saturating_sub(1),
            b".entry" if top => {
                let Some(name) = toks.next() else { break };
                let layout = if toks.next_if(|t| *t == b"(").is_some() {
                    // An unclosed list leaves nothing at top level after it.
                    let Some(layout) = entry_params(&mut toks) else {
                        break;
                    };
                    layout
                } else {
                    Some(Vec::new())
                };
                info.add_kernel(name, layout);
                external = false;
                continue;
            }
            b".global" | b".const" if top => {
                let mut decl = DeclReader::new();
                let mut stop = None;
                for t in toks.by_ref() {
                    if t == b";" || t == b"=" {
                        stop = Some(t);
                        break;
                    }
                    decl.push(t);
                }
                let d = decl.finish();
                if let (false, Some(name), Some(size)) = (external, d.name, d.size()) {
                    info.add_global(name, size);
                }
                // Skip the initializer, braces included.
                if stop == Some(b"=") {
                    let mut depth = 0usize;
                    for t in toks.by_ref() {
                        match t {
                            b"{" => depth += 1,
                            b"}" => depth = depth.saturating_sub(1),
                            b";" if depth == 0 => break,
                            _ => {}
                        }
                    }
                }
                external = false;
                continue;
            }
            _ => {}
        }
        external = match t {
            b".extern" => true,
            b".visible" | b".weak" | b".common" => external,
            _ => false,
        };
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

/// What a cubin walk may still read; see [`WALK_FACTOR`].
struct Budget(usize);

impl Budget {
    fn for_image(len: usize) -> Self {
        Budget(len.saturating_mul(WALK_FACTOR).saturating_add(WALK_SLACK))
    }

    /// Charges `n` bytes of reading; false (and nothing left) when they do
    /// not fit.
    fn spend(&mut self, n: usize) -> bool {
        match self.0.checked_sub(n) {
            Some(left) => {
                self.0 = left;
                true
            }
            None => {
                self.0 = 0;
                false
            }
        }
    }
}

struct Section<'a> {
    name: &'a [u8],
    kind: u32,
    data: &'a [u8],
    link: u32,
}

/// The sections of a little-endian ELF64 image, or `None` if malformed or
/// over budget.
fn sections<'a>(b: &'a [u8], budget: &mut Budget) -> Option<Vec<Section<'a>>> {
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
            name: c_str(strtab, name as usize, budget)?.unwrap_or_default(),
            kind,
            data,
            link,
        });
    }
    Some(out)
}

/// The NUL-terminated string at `at` in a string table, charged to
/// `budget`. `Some(None)` when there is none there (or it is longer than
/// any name a guest may ask for); `None` when the budget ran out.
fn c_str<'a>(table: &'a [u8], at: usize, budget: &mut Budget) -> Option<Option<&'a [u8]>> {
    let Some(rest) = table.get(at..) else {
        return Some(None);
    };
    let rest = &rest[..rest.len().min(MAX_STRING_LEN + 1)];
    let end = rest.iter().position(|&c| c == 0);
    if !budget.spend(end.map_or(rest.len(), |n| n + 1)) {
        return None;
    }
    Some(end.and_then(|n| rest.get(..n)))
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

/// Kernels and globals of a cubin. A walk that runs out of budget stops
/// there, keeping what it found.
pub fn parse_cubin(b: &[u8]) -> ImageInfo {
    let mut info = ImageInfo::default();
    let mut budget = Budget::for_image(b.len());
    let Some(secs) = sections(b, &mut budget) else {
        return info;
    };
    // The first section of each name, as a linear search would find it.
    let mut by_name: HashMap<&[u8], &Section<'_>> = HashMap::with_capacity(secs.len());
    for s in &secs {
        by_name.entry(s.name).or_insert(s);
    }
    let named = |prefix: &[u8], kernel: &[u8]| {
        let mut n = prefix.to_vec();
        n.extend_from_slice(kernel);
        by_name.get(n.as_slice()).copied()
    };
    for s in &secs {
        let Some(kernel) = s.name.strip_prefix(b".text.") else {
            continue;
        };
        let nv_info = named(b".nv.info.", kernel);
        if nv_info.is_none() && named(b".nv.constant0.", kernel).is_none() {
            continue; // a device function, not a kernel
        }
        let layout = match nv_info {
            Some(s) if !budget.spend(s.data.len()) => return info,
            Some(s) => kparam_layout(s.data),
            None => None,
        };
        info.add_kernel(kernel, layout);
    }
    // SHT_SYMTAB (2): 24-byte entries, names in the linked string table.
    for symtab in secs.iter().filter(|s| s.kind == 2) {
        let Some(strtab) = secs.get(symtab.link as usize) else {
            continue;
        };
        if !budget.spend(symtab.data.len()) {
            return info;
        }
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
                s.name.starts_with(b".nv.global")
                    || (s.name.starts_with(b".nv.constant")
                        && !s.name.starts_with(b".nv.constant0"))
            });
            if !in_global {
                continue;
            }
            match c_str(strtab.data, name as usize, &mut budget) {
                None => return info,
                Some(Some(n)) => info.add_global(n, size),
                Some(None) => {}
            }
        }
    }
    info
}

// ---- fat binaries ----

/// Kernels and globals of every PTX and cubin entry of a fat binary,
/// compressed ones decompressed (one at a time, within the shared
/// parser's bounds). Entries that do not decode are skipped.
pub fn parse_fatbin(b: &[u8]) -> ImageInfo {
    let mut info = ImageInfo::default();
    for e in fatbin::entries(b).unwrap_or_default() {
        let Ok(payload) = e.contents() else {
            continue;
        };
        match e.kind {
            fatbin::KIND_CUBIN | 0x10 if payload.starts_with(ELF_MAGIC) => {
                info.merge(parse_cubin(&payload))
            }
            fatbin::KIND_PTX if looks_like_ptx(&payload) => {
                let text = payload.split(|&c| c == 0).next().unwrap_or_default();
                info.merge(parse_ptx_bytes(text));
            }
            _ => {}
        }
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
