//! The `queueload` task: drives the queue server for the ticks its command-line value says,
//! then answers the workload's WAIT with its figures (see the load crate).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

load::task_main!(b"queueload", queue_api::SERVER, queueload::QueueMix);
