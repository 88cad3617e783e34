//! The `bankload` task: drives the bank server for the ticks its command-line value says, then
//! answers the workload's WAIT with its figures (see the load crate).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

load::task_main!(b"bankload", bank_api::SERVER, bankload::BankMix);
