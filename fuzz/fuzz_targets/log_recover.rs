//! Fuzz target: arbitrary bytes as the body of the last log segment; recovery (read-only scan
//! and the writable open with torn-tail repair) must never panic.
//! Calls only `engine::testing::fuzz_log_recover`, so a crash input replays as a unit test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    engine::testing::fuzz_log_recover(data);
});
