//! Which objects a run tests: precompiled BPF ELF files as the user gave them, sources to
//! build, and the fixture file beside each. Only file names and ELF headers are read here.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// `e_machine` of BPF objects.
const EM_BPF: u16 = 247;
/// Suffix of precompiled objects named the libbpf way.
pub const OBJECT_SUFFIX: &str = ".bpf.o";
/// Suffix of fixture files.
pub const FIXTURES_SUFFIX: &str = ".fixtures.toml";

/// What an object is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A BPF ELF file, shipped byte for byte as given.
    Prebuilt,
    /// A `.bpf.c` source the harness compiles.
    Source,
}

impl Origin {
    pub fn label(&self) -> &'static str {
        match self {
            Origin::Prebuilt => "prebuilt",
            Origin::Source => "source",
        }
    }
}

/// One object a run will test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInput {
    /// The name trials use: the file name without `.bpf.o`, `.o` or `.bpf.c`.
    pub name: String,
    pub origin: Origin,
    /// The file the user gave (object or source).
    pub path: PathBuf,
    /// `<name>.fixtures.toml` beside it, if there is one.
    pub fixtures: Option<PathBuf>,
}

/// What was found, and what was passed over and why (printed, so nothing is skipped silently).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub objects: Vec<ObjectInput>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot read {path}: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error("{path} is not a BPF object: {why}")]
    NotBpf { path: PathBuf, why: String },
    #[error("no BPF objects (*.bpf.o, *.o with e_machine EM_BPF) or sources (*.bpf.c) in {}{}", .dir.display(), hint(.notes))]
    NothingFound { dir: PathBuf, notes: Vec<String> },
    #[error("two objects are named `{name}`: {} and {}; trials name objects by file name, so rename one", .first.display(), .second.display())]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{} has no object: there is no {name}.bpf.o, {name}.o or {name}.bpf.c beside it{}", .fixtures.display(), list_known(.known))]
    FixturesWithoutObject {
        name: String,
        fixtures: PathBuf,
        known: Vec<String>,
    },
    #[error("object name `{name}` (from {}) cannot name trials: use letters, digits, `_`, `-`, `.` or `+`", .path.display())]
    BadName { name: String, path: PathBuf },
}

fn hint(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!(" (passed over: {})", notes.join("; "))
    }
}

fn list_known(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (objects there: {})", names.join(", "))
    }
}

/// Is this the header of a 64-bit little-endian ELF for BPF? Err says what it is instead.
pub fn check_bpf_elf(header: &[u8]) -> Result<(), String> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if header[4] != 2 {
        return Err("a 32-bit ELF file (BPF objects are ELF64)".into());
    }
    if header[5] != 1 {
        return Err("a big-endian ELF file (only little-endian BPF objects are supported)".into());
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    if machine != EM_BPF {
        return Err(format!(
            "an ELF file for e_machine {machine}, not EM_BPF ({EM_BPF})"
        ));
    }
    Ok(())
}

fn read_header(path: &Path) -> Result<Vec<u8>, DiscoverError> {
    let mut header = Vec::with_capacity(20);
    std::fs::File::open(path)
        .and_then(|f| f.take(20).read_to_end(&mut header))
        .map_err(|e| DiscoverError::Unreadable {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    Ok(header)
}

/// The object name a file stands for, and its origin, by its name alone.
fn classify_name(file_name: &str) -> Option<(&str, Origin)> {
    let named = |suffix: &str| {
        file_name
            .strip_suffix(suffix)
            .filter(|stem| !stem.is_empty())
    };
    if let Some(stem) = named(OBJECT_SUFFIX) {
        Some((stem, Origin::Prebuilt))
    } else if let Some(stem) = named(super::build::SOURCE_SUFFIX) {
        Some((stem, Origin::Source))
    } else {
        named(".o").map(|stem| (stem, Origin::Prebuilt))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

/// Every object of `dir`: `*.bpf.o` and BPF `*.o` files as they are, `*.bpf.c` sources that
/// have no precompiled object of the same name beside them, each with its fixtures.
pub fn scan_dir(dir: &Path) -> Result<Discovery, DiscoverError> {
    let unreadable = |e: std::io::Error| DiscoverError::Unreadable {
        path: dir.to_path_buf(),
        why: e.to_string(),
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            files.push((name.to_string(), path));
        }
    }
    files.sort();

    let mut discovery = Discovery::default();
    let mut prebuilt: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut fixtures: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (file_name, path) in &files {
        if let Some(stem) = file_name.strip_suffix(FIXTURES_SUFFIX) {
            fixtures.insert(stem.to_string(), path.clone());
            continue;
        }
        let Some((stem, origin)) = classify_name(file_name) else {
            continue;
        };
        match origin {
            Origin::Source => {
                sources.insert(stem.to_string(), path.clone());
            }
            Origin::Prebuilt => {
                if let Err(why) = check_bpf_elf(&read_header(path)?) {
                    if file_name.ends_with(OBJECT_SUFFIX) {
                        // Named as a BPF object: a wrong file here is the user's mistake to see.
                        return Err(DiscoverError::NotBpf {
                            path: path.clone(),
                            why,
                        });
                    }
                    discovery.notes.push(format!("{file_name}: {why}"));
                    continue;
                }
                if let Some(first) = prebuilt.insert(stem.to_string(), path.clone()) {
                    return Err(DiscoverError::DuplicateName {
                        name: stem.to_string(),
                        first,
                        second: path.clone(),
                    });
                }
            }
        }
    }
    for (name, path) in &prebuilt {
        if let Some(source) = sources.remove(name) {
            discovery.notes.push(format!(
                "{name}: testing the precompiled {} as it is; {} beside it is not built",
                file_name_of(path),
                file_name_of(&source)
            ));
        }
    }
    let mut all: Vec<ObjectInput> = prebuilt
        .into_iter()
        .map(|(name, path)| (name, path, Origin::Prebuilt))
        .chain(
            sources
                .into_iter()
                .map(|(name, path)| (name, path, Origin::Source)),
        )
        .map(|(name, path, origin)| ObjectInput {
            fixtures: fixtures.remove(&name),
            name,
            origin,
            path,
        })
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some((name, path)) = fixtures.into_iter().next() {
        return Err(DiscoverError::FixturesWithoutObject {
            name,
            fixtures: path,
            known: all.iter().map(|o| o.name.clone()).collect(),
        });
    }
    if all.is_empty() {
        return Err(DiscoverError::NothingFound {
            dir: dir.to_path_buf(),
            notes: discovery.notes,
        });
    }
    discovery.objects = all;
    Ok(discovery)
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One file named on the command line (`--object PATH`): a BPF ELF object, or a `.bpf.c`.
pub fn single_file(path: &Path) -> Result<ObjectInput, DiscoverError> {
    let file_name = file_name_of(path);
    let header = read_header(path)?;
    let (name, origin) = match classify_name(&file_name) {
        Some((stem, Origin::Source)) => (stem.to_string(), Origin::Source),
        Some((stem, Origin::Prebuilt)) => (stem.to_string(), Origin::Prebuilt),
        // Any other file name: it must be a BPF ELF file, named by its whole file name.
        None => (file_name.clone(), Origin::Prebuilt),
    };
    if origin == Origin::Prebuilt {
        check_bpf_elf(&header).map_err(|why| DiscoverError::NotBpf {
            path: path.to_path_buf(),
            why,
        })?;
    }
    let fixtures = path
        .parent()
        .map(|dir| dir.join(format!("{name}{FIXTURES_SUFFIX}")))
        .filter(|f| f.is_file());
    Ok(ObjectInput {
        name,
        origin,
        path: path.to_path_buf(),
        fixtures,
    })
}

/// What the command line asks for: directories and single files, with every name unique.
pub fn collect(dirs: &[PathBuf], files: &[PathBuf]) -> Result<Discovery, DiscoverError> {
    let mut discovery = Discovery::default();
    for dir in dirs {
        let found = scan_dir(dir)?;
        discovery.objects.extend(found.objects);
        discovery.notes.extend(found.notes);
    }
    for file in files {
        discovery.objects.push(single_file(file)?);
    }
    discovery.objects.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for object in &discovery.objects {
        if !valid_name(&object.name) {
            return Err(DiscoverError::BadName {
                name: object.name.clone(),
                path: object.path.clone(),
            });
        }
        if let Some(first) = seen.insert(&object.name, &object.path) {
            return Err(DiscoverError::DuplicateName {
                name: object.name.clone(),
                first: first.to_path_buf(),
                second: object.path.clone(),
            });
        }
    }
    Ok(discovery)
}

impl fmt::Display for ObjectInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.name,
            self.origin.label(),
            self.path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 20 bytes of an ELF64 little-endian header for `machine`.
    fn elf_header(machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn elf_headers_are_told_apart() {
        assert_eq!(check_bpf_elf(&elf_header(EM_BPF)), Ok(()));
        assert!(check_bpf_elf(&elf_header(62))
            .unwrap_err()
            .contains("e_machine 62"));
        assert!(check_bpf_elf(b"int main;")
            .unwrap_err()
            .contains("not an ELF"));
        let mut big = elf_header(EM_BPF);
        big[5] = 2;
        assert!(check_bpf_elf(&big).unwrap_err().contains("big-endian"));
    }

    #[test]
    fn a_directory_of_precompiled_objects_with_and_without_fixtures() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "ipver.bpf.o", &elf_header(EM_BPF));
        write(d.path(), "ipver.fixtures.toml", b"object = \"ipver\"\n");
        write(d.path(), "plain.o", &elf_header(EM_BPF));
        write(d.path(), "user_space.o", &elf_header(62));
        write(d.path(), "README.md", b"notes");
        let found = scan_dir(d.path()).unwrap();
        let names: Vec<_> = found.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["ipver", "plain"]);
        assert!(found.objects.iter().all(|o| o.origin == Origin::Prebuilt));
        assert!(found.objects[0].fixtures.is_some());
        assert!(found.objects[1].fixtures.is_none());
        assert_eq!(found.notes.len(), 1);
        assert!(found.notes[0].contains("user_space.o"), "{:?}", found.notes);
    }

    #[test]
    fn a_precompiled_object_wins_over_its_source_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "x.bpf.o", &elf_header(EM_BPF));
        write(d.path(), "x.bpf.c", b"int x;");
        write(d.path(), "y.bpf.c", b"int y;");
        let found = scan_dir(d.path()).unwrap();
        assert_eq!(found.objects.len(), 2);
        assert_eq!(found.objects[0].origin, Origin::Prebuilt);
        assert_eq!(found.objects[1].origin, Origin::Source);
        assert!(found.notes[0].contains("not built"), "{:?}", found.notes);
    }

    #[test]
    fn nothing_to_test_is_an_error_naming_the_directory() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "user_space.o", &elf_header(62));
        let e = scan_dir(d.path()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, DiscoverError::NothingFound { .. }), "{text}");
        assert!(text.contains(&d.path().display().to_string()), "{text}");
        assert!(text.contains("user_space.o"), "{text}");
    }

    #[test]
    fn fixtures_without_an_object_name_what_is_there() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.bpf.o", &elf_header(EM_BPF));
        write(d.path(), "b.fixtures.toml", b"object = \"b\"\n");
        let e = scan_dir(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("b.bpf.o") && e.contains("objects there: a"),
            "{e}"
        );
    }

    #[test]
    fn a_misnamed_bpf_o_is_an_error_not_a_skip() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "broken.bpf.o", b"truncated");
        assert!(matches!(
            scan_dir(d.path()),
            Err(DiscoverError::NotBpf { .. })
        ));
    }

    #[test]
    fn single_files_and_duplicate_names() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "prog.bpf.o", &elf_header(EM_BPF));
        write(d.path(), "prog.fixtures.toml", b"object = \"prog\"\n");
        let other = tempfile::tempdir().unwrap();
        let b = write(other.path(), "prog.o", &elf_header(EM_BPF));
        let odd = write(other.path(), "objfile", &elf_header(EM_BPF));
        let one = single_file(&a).unwrap();
        assert_eq!(one.name, "prog");
        assert!(one.fixtures.is_some());
        assert_eq!(single_file(&odd).unwrap().name, "objfile");
        assert!(matches!(
            collect(&[], &[a.clone(), b]),
            Err(DiscoverError::DuplicateName { .. })
        ));
        let not_bpf = write(other.path(), "host.o", &elf_header(62));
        assert!(matches!(
            single_file(&not_bpf),
            Err(DiscoverError::NotBpf { .. })
        ));
        assert!(matches!(
            single_file(&other.path().join("missing.bpf.o")),
            Err(DiscoverError::Unreadable { .. })
        ));
    }

    #[test]
    fn names_that_would_break_trial_names_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a:b.bpf.o", &elf_header(EM_BPF));
        assert!(matches!(
            collect(&[], &[p]),
            Err(DiscoverError::BadName { .. })
        ));
    }
}
