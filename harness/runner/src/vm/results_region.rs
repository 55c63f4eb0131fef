//! Results through a restored guest's shared-memory region: the agent appends its frames to the
//! region's results area and announces each with a short line on the results port
//! (`guest_protocol::region_notice`). [`RegionRelay`] replaces each notice by the bytes it
//! announces, so the frame scanner downstream sees the same stream a port-only guest sends.
//! [`RelayedResults`] applies it to the port's read half, reading the region from its file.

use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use guest_protocol::{parse_region_notice, SHARED_RESULTS_BYTES, SHARED_RESULTS_OFFSET};
use tokio::io::{AsyncRead, ReadBuf};

/// A line longer than this is no notice: it is passed on as it arrives.
const MAX_NOTICE_BYTES: usize = 64;

/// Line by line: notices become the region's bytes, everything else passes unchanged.
#[derive(Debug, Default)]
pub struct RegionRelay {
    /// The current line, while it may still be a notice.
    pending: Vec<u8>,
    /// The current line is too long to be a notice: passed on up to its newline.
    passing: bool,
    /// How far into the results area the frames have been read.
    cursor: usize,
}

impl RegionRelay {
    /// The bytes to scan for these port bytes; `read(offset, len)` reads the region (None: it
    /// could not, and those frames are lost as a damaged port would lose them).
    pub fn push(
        &mut self,
        bytes: &[u8],
        read: &mut impl FnMut(usize, usize) -> Option<Vec<u8>>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let newline = rest.iter().position(|&b| b == b'\n');
            let (piece, after) = rest.split_at(newline.map_or(rest.len(), |i| i + 1));
            rest = after;
            if self.passing {
                out.extend_from_slice(piece);
                self.passing = newline.is_none();
                continue;
            }
            self.pending.extend_from_slice(piece);
            if newline.is_some() {
                let line = std::mem::take(&mut self.pending);
                match parse_region_notice(&line) {
                    Some(end) => out.extend(self.read_to(end, read)),
                    None => out.extend(line),
                }
            } else if self.pending.len() > MAX_NOTICE_BYTES {
                out.append(&mut self.pending);
                self.passing = true;
            }
        }
        out
    }

    /// What is held at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    fn read_to(
        &mut self,
        end: usize,
        read: &mut impl FnMut(usize, usize) -> Option<Vec<u8>>,
    ) -> Vec<u8> {
        // The area only grows; a notice that goes back or past its end is not believed.
        if end <= self.cursor || end > SHARED_RESULTS_BYTES {
            return Vec::new();
        }
        match read(SHARED_RESULTS_OFFSET + self.cursor, end - self.cursor) {
            Some(bytes) => {
                self.cursor = end;
                bytes
            }
            None => Vec::new(),
        }
    }
}

/// The results port's read half with [`RegionRelay`] applied, the region read from `region`
/// (the file behind it, which QEMU maps shared).
pub struct RelayedResults<R> {
    inner: R,
    region: std::fs::File,
    relay: RegionRelay,
    out: Vec<u8>,
    at: usize,
    buf: Vec<u8>,
    ended: bool,
}

impl<R> RelayedResults<R> {
    pub fn new(inner: R, region: std::fs::File) -> Self {
        RelayedResults {
            inner,
            region,
            relay: RegionRelay::default(),
            out: Vec::new(),
            at: 0,
            buf: vec![0u8; 64 * 1024],
            ended: false,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for RelayedResults<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.at < this.out.len() {
                let n = dst.remaining().min(this.out.len() - this.at);
                dst.put_slice(&this.out[this.at..this.at + n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            let mut read_buf = ReadBuf::new(&mut this.buf);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read_buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let filled = read_buf.filled().len();
                    let region = &this.region;
                    let mut read = |offset: usize, len: usize| {
                        let mut bytes = vec![0u8; len];
                        region
                            .read_exact_at(&mut bytes, offset as u64)
                            .ok()
                            .map(|()| bytes)
                    };
                    this.out = if filled == 0 {
                        this.ended = true;
                        this.relay.finish()
                    } else {
                        this.relay.push(&this.buf[..filled], &mut read)
                    };
                    this.at = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::region_notice;

    /// The results area as a vector; reads as the file would serve them.
    fn reader(area: &[u8]) -> impl FnMut(usize, usize) -> Option<Vec<u8>> + '_ {
        move |offset, len| {
            let at = offset.checked_sub(SHARED_RESULTS_OFFSET)?;
            area.get(at..at + len).map(<[u8]>::to_vec)
        }
    }

    #[test]
    fn notices_become_the_frames_they_announce_however_the_port_is_cut() {
        let area = b"\n@@HARNESS one\n\n@@HARNESS two\n";
        let first = 15;
        let mut port = b"noise before\n".to_vec();
        port.extend_from_slice(region_notice(first).as_bytes());
        port.extend_from_slice(b"\n@@HARNESS direct\n");
        port.extend_from_slice(region_notice(area.len()).as_bytes());
        let mut expected = b"noise before\n\n".to_vec();
        expected.extend_from_slice(&area[..first]);
        expected.extend_from_slice(b"\n@@HARNESS direct\n\n");
        expected.extend_from_slice(&area[first..]);
        for cut in [1, 2, 5, 7, 1000] {
            let mut relay = RegionRelay::default();
            let mut read = reader(area);
            let mut out = Vec::new();
            for piece in port.chunks(cut) {
                out.extend(relay.push(piece, &mut read));
            }
            out.extend(relay.finish());
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn long_lines_pass_as_they_come_and_bad_notices_read_nothing() {
        let area = b"abcdef";
        let mut relay = RegionRelay::default();
        let mut read = reader(area);
        let long = vec![b'x'; 100];
        // Passed on before its newline arrives: a frame in transit is not held.
        assert_eq!(relay.push(&long, &mut read), long);
        assert_eq!(relay.push(b"y\n", &mut read), b"y\n");
        assert_eq!(
            relay.push(region_notice(4).as_bytes(), &mut read),
            b"\nabcd"
        );
        // Backwards, repeated, beyond the area, or past what the area holds: nothing.
        for end in [2, 4, SHARED_RESULTS_BYTES + 1, 100] {
            assert!(relay.push(region_notice(end).as_bytes(), &mut read) == b"\n");
        }
        assert_eq!(relay.push(region_notice(6).as_bytes(), &mut read), b"\nef");
    }
}
