//! Only tests live here: see tests/libbpf_differential.rs.
