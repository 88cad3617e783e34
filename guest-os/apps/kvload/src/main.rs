//! The `kvload` task: drives the kv server for the ticks its command-line value says, then
//! answers the workload's WAIT with its figures (see the load crate).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

load::task_main!(b"kvload", kv_api::SERVER, kvload::KvMix);
