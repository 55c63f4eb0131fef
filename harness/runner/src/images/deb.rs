//! Extracting chosen files from a `.deb` without dpkg: a .deb is an `ar` archive whose
//! `data.tar[.xz|.zst|.gz]` member holds the files. The tar is streamed, so only the wanted
//! files are written and memory stays small.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a Debian package: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

/// Reads `ar` members until one whose name starts with `data.tar`; returns its name and size,
/// leaving `r` positioned at its data.
fn find_data_member<R: Read>(r: &mut R) -> Result<(String, u64), String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|e| format!("cannot read the ar magic: {e}"))?;
    if &magic != b"!<arch>\n" {
        return Err("no `!<arch>` magic".into());
    }
    loop {
        let mut hdr = [0u8; 60];
        match r.read_exact(&mut hdr) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err("no data.tar member".into())
            }
            Err(e) => return Err(e.to_string()),
        }
        if &hdr[58..60] != b"`\n" {
            return Err("corrupt ar member header".into());
        }
        let name = String::from_utf8_lossy(&hdr[0..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: u64 = String::from_utf8_lossy(&hdr[48..58])
            .trim()
            .parse()
            .map_err(|_| "corrupt ar member size".to_string())?;
        if name.starts_with("data.tar") {
            return Ok((name, size));
        }
        let skip = size + (size & 1);
        let copied = io::copy(&mut r.take(skip), &mut io::sink()).map_err(|e| e.to_string())?;
        if copied != skip {
            return Err(format!("member {name} is truncated"));
        }
    }
}

/// The largest GNU long-name or pax header read into memory.
const MAX_HEADER_EXTENSION: u64 = 1 << 20;

fn octal(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256.
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for b in &field[1..] {
            v = v.checked_mul(256).ok_or("tar size overflow")? + *b as u64;
        }
        return Ok(v);
    }
    let s = String::from_utf8_lossy(field);
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| format!("bad octal field {s:?}"))
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let mut rest: &str = &text;
    let mut path = None;
    while !rest.is_empty() {
        let (len, _) = rest.split_once(' ')?;
        let len: usize = len.parse().ok()?;
        let record = rest.get(..len)?;
        let (_, kv) = record.split_once(' ')?;
        if let Some(v) = kv.trim_end_matches('\n').strip_prefix("path=") {
            path = Some(v.to_string());
        }
        rest = &rest[len..];
    }
    path
}

/// Streams a tar archive; for each regular file, `want(path)` may return a destination to
/// write it to. Paths are given as stored (usually `./usr/...`). Returns `(path, destination)`
/// for each file written. Stops early once `enough(written so far)` says so (the rest of the
/// archive is neither decompressed nor checked).
pub fn extract_tar<R: Read>(
    mut r: R,
    mut want: impl FnMut(&str) -> Option<PathBuf>,
    enough: impl Fn(&[(String, PathBuf)]) -> bool,
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    let mut long_name: Option<String> = None;
    let mut block = [0u8; 512];
    loop {
        match r.read_exact(&mut block) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err("tar archive ends without an end-of-archive block".into())
            }
            Err(e) => return Err(format!("reading the tar stream: {e}")),
        }
        if block.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        let size = octal(&block[124..136])?;
        let typeflag = block[156];
        let padded = size
            .div_ceil(512)
            .checked_mul(512)
            .ok_or_else(|| format!("tar entry size {size} is impossible"))?;
        let mut name = cstr(&block[0..100]);
        if &block[257..262] == b"ustar" {
            let prefix = cstr(&block[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        if let Some(l) = long_name.take() {
            name = l;
        }
        match typeflag {
            b'L' | b'x' => {
                // Held in memory, so bounded first: a real one is a path or a few records.
                if size > MAX_HEADER_EXTENSION {
                    return Err(format!(
                        "tar header extension of {size} bytes (at most {MAX_HEADER_EXTENSION})"
                    ));
                }
                let mut data = vec![0u8; padded as usize];
                r.read_exact(&mut data)
                    .map_err(|e| format!("truncated tar header extension: {e}"))?;
                data.truncate(size as usize);
                long_name = if typeflag == b'L' {
                    Some(cstr(&data))
                } else {
                    pax_path(&data)
                };
                continue;
            }
            b'0' | 0 | b'7' => {
                if let Some(dest) = want(&name) {
                    let mut f = File::create(&dest)
                        .map_err(|e| format!("creating {}: {e}", dest.display()))?;
                    let n = io::copy(&mut (&mut r).take(size), &mut f)
                        .map_err(|e| format!("extracting {name}: {e}"))?;
                    if n != size {
                        return Err(format!("{name} is truncated in the archive"));
                    }
                    f.sync_all()
                        .map_err(|e| format!("writing {}: {e}", dest.display()))?;
                    let skip = padded - size;
                    io::copy(&mut (&mut r).take(skip), &mut io::sink())
                        .map_err(|e| e.to_string())?;
                    out.push((name, dest));
                    if enough(&out) {
                        return Ok(out);
                    }
                    continue;
                }
            }
            _ => {}
        }
        let n = io::copy(&mut (&mut r).take(padded), &mut io::sink())
            .map_err(|e| format!("reading the tar stream: {e}"))?;
        if n != padded {
            return Err(format!("tar archive is truncated inside {name}"));
        }
    }
}

/// Extracts the files of `deb` for which `want` returns a destination, stopping early once
/// `enough` (see [`extract_tar`]).
pub fn extract(
    deb: &Path,
    want: impl FnMut(&str) -> Option<PathBuf>,
    enough: impl Fn(&[(String, PathBuf)]) -> bool,
) -> Result<Vec<(String, PathBuf)>, DebError> {
    let format = |message: String| DebError::Format {
        path: deb.to_path_buf(),
        message,
    };
    let f = File::open(deb).map_err(|source| DebError::Io {
        path: deb.to_path_buf(),
        source,
    })?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let (member, size) = find_data_member(&mut r).map_err(format)?;
    let data = r.take(size);
    let result = match member.as_str() {
        "data.tar" => extract_tar(data, want, enough),
        "data.tar.xz" => extract_tar(xz2::read::XzDecoder::new_multi_decoder(data), want, enough),
        "data.tar.zst" => {
            let d = zstd::stream::read::Decoder::with_buffer(BufReader::new(data))
                .map_err(|e| format(e.to_string()))?;
            extract_tar(d, want, enough)
        }
        "data.tar.gz" => extract_tar(flate2::read::GzDecoder::new(data), want, enough),
        other => return Err(format(format!("unsupported member {other}"))),
    };
    result.map_err(|m| format(format!("{member}: {m}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    fn tar_header(name: &str, size: usize, typeflag: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        let n = name.as_bytes();
        h[..n.len().min(100)].copy_from_slice(&n[..n.len().min(100)]);
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn push_entry(t: &mut Vec<u8>, name: &str, data: &[u8], typeflag: u8) {
        t.extend_from_slice(&tar_header(name, data.len(), typeflag));
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }

    /// A tar with the given regular files (names longer than 100 bytes use a GNU `L` entry).
    pub(crate) fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut t = Vec::new();
        push_entry(&mut t, "./", b"", b'5');
        for (name, data) in files {
            if name.len() > 100 {
                let mut n = name.as_bytes().to_vec();
                n.push(0);
                push_entry(&mut t, "././@LongLink", &n, b'L');
            }
            push_entry(&mut t, name, data, b'0');
        }
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    /// A .deb with `data.tar.<ext>` holding `files`.
    pub(crate) fn deb(files: &[(&str, &[u8])], ext: &str) -> Vec<u8> {
        let t = tar(files);
        let data = match ext {
            "xz" => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(&t).unwrap();
                e.finish().unwrap()
            }
            "zst" => zstd::encode_all(&t[..], 1).unwrap(),
            "gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&t).unwrap();
                e.finish().unwrap()
            }
            _ => t,
        };
        let mut d = b"!<arch>\n".to_vec();
        let mut member = |name: &str, body: &[u8]| {
            d.extend_from_slice(
                format!(
                    "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    0,
                    0,
                    0,
                    100644,
                    body.len()
                )
                .as_bytes(),
            );
            d.extend_from_slice(body);
            if body.len() % 2 == 1 {
                d.push(b'\n');
            }
        };
        member("debian-binary", b"2.0\n");
        member("control.tar.xz", b"odd");
        let data_name = if ext.is_empty() {
            "data.tar".to_string()
        } else {
            format!("data.tar.{ext}")
        };
        member(&data_name, &data);
        d
    }

    #[test]
    fn extracts_wanted_files_from_each_compression() {
        let long = format!(
            "./usr/lib/modules/7.2.13+deb14-amd64/{}/config",
            "x".repeat(80)
        );
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let files: Vec<(&str, &[u8])> = vec![
            ("./boot/config-5.10.0-32-amd64", b"CONFIG_PVH=y\n"),
            ("./boot/System.map-5.10.0-32-amd64", b"skip me"),
            ("./boot/vmlinuz-5.10.0-32-amd64", &big),
            (&long, b"long"),
        ];
        for ext in ["xz", "zst", "gz", ""] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("x.deb");
            std::fs::write(&p, deb(&files, ext)).unwrap();
            let mut n = 0;
            let got = extract(
                &p,
                |name| {
                    (name.contains("vmlinuz") || name.contains("config")).then(|| {
                        n += 1;
                        dir.path().join(format!("out{n}"))
                    })
                },
                |_| false,
            )
            .unwrap();
            let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "./boot/config-5.10.0-32-amd64",
                    "./boot/vmlinuz-5.10.0-32-amd64",
                    long.as_str()
                ],
                "{ext}"
            );
            assert_eq!(std::fs::read(&got[1].1).unwrap(), big);
            assert_eq!(std::fs::read(&got[2].1).unwrap(), b"long");
        }
    }

    #[test]
    fn corrupt_debs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.deb");
        std::fs::write(&p, b"garbage").unwrap();
        let e = extract(&p, |_| None, |_| false).unwrap_err().to_string();
        assert!(e.contains("not a Debian package"), "{e}");
        let mut d = deb(&[("./boot/vmlinuz-1", &[7u8; 3000])], "xz");
        d.truncate(d.len() - 40);
        std::fs::write(&p, d).unwrap();
        assert!(extract(&p, |_| None, |_| false).is_err());
        // Stopping early skips the rest of the archive (here: even its truncation).
        let mut d = deb(&[("./boot/vmlinuz-1", b"k"), ("./x", &[7u8; 100_000])], "");
        d.truncate(d.len() - 50_000);
        std::fs::write(&p, d).unwrap();
        let got = extract(&p, |_| Some(dir.path().join("k")), |w| w.len() == 1).unwrap();
        assert_eq!(got.len(), 1);
    }

    /// Sizes an archive claims are bounded before anything is allocated for them (these used to
    /// abort the harness: `memory allocation of ... bytes failed`, `capacity overflow`).
    #[test]
    fn huge_entry_sizes_are_errors_not_aborts() {
        let base256 = |size: u64| {
            let mut field = [0u8; 12];
            field[0] = 0x80;
            field[4..].copy_from_slice(&size.to_be_bytes());
            field
        };
        let cases: Vec<(u8, [u8; 12], &str)> = vec![
            (
                b'L',
                base256(1 << 62),
                "header extension of 4611686018427387904 bytes",
            ),
            (b'x', base256(1 << 62), "header extension"),
            (
                b'x',
                *b"77777777777\0",
                "header extension of 8589934591 bytes",
            ),
            (b'0', base256(u64::MAX), "is impossible"),
        ];
        for (typeflag, size, want) in cases {
            let mut t = tar_header("./x", 0, typeflag).to_vec();
            t[124..136].copy_from_slice(&size);
            t.extend_from_slice(&[0u8; 1024]);
            let e = extract_tar(&t[..], |_| None, |_| false).unwrap_err();
            assert!(e.contains(want), "{}: {e}", typeflag as char);
        }
    }

    #[test]
    fn pax_records() {
        let rec = "29 path=./a/very/long/name/x\n";
        assert_eq!(rec.len(), 29);
        assert_eq!(
            pax_path(rec.as_bytes()).as_deref(),
            Some("./a/very/long/name/x")
        );
    }
}
