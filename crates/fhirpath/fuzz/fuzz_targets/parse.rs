#![no_main]
//! Any text: the parser returns an expression or an error, never panics.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = fhirpath::parse(src);
    }
});
