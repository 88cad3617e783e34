//! What the servers of the bundled guest declare about their request types (in their `*-api`
//! crates): which requests change state and which are idempotent. A policy needs both to decide
//! about the request in flight (replay only idempotent ones). Servers this VMM does not know
//! are taken at their most cautious: every request state-changing, none idempotent.

/// (idempotent, state-changing) of request `label` to server `server`.
pub fn declared(server: &str, label: u64) -> (bool, bool) {
    match server {
        names_api::SERVER => (
            names_api::idempotent(label),
            names_api::changes_state(label),
        ),
        kv_api::SERVER => (kv_api::idempotent(label), kv_api::changes_state(label)),
        fs_api::SERVER => (fs_api::idempotent(label), fs_api::changes_state(label)),
        bank_api::SERVER => (bank_api::idempotent(label), bank_api::changes_state(label)),
        crasher_api::SERVER => (
            crasher_api::idempotent(label),
            crasher_api::changes_state(label),
        ),
        _ => (false, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apis_answer_and_strangers_are_cautious() {
        assert_eq!(declared("kv", kv_api::op::GET), (true, false));
        assert_eq!(declared("kv", kv_api::op::DELETE), (false, true));
        assert_eq!(declared("bank", bank_api::op::DEPOSIT), (false, true));
        assert_eq!(declared("someone", 1), (false, true));
    }
}
