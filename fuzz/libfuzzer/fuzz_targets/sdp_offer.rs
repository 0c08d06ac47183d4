#![no_main]
// The SFU catches str0m's panics on offers it cannot answer and refuses them (`accept_offer`
// in sfu/src/core/negotiate.rs). libfuzzer-sys's panic hook aborts on every panic, caught or
// not, so this target puts the default hook back: a panic that escapes still aborts, through
// libfuzzer-sys's own catch around each input.
libfuzzer_sys::fuzz_target!(
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| sightline_fuzz::sdp_offer(data)
);
