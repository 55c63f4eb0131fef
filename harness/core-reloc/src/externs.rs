//! Deciding what each extern of an object becomes on one kernel, as libbpf decides it: kfuncs
//! and typed `__ksym`s by name in the kernel's BTF (with libbpf's loose type compatibility),
//! typeless `__ksym`s by address from kallsyms, `.kconfig` values from the kernel's config and
//! libbpf's virtual `LINUX_*` values. Pure: the caller reads kallsyms and the config and passes
//! their text in [`KernelFacts`].

use std::collections::HashMap;

use crate::btf::{Btf, Kind, TypeBody};
use crate::core::compat::types_are_compat;
use crate::object::{Extern, ExternKind, KconfigType, Object};

/// libbpf's base for poisoned calls to unresolved weak kfuncs (`call 2002000000 + extern index`).
pub const POISON_KFUNC_CALL_BASE: i32 = 2_002_000_000;

/// What the loader learned from the running kernel, beyond its BTF.
#[derive(Debug, Clone, Default)]
pub struct KernelFacts<'a> {
    /// `uname -r`.
    pub release: &'a str,
    /// The kernel's `.config` text, if one could be found.
    pub kconfig: Option<&'a str>,
    /// Addresses of the typeless ksyms found in kallsyms (a name may appear more than once).
    pub kallsyms: HashMap<String, Vec<u64>>,
    /// `bpf_get_attach_cookie` exists (libbpf's `FEAT_BPF_COOKIE`).
    pub has_bpf_cookie: bool,
    /// Syscalls are entered through `__<arch>_sys_*` wrappers (`FEAT_SYSCALL_WRAPPER`).
    pub has_syscall_wrapper: bool,
}

/// What one extern resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternValue {
    /// A weak extern the kernel lacks: loads read 0, calls are poisoned.
    Unresolved,
    /// A kfunc's or a typed ksym's id in the kernel's (vmlinux) BTF.
    KernelBtfId(u32),
    /// A typeless ksym's address.
    Address(u64),
    /// A `.kconfig` value, written into the `.kconfig` map image.
    Kconfig,
}

/// What every extern of an object resolved to against one kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternResolution {
    /// Parallel to `Object::externs()`.
    pub values: Vec<ExternValue>,
    /// The `.kconfig` map's value, when the object has kconfig externs.
    pub kconfig_image: Option<Vec<u8>>,
}

/// Why an object's externs cannot be resolved (libbpf fails the load the same way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternError {
    /// A strong extern the kernel does not have.
    #[error("extern {name} ({what}, strong): not found in the kernel {where_}")]
    NotFound {
        /// The extern.
        name: String,
        /// What kind of extern.
        what: &'static str,
        /// Where it was looked for.
        where_: &'static str,
    },
    /// The kernel has it with an incompatible type.
    #[error("extern {name} ({what}): the kernel's type is incompatible: {why}")]
    Incompatible {
        /// The extern.
        name: String,
        /// What kind of extern.
        what: &'static str,
        /// How the types differ.
        why: String,
    },
    /// A kconfig value that cannot be stored as the extern's type.
    #[error("extern {name} (kconfig): {why}")]
    BadKconfig {
        /// The extern.
        name: String,
        /// What is wrong with the value.
        why: String,
    },
    /// A kconfig extern, and no kernel config to read it from.
    #[error("extern {name} (kconfig): the kernel's config is not available (no /boot/config-<release>, /proc/config.gz or shipped config)")]
    NoKconfig {
        /// The extern.
        name: String,
    },
    /// A `LINUX_*` virtual extern libbpf does not define.
    #[error("extern {name} (kconfig): unrecognized virtual extern (libbpf knows LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE, LINUX_HAS_SYSCALL_WRAPPER)")]
    UnknownVirtual {
        /// The extern.
        name: String,
    },
    /// Two kernel symbols of that name at different addresses.
    #[error("extern {name} (ksym): resolution is ambiguous: {first:#x} or {second:#x}")]
    Ambiguous {
        /// The extern.
        name: String,
        /// One address.
        first: u64,
        /// Another.
        second: u64,
    },
    /// The object's or the kernel's BTF could not be read for the extern.
    #[error("extern {name}: {why}")]
    Btf {
        /// The extern.
        name: String,
        /// The BTF error.
        why: String,
    },
}

/// Names of the typeless ksyms, to look up in kallsyms.
pub fn kallsyms_wanted(obj: &Object) -> Vec<&str> {
    obj.externs()
        .iter()
        .filter(|e| e.kind == ExternKind::TypelessKsym)
        .map(|e| e.name.as_str())
        .collect()
}

/// Whether any extern needs the kernel's config (`CONFIG_*` kconfig externs).
pub fn needs_kconfig(obj: &Object) -> bool {
    obj.externs()
        .iter()
        .any(|e| matches!(e.kind, ExternKind::Kconfig { .. }) && e.name.starts_with("CONFIG_"))
}

/// Collects the addresses of `wanted` names from kallsyms text (`addr type name [module]`
/// lines); a `.llvm.<hash>` suffix on static data symbols is ignored, as libbpf ignores it.
pub fn scan_kallsyms<'a>(
    lines: impl Iterator<Item = &'a str>,
    wanted: &[&str],
) -> HashMap<String, Vec<u64>> {
    let mut found: HashMap<String, Vec<u64>> = HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    for line in lines {
        scan_kallsyms_line(line, wanted, &mut found);
    }
    found
}

/// [`scan_kallsyms`] for one line, for callers that stream the file.
pub fn scan_kallsyms_line(line: &str, wanted: &[&str], found: &mut HashMap<String, Vec<u64>>) {
    let mut parts = line.split_whitespace();
    let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let name = match name.find(".llvm.") {
        Some(at) if kind == "d" => &name[..at],
        _ => name,
    };
    if !wanted.contains(&name) {
        return;
    }
    let Ok(addr) = u64::from_str_radix(addr, 16) else {
        return;
    };
    let entry = found.entry(name.to_string()).or_default();
    // Bounded: a name listed more often than this is ambiguous anyway.
    if entry.len() < 8 {
        entry.push(addr);
    }
}

/// `KERNEL_VERSION(a, b, c)` of a release string such as `6.1.0-18-amd64`, as libbpf computes it
/// from `uname -r` (the third number capped at 255); `None` without three leading numbers.
pub fn kernel_version_code(release: &str) -> Option<u32> {
    let mut numbers = [0u32; 3];
    let mut rest = release;
    for (i, slot) in numbers.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix('.')?;
        }
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        *slot = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
    }
    let [a, b, c] = numbers;
    Some(
        (a.checked_shl(16)?)
            .wrapping_add(b << 8)
            .wrapping_add(c.min(255)),
    )
}

/// Resolves every extern of `obj` against the kernel described by `target` and `facts`.
pub fn resolve(
    obj: &Object,
    target: &Btf,
    facts: &KernelFacts<'_>,
) -> Result<ExternResolution, ExternError> {
    let externs = obj.externs();
    let mut values = vec![ExternValue::Unresolved; externs.len()];
    let kconfig_len = obj
        .kconfig_map()
        .and_then(|i| obj.maps().get(i))
        .map(|m| m.value_size as usize);
    let mut image = kconfig_len.map(|len| vec![0u8; len]);
    let mut config_wanted = false;

    for (i, ext) in externs.iter().enumerate() {
        let local = obj.btf().ok_or_else(|| ExternError::Btf {
            name: ext.name.clone(),
            why: "the object has no BTF".into(),
        })?;
        values[i] = match ext.kind {
            ExternKind::Kfunc { proto } => resolve_kfunc(ext, proto, local, target)?,
            ExternKind::TypedKsym { local_type } => {
                resolve_typed_ksym(ext, local_type, local, target)?
            }
            ExternKind::TypelessKsym => resolve_typeless_ksym(ext, facts)?,
            ExternKind::Kconfig { .. } if ext.name.starts_with("CONFIG_") => {
                config_wanted = true;
                ExternValue::Unresolved
            }
            ExternKind::Kconfig {
                ty, size, offset, ..
            } => {
                let Some(value) = virtual_kconfig_value(ext, facts)? else {
                    continue;
                };
                let slot = kconfig_slot(&mut image, ext, offset, size)?;
                set_number(ext, ty, slot, value)?;
                ExternValue::Kconfig
            }
        };
    }

    if config_wanted {
        let first_strong = || {
            externs
                .iter()
                .find(|e| e.name.starts_with("CONFIG_"))
                .map_or_else(String::new, |e| e.name.clone())
        };
        let text = facts.kconfig.ok_or_else(|| ExternError::NoKconfig {
            name: first_strong(),
        })?;
        apply_kconfig(externs, text, &mut image, &mut values)?;
    }

    for (ext, value) in externs.iter().zip(&values) {
        if *value == ExternValue::Unresolved && !ext.weak {
            let (what, where_) = match ext.kind {
                ExternKind::Kconfig { .. } => ("kconfig", "config"),
                ExternKind::Kfunc { .. } => ("kfunc", "BTF"),
                _ => ("ksym", "BTF"),
            };
            return Err(ExternError::NotFound {
                name: ext.name.clone(),
                what,
                where_,
            });
        }
    }
    Ok(ExternResolution {
        values,
        kconfig_image: image,
    })
}

/// A `const void` ksym: its address in kallsyms, which must be one.
fn resolve_typeless_ksym(
    ext: &Extern,
    facts: &KernelFacts<'_>,
) -> Result<ExternValue, ExternError> {
    match facts.kallsyms.get(&ext.name).map(Vec::as_slice) {
        None | Some([]) if ext.weak => Ok(ExternValue::Unresolved),
        None | Some([]) => Err(ExternError::NotFound {
            name: ext.name.clone(),
            what: "ksym",
            where_: "symbols (/proc/kallsyms)",
        }),
        Some([first, rest @ ..]) => match rest.iter().find(|a| *a != first) {
            Some(other) => Err(ExternError::Ambiguous {
                name: ext.name.clone(),
                first: *first,
                second: *other,
            }),
            None => Ok(ExternValue::Address(*first)),
        },
    }
}

/// The value of one of libbpf's `LINUX_*` virtual kconfig externs; `None` for an unknown weak
/// one (left unresolved, reading 0).
fn virtual_kconfig_value(
    ext: &Extern,
    facts: &KernelFacts<'_>,
) -> Result<Option<u64>, ExternError> {
    Ok(Some(match ext.name.as_str() {
        "LINUX_KERNEL_VERSION" => {
            u64::from(kernel_version_code(facts.release).ok_or_else(|| {
                ExternError::BadKconfig {
                    name: ext.name.clone(),
                    why: format!("no kernel version in release {:?}", facts.release),
                }
            })?)
        }
        "LINUX_HAS_BPF_COOKIE" => u64::from(facts.has_bpf_cookie),
        "LINUX_HAS_SYSCALL_WRAPPER" => u64::from(facts.has_syscall_wrapper),
        _ if ext.name.starts_with("LINUX_") && ext.weak => return Ok(None),
        _ => {
            return Err(ExternError::UnknownVirtual {
                name: ext.name.clone(),
            })
        }
    }))
}

fn resolve_kfunc(
    ext: &Extern,
    proto: u32,
    local: &Btf,
    target: &Btf,
) -> Result<ExternValue, ExternError> {
    let Some(&id) = target.ids_by_name(Kind::Func, ext.essential_name()).first() else {
        return if ext.weak {
            Ok(ExternValue::Unresolved)
        } else {
            Err(ExternError::NotFound {
                name: ext.name.clone(),
                what: "kfunc",
                where_: "BTF (vmlinux; module BTF is not searched)",
            })
        };
    };
    let btf_err = |e: crate::btf::BtfError| ExternError::Btf {
        name: ext.name.clone(),
        why: e.to_string(),
    };
    let TypeBody::Func {
        proto: target_proto,
        ..
    } = target.type_by_id(id).map_err(btf_err)?.body
    else {
        return Ok(ExternValue::Unresolved);
    };
    let compat = types_are_compat(local, proto, target, target_proto).map_err(|why| {
        ExternError::Incompatible {
            name: ext.name.clone(),
            what: "kfunc",
            why: why.to_string(),
        }
    })?;
    match (compat, ext.weak) {
        (true, _) => Ok(ExternValue::KernelBtfId(id)),
        (false, true) => Ok(ExternValue::Unresolved),
        (false, false) => Err(ExternError::Incompatible {
            name: ext.name.clone(),
            what: "kfunc",
            why: format!("local prototype [{proto}] does not match the kernel's [{target_proto}]"),
        }),
    }
}

fn resolve_typed_ksym(
    ext: &Extern,
    local_type: u32,
    local: &Btf,
    target: &Btf,
) -> Result<ExternValue, ExternError> {
    let Some(&id) = target.ids_by_name(Kind::Var, &ext.name).first() else {
        return if ext.weak {
            Ok(ExternValue::Unresolved)
        } else {
            Err(ExternError::NotFound {
                name: ext.name.clone(),
                what: "typed ksym",
                where_: "BTF (vmlinux)",
            })
        };
    };
    let btf_err = |e: crate::btf::BtfError| ExternError::Btf {
        name: ext.name.clone(),
        why: e.to_string(),
    };
    let TypeBody::Var { ty, .. } = target.type_by_id(id).map_err(btf_err)?.body else {
        return Ok(ExternValue::Unresolved);
    };
    let target_type = target.skip_mods_and_typedefs(ty).map_err(btf_err)?;
    let compat = types_are_compat(local, local_type, target, target_type).map_err(|why| {
        ExternError::Incompatible {
            name: ext.name.clone(),
            what: "typed ksym",
            why: why.to_string(),
        }
    })?;
    if !compat {
        // libbpf refuses this even for a weak extern.
        return Err(ExternError::Incompatible {
            name: ext.name.clone(),
            what: "typed ksym",
            why: format!(
                "local type [{local_type}] {} vs the kernel's [{target_type}] {}",
                local
                    .type_by_id(local_type)
                    .map(|t| t.c_name())
                    .unwrap_or_default(),
                target
                    .type_by_id(target_type)
                    .map(|t| t.c_name())
                    .unwrap_or_default()
            ),
        });
    }
    Ok(ExternValue::KernelBtfId(id))
}

fn kconfig_slot<'i>(
    image: &'i mut Option<Vec<u8>>,
    ext: &Extern,
    offset: u32,
    size: u32,
) -> Result<&'i mut [u8], ExternError> {
    let (start, end) = (offset as usize, offset as usize + size as usize);
    image
        .as_mut()
        .and_then(|img| img.get_mut(start..end))
        .ok_or_else(|| ExternError::BadKconfig {
            name: ext.name.clone(),
            why: format!("offset {offset}+{size} lies outside the .kconfig map"),
        })
}

fn bad(ext: &Extern, why: String) -> ExternError {
    ExternError::BadKconfig {
        name: ext.name.clone(),
        why,
    }
}

/// A `y`/`n`/`m` config value.
fn set_tristate(
    ext: &Extern,
    ty: KconfigType,
    slot: &mut [u8],
    letter: u8,
) -> Result<(), ExternError> {
    let byte = match ty {
        KconfigType::Bool if letter == b'm' => {
            return Err(bad(
                ext,
                "value 'm' needs a tristate or char type, not bool".into(),
            ))
        }
        KconfigType::Bool => u8::from(letter == b'y'),
        KconfigType::Tristate => match letter {
            b'y' => 1,
            b'm' => 2,
            _ => 0,
        },
        KconfigType::Char => letter,
        _ => {
            return Err(bad(
                ext,
                format!(
                    "value '{}' needs a bool, tristate or char type",
                    letter as char
                ),
            ))
        }
    };
    let Some((first, rest)) = slot.split_first_mut() else {
        return Err(bad(ext, "zero-sized value".into()));
    };
    *first = byte;
    rest.iter_mut().for_each(|b| *b = 0);
    Ok(())
}

/// A number (config value or virtual extern), little-endian in the extern's size.
fn set_number(
    ext: &Extern,
    ty: KconfigType,
    slot: &mut [u8],
    value: u64,
) -> Result<(), ExternError> {
    let signed = match ty {
        KconfigType::Int { signed } => signed,
        KconfigType::Char => false,
        KconfigType::Bool if value > 1 => {
            return Err(bad(ext, format!("value {value} is not a boolean")))
        }
        KconfigType::Bool => false,
        _ => {
            return Err(bad(
                ext,
                format!("value {value} needs an integer, char or bool type"),
            ))
        }
    };
    let bits = slot.len() * 8;
    let fits = match bits {
        64 => true,
        0 => false,
        _ if signed => value.wrapping_add(1 << (bits - 1)) < (1u64 << bits),
        _ => value >> bits == 0,
    };
    if !fits || !matches!(slot.len(), 1 | 2 | 4 | 8) {
        return Err(bad(
            ext,
            format!("value {value} does not fit in {} bytes", slot.len()),
        ));
    }
    let len = slot.len();
    slot.copy_from_slice(&value.to_le_bytes()[..len]);
    Ok(())
}

/// A quoted string into a `char[N]`: cut to N-1 bytes, NUL-terminated.
fn set_string(
    ext: &Extern,
    ty: KconfigType,
    slot: &mut [u8],
    value: &str,
) -> Result<(), ExternError> {
    if ty != KconfigType::CharArray {
        return Err(bad(ext, format!("value {value} needs a char array type")));
    }
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| bad(ext, format!("invalid string config {value}")))?;
    let len = inner.len().min(slot.len().saturating_sub(1));
    slot.iter_mut().for_each(|b| *b = 0);
    slot[..len].copy_from_slice(&inner.as_bytes()[..len]);
    Ok(())
}

/// `strtoull(value, NULL, 0)` over the whole string: decimal, `0x` hex, `0` octal, a leading
/// `-` negates (wrapping), as libbpf parses config numbers.
pub fn parse_config_number(value: &str) -> Option<u64> {
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let parsed = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    Some(if negative {
        parsed.wrapping_neg()
    } else {
        parsed
    })
}

fn apply_kconfig(
    externs: &[Extern],
    text: &str,
    image: &mut Option<Vec<u8>>,
    values: &mut [ExternValue],
) -> Result<(), ExternError> {
    for line in text.lines() {
        if !line.starts_with("CONFIG_") {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let Some(i) = externs
            .iter()
            .position(|e| e.name == name && matches!(e.kind, ExternKind::Kconfig { .. }))
        else {
            continue;
        };
        if values[i] != ExternValue::Unresolved {
            continue;
        }
        let ext = &externs[i];
        let ExternKind::Kconfig {
            ty, size, offset, ..
        } = ext.kind
        else {
            continue;
        };
        if value.is_empty() {
            return Err(bad(ext, format!("config line {line:?} has no value")));
        }
        let slot = kconfig_slot(image, ext, offset, size)?;
        match value.as_bytes()[0] {
            letter @ (b'y' | b'n' | b'm') => set_tristate(ext, ty, slot, letter)?,
            b'"' => set_string(ext, ty, slot, value)?,
            _ => {
                let number = parse_config_number(value)
                    .ok_or_else(|| bad(ext, format!("value {value:?} is not a valid integer")))?;
                if !matches!(ty, KconfigType::Int { .. } | KconfigType::Char) {
                    return Err(bad(ext, format!("value {value} needs an integer type")));
                }
                set_number(ext, ty, slot, number)?;
            }
        }
        values[i] = ExternValue::Kconfig;
    }
    Ok(())
}
