//! The `bank` server task: `bank::Bank` in its state arena, served by userlib's loop.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::server_main!(b"bank", bank::Bank, |state, _, msg| Some(state.handle(msg)));
