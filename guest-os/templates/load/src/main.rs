//! The `__NAME__load` task: drives the __NAME__ server for the ticks its command-line value
//! says (`vmm run -- ops=0 __NAME__load=300`: 3 s), then answers the workload's WAIT with its
//! figures (see the load crate).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

load::task_main!(b"__NAME__load", __NAME___api::SERVER, __NAME__load::LoadMix);
