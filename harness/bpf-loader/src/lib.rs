//! bpf(2) syscall layer (being written).
