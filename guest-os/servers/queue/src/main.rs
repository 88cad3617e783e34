//! The `queue` server task: `queue::Queues` in its state arena, served by userlib's loop.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::server_main!(
    b"queue",
    queue::Queues,
    queue_api::REQUESTS,
    |state, _, msg| Some(state.handle(msg))
);
