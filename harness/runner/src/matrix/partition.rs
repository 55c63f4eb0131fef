//! `--partition K/N`: the K-th of N disjoint slices of the selected kernels, so a matrix can be
//! split across CI jobs and merged back (`harness merge`). Kernels are dealt round-robin in
//! matrix order, which every machine reads alike: slice K gets kernels K, K+N, K+2N, ...

use std::fmt;
use std::str::FromStr;

/// One slice: `index` is 1-based, `index <= count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: usize,
    pub count: usize,
}

/// The most slices a matrix may be split into (a bound, not a cost: slices beyond the kernel
/// count are merely empty).
pub const MAX_PARTITIONS: usize = 1024;

impl FromStr for Partition {
    type Err = String;

    /// `K/N`, or nextest's spelling `count:K/N`.
    fn from_str(text: &str) -> Result<Partition, String> {
        let spec = text.strip_prefix("count:").unwrap_or(text);
        let usage = || format!("`{text}`: expected K/N (or count:K/N) with 1 <= K <= N, e.g. 1/2");
        let (k, n) = spec.split_once('/').ok_or_else(usage)?;
        let index: usize = k.trim().parse().map_err(|_| usage())?;
        let count: usize = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || index == 0 || index > count {
            return Err(usage());
        }
        if count > MAX_PARTITIONS {
            return Err(format!("`{text}`: at most {MAX_PARTITIONS} partitions"));
        }
        Ok(Partition { index, count })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Partition {
    /// Whether the kernel at `position` (0-based, in matrix order) belongs to this slice.
    pub fn holds(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }

    /// This slice of `items`, in their order.
    pub fn slice<T: Copy>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|(i, _)| self.holds(*i))
            .map(|(_, item)| *item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse_and_bad_ones_say_how() {
        assert_eq!("1/2".parse(), Ok(Partition { index: 1, count: 2 }));
        assert_eq!("count:2/4".parse(), Ok(Partition { index: 2, count: 4 }));
        for bad in ["0/2", "3/2", "1/0", "x/2", "1", "1/2/3", ""] {
            let e = bad.parse::<Partition>().unwrap_err();
            assert!(e.contains("K/N"), "{bad}: {e}");
        }
        assert!("1/100000".parse::<Partition>().is_err());
    }

    #[test]
    fn slices_are_disjoint_and_cover_everything() {
        let kernels = ["5.10", "6.1", "6.12", "7.2", "host"];
        for count in 1..=6 {
            let mut seen = Vec::new();
            for index in 1..=count {
                seen.extend(Partition { index, count }.slice(&kernels));
            }
            seen.sort();
            let mut all = kernels.to_vec();
            all.sort();
            assert_eq!(seen, all, "{count} partitions");
        }
        assert_eq!(
            Partition { index: 2, count: 2 }.slice(&kernels),
            ["6.1", "7.2"]
        );
    }
}
