#![no_main]
use core_reloc::{sanitize_btf, Btf, BtfFeatures, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(btf) = Btf::parse(data) {
        for id in 0..btf.type_count().min(512) {
            let _ = btf.type_by_id(id);
            let _ = btf.resolve_size(id);
        }
        let _ = btf.ids_by_essential_name(Some(&[Kind::Struct]), "task_struct");
        let _ = Btf::parse(&sanitize_btf(&btf, &BtfFeatures::none()));
        assert!(Btf::parse(&btf.to_bytes()).is_ok());
    }
});
