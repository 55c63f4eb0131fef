//! `harness reloc`: the engine's decisions for every object against every kernel of the matrix,
//! from the cached BTF, without booting. One row per relocation, one column per kernel; rows
//! whose decision differs between kernels are marked, since they are what CO-RE is for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::CommonArgs;
use crate::images::{Images, IndicatifProgress};
use crate::matrix::config::{KernelSource, Matrix};

#[derive(Debug, Clone, clap::Args)]
pub struct RelocArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Object files to relocate, or names of objects found by --programs (default: all of them)
    #[arg(value_name = "OBJECT")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub objects: crate::cli::ObjectArgs,
    /// Also write the table as JSON here
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Print a Markdown table (for documentation) instead of plain text
    #[arg(long)]
    pub markdown: bool,
    /// Only rows whose decision differs between kernels
    #[arg(long)]
    pub differing: bool,
    /// Print the coverage tables that README carries (kinds per object, and every relocation
    /// that resolves differently across kernels), in Markdown
    #[arg(long)]
    pub coverage: bool,
}

/// One relocation site and what each kernel makes of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    pub object: String,
    pub program: String,
    pub insn: u32,
    pub kind: String,
    pub access: String,
    /// Kernel name → decision (`value N`, `poisoned (...)`, or `failed: ...`).
    pub decisions: BTreeMap<String, String>,
}

impl Row {
    pub fn differs(&self) -> bool {
        let mut values = self.decisions.values();
        values
            .next()
            .is_some_and(|first| values.any(|v| v != first))
    }
}

/// Positional arguments are object files when they name a file (a path, or a name ending in
/// `.o` / `.bpf.c`), else names of objects found in the directories.
fn split_object_arguments(arguments: &[String]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut names = Vec::new();
    for argument in arguments {
        let path = Path::new(argument);
        let is_file_like = argument.contains('/')
            || argument.ends_with(".o")
            || argument.ends_with(".bpf.c")
            || path.is_file();
        if is_file_like {
            files.push(path.to_path_buf());
        } else {
            names.push(argument.clone());
        }
    }
    (files, names)
}

pub fn reloc_command(args: &RelocArgs) -> Result<()> {
    let matrix = Matrix::load(&args.common.matrix)?;
    let kernels = matrix.select_in(&args.common.kernels, &args.common.groups)?;
    let layout = crate::layout::Layout::new(&args.common, None);
    let (files, names) = split_object_arguments(&args.names);
    let mut dirs = args.objects.programs.clone();
    if dirs.is_empty() && files.is_empty() && args.objects.objects.is_empty() {
        dirs.push(layout.default_programs.clone());
    }
    let files: Vec<PathBuf> = args.objects.objects.iter().cloned().chain(files).collect();
    let plan = crate::corpus::Plan::find(&dirs, &files)?;
    for name in &names {
        if !plan.names().contains(name) {
            anyhow::bail!(
                "no object named `{name}`; the objects are: {} (or name an object file by its path)",
                plan.names().join(", ")
            );
        }
    }
    let corpus = plan.materialize(&args.objects.build_options(), &layout.object_cache())?;
    let images = Images::new(&layout.images, &matrix);
    let lock = crate::matrix::pinning::ensure_locked(&images, &matrix, &kernels, &layout.lockfile)?;
    let progress = IndicatifProgress::new();

    let mut targets = Vec::new();
    for kernel in &kernels {
        let image = match &kernel.source {
            KernelSource::Host => None,
            _ => Some(
                images
                    .provision(kernel, &lock, &progress)
                    .with_context(|| format!("kernel {}", kernel.name))?,
            ),
        };
        let path = crate::kernel_btf::btf_path(kernel, image.as_ref())?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let btf = core_reloc::Btf::parse_owned(bytes)
            .with_context(|| format!("kernel {}: {}", kernel.name, path.display()))?;
        targets.push((kernel.name.clone(), btf));
    }

    let mut rows: Vec<Row> = Vec::new();
    for object in corpus
        .objects
        .iter()
        .filter(|o| names.is_empty() || names.iter().any(|n| n == o.name()))
    {
        let parsed = core_reloc::Object::parse(&object.bytes)
            .with_context(|| format!("object {}", object.name()))?;
        for (kernel, btf) in &targets {
            for (program, prediction) in crate::predict::predict(&parsed, btf) {
                match prediction {
                    Ok(reports) => {
                        for r in reports {
                            let row = find_or_add(
                                &mut rows,
                                object.name(),
                                &program,
                                r.insn,
                                &r.kind,
                                &r.access,
                            );
                            row.decisions.insert(kernel.clone(), r.decision);
                        }
                    }
                    Err(error) => {
                        let row = find_or_add(
                            &mut rows,
                            object.name(),
                            &program,
                            u32::MAX,
                            "program",
                            "(whole program)",
                        );
                        row.decisions
                            .insert(kernel.clone(), format!("failed: {error}"));
                    }
                }
            }
        }
    }
    let kernel_names: Vec<String> = targets.iter().map(|(k, _)| k.clone()).collect();
    if let Some(path) = &args.json {
        crate::fsutil::write_atomic(path, serde_json::to_string_pretty(&rows)?.as_bytes())?;
    }
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| !args.differing || r.differs())
        .collect();
    let text = if args.coverage {
        coverage(&rows, &kernel_names)
    } else if args.markdown {
        markdown(&shown, &kernel_names)
    } else {
        plain(&shown, &kernel_names)
    };
    print!("{text}");
    let differing = rows.iter().filter(|r| r.differs()).count();
    eprintln!(
        "{} relocations in {} objects against {} kernels; {differing} resolve differently across kernels",
        rows.len(),
        corpus.objects.len(),
        kernel_names.len()
    );
    Ok(())
}

fn find_or_add<'a>(
    rows: &'a mut Vec<Row>,
    object: &str,
    program: &str,
    insn: u32,
    kind: &str,
    access: &str,
) -> &'a mut Row {
    let position = rows.iter().position(|r| {
        r.object == object && r.program == program && r.insn == insn && r.kind == kind
    });
    match position {
        Some(i) => &mut rows[i],
        None => {
            rows.push(Row {
                object: object.into(),
                program: program.into(),
                insn,
                kind: kind.into(),
                access: access.into(),
                decisions: BTreeMap::new(),
            });
            rows.last_mut().expect("just pushed")
        }
    }
}

fn cell<'a>(row: &'a Row, kernel: &str) -> &'a str {
    row.decisions.get(kernel).map(String::as_str).unwrap_or("-")
}

pub fn plain(rows: &[&Row], kernels: &[String]) -> String {
    let mut table: Vec<Vec<String>> = vec![];
    let mut header = vec![
        "".to_string(),
        "object".into(),
        "program".into(),
        "insn".into(),
        "kind".into(),
        "access".into(),
    ];
    header.extend(kernels.iter().cloned());
    table.push(header);
    for row in rows {
        let mut line = vec![
            if row.differs() {
                "*".into()
            } else {
                " ".into()
            },
            row.object.clone(),
            row.program.clone(),
            if row.insn == u32::MAX {
                "-".into()
            } else {
                row.insn.to_string()
            },
            row.kind.clone(),
            row.access.clone(),
        ];
        line.extend(kernels.iter().map(|k| cell(row, k).to_string()));
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &table {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out.push_str("(* = the decision differs between kernels)\n");
    out
}

pub fn markdown(rows: &[&Row], kernels: &[String]) -> String {
    let mut out = format!(
        "| object | program | kind | access | {} |\n",
        kernels.join(" | ")
    );
    let _ = writeln!(out, "|---|---|---|---|{}", "---|".repeat(kernels.len()));
    for row in rows {
        let cells: Vec<String> = kernels
            .iter()
            .map(|k| cell(row, k).replace('|', "\\|"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | `{}` | {} |",
            row.object,
            row.program,
            row.kind,
            row.access.replace('|', "\\|"),
            cells.join(" | ")
        );
    }
    out
}

/// The 13 relocation kinds, in kernel order, as the engine names them.
const KINDS: [&str; 13] = [
    "field_byte_offset",
    "field_byte_size",
    "field_exists",
    "field_signed",
    "field_lshift_u64",
    "field_rshift_u64",
    "type_id_local",
    "type_id_target",
    "type_exists",
    "type_size",
    "enumval_exists",
    "enumval_value",
    "type_matches",
];

/// README's coverage: which kinds each object uses (and on how many kernels they resolve to a
/// value rather than a poison), then each distinct relocation whose decision differs between
/// kernels, duplicates across instructions folded.
pub fn coverage(rows: &[Row], kernels: &[String]) -> String {
    let mut objects: Vec<&str> = rows.iter().map(|r| r.object.as_str()).collect();
    objects.sort();
    objects.dedup();
    let mut out = format!(
        "| kind | {} |\n|---|{}\n",
        objects.join(" | "),
        "---|".repeat(objects.len())
    );
    for kind in KINDS {
        let cells: Vec<String> = objects
            .iter()
            .map(|object| {
                let sites: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.object == *object && r.kind == kind)
                    .collect();
                if sites.is_empty() {
                    return "-".into();
                }
                let resolving: Vec<&String> = kernels
                    .iter()
                    .filter(|k| {
                        sites
                            .iter()
                            .any(|r| r.decisions.get(*k).is_some_and(|d| d.starts_with("value")))
                    })
                    .collect();
                format!(
                    "{} sites, value on {}/{}",
                    sites.len(),
                    resolving.len(),
                    kernels.len()
                )
            })
            .collect();
        let _ = writeln!(out, "| {kind} | {} |", cells.join(" | "));
    }
    let mut seen: Vec<(&str, &str, &str, &BTreeMap<String, String>)> = Vec::new();
    for row in rows.iter().filter(|r| r.differs()) {
        let key = (
            row.object.as_str(),
            row.kind.as_str(),
            row.access.as_str(),
            &row.decisions,
        );
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    let _ = writeln!(
        out,
        "\n{} relocation sites, {} of them resolve differently across kernels ({} distinct):\n",
        rows.len(),
        rows.iter().filter(|r| r.differs()).count(),
        seen.len()
    );
    let _ = writeln!(out, "| object | kind | access | {} |", kernels.join(" | "));
    let _ = writeln!(out, "|---|---|---|{}", "---|".repeat(kernels.len()));
    for (object, kind, access, decisions) in seen {
        let cells: Vec<String> = kernels
            .iter()
            .map(|k| {
                decisions
                    .get(k)
                    .map(String::as_str)
                    .unwrap_or("-")
                    .replace('|', "\\|")
            })
            .collect();
        let _ = writeln!(
            out,
            "| {object} | {kind} | `{}` | {} |",
            access.replace('|', "\\|"),
            cells.join(" | ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(decisions: &[(&str, &str)]) -> Row {
        Row {
            object: "core_facts".into(),
            program: "p".into(),
            insn: 7,
            kind: "field_byte_offset".into(),
            access: "struct task_struct::__state".into(),
            decisions: decisions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn marks_rows_that_differ() {
        assert!(row(&[("5.10", "poisoned (no match)"), ("7.2", "value 24")]).differs());
        assert!(!row(&[("5.10", "value 24"), ("7.2", "value 24")]).differs());
        let kernels = vec!["5.10".to_string(), "7.2".to_string()];
        let r = row(&[("5.10", "poisoned (no match)"), ("7.2", "value 24")]);
        let text = plain(&[&r], &kernels);
        assert!(text.lines().nth(1).unwrap().starts_with('*'), "{text}");
        let md = markdown(&[&r], &kernels);
        assert!(md.contains("| core_facts | p | field_byte_offset | `struct task_struct::__state` | poisoned (no match) | value 24 |"), "{md}");
    }
}
