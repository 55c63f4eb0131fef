//! The objects a run tests and the fixtures of each: found ([`discover`]), built where they are
//! sources ([`build`]), read once into memory (what is hashed is what ships), and checked against
//! their fixtures before anything boots.

pub mod build;
pub mod discover;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

pub use build::{BuildOptions, Builder};
pub use discover::{ObjectInput, Origin};

use crate::fixtures::FixtureFile;

/// One object, ready to ship.
#[derive(Debug, Clone)]
pub struct CorpusObject {
    pub input: ObjectInput,
    /// Exactly the bytes every guest receives.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`: for a precompiled object, of the file the user gave.
    pub sha256: String,
    /// Its cases; `None`: a load-only object (relocated and loaded on every kernel).
    pub fixtures: Option<FixtureFile>,
}

impl CorpusObject {
    pub fn name(&self) -> &str {
        &self.input.name
    }
}

/// Every object of a run, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub objects: Vec<CorpusObject>,
    /// Files passed over and why, for the user to see.
    pub notes: Vec<String>,
}

/// What a run will test, before anything is built: each object with its parsed fixtures.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub objects: Vec<(ObjectInput, Option<FixtureFile>)>,
    /// Files passed over and why, for the user to see.
    pub notes: Vec<String>,
}

impl Plan {
    /// Finds the objects of `dirs` and `files` and parses their fixtures.
    pub fn find(dirs: &[PathBuf], files: &[PathBuf]) -> Result<Plan> {
        let discovery = discover::collect(dirs, files)?;
        let mut objects = Vec::with_capacity(discovery.objects.len());
        for input in discovery.objects {
            let fixtures = input
                .fixtures
                .as_deref()
                .map(crate::fixtures::load_file)
                .transpose()?;
            objects.push((input, fixtures));
        }
        Ok(Plan {
            objects,
            notes: discovery.notes,
        })
    }

    pub fn has_sources(&self) -> bool {
        self.objects.iter().any(|(o, _)| o.origin == Origin::Source)
    }

    pub fn names(&self) -> Vec<String> {
        self.objects.iter().map(|(o, _)| o.name.clone()).collect()
    }

    pub fn fixture_files(&self) -> impl Iterator<Item = &FixtureFile> {
        self.objects.iter().filter_map(|(_, f)| f.as_ref())
    }

    /// Builds the sources (cached in `cache`), reads every object once and checks that its
    /// fixtures name programs and maps it has.
    pub fn materialize(self, build: &BuildOptions, cache: &Path) -> Result<Corpus> {
        let mut builder = None;
        let mut objects = Vec::with_capacity(self.objects.len());
        for (input, fixtures) in self.objects {
            let bytes = match input.origin {
                Origin::Prebuilt => std::fs::read(&input.path)
                    .with_context(|| format!("reading {}", input.path.display()))?,
                Origin::Source => {
                    if builder.is_none() {
                        builder = Some(Builder::new(build, cache)?);
                    }
                    let Some(builder) = builder.as_ref() else {
                        bail!("no compiler session");
                    };
                    builder.build(&input.path)?.bytes
                }
            };
            if let Some(fixtures) = &fixtures {
                check_names(&input, &bytes, fixtures)?;
            }
            objects.push(CorpusObject {
                sha256: hex::encode(Sha256::digest(&bytes)),
                input,
                bytes,
                fixtures,
            });
        }
        Ok(Corpus {
            objects,
            notes: self.notes,
        })
    }
}

/// Fixture names that the object does not define are errors that list what it does define.
/// An object the host cannot parse is not judged here: every guest will report why.
fn check_names(input: &ObjectInput, bytes: &[u8], fixtures: &FixtureFile) -> Result<()> {
    let Ok(object) = core_reloc::Object::parse(bytes) else {
        return Ok(());
    };
    let programs: Vec<&str> = object.programs().iter().map(|p| p.name.as_str()).collect();
    let maps: Vec<&str> = object.maps().iter().map(|m| m.name.as_str()).collect();
    let at = fixtures.path.display();
    for map in fixtures.load.maps.keys() {
        if !maps.contains(&map.as_str()) {
            bail!(
                "{at}: [maps.{map}]: object {} has no map `{map}`; its maps: {}",
                input.name,
                list(&maps)
            );
        }
    }
    for program in &fixtures.load.not_autoloaded {
        if !programs.contains(&program.as_str()) {
            bail!(
                "{at}: [programs.{program}]: object {} has no program `{program}`; its programs: {}",
                input.name,
                list(&programs)
            );
        }
    }
    for case in &fixtures.cases {
        if fixtures.load.not_autoloaded.contains(&case.program) {
            bail!(
                "{at}: case `{}` runs program `{}`, which [programs.{}] says is not loaded",
                case.name,
                case.program,
                case.program
            );
        }
        let at = || format!("{}: case `{}`", fixtures.path.display(), case.name);
        if !programs.contains(&case.program.as_str()) {
            bail!(
                "{}: object {} has no program `{}`; its programs: {}",
                at(),
                input.name,
                case.program,
                list(&programs)
            );
        }
        let named = case
            .expect
            .maps
            .iter()
            .map(|m| m.map.as_str())
            .chain(case.expect.maps_exact.iter().map(String::as_str));
        for map in named {
            if !maps.contains(&map) {
                bail!(
                    "{}: object {} has no map `{map}`; its maps: {}",
                    at(),
                    input.name,
                    list(&maps)
                );
            }
        }
    }
    Ok(())
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
