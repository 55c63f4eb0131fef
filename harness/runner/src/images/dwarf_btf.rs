//! BTF made from a vmlinux's DWARF with pahole, for a kernel built without
//! `CONFIG_DEBUG_INFO_BTF` (`btf_from_dwarf = true` in the matrix). The flags follow what the
//! kernel's own build passes to the same pahole version (`scripts/Makefile.btf`), so the result
//! is the BTF the kernel would have carried.

use std::path::Path;
use std::process::Command;

/// The generated BTF, beside the image in its cache directory.
pub const FILE: &str = "vmlinux.dwarf.btf";

/// The oldest pahole that writes BTF to a file of its own (`--btf_encode_detached`).
const OLDEST: (u32, u32) = (1, 21);

/// `pahole --version` output (`v1.24`) as (major, minor) (pure).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.trim().strip_prefix('v')?;
    let (major, minor) = v.split_once('.')?;
    let minor: String = minor.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The encoding flags for `version` (pure): the kernel build's choice for it.
pub fn flags(version: (u32, u32)) -> Result<Vec<&'static str>, String> {
    if version < OLDEST {
        return Err(format!(
            "pahole {}.{} cannot write detached BTF; {}.{} or later is needed",
            version.0, version.1, OLDEST.0, OLDEST.1
        ));
    }
    let mut flags = vec!["-j"];
    if version >= (1, 26) {
        flags.push(
            "--btf_features=encode_force,var,float,enum64,decl_tag,type_tag,optimized_func,\
             consistent_func",
        );
    } else {
        flags.push("--btf_gen_floats");
        if version >= (1, 25) {
            flags.extend([
                "--skip_encoding_btf_inconsistent_proto",
                "--btf_gen_optimized",
            ]);
        }
    }
    Ok(flags)
}

/// Writes the BTF of `vmlinux`'s DWARF to `out` (through a temporary file beside it, so a
/// reader never sees half of it). Errors say what to do.
pub fn generate(vmlinux: &Path, out: &Path) -> Result<(), String> {
    let version = Command::new("pahole")
        .arg("--version")
        .output()
        .map_err(|e| {
            format!("cannot run pahole ({e}): `btf_from_dwarf` needs it (apt-get install dwarves)")
        })?;
    let text = String::from_utf8_lossy(&version.stdout);
    let parsed = parse_version(&text)
        .ok_or_else(|| format!("pahole --version printed `{}`", text.trim()))?;
    let tmp = out.with_extension("btf.tmp");
    let output = Command::new("pahole")
        .args(flags(parsed)?)
        .arg(format!("--btf_encode_detached={}", tmp.display()))
        .arg(vmlinux)
        .output()
        .map_err(|e| format!("cannot run pahole: {e}"))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "pahole failed ({}) on {}: {}",
            output.status,
            vmlinux.display(),
            crate::verdict::readable::last_lines(&String::from_utf8_lossy(&output.stderr), 5)
        ));
    }
    let bytes = std::fs::read(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    if let Err(e) = core_reloc::Btf::parse(&bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "pahole wrote no usable BTF for {} ({e}); was the kernel built with \
             CONFIG_DEBUG_INFO (DWARF)?",
            vmlinux.display()
        ));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_pahole_prints_them() {
        assert_eq!(parse_version("v1.24\n"), Some((1, 24)));
        assert_eq!(parse_version("v1.30-rc1"), Some((1, 30)));
        assert_eq!(parse_version("1.24"), None);
        assert_eq!(parse_version("vx.y"), None);
    }

    #[test]
    fn flags_follow_the_kernel_build_per_version() {
        assert!(flags((1, 20)).unwrap_err().contains("1.21 or later"));
        assert_eq!(flags((1, 24)).unwrap(), ["-j", "--btf_gen_floats"]);
        assert_eq!(
            flags((1, 25)).unwrap(),
            [
                "-j",
                "--btf_gen_floats",
                "--skip_encoding_btf_inconsistent_proto",
                "--btf_gen_optimized"
            ]
        );
        let new = flags((1, 27)).unwrap();
        assert!(
            new[1].starts_with("--btf_features=encode_force,var,float,enum64"),
            "{new:?}"
        );
    }

    /// pahole on a real object with DWARF: the BTF it writes parses and holds the struct.
    #[test]
    fn btf_is_made_from_the_dwarf_of_an_object() {
        if Command::new("pahole").arg("--version").output().is_err()
            || Command::new("cc").arg("--version").output().is_err()
        {
            // Provisioned by `harness setup` (dwarves, gcc); say so rather than pass.
            panic!("this test needs pahole and cc: run `cargo run -p harness -- setup`");
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("t.c");
        std::fs::write(&src, "struct task { int pid; long when; } t;\n").unwrap();
        let obj = dir.path().join("t.o");
        let cc = Command::new("cc")
            .args(["-g", "-c", "-o"])
            .arg(&obj)
            .arg(&src)
            .status()
            .unwrap();
        assert!(cc.success());
        let out = dir.path().join(FILE);
        generate(&obj, &out).unwrap();
        let btf = core_reloc::Btf::parse(&std::fs::read(&out).unwrap()).unwrap();
        let names: Vec<String> = (1..btf.type_count())
            .filter_map(|id| btf.name_of(id).ok().map(str::to_string))
            .collect();
        assert!(names.iter().any(|n| n == "task"), "{names:?}");

        let err = generate(&src, &dir.path().join("x.btf")).unwrap_err();
        assert!(err.contains("pahole"), "{err}");
    }
}
