use std::time::Instant;
fn main() {
    let raw = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let v = raw.to_vec();
        let c = t.elapsed();
        let t2 = Instant::now();
        let b = core_reloc::Btf::parse(&raw).unwrap();
        let p = t2.elapsed();
        let t3 = Instant::now();
        b.build_name_index();
        let i = t3.elapsed();
        println!("copy {c:?} parse {p:?} index {i:?} {}", v.len());
    }
}
