//! Program binaries the daemon hands out carry a tag, so that only
//! binaries a worker of this daemon produced are ever loaded (a binary may
//! be native code for a CPU runtime).
//!
//! A binary leaves as the runtime's bytes followed by a trailer: a magic
//! and a keyed 128-bit SipHash of the bytes under the daemon's key. The
//! key is made by the supervisor and given to every worker, so a binary
//! saved from one connection (a program's binary cache) loads in another;
//! a guest, not knowing the key, cannot forge one. The trailer is checked
//! and cut off before the runtime sees the bytes.

use std::sync::OnceLock;

use siphasher::sip128::SipHasher;

/// Marks a tagged binary.
const MAGIC: &[u8; 8] = b"vcbintag";

/// Bytes the trailer adds to every binary.
pub const TRAILER_LEN: usize = MAGIC.len() + 16;

static KEY: OnceLock<[u8; 16]> = OnceLock::new();

/// Sets the daemon's key (a worker, before its first session). False if
/// a key was already in use.
pub fn set_key(key: [u8; 16]) -> bool {
    KEY.set(key).is_ok()
}

/// A fresh random key.
pub fn random_key() -> std::io::Result<[u8; 16]> {
    let mut key = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
    Ok(key)
}

/// A random key from the standard library's hasher seeds (which come from
/// the kernel's `getrandom`), for when `/dev/urandom` cannot be opened.
fn std_random_key() -> [u8; 16] {
    use std::hash::BuildHasher;
    let s = std::collections::hash_map::RandomState::new();
    let a = s.hash_one(0u8);
    let b = s.hash_one(1u8);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_le_bytes());
    k[8..].copy_from_slice(&b.to_le_bytes());
    k
}

/// The key in use: the one set, or (in a process that serves in-process)
/// one made on first use.
fn key() -> &'static [u8; 16] {
    KEY.get_or_init(|| random_key().unwrap_or_else(|_| std_random_key()))
}

fn tag(bin: &[u8]) -> [u8; 16] {
    let h = SipHasher::new_with_key(key()).hash(bin);
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&h.h1.to_le_bytes());
    t[8..].copy_from_slice(&h.h2.to_le_bytes());
    t
}

/// `bin` as handed to the guest: with its trailer.
pub fn seal(mut bin: Vec<u8>) -> Vec<u8> {
    let t = tag(&bin);
    bin.extend_from_slice(MAGIC);
    bin.extend_from_slice(&t);
    bin
}

/// The runtime's bytes of a binary the guest gave back, if its trailer is
/// one this daemon made for exactly these bytes.
pub fn open(sealed: &[u8]) -> Option<&[u8]> {
    let body_len = sealed.len().checked_sub(TRAILER_LEN)?;
    let (body, trailer) = sealed.split_at(body_len);
    let (magic, t) = trailer.split_at(MAGIC.len());
    // Not constant-time: a guest learns no more from timing than from the
    // answer, and the answer is all-or-nothing per 128-bit tag.
    (!body.is_empty() && magic == MAGIC && t == tag(body)).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_binaries_open_and_forged_ones_do_not() {
        let bin = b"\x7fELF native kernel".to_vec();
        let sealed = seal(bin.clone());
        assert_eq!(sealed.len(), bin.len() + TRAILER_LEN);
        assert_eq!(open(&sealed), Some(&bin[..]));
        // Changing a byte of the body, the magic or the tag breaks it.
        for i in [0, bin.len(), sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(open(&bad), None, "flipped byte {i}");
        }
        assert_eq!(open(&bin), None);
        assert_eq!(open(&sealed[..TRAILER_LEN]), None);
        assert_eq!(open(&[]), None);
    }
}
