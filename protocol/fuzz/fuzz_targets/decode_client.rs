#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| syncline_protocol::fuzzing::decode_client_frame(data));
