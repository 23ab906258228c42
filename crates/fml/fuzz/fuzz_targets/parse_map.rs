#![no_main]
//! Any byte string must parse to a StructureMap or give a positioned error; a
//! panic, overflow or hang is a bug.

use fml::parse::{parse_map_with_options, Dialect, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in [Dialect::IgPublisher, Dialect::Matchbox2022] {
        match parse_map_with_options(text, &ParseOptions { dialect }) {
            Ok(map) => assert_eq!(map["resourceType"], "StructureMap"),
            Err(e) => assert!(e.line >= 1 && e.column >= 1),
        }
    }
});
