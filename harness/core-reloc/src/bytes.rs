//! Bound-checked little-endian reads over untrusted byte slices.

/// Reads a little-endian u16 at `off`, or `None` when out of bounds.
pub(crate) fn u16_at(data: &[u8], off: usize) -> Option<u16> {
    let end = off.checked_add(2)?;
    let b = data.get(off..end)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// Reads a little-endian u32 at `off`, or `None` when out of bounds.
pub(crate) fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    let b = data.get(off..end)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Writes a little-endian u32 at `off`; returns false when out of bounds.
pub(crate) fn put_u32(data: &mut [u8], off: usize, value: u32) -> bool {
    match off.checked_add(4).and_then(|end| data.get_mut(off..end)) {
        Some(b) => {
            b.copy_from_slice(&value.to_le_bytes());
            true
        }
        None => false,
    }
}

/// Slice `len` bytes at `off`, or `None` when out of bounds.
pub(crate) fn slice_at(data: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    data.get(off..off.checked_add(len)?)
}

/// NUL-terminated UTF-8 string starting at `off`.
pub(crate) fn cstr_at(data: &[u8], off: usize) -> Option<&str> {
    let rest = data.get(off..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(rest.get(..len)?).ok()
}
