//! Per-server page snapshots (dirty tracking, incremental copy, restore, persistence).
//!
//! Not built yet: this crate is reserved by the design card and lands with the recovery-core
//! issue. It holds no code so far, so nothing can depend on behaviour it does not have.
#![forbid(unsafe_code)]
