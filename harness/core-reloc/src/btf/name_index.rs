//! Lazily built index from essential type name to type ids.
//!
//! A chained hash table over type ids: `heads[bucket]` holds the first id,
//! `next[id]` the following one (0 ends a chain). Ids are inserted from the
//! highest down so that every chain lists ids in ascending order.

use super::resolve::essential_len_bytes;
use super::Btf;
use crate::bytes::u32_at;

#[derive(Debug, Clone)]
pub(crate) struct NameIndex {
    heads: Vec<u32>,
    next: Vec<u32>,
    mask: usize,
}

fn hash_name(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let mut tail = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        tail |= (b as u64) << (8 * i);
    }
    h = (h.rotate_left(5) ^ tail).wrapping_mul(K);
    h ^ (h >> 29)
}

fn name_bytes(strings: &[u8], off: u32) -> Option<&[u8]> {
    let rest = strings.get(off as usize..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    rest.get(..len)
}

impl NameIndex {
    pub(crate) fn build(btf: &Btf) -> NameIndex {
        let count = btf.offsets.len();
        let buckets = (count * 2).next_power_of_two().max(16);
        let mask = buckets - 1;
        let mut heads = vec![0u32; buckets];
        let mut next = vec![0u32; count + 1];
        let types = btf.type_section();
        let strings = btf.string_section();
        for (i, &off) in btf.offsets.iter().enumerate().rev() {
            let Some(name_off) = u32_at(types, off as usize) else {
                continue;
            };
            if name_off == 0 {
                continue;
            }
            let Some(name) = name_bytes(strings, name_off) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let essential = &name[..essential_len_bytes(name)];
            let bucket = hash_name(essential) as usize & mask;
            let id = i as u32 + 1;
            next[id as usize] = heads[bucket];
            heads[bucket] = id;
        }
        NameIndex { heads, next, mask }
    }

    /// Ids whose essential name equals `essential`, ascending.
    pub(crate) fn lookup<'a>(
        &'a self,
        btf: &'a Btf,
        essential: &'a str,
    ) -> impl Iterator<Item = u32> + 'a {
        let bucket = hash_name(essential.as_bytes()) as usize & self.mask;
        let mut id = self.heads.get(bucket).copied().unwrap_or(0);
        std::iter::from_fn(move || {
            while id != 0 {
                let current = id;
                id = self.next.get(current as usize).copied().unwrap_or(0);
                let matches = btf
                    .name_of(current)
                    .is_ok_and(|name| name.get(..essential_name_len_str(name)) == Some(essential));
                if matches {
                    return Some(current);
                }
            }
            None
        })
    }
}

fn essential_name_len_str(name: &str) -> usize {
    essential_len_bytes(name.as_bytes())
}
