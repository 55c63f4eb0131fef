//! Writes the guest's initramfs: a cpio "newc" archive, uncompressed.
//!
//! Uncompressed on purpose: under TCG every decompression cycle is emulated, and the archive is
//! a few megabytes. Entries are written in a fixed order with fixed metadata, so the same inputs
//! give the same bytes (the archive's hash can key caches and be quoted in reports).

use std::io::{self, Write};

/// One file, directory or device node in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        path: String,
    },
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    CharDevice {
        path: String,
        major: u32,
        minor: u32,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path } | Entry::File { path, .. } | Entry::CharDevice { path, .. } => path,
        }
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// Serializes `entries` (in the given order) followed by the trailer.
pub fn write_newc(entries: &[Entry], out: &mut impl Write) -> io::Result<()> {
    let mut offset = 0usize;
    for (ino, entry) in entries.iter().enumerate() {
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
            Entry::Dir { .. } => (S_IFDIR | 0o755, &[], (0, 0)),
            Entry::File { mode, data, .. } => (S_IFREG | (mode & 0o7777), data, (0, 0)),
            Entry::CharDevice { major, minor, .. } => (S_IFCHR | 0o600, &[], (*major, *minor)),
        };
        let nlink = if matches!(entry, Entry::Dir { .. }) {
            2
        } else {
            1
        };
        offset += write_header(
            out,
            entry.path(),
            ino as u32 + 1,
            mode,
            nlink,
            data.len(),
            rdev,
        )?;
        out.write_all(data)?;
        offset += data.len();
        offset += pad4(out, offset)?;
    }
    write_header(out, "TRAILER!!!", 0, 0, 1, 0, (0, 0))?;
    Ok(())
}

fn write_header(
    out: &mut impl Write,
    path: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    file_size: usize,
    rdev: (u32, u32),
) -> io::Result<usize> {
    let name_size = path.len() + 1;
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime: fixed, for reproducible archives
        u32::try_from(file_size).map_err(|_| io::Error::other("file too large for cpio"))?,
        0, // dev major
        0, // dev minor
        rdev.0,
        rdev.1,
        name_size as u32,
        0, // check
    ];
    let mut header = String::with_capacity(110);
    header.push_str("070701");
    for field in fields {
        header.push_str(&format!("{field:08x}"));
    }
    out.write_all(header.as_bytes())?;
    out.write_all(path.as_bytes())?;
    out.write_all(&[0])?;
    let written = header.len() + name_size;
    Ok(written + pad4(out, written)?)
}

fn pad4(out: &mut impl Write, len: usize) -> io::Result<usize> {
    let pad = (4 - len % 4) % 4;
    out.write_all(&[0u8; 3][..pad])?;
    Ok(pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        write_newc(entries, &mut out).unwrap();
        out
    }

    #[test]
    fn header_fields_and_alignment() {
        let bytes = archive(&[Entry::File {
            path: "init".into(),
            mode: 0o755,
            data: b"abc".to_vec(),
        }]);
        assert_eq!(&bytes[..6], b"070701");
        // mode field (second) is regular file 0755
        assert_eq!(&bytes[14..22], b"000081ed");
        // file size field (seventh)
        assert_eq!(&bytes[54..62], b"00000003");
        // name "init\0" starts at 110, header+name = 115 -> padded to 116, then data
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..119], b"abc");
        // data padded to 120, then the trailer header
        assert_eq!(&bytes[120..126], b"070701");
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn same_input_same_bytes() {
        let entries = vec![
            Entry::Dir { path: "dev".into() },
            Entry::CharDevice {
                path: "dev/console".into(),
                major: 5,
                minor: 1,
            },
            Entry::File {
                path: "init".into(),
                mode: 0o755,
                data: vec![1; 1001],
            },
        ];
        assert_eq!(archive(&entries), archive(&entries));
    }

    #[test]
    fn cpio_tool_reads_it_back_when_available() {
        if std::process::Command::new("cpio")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("cpio(1) not installed: checked layout by the unit tests above only");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let bytes = archive(&[
            Entry::Dir {
                path: "harness".into(),
            },
            Entry::File {
                path: "harness/a.txt".into(),
                mode: 0o644,
                data: b"hello\n".to_vec(),
            },
        ]);
        let mut child = std::process::Command::new("cpio")
            .args(["-i", "-d", "--quiet"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(
            std::fs::read(dir.path().join("harness/a.txt")).unwrap(),
            b"hello\n"
        );
    }
}
