//! `BPF_BTF_LOAD`, and a tiny BTF writer for hand-built blobs (probes, tests).

use std::os::fd::OwnedFd;

use crate::attr::BtfLoadAttr;
use crate::consts::*;
use crate::error::BpfError;
use crate::prog::MAX_LOG_SIZE;
use crate::sys::{bpf_fd, ptr_u64};

/// `BPF_BTF_LOAD`. Tried first without a log; on failure repeated with log level 1 and a buffer
/// growing up to 16 MiB, and the error is [`BpfError::BtfRejected`] with the kernel's BTF log.
pub fn load_btf(blob: &[u8]) -> Result<OwnedFd, BpfError> {
    if blob.is_empty() {
        return Err(BpfError::invalid("BPF_BTF_LOAD", "empty BTF blob"));
    }
    let base = BtfLoadAttr {
        btf: ptr_u64(blob.as_ptr()),
        btf_size: blob.len() as u32,
        ..Default::default()
    };
    let mut attr = base;
    let first_errno = match bpf_fd(BPF_BTF_LOAD, &mut attr) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut size = 64 * 1024;
    loop {
        let mut buf = vec![0u8; size];
        let mut attr = base;
        attr.btf_log_level = 1;
        attr.btf_log_size = size as u32;
        attr.btf_log_buf = ptr_u64(buf.as_mut_ptr());
        let result = bpf_fd(BPF_BTF_LOAD, &mut attr);
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let log = String::from_utf8_lossy(&buf[..end]).into_owned();
        match result {
            Ok(fd) => return Ok(fd),
            Err(libc::ENOSPC) if size < MAX_LOG_SIZE => {
                let wanted = attr.btf_log_true_size as usize;
                size = if wanted > size {
                    wanted.next_power_of_two()
                } else {
                    size * 2
                }
                .min(MAX_LOG_SIZE);
            }
            Err(errno) => {
                return Err(BpfError::BtfRejected {
                    size: blob.len(),
                    errno: first_errno,
                    btf_log: log,
                    log_truncated: errno == libc::ENOSPC,
                })
            }
        }
    }
}

/// A minimal BTF writer: append types as raw words and names to the string section, then
/// [`finish`](BtfBuilder::finish) into a loadable blob (header + types + strings, native
/// endianness). Type ids are assigned from 1 in the order types are added.
#[derive(Debug, Clone)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// `btf_type.info`: vlen in bits 0-15, kind in bits 24-28, kind_flag in bit 31.
pub fn btf_info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
    (vlen & 0xffff) | ((kind & 0x1f) << 24) | ((kind_flag as u32) << 31)
}

impl BtfBuilder {
    pub fn new() -> Self {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    /// Adds a string (empty string = offset 0) and returns its offset.
    pub fn add_str(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    /// Adds one type: `name`, `info` (see [`btf_info`]), `size_or_type`, then the kind's
    /// trailing words. Returns its type id.
    pub fn add_type(&mut self, name: &str, info: u32, size_or_type: u32, extra: &[u32]) -> u32 {
        let name_off = self.add_str(name);
        for w in [name_off, info, size_or_type].iter().chain(extra) {
            self.types.extend_from_slice(&w.to_ne_bytes());
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// `INT` of `bytes` bytes.
    pub fn int(&mut self, name: &str, bytes: u32, signed: bool) -> u32 {
        let enc = if signed { BTF_INT_SIGNED } else { 0 };
        self.add_type(
            name,
            btf_info(BTF_KIND_INT, 0, false),
            bytes,
            &[(enc << 24) | (bytes * 8)],
        )
    }

    /// `PTR` to `target`.
    pub fn ptr(&mut self, target: u32) -> u32 {
        self.add_type("", btf_info(BTF_KIND_PTR, 0, false), target, &[])
    }

    /// `FUNC_PROTO` returning `ret` with unnamed parameters of the given types.
    pub fn func_proto(&mut self, ret: u32, params: &[u32]) -> u32 {
        let extra: Vec<u32> = params.iter().flat_map(|&t| [0, t]).collect();
        self.add_type(
            "",
            btf_info(BTF_KIND_FUNC_PROTO, params.len() as u32, false),
            ret,
            &extra,
        )
    }

    /// `FUNC` of prototype `proto` with linkage ([`BTF_FUNC_STATIC`], [`BTF_FUNC_GLOBAL`]).
    pub fn func(&mut self, name: &str, proto: u32, linkage: u32) -> u32 {
        self.add_type(name, btf_info(BTF_KIND_FUNC, linkage, false), proto, &[])
    }

    /// The finished blob.
    pub fn finish(&self) -> Vec<u8> {
        const HDR_LEN: u32 = 24;
        let mut out = Vec::with_capacity(24 + self.types.len() + self.strings.len());
        out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
        out.push(BTF_VERSION);
        out.push(0); // flags
        out.extend_from_slice(&HDR_LEN.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes()); // type_off
        out.extend_from_slice(&(self.types.len() as u32).to_ne_bytes());
        out.extend_from_slice(&(self.types.len() as u32).to_ne_bytes()); // str_off
        out.extend_from_slice(&(self.strings.len() as u32).to_ne_bytes());
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_layout() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4, true);
        assert_eq!(int, 1);
        let p = b.ptr(int);
        assert_eq!(p, 2);
        let blob = b.finish();
        // header 24 + int (16) + ptr (12) + "\0int\0" (5)
        assert_eq!(blob.len(), 24 + 16 + 12 + 5);
        assert_eq!(&blob[0..2], &0xeb9fu16.to_ne_bytes());
        assert_eq!(u32::from_ne_bytes(blob[12..16].try_into().unwrap()), 28);
        assert_eq!(u32::from_ne_bytes(blob[16..20].try_into().unwrap()), 28);
        assert_eq!(u32::from_ne_bytes(blob[20..24].try_into().unwrap()), 5);
        // int: name_off 1, info kind 1, size 4, encoding signed | 32 bits
        assert_eq!(u32::from_ne_bytes(blob[24..28].try_into().unwrap()), 1);
        assert_eq!(
            u32::from_ne_bytes(blob[28..32].try_into().unwrap()),
            1 << 24
        );
        assert_eq!(
            u32::from_ne_bytes(blob[36..40].try_into().unwrap()),
            (1 << 24) | 32
        );
        assert_eq!(&blob[blob.len() - 5..], b"\0int\0");
        assert_eq!(btf_info(BTF_KIND_FUNC, 1, false), (12 << 24) | 1);
        assert_eq!(btf_info(BTF_KIND_ENUM, 2, true), (6 << 24) | 2 | (1 << 31));
    }
}
