#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncline_protocol::fuzzing::authorize_change(data));
