//! Program faults: what a BPF object or its fixtures can get wrong, and how precisely the
//! harness says so.
//!
//! - on real kernels (5.10 and 6.1, the test-only `fault-programs/faulty` corpus): a verifier
//!   rejection comes with the verifier's log; an unguarded CO-RE read of a field 5.10 lacks
//!   (`task_struct.__state`) fails the load there with the poisoned instruction's relocation
//!   named, and loads on 6.1; an SK_LOOKUP program is "unsupported" on 5.10 and runs on 6.1;
//! - without a guest: garbage bytes given to the relocation engine's object parser and to the
//!   agent (as a host process) are refused with a message, never a panic; malformed fixtures
//!   stop the harness with exit 2, naming the file, the line and the problem.

mod support;

use std::path::Path;
use std::sync::OnceLock;

use support::*;

fn faulty_run() -> &'static Outcome {
    static RUN: OnceLock<Outcome> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        run_harness(
            &dir,
            &[
                "--matrix",
                "kernels.toml",
                "--kernel",
                "5.10",
                "--kernel",
                "6.1",
                "--programs",
                fault_programs("faulty").to_str().unwrap(),
            ],
        )
    })
}

#[test]
fn verifier_rejection_is_reported_with_the_verifier_log() {
    let out = faulty_run();
    for kernel in ["5.10", "6.1"] {
        // The guest itself completed: a rejected program is a trial failure, not a guest fault.
        assert_eq!(
            out.kernel(kernel)["outcome"],
            "COMPLETED",
            "{}",
            out.transcript()
        );
        let load = format!("{kernel}::verifier_reject::load");
        assert_eq!(out.trial_status(&load), "failed");
        let m = out.trial_message(&load);
        assert!(m.contains("xdp_unchecked") && m.contains("rejected"), "{m}");
        // The verifier's own words, with the offending instruction.
        assert!(m.contains("invalid access to packet"), "{m}");
        assert!(m.contains("r1 = *(u8 *)(r1 +20)"), "{m}");
        // Once: not in the error's text and again as the log.
        assert_eq!(m.matches("invalid access to packet").count(), 1, "{m}");
        let case = format!("{kernel}::verifier_reject::any_packet");
        assert_eq!(out.trial_status(&case), "failed");
        assert!(out
            .trial_message(&case)
            .contains("invalid access to packet"));
        // On the terminal too.
        assert!(
            out.stdout.contains(&format!("---- {load} ----")),
            "{}",
            out.stdout
        );
    }
    assert_eq!(out.code(), Some(1), "{}", out.transcript());
}

#[test]
fn unresolvable_relocation_names_the_poisoned_instruction() {
    let out = faulty_run();
    let m = out.trial_message("5.10::poisoned::load");
    assert_eq!(out.trial_status("5.10::poisoned::load"), "failed", "{m}");
    assert!(
        m.contains("was poisoned by the CO-RE relocation"),
        "the load error must explain the poisoned instruction: {m}"
    );
    assert!(m.contains("task_struct") && m.contains("__state"), "{m}");
    assert!(m.contains("field_byte_offset"), "{m}");
    // The host-side prediction agrees that 5.10 cannot resolve it: not a relocation mismatch.
    assert_eq!(out.trial_status("5.10::poisoned::relocations"), "passed");
    // 6.1 has the field: the same object loads and runs there.
    assert_eq!(out.trial_status("6.1::poisoned::load"), "passed");
    assert_eq!(out.trial_status("6.1::poisoned::state_offset"), "passed");
    let decisions = out.kernel("5.10")["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == "poisoned")
        .unwrap()
        .to_string();
    assert!(decisions.contains("__state"), "{decisions}");
}

#[test]
fn program_type_the_kernel_cannot_run_is_unsupported() {
    let out = faulty_run();
    // 5.10 has no BPF_PROG_TYPE_SYSCALL (5.14): an expected gap, reported as such.
    let name = "5.10::syscall_type::sum_of_context";
    assert_eq!(
        out.trial_status(name),
        "unsupported",
        "{name}: {}",
        out.trial_message(name)
    );
    assert_eq!(out.trial_status("5.10::syscall_type::load"), "unsupported");
    assert!(
        out.stdout.contains("unsupported (the kernel"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(name), "{}", out.stdout);
    // 6.1 loads and runs it: a context in, no packet, no repeat.
    let name = "6.1::syscall_type::sum_of_context";
    assert_eq!(
        out.trial_status(name),
        "passed",
        "{name}: {}",
        out.trial_message(name)
    );
    // The cross-kernel trial compares one kernel only: unsupported, never "identical".
    assert_eq!(
        out.trial_status("identical::syscall_type::sum_of_context"),
        "unsupported"
    );
}

#[test]
fn a_context_only_program_runs_without_a_packet() {
    let out = faulty_run();
    // SK_LOOKUP takes a struct bpf_sk_lookup and refuses data in or out.
    for kernel in ["5.10", "6.1"] {
        let name = format!("{kernel}::lookup::tcp_port_80");
        assert_eq!(
            out.trial_status(&name),
            "passed",
            "{name}: {}",
            out.trial_message(&name)
        );
    }
}

#[test]
fn garbage_objects_are_refused_by_the_engine_without_panicking() {
    let mut inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"this is not an ELF file\n".to_vec()),
        ("elf magic only", b"\x7fELF".to_vec()),
        ("zeros", vec![0u8; 4096]),
    ];
    // A real ELF header (64-bit, little-endian, BPF machine) followed by noise.
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2;
    header[5] = 1;
    header[6] = 1;
    header[16] = 1; // ET_REL
    header[18] = 247; // EM_BPF
    header[20] = 1;
    header[40..48].copy_from_slice(&64u64.to_le_bytes()); // e_shoff
    header[52..54].copy_from_slice(&64u16.to_le_bytes());
    header[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    header[60..62].copy_from_slice(&9u16.to_le_bytes()); // e_shnum: beyond the end
    let mut noise = header.clone();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..2048 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    inputs.push(("BPF ELF header, truncated", header));
    inputs.push(("BPF ELF header, then noise", noise));
    // A host ELF (this test binary) is an ELF but not a BPF object.
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    inputs.push(("x86-64 executable", exe[..exe.len().min(1 << 20)].to_vec()));
    for (what, bytes) in inputs {
        let result = std::panic::catch_unwind(|| core_reloc::Object::parse(&bytes).map(|_| ()));
        match result {
            Err(_) => panic!("{what}: Object::parse panicked"),
            Ok(Ok(())) => panic!("{what}: garbage parsed as a BPF object"),
            Ok(Err(e)) => assert!(!e.to_string().is_empty(), "{what}: empty error"),
        }
    }
}

#[test]
fn garbage_object_is_refused_by_the_agent_with_a_message() {
    // The agent as a plain process (the "host" entry's way), with an object of garbage bytes
    // whose sha256 is right: it must report an error result for the case, and finish.
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = harness::guest::agent::install_in(agent_dir.path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"\x7fELF\x02\x01\x01garbage that is no BPF object".to_vec();
    let bundle = harness::guest::bundle::Bundle {
        agent: vec![],
        objects: vec![(
            harness::guest::bundle::Bundle::object_entry("garbage", &garbage),
            garbage,
        )],
        // From JSON, so that fields added to the protocol later take their defaults.
        cases: vec![
            serde_json::from_value::<guest_protocol::CaseSpec>(serde_json::json!({
                "id": "garbage/one",
                "object": "garbage",
                "program": "prog",
                "data_in": "00".repeat(64),
            }))
            .unwrap(),
        ],
        fault: None,
        libbpf_loader: None,
        kernel_core: false,
        kernel_btf: None,
    };
    bundle.write_dir("host", None, dir.path()).unwrap();
    // Another test's thread may fork while the agent file is still open for writing here; its
    // child holds that descriptor until its exec, and our exec meanwhile fails with ETXTBSY.
    let output = output_retrying_text_busy(
        std::process::Command::new(&agent)
            .arg("--bundle")
            .arg(dir.path()),
        20,
    )
    .expect("the agent could be started");
    assert!(
        output.status.success(),
        "the agent must not crash on a bad object: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut scanner = guest_protocol::FrameScanner::new();
    let messages = scanner.push(&output.stdout);
    let text: Vec<String> = messages.iter().map(|m| format!("{m:?}")).collect();
    let all = text.join("\n");
    assert!(
        matches!(
            messages.last(),
            Some(guest_protocol::GuestMessage::Done { .. })
        ),
        "{all}"
    );
    let result = messages
        .iter()
        .find_map(|m| match m {
            guest_protocol::GuestMessage::CaseResult(r) if r.case_id == "garbage/one" => {
                Some(format!("{:?}", r.outcome))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no result for the case\n{all}"));
    assert!(result.contains("not a loadable BPF object"), "{result}");
    assert!(result.contains("garbage"), "{result}");
}

/// A programs directory holding the green object and `fixtures` as its fixture file.
fn programs_with_fixtures(dir: &Path, fixtures: &str) -> std::path::PathBuf {
    let programs = dir.join("programs");
    std::fs::create_dir_all(programs.join("include")).unwrap();
    let green = fault_programs("green");
    std::fs::copy(green.join("pass.bpf.c"), programs.join("pass.bpf.c")).unwrap();
    std::fs::copy(
        green.join("include/fault_types.h"),
        programs.join("include/fault_types.h"),
    )
    .unwrap();
    std::fs::write(programs.join("pass.fixtures.toml"), fixtures).unwrap();
    programs
}

const GOOD_CASE: &str = "object = \"pass\"\n\n[[case]]\nname = \"first\"\nprogram = \"xdp_pass\"\n";

#[test]
fn malformed_fixtures_stop_the_run_with_file_line_and_problem() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "bad TOML",
            format!("{GOOD_CASE}packet = [ {{eth = {{}} ]\n[case.expect]\nretval = 2\n"),
            vec!["pass.fixtures.toml:6"],
        ),
        (
            "unknown key",
            format!("{GOOD_CASE}packet_hex = \"{}\"\nrepat = 2\n[case.expect]\nretval = 2\n", "00".repeat(20)),
            vec!["pass.fixtures.toml:7", "repat"],
        ),
        (
            "bad packet spec",
            format!("{GOOD_CASE}packet = [ {{eth = {{}}}}, {{ipv4 = {{src = \"10.0.0.300\"}}}} ]\n[case.expect]\nretval = 2\n"),
            vec!["pass.fixtures.toml:6", "IPv4"],
        ),
        (
            "unknown layer",
            format!("{GOOD_CASE}packet = [ {{eth = {{}}}}, {{ipv5 = {{}}}} ]\n[case.expect]\nretval = 2\n"),
            vec!["pass.fixtures.toml:6", "ipv5", "expected one of"],
        ),
        (
            "memory bomb in a packet layer",
            format!("{GOOD_CASE}packet = [ {{eth = {{}}}}, {{zeros = 100000000000000}} ]\n[case.expect]\nretval = 2\n"),
            vec!["pass.fixtures.toml:4: case `first`", "layer 2 (zeros)", "exceed 1048576 bytes"],
        ),
        (
            "object without source",
            "object = \"nosuch\"\n[[case]]\nname = \"a\"\nprogram = \"x\"\n[case.expect]\n".into(),
            vec!["pass.fixtures.toml", "nosuch"],
        ),
    ];
    for (what, text, wants) in cases {
        let dir = tempfile::tempdir().unwrap();
        let programs = programs_with_fixtures(dir.path(), &text);
        let out = run_harness(
            dir.path(),
            &[
                "--kernel",
                "5.10",
                "--no-install",
                "--programs",
                programs.to_str().unwrap(),
            ],
        );
        assert_eq!(out.code(), Some(2), "{what}\n{}", out.transcript());
        assert!(
            out.stderr.contains("error:"),
            "{what}\n{}",
            out.transcript()
        );
        assert!(
            !out.stderr.contains("panicked"),
            "{what}\n{}",
            out.transcript()
        );
        for want in wants {
            assert!(
                out.stderr.contains(want),
                "{what}: stderr lacks `{want}`\n{}",
                out.transcript()
            );
        }
        // Nothing was booted.
        assert!(
            !out.stderr.contains("booting"),
            "{what}\n{}",
            out.transcript()
        );
    }
}
