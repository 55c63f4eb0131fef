//! Lazily built index from essential type name to type ids.
//!
//! Two indexes, each built on demand: one over the kinds CO-RE looks up
//! (everything but functions, variables, decl tags and datasecs; about a
//! fifth of vmlinux's named types, collected during the parse pass), one
//! over the rest (vmlinux has some 56k named functions that CO-RE never asks
//! for). Each is a hash table in compressed form: `starts[b]..starts[b + 1]`
//! is the range of `ids` in bucket `b`, in ascending id order (a counting
//! sort, no per-entry allocation, a few hundred KiB for vmlinux). Names are
//! hashed by their key (see `key_hash`), which never needs the flavor found.
//! `Btf` answers its very first lookup by scanning instead (a one-shot caller
//! never pays for an index) and builds the index on the second.

use super::resolve::essential_len_bytes;
use super::{Btf, Kind};
use crate::bytes::u32_at;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KindClass {
    /// Kinds a CO-RE relocation can name.
    Core,
    /// Func, Var, DeclTag, DataSec.
    Other,
}

impl KindClass {
    pub(crate) fn of(kind: Kind) -> KindClass {
        match kind {
            Kind::Func | Kind::Var | Kind::DeclTag | Kind::DataSec => KindClass::Other,
            _ => KindClass::Core,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NameIndex {
    starts: Vec<u32>,
    ids: Vec<u32>,
    mask: usize,
}

/// Hash of a name's *key*: the bytes before its first run of three
/// underscores (all of it if there is none). A name and its essential name
/// (the name without its last `___flavor`) always have the same key: either
/// the first `___` lies inside the essential name (same prefix), or it is
/// the flavor separator itself. So the index never has to find where the
/// flavor starts, nor even where the name ends beyond its first `___`: one
/// short pass over bytes that share a cache line.
fn key_hash(bytes: &[u8]) -> u64 {
    // Where the key ends: the NUL (or the slice's end), or the first `___`.
    let mut end = bytes.len();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == 0 {
            end = i;
            break;
        }
        if b == b'_' {
            run += 1;
            if run == 3 {
                end = i - 2;
                break;
            }
        } else {
            run = 0;
        }
    }
    hash_words(bytes.get(..end).unwrap_or(&[]))
}

/// Word-at-a-time multiplicative hash.
fn hash_words(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    let tail = chunks.remainder();
    w[..tail.len()].copy_from_slice(tail);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// (name offset, id) of the named types of `class`, by scanning every type.
fn named_types(btf: &Btf, class: KindClass) -> Vec<(u32, u32)> {
    let types = btf.type_section();
    let mut out = Vec::new();
    for (i, &off) in btf.offsets.iter().enumerate() {
        let (Some(name_off), Some(info)) =
            (u32_at(types, off as usize), u32_at(types, off as usize + 4))
        else {
            continue;
        };
        let kind = Kind::from_raw((info >> 24) & 0x1f).unwrap_or(Kind::Void);
        if name_off != 0 && KindClass::of(kind) == class {
            out.push((name_off, i as u32 + 1));
        }
    }
    out
}

impl NameIndex {
    pub(crate) fn build(btf: &Btf, class: KindClass) -> NameIndex {
        let strings = btf.string_section();
        let named = match (&btf.core_named, class) {
            (Some(named), KindClass::Core) => std::borrow::Cow::Borrowed(named.as_slice()),
            _ => std::borrow::Cow::Owned(named_types(btf, class)),
        };
        // Touch every name first with independent loads, so that the memory
        // system fetches many at once; the hashing loop below, where each
        // name is a chain of dependent steps, then finds them in cache.
        let mut touched = 0u8;
        for &(name_off, _) in named.iter() {
            touched ^= strings.get(name_off as usize).copied().unwrap_or(0);
        }
        std::hint::black_box(touched);
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(named.len());
        for &(name_off, id) in named.iter() {
            let Some(name) = strings.get(name_off as usize..) else {
                continue;
            };
            if name.first().is_none_or(|&b| b == 0) {
                continue;
            }
            entries.push((key_hash(name) as u32, id));
        }
        let buckets = (entries.len() * 2).next_power_of_two().max(16);
        let mask = buckets - 1;
        // Pass 2: counting sort into buckets; ids stay ascending per bucket.
        let mut starts = vec![0u32; buckets + 1];
        for &(h, _) in &entries {
            starts[(h as usize & mask) + 1] += 1;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        let mut fill = starts.clone();
        let mut ids = vec![0u32; entries.len()];
        for &(h, id) in &entries {
            let b = h as usize & mask;
            ids[fill[b] as usize] = id;
            fill[b] += 1;
        }
        NameIndex { starts, ids, mask }
    }

    /// Ids whose essential name equals `essential`, ascending.
    pub(crate) fn lookup<'a>(
        &'a self,
        btf: &'a Btf,
        essential: &'a str,
    ) -> impl Iterator<Item = u32> + 'a {
        let bucket = key_hash(essential.as_bytes()) as u32 as usize & self.mask;
        let range = match (self.starts.get(bucket), self.starts.get(bucket + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        };
        self.ids
            .get(range)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(move |&id| {
                btf.name_of(id).is_ok_and(|name| {
                    name.get(..essential_len_bytes(name.as_bytes())) == Some(essential)
                })
            })
    }
}
