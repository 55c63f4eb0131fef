//! A private apt configuration, used to read the Debian archive's signed package indexes and to
//! download pinned packages. It lives in a temporary directory and never reads or writes the
//! host's sources, lists, preferences or package state; the host's apt.conf (proxies) applies.
//!
//! Resolution (`harness lock`) runs `apt-get update` for one suite and `apt-cache show`, so the
//! versions and SHA-256 sums come from metadata apt verified against the keyring. Downloads at
//! provisioning time need no index: `apt-helper download-file <mirror>/<filename>` with the
//! locked SHA-256, which apt checks while downloading (and the cache checks again).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::matrix::lockfile::Candidate;

/// Where apt's helper lives on Debian-family systems.
pub const APT_HELPER: &str = "/usr/lib/apt/apt-helper";

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(
        "no Debian mirror configured: set `mirror = \"http://<debian mirror>/debian\"` at the top \
         of {matrix} (no Debian `URIs:`/`deb` line was found in /etc/apt/sources.list or \
         /etc/apt/sources.list.d/)"
    )]
    NoMirror { matrix: String },
    #[error("cannot run `{program}`: {source} (apt is needed to fetch Debian kernels; on a non-Debian host use `vmlinux`/`vmlinuz` kernels)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the Debian mirror {mirror}: {detail}\n(no network? set `mirror` in kernels.toml, or pre-fill the image cache)")]
    Network { mirror: String, detail: String },
    #[error("{url} is not on the mirror (404)")]
    NotFound { url: String },
    #[error("{what} failed: {detail}")]
    Failed { what: String, detail: String },
}

/// Debian codenames and aliases, to tell a Debian apt source from others.
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "unstable",
    "testing",
    "stable",
    "oldstable",
    "oldoldstable",
    "experimental",
];

fn is_debian_source(uri: &str, suites: &[&str], signed_by: Option<&str>) -> bool {
    let uri_ok = (uri.starts_with("http://") || uri.starts_with("https://"))
        && !uri.trim_end_matches('/').ends_with("-security")
        && !uri.contains("security.");
    let suite_ok = suites.iter().any(|s| {
        let base = s.split(['-', '/']).next().unwrap_or(s);
        DEBIAN_SUITES.contains(&base) && !s.contains("security")
    });
    let key_ok = signed_by.is_some_and(|k| k.contains("debian-archive"));
    uri_ok && (suite_ok || key_ok)
}

/// The first Debian archive URI in deb822 `.sources` text.
pub fn mirror_from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let mut types = "";
        let mut uris = "";
        let mut suites = "";
        let mut signed_by = None;
        let mut enabled = true;
        for line in stanza.lines() {
            if line.starts_with('#') || line.starts_with(char::is_whitespace) {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "types" => types = v,
                "uris" => uris = v,
                "suites" => suites = v,
                "signed-by" => signed_by = Some(v),
                "enabled" => enabled = !v.eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if !enabled || !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let suites: Vec<&str> = suites.split_whitespace().collect();
        for uri in uris.split_whitespace() {
            if is_debian_source(uri, &suites, signed_by) {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

/// The first Debian archive URI in one-line-style `sources.list` text.
pub fn mirror_from_list(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let (o, r) = opts.split_once(']')?;
            signed_by = o
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("signed-by="));
            rest = r.trim_start();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        if is_debian_source(uri, &[suite], signed_by) {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

/// The Debian mirror of the host's apt configuration: deb822 `sources.list.d/*.sources` first
/// (Debian 12+ default), then `sources.list`, then `sources.list.d/*.list`.
pub fn host_debian_mirror() -> Option<String> {
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sources"))
        .find_map(|p| read(p).and_then(|t| mirror_from_deb822(&t)))
        .or_else(|| read(Path::new("/etc/apt/sources.list")).and_then(|t| mirror_from_list(&t)))
        .or_else(|| {
            entries
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "list"))
                .find_map(|p| read(p).and_then(|t| mirror_from_list(&t)))
        })
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Options every private apt invocation gets.
fn common_options() -> Vec<String> {
    let mut o: Vec<String> = vec![
        "Acquire::Languages=none".into(),
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons-large::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::DEP-11-icons-large-hidpi::DefaultEnabled=false".into(),
        "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false".into(),
        "Acquire::Retries=2".into(),
        "Acquire::http::Timeout=30".into(),
    ];
    if running_as_root() {
        // apt would otherwise warn that _apt cannot write into our private directories.
        o.push("APT::Sandbox::User=root".into());
    }
    o
}

/// Classifies apt's error output.
pub fn classify_failure(what: &str, mirror: &str, url: Option<&str>, stderr: &str) -> AptError {
    let network_markers = [
        "Could not resolve",
        "Temporary failure resolving",
        "Could not connect",
        "Connection timed out",
        "Network is unreachable",
        "No route to host",
        "Connection refused",
        "Connection failed",
    ];
    let detail = stderr
        .lines()
        .filter(|l| {
            l.starts_with("E:")
                || l.starts_with("Err:")
                || l.starts_with("W:")
                || l.starts_with("  ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let detail = if detail.is_empty() {
        stderr.trim().to_string()
    } else {
        detail
    };
    if network_markers.iter().any(|m| stderr.contains(m)) {
        return AptError::Network {
            mirror: mirror.to_string(),
            detail,
        };
    }
    if let Some(url) = url {
        if stderr.contains("404") || stderr.contains("Not Found") || stderr.contains("No such file")
        {
            return AptError::NotFound {
                url: url.to_string(),
            };
        }
    }
    AptError::Failed {
        what: what.to_string(),
        detail,
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, AptError> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| AptError::Spawn {
            program: what.split_whitespace().next().unwrap_or(what).to_string(),
            source,
        })
}

/// `$TMPDIR/harness-apt.<pid>.*`: private apt roots (see [`crate::leftovers`]).
const APT_ROOT_PREFIX: &str = "harness-apt.";

/// A private apt root for one suite and architecture.
pub struct AptRoot {
    dir: tempfile::TempDir,
    mirror: String,
    suite: String,
}

impl AptRoot {
    /// Writes the private configuration (no network yet).
    pub fn new(
        mirror: &str,
        suite: &str,
        debian_arch: &str,
        keyring: &Path,
    ) -> std::io::Result<AptRoot> {
        let tmp = std::env::temp_dir();
        crate::leftovers::remove_stale(&tmp, APT_ROOT_PREFIX);
        let dir = tempfile::Builder::new()
            .prefix(&crate::leftovers::owned_prefix(APT_ROOT_PREFIX))
            .tempdir_in(&tmp)?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("lists/partial"))?;
        std::fs::create_dir_all(d.join("cache/archives/partial"))?;
        std::fs::write(d.join("status"), b"")?;
        std::fs::write(
            d.join("sources.list"),
            format!(
                "deb [arch={debian_arch} signed-by={}] {mirror} {suite} main\n",
                keyring.display()
            ),
        )?;
        Ok(AptRoot {
            dir,
            mirror: mirror.to_string(),
            suite: suite.to_string(),
        })
    }

    fn options(&self, debian_arch: Option<&str>) -> Vec<String> {
        let d = self.dir.path().display();
        let mut o = vec![
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".to_string(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::State::extended_states={d}/extended_states"),
            "Dir::Etc::Preferences=/dev/null".to_string(),
            "Dir::Etc::PreferencesParts=/dev/null".to_string(),
        ];
        if let Some(a) = debian_arch {
            o.push(format!("APT::Architecture={a}"));
            o.push(format!("APT::Architectures={a}"));
        }
        o.extend(common_options());
        o
    }

    fn command(&self, program: &str, arch: &str) -> Command {
        let mut c = Command::new(program);
        crate::leftovers::die_with_harness(&mut c);
        c.arg("-q");
        for o in self.options(Some(arch)) {
            c.arg("-o").arg(o);
        }
        c.env("LC_ALL", "C");
        c
    }

    /// Fetches the suite's signed `Release` and `Packages` index.
    pub fn update(&self, arch: &str) -> Result<(), AptError> {
        let out = run(
            self.command("apt-get", arch).arg("update"),
            "apt-get update",
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // apt-get update exits 0 even when a source failed; "W: Failed to fetch" / "E:" tell.
        if !out.status.success()
            || stderr.contains("Failed to fetch")
            || stderr.contains("\nE:")
            || stderr.starts_with("E:")
        {
            return Err(classify_failure(
                &format!(
                    "apt-get update for Debian `{}` from {}",
                    self.suite, self.mirror
                ),
                &self.mirror,
                None,
                &stderr,
            ));
        }
        Ok(())
    }

    /// Package names starting with `prefix`.
    pub fn pkgnames(&self, arch: &str, prefix: &str) -> Result<Vec<String>, AptError> {
        let out = run(
            self.command("apt-cache", arch).arg("pkgnames").arg(prefix),
            "apt-cache pkgnames",
        )?;
        if !out.status.success() {
            return Err(AptError::Failed {
                what: format!("apt-cache pkgnames {prefix}"),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        Ok(v)
    }

    /// Every version of `names` in the index.
    pub fn show(&self, arch: &str, names: &[String]) -> Result<Vec<Candidate>, AptError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let out = run(
            self.command("apt-cache", arch).arg("show").args(names),
            "apt-cache show",
        )?;
        if !out.status.success() {
            return Err(AptError::Failed {
                what: "apt-cache show".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(parse_show(&String::from_utf8_lossy(&out.stdout)))
    }
}

/// Parses `apt-cache show` stanzas (pure); stanzas lacking a field the lock needs are skipped.
pub fn parse_show(text: &str) -> Vec<Candidate> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        let (Some(name), Some(version), Some(filename), Some(size), Some(sha256)) = (
            field("Package"),
            field("Version"),
            field("Filename"),
            field("Size").and_then(|s| s.parse::<u64>().ok()),
            field("SHA256"),
        ) else {
            continue;
        };
        out.push(Candidate {
            name,
            version,
            architecture: field("Architecture").unwrap_or_default(),
            filename,
            size,
            sha256: sha256.to_ascii_lowercase(),
        });
    }
    out
}

/// A running `apt-helper download-file`.
pub struct Download {
    child: std::process::Child,
    url: String,
    mirror: String,
}

/// Starts downloading `<mirror>/<filename>` to `dest`; apt checks `sha256` as it goes.
pub fn start_download(
    mirror: &str,
    filename: &str,
    sha256: &str,
    dest: &Path,
) -> Result<Download, AptError> {
    let url = format!(
        "{}/{}",
        mirror.trim_end_matches('/'),
        filename.trim_start_matches('/')
    );
    let mut c = Command::new(APT_HELPER);
    crate::leftovers::die_with_harness(&mut c);
    c.arg("-q");
    for o in common_options() {
        c.arg("-o").arg(o);
    }
    c.arg("download-file")
        .arg(&url)
        .arg(dest)
        .arg(format!("SHA256:{sha256}"))
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = c.spawn().map_err(|source| AptError::Spawn {
        program: APT_HELPER.into(),
        source,
    })?;
    Ok(Download {
        child,
        url,
        mirror: mirror.to_string(),
    })
}

impl Download {
    /// Waits for the download, calling `tick` about every 200 ms meanwhile.
    pub fn wait(mut self, mut tick: impl FnMut()) -> Result<(), AptError> {
        // Drain stderr on a thread so a chatty apt cannot block on a full pipe.
        let mut stderr = self.child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {
                    tick();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    return Err(AptError::Failed {
                        what: format!("waiting for the download of {}", self.url),
                        detail: e.to_string(),
                    })
                }
            }
        };
        tick();
        let stderr = reader.join().unwrap_or_default();
        if status.success() && !stderr.contains("\nE:") && !stderr.starts_with("E:") {
            return Ok(());
        }
        Err(classify_failure(
            &format!("downloading {}", self.url),
            &self.mirror,
            Some(&self.url),
            &stderr,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_mirror() {
        let text = "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_from_deb822(text).as_deref(),
            Some("http://mirror.example/debian")
        );
        let security_first = "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\nTypes: deb deb-src\nURIs: https://m2.example/debian\nSuites: trixie\n";
        assert_eq!(
            mirror_from_deb822(security_first).as_deref(),
            Some("https://m2.example/debian")
        );
        let disabled = "Types: deb\nURIs: http://a.example/debian\nSuites: sid\nEnabled: no\n";
        assert_eq!(mirror_from_deb822(disabled), None);
        let other =
            "Types: deb\nURIs: https://deb.nodesource.example/node_20.x\nSuites: nodistro\n";
        assert_eq!(mirror_from_deb822(other), None);
        let src_only = "Types: deb-src\nURIs: http://a.example/debian\nSuites: sid\n";
        assert_eq!(mirror_from_deb822(src_only), None);
    }

    #[test]
    fn list_mirror() {
        let text = "# comment\ndeb-src http://src.example/debian bookworm main\ndeb http://sec.example/debian-security bookworm-security main\ndeb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian/ bookworm main\n";
        assert_eq!(
            mirror_from_list(text).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            mirror_from_list("deb http://archive.example/ubuntu jammy main\n"),
            None
        );
        assert_eq!(
            mirror_from_list("deb http://x.example/debian stable main # c\n").as_deref(),
            Some("http://x.example/debian")
        );
    }

    #[test]
    fn show_parsing() {
        let text = "Package: linux-base-7.2.13+deb14-amd64\nSource: linux\nVersion: 7.2.13-1\nArchitecture: amd64\nFilename: pool/main/l/linux/linux-base-7.2.13+deb14-amd64_7.2.13-1_amd64.deb\nSize: 469412\nSHA256: 2B2D\nDescription: x\n multi-line\n\nPackage: broken\nVersion: 1\n\n";
        let c = parse_show(text);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "linux-base-7.2.13+deb14-amd64");
        assert_eq!(c[0].version, "7.2.13-1");
        assert_eq!(c[0].size, 469412);
        assert_eq!(c[0].sha256, "2b2d");
        assert_eq!(c[0].architecture, "amd64");
    }

    #[test]
    fn failure_classification() {
        let e = classify_failure(
            "x",
            "http://m",
            Some("http://m/pool/a.deb"),
            "Err:1 http://m/pool/a.deb\n  404  Not Found [IP: 1.2.3.4 80]\nE: Download Failed\n",
        );
        assert!(matches!(e, AptError::NotFound { .. }), "{e}");
        let e = classify_failure(
            "x",
            "http://m",
            None,
            "Err:1 http://m sid InRelease\n  Temporary failure resolving 'm'\n",
        );
        assert!(matches!(e, AptError::Network { .. }), "{e}");
        assert!(e.to_string().contains("no network?"));
        let e = classify_failure("x", "http://m", Some("u"), "E: Hash Sum mismatch\n");
        assert!(matches!(e, AptError::Failed { .. }), "{e}");
    }
}
