//! The `kv` server task: `kv::Store` in its state arena, served by userlib's loop.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::server_main!(b"kv", kv::Store, kv_api::REQUESTS, |state, _, msg| Some(
    state.handle(msg)
));
