//! Arbitrary text as an authorized_keys line: the options splitter, the option checks
//! (`from=` patterns, `expiry-time=`) and the key parser. Must never panic; whatever is
//! accepted can be checked against any address and time.

#![no_main]

use dropgate::ssh::fuzzing::authorized_keys_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        authorized_keys_line(line);
    }
});
