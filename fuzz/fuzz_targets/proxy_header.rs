//! Arbitrary bytes as the start of a connection from a trusted load balancer, through the
//! PROXY protocol v1/v2 header reader. Must never panic; an accepted header is consumed
//! exactly, leaving what follows it for SSH.

#![no_main]

use dropgate::ssh::fuzzing::proxy_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proxy_header(data);
});
