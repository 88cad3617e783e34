//! The `__NAME__` server task: its state in its state arena, served by userlib's loop (receive,
//! handle, reply; the receive is the message boundary where the VMM snapshots the state).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::server_main!(
    b"__NAME__",
    __NAME__::State,
    __NAME___api::REQUESTS,
    |state, _, msg| Some(state.handle(msg))
);
