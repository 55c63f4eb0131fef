#![no_main]
use core_reloc::BtfExt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ext) = BtfExt::parse(data) {
        for sec in &ext.core_relos {
            let _ = ext.core_relos_of(sec);
        }
    }
});
