//! `harness vmlinux-h` on real kernels' BTF: the host's (/sys/kernel/btf/vmlinux) and the cached
//! 5.10 and 7.2 images (provisioned through the harness when absent). For each header:
//! - a libbpf-bootstrap-style program (task_struct, sk_buff, trace_event_raw_*, BPF_PROG fentry,
//!   libbpf's bpf_helpers/bpf_tracing/bpf_core_read headers) compiles with clang-19, the header
//!   itself draws no warning, and every CO-RE relocation of the object resolves against that
//!   kernel's BTF (the project's engine, on the host);
//! - layout round trip: every uniquely named struct and union, compiled with `clang -g`, comes
//!   back in clang's own BTF with the size, member names, bit offsets and bitfield widths of the
//!   original BTF (anonymous members compared recursively);
//! - bpftool's header for the same BTF defines the same set of named types.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use core_reloc::{Btf, Kind, TypeBody};

use support::workspace;

const CLANG: &str = "clang-19";

const PROBE: &str = r#"
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("fentry/do_unlinkat")
int BPF_PROG(do_unlinkat, int dfd, struct filename *name)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	pid_t ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_printk("unlinkat pid %d ppid %d %s", bpf_get_current_pid_tgid() >> 32, ppid,
		   BPF_CORE_READ(name, name));
	return 0;
}

SEC("fentry/kfree_skb_partial")
int BPF_PROG(free_skb, struct sk_buff *skb, bool head_stolen)
{
	unsigned int len = BPF_CORE_READ(skb, len);
	__u16 proto = BPF_CORE_READ(skb, protocol);
	bpf_printk("skb len %u proto %x", len, proto);
	return 0;
}

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	unsigned int fname_off = ctx->__data_loc_filename & 0xFFFF;
	char comm[TASK_COMM_LEN_PROBE];
	bpf_get_current_comm(comm, sizeof(comm));
	bpf_printk("exec %s at %u", comm, fname_off);
	return 0;
}
"#;

fn require_tool(tool: &str, install_hint: &str) {
    let found = Command::new(tool).arg("--version").output().is_ok();
    assert!(found, "{tool} is not installed: {install_hint}");
}

/// Runs `harness vmlinux-h --kernel NAME -o DIR/vmlinux.h`; returns the BTF file it read.
fn generate(kernel: &str, dir: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("vmlinux-h")
        .arg("--matrix")
        .arg(workspace().join("kernels.toml"))
        .args(["--kernel", kernel, "-o"])
        .arg(dir.join("vmlinux.h"))
        .output()
        .expect("run harness");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "harness vmlinux-h --kernel {kernel} failed (provision the image with \
         `cargo run -p harness -- fetch --kernel {kernel}`):\n{stderr}"
    );
    // "wrote X (N types, M bytes) from kernel K (PATH)"
    let line = stderr
        .lines()
        .find(|l| l.starts_with("wrote "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let start = line.rfind(" (").unwrap() + 2;
    PathBuf::from(&line[start..line.len() - 1])
}

fn clang(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(CLANG)
        .args(["-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86"])
        .arg(format!("-I{}", dir.display()))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run clang");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn compile_probe(kernel: &str, dir: &Path) {
    std::fs::write(
        dir.join("probe.bpf.c"),
        PROBE.replace("TASK_COMM_LEN_PROBE", "16"),
    )
    .unwrap();
    let (ok, stderr) = clang(dir, &["-c", "probe.bpf.c", "-o", "probe.bpf.o"]);
    assert!(
        ok,
        "{kernel}: the probe does not compile against vmlinux.h:\n{stderr}"
    );
    assert!(
        !stderr.contains("vmlinux.h"),
        "{kernel}: vmlinux.h draws warnings:\n{stderr}"
    );
}

/// Relocates every program of the compiled probe against the kernel's own BTF with the
/// project's CO-RE engine: each relocation the header's types produced must find its target.
fn relocate_probe(kernel: &str, dir: &Path, btf: &Btf) -> usize {
    let elf = std::fs::read(dir.join("probe.bpf.o")).unwrap();
    let object = core_reloc::Object::parse(&elf).unwrap();
    let mut decisions = 0;
    for program in object.programs() {
        let relocated = core_reloc::relocate_program(&object, &program.name, btf)
            .unwrap_or_else(|e| panic!("{kernel}: relocating {}: {e}", program.name));
        for d in &relocated.core {
            assert!(
                matches!(d.outcome, core_reloc::CoreOutcome::Value { .. }),
                "{kernel}: {} {} {}: {:?}",
                program.name,
                d.kind,
                d.access,
                d.outcome
            );
        }
        decisions += relocated.core.len();
    }
    decisions
}

fn read_btf(path: &Path) -> Btf {
    let bytes = std::fs::read(path).unwrap();
    let raw = harness::images::vmlinux_h::raw_btf(bytes).unwrap();
    Btf::parse_owned(raw).unwrap()
}

/// Named structs and unions whose name no other tag type (struct, union, enum) has: their C
/// name is the BTF name, so clang's BTF can be matched back by name.
fn unique_composites(btf: &Btf) -> Vec<u32> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in 1..btf.type_count() {
        let t = btf.type_by_id(id).unwrap();
        let tag = t.kind.is_composite() || (t.kind.is_any_enum() && t.vlen() > 0);
        if tag && !t.name.is_empty() {
            *count.entry(t.name).or_default() += 1;
        }
    }
    (1..btf.type_count())
        .filter(|&id| {
            let t = btf.type_by_id(id).unwrap();
            t.kind.is_composite()
                && count.get(t.name) == Some(&1)
                && core_reloc::btf::c_header::c_identifier(t.name) == t.name
        })
        .collect()
}

/// Compares the layout of composite `a` (original BTF) with `b` (clang's); anonymous members
/// recursively. Returns a description of the first difference.
fn same_layout(orig: &Btf, a: u32, new: &Btf, b: u32, depth: usize) -> Result<(), String> {
    let (ta, tb) = (orig.type_by_id(a).unwrap(), new.type_by_id(b).unwrap());
    let (TypeBody::Composite { size: sa, .. }, TypeBody::Composite { size: sb, .. }) =
        (&ta.body, &tb.body)
    else {
        return Err(format!(
            "#{a} {} is not a struct in clang's BTF",
            ta.c_name()
        ));
    };
    if sa != sb || ta.kind != tb.kind {
        return Err(format!("{}: size {sa} in BTF, {sb} in C", ta.c_name()));
    }
    let (ma, mb) = (ta.members(), tb.members());
    if ma.len() != mb.len() {
        return Err(format!(
            "{}: {} members in BTF, {} in C",
            ta.c_name(),
            ma.len(),
            mb.len()
        ));
    }
    for (x, y) in ma.iter().zip(mb) {
        let name_ok = core_reloc::btf::c_header::c_identifier(x.name) == y.name;
        if !name_ok || x.bit_offset != y.bit_offset || x.bitfield_size != y.bitfield_size {
            return Err(format!(
                "{}: member {:?} at bit {} width {} in BTF, {:?} at bit {} width {} in C",
                ta.c_name(),
                x.name,
                x.bit_offset,
                x.bitfield_size,
                y.name,
                y.bit_offset,
                y.bitfield_size
            ));
        }
        if x.name.is_empty() && depth < 32 {
            let xa = orig.skip_mods_and_typedefs(x.ty).unwrap();
            let yb = new.skip_mods_and_typedefs(y.ty).unwrap();
            same_layout(orig, xa, new, yb, depth + 1)?;
        }
    }
    Ok(())
}

/// Compiles every uniquely named struct/union with `-g` and checks clang's BTF against the
/// original; returns how many were compared.
fn layout_round_trip(kernel: &str, dir: &Path, btf: &Btf) -> usize {
    let ids = unique_composites(btf);
    let mut src = String::from("#include \"vmlinux.h\"\n");
    for (i, &id) in ids.iter().enumerate() {
        let t = btf.type_by_id(id).unwrap();
        let _ = writeln!(src, "{} *__layout_{i};", t.c_name());
    }
    std::fs::write(dir.join("layout.c"), src).unwrap();
    let (ok, stderr) = clang(dir, &["-O0", "-c", "layout.c", "-o", "layout.o"]);
    assert!(ok, "{kernel}: layout.c does not compile:\n{stderr}");
    let compiled = read_btf(&dir.join("layout.o"));
    let mut by_name: HashMap<(&str, Kind), u32> = HashMap::new();
    for id in 1..compiled.type_count() {
        let t = compiled.type_by_id(id).unwrap();
        if t.kind.is_composite() && !t.name.is_empty() {
            by_name.insert((t.name, t.kind), id);
        }
    }
    let mut failures = Vec::new();
    for &id in &ids {
        let t = btf.type_by_id(id).unwrap();
        match by_name.get(&(t.name, t.kind)) {
            None => failures.push(format!("{}: not in clang's BTF", t.c_name())),
            Some(&other) => {
                if let Err(e) = same_layout(btf, id, &compiled, other, 0) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{kernel}: {} of {} structs/unions laid out differently, first ones:\n{}",
        failures.len(),
        ids.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    ids.len()
}

/// Names of the top-level definitions of a header: `struct|union|enum NAME {` and typedefs.
fn defined_names(header: &str) -> BTreeSet<String> {
    let ident_at_end = |s: &str| -> String {
        let s = s.trim_end();
        let start = s
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        s[start..].to_string()
    };
    let mut names = BTreeSet::new();
    let mut typedef: Option<String> = None;
    let mut depth = 0i32;
    for line in header.lines() {
        if let Some(stmt) = typedef.as_mut() {
            stmt.push('\n');
            stmt.push_str(line);
        } else if line.starts_with("typedef ") {
            typedef = Some(line.to_string());
            depth = 0;
        } else {
            for word in ["struct ", "union ", "enum "] {
                if let Some(rest) = line.strip_prefix(word) {
                    if let Some(name) = rest.strip_suffix(" {") {
                        names.insert(format!("{word}{name}"));
                    }
                }
            }
            continue;
        }
        depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
        if depth == 0 && line.ends_with(';') {
            let stmt = typedef.take().unwrap();
            let tail = &stmt[stmt.rfind('}').map_or("typedef ".len(), |i| i + 1)..];
            let tail = tail.trim_end_matches(';');
            let name = if let Some(i) = tail.find("(*") {
                let rest = &tail[i + 2..];
                rest[..rest.find(')').unwrap_or(rest.len())].to_string()
            } else if let Some(i) = tail.find('(') {
                ident_at_end(&tail[..i])
            } else {
                ident_at_end(&tail[..tail.find('[').unwrap_or(tail.len())])
            };
            names.insert(format!("typedef {name}"));
        }
    }
    names
}

fn bpftool_header(btf_path: &Path) -> String {
    if Command::new("bpftool").arg("version").output().is_err() {
        let installed = Command::new("apt-get")
            .args(["install", "-y", "bpftool"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "bpftool is needed for the comparison: apt-get install -y bpftool"
        );
    }
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(btf_path)
        .args(["format", "c"])
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool btf dump {}: {}",
        btf_path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check_kernel(kernel: &str) {
    require_tool(
        CLANG,
        "run `cargo run -p harness -- setup` (installs clang-19 and libbpf-dev)",
    );
    assert!(
        Path::new("/usr/include/bpf/bpf_helpers.h").exists(),
        "libbpf headers missing: run `cargo run -p harness -- setup`"
    );
    let dir = tempfile::tempdir().unwrap();
    let btf_path = generate(kernel, dir.path());
    let header = std::fs::read_to_string(dir.path().join("vmlinux.h")).unwrap();
    assert!(header.starts_with("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n"));
    assert!(header.contains(
        "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)"
    ));
    compile_probe(kernel, dir.path());
    let btf = read_btf(&btf_path);
    // The image's ELF vmlinux (its .BTF section) gives the same header through --btf.
    let elf = btf_path.with_file_name("vmlinux");
    if kernel != "host" {
        let out = Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("vmlinux-h")
            .arg("--btf")
            .arg(&elf)
            .output()
            .expect("run harness");
        assert!(
            out.status.success(),
            "{kernel}: vmlinux-h --btf {}: {}",
            elf.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == header.as_bytes(),
            "{kernel}: --btf {} differs from --kernel {kernel}",
            elf.display()
        );
    }
    let relocations = relocate_probe(kernel, dir.path(), &btf);
    assert!(
        relocations >= 5,
        "{kernel}: only {relocations} CO-RE relocations"
    );
    let compared = layout_round_trip(kernel, dir.path(), &btf);
    assert!(
        compared > 5000,
        "{kernel}: only {compared} structs compared"
    );

    let mut ours = defined_names(&header);
    // Ours alone keeps the kernel's va_list layout (bpftool leaves it to the BPF target's).
    let va_list = format!("typedef {}", core_reloc::btf::c_header::VA_LIST_FLAVOR);
    if btf
        .ids_by_name(Kind::Typedef, "__builtin_va_list")
        .is_empty()
    {
        assert!(!ours.contains(&va_list));
    } else {
        assert!(ours.remove(&va_list), "{kernel}: no {va_list}");
    }
    let theirs = defined_names(&bpftool_header(&btf_path));
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{kernel}: named types differ from bpftool's: only ours {only_ours:?}, only bpftool's \
         {only_theirs:?}"
    );
    assert!(ours.contains("struct task_struct") && ours.contains("struct sk_buff"));
    eprintln!(
        "{kernel}: {} named types as bpftool, {compared} structs/unions laid out as the BTF says, \
         {relocations} CO-RE relocations of the probe resolved",
        ours.len()
    );
}

#[test]
fn host_kernel_header_compiles_and_matches_layout() {
    assert!(
        Path::new(harness::images::vmlinux_h::HOST_BTF).exists(),
        "this host kernel publishes no BTF at {}",
        harness::images::vmlinux_h::HOST_BTF
    );
    check_kernel("host");
}

#[test]
fn kernel_5_10_header_compiles_and_matches_layout() {
    check_kernel("5.10");
}

#[test]
fn kernel_7_2_header_compiles_and_matches_layout() {
    check_kernel("7.2");
}

#[test]
fn defined_names_reads_every_definition_shape() {
    let header =
        "struct a {\n\tint x;\n};\n\nunion b {\n\tint y;\n};\n\nenum c {\n\tC = 0,\n};\n\n\
        struct fwd;\n\ntypedef unsigned int u32;\n\ntypedef int arr_t[4];\n\n\
        typedef void (*fn_t)(int);\n\ntypedef int func_t(int, char *);\n\n\
        typedef struct {\n\tint z;\n} anon_t;\n\ntypedef struct task_struct *(*pick_f)(void);\n";
    let names: Vec<String> = defined_names(header).into_iter().collect();
    assert_eq!(
        names,
        [
            "enum c",
            "struct a",
            "typedef anon_t",
            "typedef arr_t",
            "typedef fn_t",
            "typedef func_t",
            "typedef pick_f",
            "typedef u32",
            "union b"
        ]
    );
}
