//! The API's resources: what each method and path does, as a status and a JSON body.

use super::http::shown;
use super::state::{ApiState, vm_state};
use crate::live::{LiveError, Outcome};
use serde_json::{Value, json};

/// `GET /servers`: each server, with its recovery counters and its last recovery when the VM
/// runs with recovery.
pub(super) fn servers(state: &ApiState) -> Value {
    let figures = state.progress.servers();
    let records = state.records.lock().unwrap_or_else(|e| e.into_inner());
    let summary = records.recovery.as_ref();
    let paused = vm_state(state) == "Paused";
    Value::Array(
        figures
            .into_iter()
            .map(|f| {
                let name = &f.name;
                let server = summary.and_then(|s| s.servers.iter().find(|x| &x.name == name));
                let last = summary
                    .and_then(|s| s.recoveries.iter().rfind(|r| &r.server == name))
                    .map_or(Value::Null, |r| {
                        json!({
                            "cause": r.cause,
                            "action": r.action,
                            "latency_us": r.latency_us,
                            "pages_restored": r.pages_restored,
                        })
                    });
                let stopped = summary
                    .and_then(|s| s.recoveries.iter().rfind(|r| &r.server == name))
                    .is_some_and(|r| r.action == "fail-stop");
                json!({
                    "name": name,
                    "state": if stopped { "stopped" } else if paused { "paused" } else { "running" },
                    "messages": f.messages,
                    "requests": f.requests,
                    "crashes": server.map_or(0, |x| x.crashes),
                    "restores": server.map_or(0, |x| x.restores),
                    "peer_rollbacks": server.map_or(0, |x| x.peer_rollbacks),
                    "generation": server.map_or(0, |x| x.generation),
                    "last_recovery": last,
                })
            })
            .collect(),
    )
}

/// Answers one request: status and JSON body.
pub fn route(method: &str, path: &str, body: &[u8], state: &ApiState) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("PUT", ["actions"]) => {
            let action = only(body, "action_type");
            match (action.as_deref(), &state.stop_vm) {
                (Some("Stop"), Some(e)) => match e.write(1) {
                    Ok(()) => (200, json!({ "action_type": "Stop", "result": "stopping" })),
                    Err(err) => (
                        503,
                        json!({ "error": format!("cannot ask for a stop: {err}") }),
                    ),
                },
                (Some("Stop"), None) => (405, json!({ "error": "this VM cannot be stopped here" })),
                _ => (
                    400,
                    json!({ "error": "expected a body {\"action_type\": \"Stop\"}" }),
                ),
            }
        }
        ("PATCH", ["vm"]) => {
            let want = only(body, "state");
            let Some(pause) = &state.pause else {
                return (405, json!({ "error": "this VM cannot be paused" }));
            };
            match want.as_deref() {
                Some("Paused") => pause.pause(),
                Some("Resumed") => pause.resume(),
                _ => {
                    return (
                        400,
                        json!({ "error": "expected a body {\"state\": \"Paused\" | \"Resumed\"}" }),
                    );
                }
            }
            (200, json!({ "state": vm_state(state) }))
        }
        ("GET", ["vm"]) => {
            let mut vm = json!({
                "state": vm_state(state),
                "backend": state.backend,
                "uptime_ms": uptime(state).as_millis() as u64,
                "workload": state.progress.total(),
            });
            if let Some((status, message)) = state.ended() {
                vm["exit_status"] = json!(status);
                vm["message"] = json!(message);
            }
            (200, vm)
        }
        ("GET", ["servers"]) => (200, servers(state)),
        ("PUT", ["servers", name, "fault"]) => {
            let kind = match only(body, "kind") {
                Some(k) => k,
                None => {
                    return (
                        400,
                        json!({ "error": "expected a body {\"kind\": \"KIND\"}" }),
                    );
                }
            };
            if vm_state(state) == "Paused" {
                return (
                    409,
                    json!({ "error": "the VM is paused: resume it first (its kernel plans faults as it runs)" }),
                );
            }
            if let Some(refused) = too_long(name, &kind) {
                return refused;
            }
            answer(name, &kind, state.live.plan(name, &kind))
        }
        ("DELETE", ["servers", name, "fault"]) => {
            too_long(name, "").unwrap_or_else(|| answer(name, "", state.live.cancel(name)))
        }
        (
            _,
            ["vm"] | ["servers"] | ["servers", _, "fault"] | ["events"] | ["metrics"] | ["actions"],
        ) => (
            405,
            json!({ "error": format!("{} is not allowed on {path}", shown(method)) }),
        ),
        _ => (
            404,
            json!({ "error": format!("no resource {}", shown(path)) }),
        ),
    }
}

/// The string of a body that is a JSON object with `key` and nothing else (a misspelt or
/// extra field is an error, not ignored).
fn only(body: &[u8], key: &str) -> Option<String> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    let object = v.as_object()?;
    (object.len() == 1)
        .then(|| object.get(key)?.as_str().map(str::to_owned))
        .flatten()
}

/// How long the guest has run: since the VM started, less the time it spent paused.
fn uptime(state: &ApiState) -> std::time::Duration {
    let paused = state
        .pause
        .as_ref()
        .map(|p| p.paused_for())
        .unwrap_or_default();
    state.started.elapsed().saturating_sub(paused)
}

/// Longest server name or fault kind looked up (and echoed whole in an error).
const LONGEST_NAME: usize = 64;

/// A refusal of a server name or a kind too long to be one, shortened in the error.
fn too_long(server: &str, kind: &str) -> Option<(u16, Value)> {
    if server.len() > LONGEST_NAME {
        return Some((
            404,
            json!({ "error": format!("no server {:?}", shown(server)) }),
        ));
    }
    (kind.len() > LONGEST_NAME).then(|| {
        (
            400,
            json!({ "error": format!("no fault kind {:?}", shown(kind)) }),
        )
    })
}

fn answer(server: &str, kind: &str, got: Result<Outcome, LiveError>) -> (u16, Value) {
    match got {
        Ok(Outcome::Planned) => (
            200,
            json!({ "server": server, "kind": kind, "result": "planned for its next message" }),
        ),
        Ok(Outcome::Cancelled) => (200, json!({ "server": server, "result": "cancelled" })),
        Ok(Outcome::NothingPending) => (
            404,
            json!({ "error": format!("no fault pending for {server}") }),
        ),
        Ok(Outcome::Full) => (
            409,
            json!({ "error": format!("{server}'s fault plan is full") }),
        ),
        Ok(Outcome::Refused(code)) => (
            409,
            json!({ "error": format!("the guest kernel refused it (result {code})") }),
        ),
        Err(e @ LiveError::UnknownServer(..)) => (404, json!({ "error": e.to_string() })),
        Err(e @ LiveError::Kind(..)) => (400, json!({ "error": e.to_string() })),
        Err(e) => (503, json!({ "error": e.to_string() })),
    }
}
