//! Recovery policies: pure decision logic from fault records to recovery actions.
//!
//! Not built yet: this crate is reserved by the design card and lands with the recovery-policies
//! issue. It holds no code so far.
#![forbid(unsafe_code)]
