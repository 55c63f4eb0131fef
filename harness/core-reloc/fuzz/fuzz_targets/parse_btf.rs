#![no_main]
use core_reloc::{sanitize_btf, Btf, BtfFeatures, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let owned = Btf::parse_owned(data.to_vec());
    let parsed = Btf::parse(data);
    assert_eq!(owned.is_ok(), parsed.is_ok());
    if let (Ok(btf), Ok(owned)) = (parsed, owned) {
        assert!(btf == owned);
        for id in 0..btf.type_count().min(512) {
            let _ = btf.type_by_id(id);
            let _ = btf.resolve_size(id);
            if let Ok(name) = btf.name_of(id) {
                // Both name indexes must find every named type by its own name.
                let kind = btf.kind_of(id).unwrap_or(Kind::Void);
                if !name.is_empty() && kind != Kind::Void {
                    assert!(btf.ids_by_essential_name(Some(&[kind]), name).contains(&id));
                }
            }
        }
        let _ = btf.ids_by_essential_name(Some(&[Kind::Struct]), "task_struct");
        let _ = btf.ids_by_essential_name(None, "task_struct___x");
        let sanitized = sanitize_btf(&owned, &BtfFeatures::none());
        assert!(sanitized == sanitize_btf(&btf, &BtfFeatures::none()));
        let _ = Btf::parse(&sanitized);
        assert!(Btf::parse(&btf.to_bytes()).is_ok());
    }
});
