//! Reading a `BPF_MAP_TYPE_RINGBUF` from user space: the records programs submitted.
//!
//! The kernel exposes a ring buffer map through `mmap`: page 0 holds the consumer position
//! (ours to advance, read-write); from page 1 on, a read-only page with the producer position,
//! then the data area, mapped twice in a row so that a record that wraps is contiguous. Each
//! record starts with an 8-byte header: `u32 len` (bit 31: still being written, bit 30:
//! discarded) and `u32 pg_off`; records are 8-byte aligned.
//!
//! The header arithmetic is pure ([`RecordHeader`], [`record_span`]) and unit-tested; the
//! mapping itself is tested against the running kernel in `tests/kernel.rs`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys::AsBpfFd;

const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HEADER_SIZE: u64 = 8;

/// A record header as the kernel wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub len: u32,
    /// Reserved but not yet submitted or discarded: reading stops here.
    pub busy: bool,
    /// Discarded by the program: skipped, not returned.
    pub discarded: bool,
}

impl RecordHeader {
    pub fn from_word(word: u32) -> RecordHeader {
        RecordHeader {
            len: word & !(BUSY_BIT | DISCARD_BIT),
            busy: word & BUSY_BIT != 0,
            discarded: word & DISCARD_BIT != 0,
        }
    }
}

/// Bytes a record of `len` payload bytes occupies in the ring: header plus payload, rounded
/// up to 8.
pub fn record_span(len: u32) -> u64 {
    (len as u64 + HEADER_SIZE).div_ceil(8) * 8
}

/// Why reading a ring stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingBufError {
    #[error("ring buffer map: mmap failed: {0}")]
    Map(String),
    #[error("ring buffer size {0} is not a power of two multiple of the page size")]
    BadSize(u32),
    #[error("ring buffer record of {len} bytes at position {position} cannot fit a ring of {ring} bytes (corrupt ring)")]
    Corrupt { len: u32, position: u64, ring: u64 },
    #[error("ring buffer holds more than the {limit} {what} a case may dump")]
    TooMuch { what: &'static str, limit: usize },
}

/// A ring buffer map mapped into this process. Unmapped on drop.
pub struct RingBuf {
    consumer: *mut u8,
    producer: *mut u8,
    producer_len: usize,
    page: usize,
    ring: u64,
}

impl RingBuf {
    /// Maps the ring buffer map `fd` whose `max_entries` (the data size) is `ring_size`.
    pub fn open(fd: impl AsBpfFd, ring_size: u32) -> Result<RingBuf, RingBufError> {
        let fd = fd.as_bpf_fd();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = if page > 0 { page as usize } else { 4096 };
        if !ring_size.is_power_of_two() || (ring_size as usize) < page {
            return Err(RingBufError::BadSize(ring_size));
        }
        let ring = ring_size as usize;
        // SAFETY: a fresh shared mapping of the map's consumer page; the kernel checks fd.
        let consumer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if consumer == libc::MAP_FAILED {
            return Err(RingBufError::Map(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        let producer_len = page + 2 * ring;
        // SAFETY: as above, the read-only producer page and the doubly mapped data area.
        let producer = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                producer_len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                page as libc::off_t,
            )
        };
        if producer == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error().to_string();
            // SAFETY: unmapping what was mapped just above.
            unsafe { libc::munmap(consumer, page) };
            return Err(RingBufError::Map(error));
        }
        Ok(RingBuf {
            consumer: consumer.cast(),
            producer: producer.cast(),
            producer_len,
            page,
            ring: ring as u64,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the page is mapped for our lifetime and the kernel keeps an unsigned long
        // (8 bytes on the 64-bit targets this crate builds for) at its start, page-aligned.
        unsafe { &*(self.consumer as *const AtomicU64) }
    }

    fn producer_pos(&self) -> u64 {
        // SAFETY: as for consumer_pos; the kernel publishes it with a release store.
        unsafe { &*(self.producer as *const AtomicU64) }.load(Ordering::Acquire)
    }

    /// Forgets every record produced so far (before a case, so it sees only its own).
    pub fn drain(&self) {
        self.consumer_pos()
            .store(self.producer_pos(), Ordering::Release);
    }

    /// Takes every submitted record, in order, and advances the consumer past them. Stops at
    /// a record still being written. At most `max_records` records and `max_bytes` payload
    /// bytes: beyond that an error, the rest left in the ring.
    pub fn read(&self, max_records: usize, max_bytes: usize) -> Result<Vec<Vec<u8>>, RingBufError> {
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut consumer = self.consumer_pos().load(Ordering::Acquire);
        let producer = self.producer_pos();
        while consumer < producer {
            let offset = (consumer & (self.ring - 1)) as usize;
            // SAFETY: offset < ring, and the data area is mapped twice, so the header and a
            // payload of at most `ring - 8` bytes (checked below) lie inside the mapping.
            let header = unsafe { &*(self.producer.add(self.page + offset) as *const AtomicU32) };
            let header = RecordHeader::from_word(header.load(Ordering::Acquire));
            if header.busy {
                break;
            }
            if record_span(header.len) > self.ring {
                return Err(RingBufError::Corrupt {
                    len: header.len,
                    position: consumer,
                    ring: self.ring,
                });
            }
            if !header.discarded {
                if records.len() >= max_records {
                    return Err(RingBufError::TooMuch {
                        what: "records",
                        limit: max_records,
                    });
                }
                bytes += header.len as usize;
                if bytes > max_bytes {
                    return Err(RingBufError::TooMuch {
                        what: "bytes",
                        limit: max_bytes,
                    });
                }
                let mut data = vec![0u8; header.len as usize];
                // SAFETY: inside the mapping (see above); the kernel no longer writes a
                // record whose busy bit it cleared.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.producer.add(self.page + offset + HEADER_SIZE as usize),
                        data.as_mut_ptr(),
                        data.len(),
                    )
                };
                records.push(data);
            }
            consumer += record_span(header.len);
            self.consumer_pos().store(consumer, Ordering::Release);
        }
        Ok(records)
    }
}

impl Drop for RingBuf {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what open mapped.
        unsafe {
            libc::munmap(self.consumer.cast(), self.page);
            libc::munmap(self.producer.cast(), self.producer_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_decode_flags_and_length() {
        assert_eq!(
            RecordHeader::from_word(12),
            RecordHeader {
                len: 12,
                busy: false,
                discarded: false
            }
        );
        let busy = RecordHeader::from_word(BUSY_BIT | 5);
        assert!(busy.busy && !busy.discarded && busy.len == 5);
        let gone = RecordHeader::from_word(DISCARD_BIT | 7);
        assert!(!gone.busy && gone.discarded && gone.len == 7);
    }

    #[test]
    fn records_are_eight_byte_aligned_with_their_header() {
        assert_eq!(record_span(0), 8);
        assert_eq!(record_span(1), 16);
        assert_eq!(record_span(8), 16);
        assert_eq!(record_span(9), 24);
        assert_eq!(
            record_span(u32::MAX >> 2),
            ((u32::MAX >> 2) as u64 + 8).div_ceil(8) * 8
        );
    }
}
