//! Integration tests against the running kernel (the host's 6.18, root with CAP_BPF).
//!
//! They do not skip: without the privilege to use bpf(2) they fail, saying so.

use std::os::fd::{AsRawFd, OwnedFd};

use bpf_loader::asm::*;
use bpf_loader::consts::*;
use bpf_loader::*;

/// Fails loudly (rather than passing or skipping) when bpf(2) is not usable here.
fn require_bpf() {
    let probe = create_map(&MapCreate {
        name: "privcheck".into(),
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        ..Default::default()
    });
    if let Err(e) = probe {
        if e.is_permission_denied() {
            panic!(
                "bpf(2) is not permitted for this process ({e}). These tests need root or \
                 CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON; they fail rather than skip."
            );
        }
        panic!("bpf(2) unusable: {e}");
    }
}

fn array_map(name: &str, map_type: u32, value_size: u32, max_entries: u32) -> OwnedFd {
    create_map(&MapCreate {
        name: name.into(),
        map_type,
        key_size: 4,
        value_size,
        max_entries,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn u32k(k: u32) -> [u8; 4] {
    k.to_ne_bytes()
}

#[test]
fn array_map_roundtrip() {
    require_bpf();
    let fd = array_map("test_array", BPF_MAP_TYPE_ARRAY, 8, 4);
    let info = map_info(&fd).unwrap();
    assert_eq!(info.name, "test_array");
    assert_eq!(info.map_type, BPF_MAP_TYPE_ARRAY);
    assert_eq!(
        (info.key_size, info.value_size, info.max_entries),
        (4, 8, 4)
    );

    assert_eq!(
        map_lookup(&fd, &u32k(1), 8).unwrap(),
        Some(vec![0; 8]),
        "array slots exist zeroed"
    );
    map_update(&fd, &u32k(1), &42u64.to_ne_bytes(), BPF_ANY).unwrap();
    assert_eq!(
        map_lookup(&fd, &u32k(1), 8).unwrap(),
        Some(42u64.to_ne_bytes().to_vec())
    );
    assert_eq!(map_lookup(&fd, &u32k(9), 8).unwrap(), None, "out of range");
    let keys = map_keys(&fd, 4).unwrap();
    assert_eq!(
        keys,
        (0..4u32)
            .map(|k| k.to_ne_bytes().to_vec())
            .collect::<Vec<_>>()
    );

    // Deleting from an array is EINVAL, with the map named in the error.
    let err = map_delete(&fd, &u32k(1)).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    let msg = err.to_string();
    assert!(
        msg.contains("BPF_MAP_DELETE_ELEM") && msg.contains("test_array"),
        "{msg}"
    );

    // NOEXIST on an array is EEXIST.
    let err = map_update(&fd, &u32k(0), &[0; 8], BPF_NOEXIST).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST));

    // Too short buffers are refused before the kernel sees them.
    let err = map_lookup(&fd, &u32k(0), 4).unwrap_err();
    assert!(matches!(err, BpfError::Invalid { .. }), "{err}");
    let err = map_update(&fd, &[0u8; 2], &[0; 8], BPF_ANY).unwrap_err();
    assert!(matches!(err, BpfError::Invalid { .. }), "{err}");

    // Freeze: user space writes now fail with EPERM.
    map_freeze(&fd).unwrap();
    let err = map_update(&fd, &u32k(2), &[1; 8], BPF_ANY).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EPERM), "{err}");
}

#[test]
fn hash_map_roundtrip() {
    require_bpf();
    let fd = create_map(&MapCreate {
        name: "test-hash/with bad chars and too long".into(),
        map_type: BPF_MAP_TYPE_HASH,
        key_size: 8,
        value_size: 4,
        max_entries: 16,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(map_info(&fd).unwrap().name, "test_hash_with_");
    assert!(map_keys(&fd, 8).unwrap().is_empty());
    for k in [3u64, 1, 2] {
        map_update(
            &fd,
            &k.to_ne_bytes(),
            &((k as u32) * 10).to_ne_bytes(),
            BPF_NOEXIST,
        )
        .unwrap();
    }
    let err = map_update(&fd, &1u64.to_ne_bytes(), &[0; 4], BPF_NOEXIST).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST));
    assert_eq!(
        map_lookup(&fd, &2u64.to_ne_bytes(), 4).unwrap(),
        Some(20u32.to_ne_bytes().to_vec())
    );
    let mut keys: Vec<u64> = map_keys(&fd, 8)
        .unwrap()
        .into_iter()
        .map(|k| u64::from_ne_bytes(k.try_into().unwrap()))
        .collect();
    keys.sort();
    assert_eq!(keys, vec![1, 2, 3]);
    assert!(map_delete(&fd, &2u64.to_ne_bytes()).unwrap());
    assert!(!map_delete(&fd, &2u64.to_ne_bytes()).unwrap());
    assert_eq!(map_lookup(&fd, &2u64.to_ne_bytes(), 4).unwrap(), None);
    assert_eq!(map_keys(&fd, 8).unwrap().len(), 2);
}

#[test]
fn percpu_array_values_span_all_cpus() {
    require_bpf();
    let ncpus = possible_cpus().unwrap();
    assert!(ncpus >= 1);
    // value_size 4 is stored in 8-byte slots, one per possible CPU.
    let fd = array_map("test_percpu", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 2);
    let size = percpu_value_size(4).unwrap();
    assert_eq!(size, 8 * ncpus);
    let mut value = vec![0u8; size];
    for cpu in 0..ncpus {
        value[cpu * 8..cpu * 8 + 4].copy_from_slice(&(cpu as u32 + 100).to_ne_bytes());
    }
    map_update(&fd, &u32k(1), &value, BPF_ANY).unwrap();
    let got = map_lookup(&fd, &u32k(1), size).unwrap().unwrap();
    assert_eq!(got, value);
    // The plain value size is not enough for a per-CPU map.
    let err = map_lookup(&fd, &u32k(1), 4).unwrap_err();
    assert!(err.to_string().contains("per-CPU"), "{err}");
}

/// `*(u32*)(fp-4) = 0; r0 = lookup(map, fp-4); if r0 { lock *(u64*)r0 += 1 }`, then the tail.
fn count_into_slot0(map_fd: i32, tail: &[Insn]) -> Vec<u8> {
    let mut p = vec![
        mov64_reg(R6, R1),
        st_mem(BPF_W, R10, -4, 0),
        mov64_reg(R2, R10),
        alu64_imm(BPF_ADD, R2, -4),
    ];
    p.extend(ld_map_fd(R1, map_fd));
    p.extend([
        call(BPF_FUNC_MAP_LOOKUP_ELEM),
        jmp_imm(BPF_JEQ, R0, 0, 2),
        mov64_imm(R1, 1),
        atomic_add(BPF_DW, R0, R1, 0),
    ]);
    p.extend_from_slice(tail);
    to_bytes(&p)
}

fn packet() -> Vec<u8> {
    (0..64u8).collect()
}

fn counter(map: &OwnedFd) -> u64 {
    let v = map_lookup(map, &u32k(0), 8).unwrap().unwrap();
    u64::from_ne_bytes(v.try_into().unwrap())
}

#[test]
fn socket_filter_counts_and_test_runs() {
    require_bpf();
    let map = array_map("sf_counter", BPF_MAP_TYPE_ARRAY, 8, 1);
    // return skb->len (offset 0 of __sk_buff)
    let insns = count_into_slot0(map.as_raw_fd(), &[ldx_mem(BPF_W, R0, R6, 0), exit()]);
    let prog = load_program(&ProgramLoad {
        name: "sock_filter_counter",
        program_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insns: &insns,
        license: "GPL",
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let info = prog_info(&prog).unwrap();
    assert_eq!(info.name, "sock_filter_cou");
    assert_eq!(info.program_type, BPF_PROG_TYPE_SOCKET_FILTER);

    let pkt = packet();
    let out = test_run(
        &prog,
        &TestRun {
            data_in: &pkt,
            data_size_out: 128,
            repeat: 3,
            ..Default::default()
        },
    )
    .unwrap();
    // skb->len: the kernel pulled the 14-byte Ethernet header before running the filter
    assert_eq!(out.retval, 50);
    // For non-L2 program types the kernel hands back the frame with the Ethernet header it
    // pulled zeroed.
    assert_eq!(out.data_out.len(), 64);
    assert_eq!(&out.data_out[..14], &[0u8; 14]);
    assert_eq!(&out.data_out[14..], &pkt[14..]);
    assert!(out.ctx_out.is_none());
    assert_eq!(counter(&map), 3, "one increment per repeat");
}

#[test]
fn xdp_counts_rewrites_and_test_runs() {
    require_bpf();
    let map = array_map("xdp_counter", BPF_MAP_TYPE_ARRAY, 8, 1);
    // if (data + 1 <= data_end) *(u8*)data = 0xaa; return XDP_PASS
    let tail = [
        ldx_mem(BPF_W, R2, R6, 0),
        ldx_mem(BPF_W, R3, R6, 4),
        mov64_reg(R4, R2),
        alu64_imm(BPF_ADD, R4, 1),
        jmp_reg(BPF_JGT, R4, R3, 1),
        st_mem(BPF_B, R2, 0, 0xaa),
        mov64_imm(R0, XDP_PASS as i32),
        exit(),
    ];
    let insns = count_into_slot0(map.as_raw_fd(), &tail);
    let prog = load_program(&ProgramLoad {
        name: "xdp_counter",
        program_type: BPF_PROG_TYPE_XDP,
        expected_attach_type: Some(BPF_XDP),
        insns: &insns,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));

    let pkt = packet();
    // data_size_out 0: sized automatically.
    let out = test_run(
        &prog,
        &TestRun {
            data_in: &pkt,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(out.retval, XDP_PASS);
    let mut expected = pkt.clone();
    expected[0] = 0xaa;
    assert_eq!(out.data_out, expected);
    assert_eq!(counter(&map), 1);

    // Too small an output buffer: the kernel says ENOSPC, the crate grows it and retries once.
    let out = test_run(
        &prog,
        &TestRun {
            data_in: &pkt,
            data_size_out: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(out.data_out, expected);
    assert_eq!(counter(&map), 3, "the ENOSPC run ran the program too");

    // xdp_md context in and out (5.15+).
    assert!(probe::test_run_xdp_ctx_supported().unwrap());
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&64u32.to_ne_bytes());
    let out = test_run(
        &prog,
        &TestRun {
            data_in: &pkt,
            ctx_in: Some(&ctx),
            ctx_size_out: 24,
            ..Default::default()
        },
    )
    .unwrap();
    let ctx_out = out.ctx_out.unwrap();
    assert_eq!(ctx_out.len(), 24);
    assert_eq!(u32::from_ne_bytes(ctx_out[4..8].try_into().unwrap()), 64);
}

#[test]
fn verifier_rejection_carries_the_log() {
    require_bpf();
    // r0 = r2 reads an uninitialised register.
    let insns = to_bytes(&[mov64_reg(R0, R2), exit()]);
    let err = load_program(&ProgramLoad {
        name: "bad_prog",
        program_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insns: &insns,
        ..Default::default()
    })
    .unwrap_err();
    match &err {
        BpfError::Rejected {
            program,
            errno,
            verifier_log,
            log_truncated,
        } => {
            assert_eq!(program, "bad_prog");
            assert_eq!(*errno, libc::EACCES);
            assert!(verifier_log.contains("R2 !read_ok"), "{verifier_log}");
            assert!(!log_truncated);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("bad_prog") && msg.contains("EACCES") && msg.contains("R2 !read_ok"),
        "{msg}"
    );

    // A malformed request never reaches the kernel.
    let err = load_program(&ProgramLoad {
        name: "odd",
        program_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insns: &[0u8; 12],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, BpfError::Invalid { .. }));
}

#[test]
fn load_with_log_returns_stats() {
    require_bpf();
    let insns = to_bytes(&[mov64_imm(R0, 0), exit()]);
    let (_fd, log) = load_program_with_log(
        &ProgramLoad {
            name: "stats",
            program_type: BPF_PROG_TYPE_SOCKET_FILTER,
            insns: &insns,
            ..Default::default()
        },
        BPF_LOG_STATS,
    )
    .unwrap();
    assert!(log.contains("processed 2 insns"), "{log}");
}

#[test]
fn long_verifier_logs_grow_the_buffer() {
    require_bpf();
    // 20,000 instructions then an invalid read: at log level 2 the log of the failed load
    // (one line per instruction with register state) outgrows the first 256 KiB buffer.
    let mut p = vec![mov64_imm(R1, 0)];
    p.extend(std::iter::repeat(alu64_imm(BPF_ADD, R1, 1)).take(20_000));
    p.extend([mov64_reg(R0, R2), exit()]);
    let insns = to_bytes(&p);
    let req = ProgramLoad {
        name: "long_log",
        program_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insns: &insns,
        ..Default::default()
    };
    let err = load_program_with_log(&req, 2).unwrap_err();
    let log = err.log().unwrap();
    assert!(log.len() > 256 * 1024, "log of {} bytes", log.len());
    assert!(log.contains("R2 !read_ok"));
}

#[test]
fn btf_load_valid_and_invalid() {
    require_bpf();
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, true);
    let proto = b.func_proto(int, &[]);
    b.func("main_fn", proto, BTF_FUNC_GLOBAL);
    let fd = load_btf(&b.finish()).unwrap_or_else(|e| panic!("{e}"));
    assert!(fd.as_raw_fd() >= 0);

    // A pointer to type 7, which does not exist.
    let mut b = BtfBuilder::new();
    b.int("int", 4, true);
    b.ptr(7);
    let err = load_btf(&b.finish()).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL));
    let log = err.log().unwrap();
    assert!(!log.trim().is_empty(), "no BTF log");
    assert!(log.contains("type_id"), "{log}");
    assert!(err.to_string().contains("BPF_BTF_LOAD"), "{err}");

    // A map described by BTF.
    let mut b = BtfBuilder::new();
    let u32t = b.int("unsigned int", 4, false);
    let u64t = b.int("long long unsigned int", 8, false);
    let btf = load_btf(&b.finish()).unwrap();
    let map = create_map(&MapCreate {
        name: "btf_map".into(),
        map_type: BPF_MAP_TYPE_HASH,
        key_size: 4,
        value_size: 8,
        max_entries: 2,
        btf_fd: Some(btf.as_raw_fd()),
        btf_key_type_id: u32t,
        btf_value_type_id: u64t,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(map_info(&map).unwrap().btf_id, 0);
}

#[test]
fn btf_features_all_present_on_this_kernel() {
    require_bpf();
    let f = probe::try_btf_features().unwrap();
    assert_eq!(
        f,
        probe::BtfFeatures {
            base: true,
            func: true,
            func_global: true,
            datasec: true,
            float: true,
            decl_tag: true,
            type_tag: true,
            enum64: true,
            enum_signed: true,
            vmlinux_btf: true,
        },
        "kernel {}",
        kernel_release()
    );
}

#[test]
fn program_type_probes() {
    require_bpf();
    assert!(probe::program_type_supported(BPF_PROG_TYPE_XDP).unwrap());
    assert!(probe::program_type_supported(BPF_PROG_TYPE_SOCKET_FILTER).unwrap());
    assert!(!probe::program_type_supported(9999).unwrap());
    assert_eq!(
        probe::program_type_support(9999).unwrap(),
        probe::ProgTypeSupport::Unsupported
    );
    assert_eq!(
        probe::program_type_support(BPF_PROG_TYPE_SYSCALL).unwrap(),
        probe::ProgTypeSupport::Supported
    );
    // Types that need an attach type or a BTF target at load time.
    for t in [
        BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        BPF_PROG_TYPE_CGROUP_SOCKOPT,
        BPF_PROG_TYPE_SK_LOOKUP,
        BPF_PROG_TYPE_SYSCALL,
        BPF_PROG_TYPE_NETFILTER,
        BPF_PROG_TYPE_TRACING,
        BPF_PROG_TYPE_LSM,
        BPF_PROG_TYPE_EXT,
        BPF_PROG_TYPE_STRUCT_OPS,
        BPF_PROG_TYPE_KPROBE,
        BPF_PROG_TYPE_FLOW_DISSECTOR,
        BPF_PROG_TYPE_RAW_TRACEPOINT,
        BPF_PROG_TYPE_CGROUP_SKB,
        BPF_PROG_TYPE_SCHED_CLS,
    ] {
        assert!(
            probe::program_type_supported(t).unwrap(),
            "{} on {}",
            prog_type_name(t),
            kernel_release()
        );
    }
}

#[test]
fn test_run_support_matches_the_design_table() {
    require_bpf();
    for t in [
        BPF_PROG_TYPE_SOCKET_FILTER,
        BPF_PROG_TYPE_SCHED_CLS,
        BPF_PROG_TYPE_SCHED_ACT,
        BPF_PROG_TYPE_CGROUP_SKB,
        BPF_PROG_TYPE_XDP,
        BPF_PROG_TYPE_FLOW_DISSECTOR,
        BPF_PROG_TYPE_RAW_TRACEPOINT,
        BPF_PROG_TYPE_SK_LOOKUP,
        BPF_PROG_TYPE_SYSCALL,
    ] {
        assert!(
            probe::test_run_supported(t).unwrap(),
            "{}",
            prog_type_name(t)
        );
    }
    // No test run for kprobes: ENOTSUPP, told apart from EINVAL.
    assert!(!probe::test_run_supported(BPF_PROG_TYPE_KPROBE).unwrap());
    let insns = to_bytes(&[mov64_imm(R0, 0), exit()]);
    let fd = load_program(&ProgramLoad {
        name: "kp",
        program_type: BPF_PROG_TYPE_KPROBE,
        insns: &insns,
        ..Default::default()
    })
    .unwrap();
    let err = test_run(&fd, &TestRun::default()).unwrap_err();
    assert!(err.is_not_supported(), "{err}");
    assert!(err.to_string().contains("\"kp\""), "{err}");
}

/// Runs `body` with a bpffs of its own: on a thread that has unshared its mount namespace (so
/// the mount is private to it and vanishes with the thread, even if the process is killed),
/// mounted on a fresh directory. Nothing is assumed about `/sys/fs/bpf`, and nothing is left
/// mounted anywhere else.
fn with_private_bpffs(body: impl FnOnce(&str) + Send + 'static) {
    let mountpoint = std::env::temp_dir().join(format!(
        "bpf_loader_test_bpffs_{}_{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&mountpoint).unwrap();
    let dir = mountpoint.to_str().unwrap().to_string();
    let worker = std::thread::spawn(move || {
        // SAFETY: plain syscalls on this thread's own namespace, with NUL-terminated strings.
        unsafe {
            // CLONE_NEWNS on one thread: it gets its own fs context and mount namespace.
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                panic!(
                    "unshare(CLONE_NEWNS) failed ({}): this test needs root (CAP_SYS_ADMIN) \
                     to mount its own bpffs",
                    std::io::Error::last_os_error()
                );
            }
            // No propagation back to the parent namespace.
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                panic!(
                    "making the private mount namespace private failed: {}",
                    std::io::Error::last_os_error()
                );
            }
            let target = std::ffi::CString::new(dir.clone()).unwrap();
            if libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            ) != 0
            {
                panic!(
                    "mounting a bpffs on {dir} failed: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        body(&dir);
    });
    let result = worker.join();
    let _ = std::fs::remove_dir(&mountpoint);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn pin_and_get() {
    require_bpf();
    with_private_bpffs(|dir| {
        let map = array_map("pinme", BPF_MAP_TYPE_ARRAY, 4, 1);
        let path = format!("{dir}/pinned_map");
        if let Err(e) = obj_pin(&map, &path) {
            panic!("pinning under the private bpffs {dir} failed: {e}");
        }
        let again = obj_get(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(map_info(&again).unwrap().id, map_info(&map).unwrap().id);
    });
}

#[test]
fn kernel_release_is_uname() {
    let r = kernel_release();
    assert!(!r.is_empty());
    let proc = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(r, proc.trim());
}

/// The shapes other crates rely on: full struct literals (no `..Default::default()`) and raw
/// fds accepted wherever an fd is taken.
#[test]
fn api_shape_with_raw_fds() {
    require_bpf();
    let spec = MapCreate {
        name: "shape".into(),
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        map_flags: 0,
        btf_fd: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    let map = create_map(&spec).unwrap();
    let raw = map.as_raw_fd();
    map_update(raw, &u32k(0), &[1; 8], BPF_ANY).unwrap();
    assert_eq!(map_keys(raw, 4).unwrap().len(), 1);
    assert_eq!(map_lookup(raw, &u32k(0), 8).unwrap(), Some(vec![1; 8]));
    let insns = to_bytes(&[mov64_imm(R0, XDP_DROP as i32), exit()]);
    let prog = load_program(&ProgramLoad {
        name: "shape",
        program_type: BPF_PROG_TYPE_XDP,
        expected_attach_type: None,
        insns: &insns,
        license: "GPL",
        kernel_version: 0,
        btf_fd: None,
        func_info: &[],
        func_info_rec_size: 0,
        line_info: &[],
        line_info_rec_size: 0,
        attach_btf_id: None,
        attach_btf_obj_fd: None,
        attach_prog_fd: None,
        prog_flags: 0,
        core_relos: &[],
        core_relo_rec_size: 0,
        fd_array: &[],
        prog_ifindex: 0,
    })
    .unwrap();
    let pkt = packet();
    let run = TestRun {
        data_in: &pkt,
        data_size_out: 64,
        ctx_in: None,
        ctx_size_out: 0,
        repeat: 1,
        flags: 0,
    };
    assert_eq!(test_run(prog.as_raw_fd(), &run).unwrap().retval, XDP_DROP);
    // Running a map fd as a program: the error names the command and the fd.
    let err = test_run(raw, &run).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    assert!(err.to_string().contains("BPF_PROG_TEST_RUN"), "{err}");
    map_freeze(raw).unwrap();
}

/// A raw tracepoint program that reads argument `arg` (u64 index) of its context.
fn raw_tp_reading_arg(arg: i16) -> OwnedFd {
    let insns = to_bytes(&[ldx_mem(BPF_DW, R0, R1, arg * 8), mov64_imm(R0, 0), exit()]);
    load_program(&ProgramLoad {
        name: "rtp_arg",
        program_type: BPF_PROG_TYPE_RAW_TRACEPOINT,
        insns: &insns,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn raw_tracepoint_open_attaches_and_checks_the_argument_count() {
    require_bpf();
    // skb:kfree_skb has (skb, location, reason, rx_sk) on 6.12 and later.
    let link = raw_tracepoint_open(raw_tp_reading_arg(2), Some("kfree_skb"))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(link);
    // Reading past the tracepoint's arguments passes the verifier, and attaching refuses it.
    let err = raw_tracepoint_open(raw_tp_reading_arg(8), Some("kfree_skb")).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");
    assert!(err.to_string().contains("kfree_skb"), "{err}");
    let err = raw_tracepoint_open(raw_tp_reading_arg(0), Some("no_such_tracepoint_x")).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
    assert!(err.to_string().contains("BPF_RAW_TRACEPOINT_OPEN"), "{err}");
    assert!(raw_tracepoint_open(raw_tp_reading_arg(0), Some("a\0b"))
        .unwrap_err()
        .to_string()
        .contains("NUL"));
}

/// `bpf_ringbuf_output(map, &u64 [fp-8], 8, 0)` once per run, with the u64 `value`.
fn ringbuf_writer(map_fd: i32, value: i32) -> OwnedFd {
    const BPF_FUNC_RINGBUF_OUTPUT: i32 = 130;
    let mut p = vec![st_mem(BPF_DW, R10, -8, value)];
    p.extend(ld_map_fd(R1, map_fd));
    p.extend([
        mov64_reg(R2, R10),
        alu64_imm(BPF_ADD, R2, -8),
        mov64_imm(R3, 8),
        mov64_imm(R4, 0),
        call(BPF_FUNC_RINGBUF_OUTPUT),
        mov64_imm(R0, 0),
        exit(),
    ]);
    load_program(&ProgramLoad {
        name: "ringbuf_writer",
        program_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insns: &to_bytes(&p),
        license: "GPL",
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn ringbuf_records_are_read_in_order_and_drained() {
    require_bpf();
    let ring = create_map(&MapCreate {
        name: "events".into(),
        map_type: BPF_MAP_TYPE_RINGBUF,
        max_entries: 4096,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let reader = RingBuf::open(&ring, 4096).unwrap();
    let prog = ringbuf_writer(ring.as_raw_fd(), 0x1122);
    let run = |repeat| {
        test_run(
            &prog,
            &TestRun {
                data_in: &packet(),
                repeat,
                ..Default::default()
            },
        )
        .unwrap()
    };
    run(3);
    let records = reader.read(100, 1 << 20).unwrap();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r == &0x1122u64.to_ne_bytes()));
    assert!(reader.read(100, 1 << 20).unwrap().is_empty(), "consumed");
    // Enough to wrap the 4096-byte ring (16 bytes per record) several times.
    for _ in 0..3 {
        run(200);
        assert_eq!(reader.read(1000, 1 << 20).unwrap().len(), 200);
    }
    run(2);
    reader.drain();
    assert!(reader.read(100, 1 << 20).unwrap().is_empty(), "drained");
    run(5);
    match reader.read(4, 1 << 20) {
        Err(RingBufError::TooMuch {
            what: "records",
            limit: 4,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        RingBuf::open(&ring, 1000),
        Err(RingBufError::BadSize(1000))
    ));
}

#[test]
fn translated_instructions_name_maps_by_id() {
    require_bpf();
    let map = array_map("xl_counter", BPF_MAP_TYPE_ARRAY, 8, 1);
    let insns = count_into_slot0(map.as_raw_fd(), &[mov64_imm(R0, 0), exit()]);
    let prog = load_program(&ProgramLoad {
        name: "xlated",
        program_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insns: &insns,
        license: "GPL",
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let xlated = prog_xlated_insns(&prog).unwrap();
    let info = prog_info(&prog).unwrap();
    assert_eq!(xlated.len(), info.xlated_len as usize);
    assert_eq!(xlated.len() % INSN_SIZE, 0);
    // The ld_imm64 that held the map fd reads back as BPF_PSEUDO_MAP_FD with the map's id.
    let map_id = map_info(&map).unwrap().id;
    let ld = xlated
        .chunks(INSN_SIZE)
        .find(|i| i[0] == 0x18 && i[1] >> 4 == 1)
        .expect("no map reference in the translated program");
    assert_eq!(u32::from_le_bytes(ld[4..8].try_into().unwrap()), map_id);
    // The tail is as we wrote it.
    assert_eq!(&xlated[xlated.len() - 16..], &insns[insns.len() - 16..]);
}

#[test]
fn array_batches_read_and_write_every_entry_in_order() {
    require_bpf();
    let fd = array_map("test_batch", BPF_MAP_TYPE_ARRAY, 8, 10);
    let keys: Vec<Vec<u8>> = [2u32, 7].iter().map(|k| k.to_ne_bytes().to_vec()).collect();
    let values: Vec<Vec<u8>> = [20u64, 70]
        .iter()
        .map(|v| v.to_ne_bytes().to_vec())
        .collect();
    map_update_batch(&fd, &keys, &values, BPF_ANY).unwrap();
    // Read in pieces of 4: 4 + 4 + 2, resuming where each ended.
    let mut all = Vec::new();
    let mut start = None;
    let mut calls = 0;
    loop {
        let batch = map_lookup_batch(&fd, start.as_deref(), 4, 8, 4).unwrap();
        calls += 1;
        assert!(batch.keys.len() <= 4 && batch.keys.len() == batch.values.len());
        all.extend(batch.keys.into_iter().zip(batch.values));
        match batch.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    assert!(calls <= 4, "{calls} calls");
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..10u32)
        .map(|k| {
            let v: u64 = match k {
                2 => 20,
                7 => 70,
                _ => 0,
            };
            (k.to_ne_bytes().to_vec(), v.to_ne_bytes().to_vec())
        })
        .collect();
    assert_eq!(all, expected);
    // A short value buffer is refused before the kernel could write past it.
    let e = map_lookup_batch(&fd, None, 4, 4, 10).unwrap_err();
    assert!(e.to_string().contains("value of 4 bytes"), "{e}");
    let e = map_update_batch(&fd, &keys, &values[..1], BPF_ANY).unwrap_err();
    assert!(e.to_string().contains("2 keys for 1 values"), "{e}");

    // Per-CPU: one 8-byte slot per possible CPU, as for map_lookup.
    let size = percpu_value_size(4).unwrap();
    let percpu = array_map("test_batch_pc", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 3);
    let value: Vec<u8> = (0..size).map(|i| i as u8).collect();
    map_update_batch(
        &percpu,
        &[1u32.to_ne_bytes().to_vec()],
        std::slice::from_ref(&value),
        BPF_ANY,
    )
    .unwrap();
    let batch = map_lookup_batch(&percpu, None, 4, size, 100).unwrap();
    assert_eq!(batch.keys.len(), 3);
    assert!(batch.next.is_none());
    assert_eq!(
        map_lookup(&percpu, &u32k(1), size).unwrap(),
        Some(batch.values[1].clone())
    );
}
