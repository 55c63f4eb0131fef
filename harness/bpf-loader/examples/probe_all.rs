fn main() {
    println!("kernel {}", bpf_loader::kernel_release());
    for t in 0..34u32 {
        println!(
            "{:2} {:24} load={:?}",
            t,
            bpf_loader::consts::prog_type_name(t),
            bpf_loader::probe::program_type_supported(t).map_err(|e| e.to_string())
        );
    }
    println!("{:?}", bpf_loader::probe::btf_features());
}
