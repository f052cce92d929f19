//! Fuzz target: arbitrary bytes decoded as a frame and as a commit payload must never panic.
//! Calls only `engine::testing::fuzz_frame_decode`, so a crash input replays as a unit test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    engine::testing::fuzz_frame_decode(data);
});
