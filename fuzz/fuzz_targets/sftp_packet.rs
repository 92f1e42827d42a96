//! Arbitrary bytes as a client's stream through the SFTP framing, decoder and request routing.
//! Must never panic; every outcome is either a list of decoded requests or a clean error.

#![no_main]

use dropgate::sftp::fuzzing::decode_stream;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_stream(data);
});
