//! The `fs` server task: `fs::Files` in its state arena, served by userlib's loop.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::server_main!(b"fs", fs::Files, fs_api::REQUESTS, |state, _, msg| Some(
    state.handle(msg)
));
