#![no_main]
use core_reloc::Object;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(obj) = Object::parse(data) {
        for m in obj.maps() {
            let _ = m.kernel_name();
        }
    }
});
