//! `GET /events`: the VM's fault, injection and recovery records as a stream of JSON lines.

use super::routes::servers;
use super::state::ApiState;
use crate::records::{GuestRecords, Logged};
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// `GET /events`: every fault and recovery so far, then each new one as it happens, one JSON
/// object a line, until the VM stops or the client goes (a client that does not read is cut
/// off after the write timeout). A crash makes two: `{"event": "fault", "server", "cause",
/// "rip", "injected", "generation", "messages"}` as soon as the VMM has it, and `{"event":
/// "recovery", ...}` (the report's whole recovery entry) once the server runs again (its
/// latency is known), or at once for one left stopped, or as the VM stops. A fault of the VMM's
/// kinds also makes `{"event": "injection", ...}` (the report's injection record: target, kind,
/// message, rip, the concrete corruption and the spec that replays it) when it is carried out.
/// Records come in the order things happened, those from before the client came too. The last,
/// as the VM stops: `{"event": "stopped", "exit_status", "message", "workload", "servers"}`,
/// how it ended and the final figures (as `GET /vm` and `GET /servers` have them).
pub fn events(mut stream: UnixStream, state: &ApiState) {
    if stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n",
        )
        .is_err()
    {
        return;
    }
    // Records of the log sent; at the end, what the log never had.
    let mut sent = 0;
    loop {
        let stopping = state.stop.load(Ordering::Relaxed);
        let new: Vec<Value> = {
            let records = state.records.lock().unwrap_or_else(|e| e.into_inner());
            let mut new: Vec<Value> = records
                .log
                .iter()
                .skip(sent)
                .filter_map(|l| record(&records, *l))
                .collect();
            sent = records.log.len();
            if stopping {
                new.extend(unlogged(&records));
            }
            new
        };
        for v in &new {
            if writeln!(stream, "{v}").is_err() {
                return;
            }
        }
        if stopping {
            if let Some((status, message)) = state.ended() {
                let _ = writeln!(
                    stream,
                    "{}",
                    json!({
                        "event": "stopped",
                        "exit_status": status,
                        "message": message,
                        "workload": state.progress.total(),
                        "servers": servers(state),
                    })
                );
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The stream's record of `logged`.
fn record(records: &GuestRecords, logged: Logged) -> Option<Value> {
    let recoveries = records
        .recovery
        .as_ref()
        .map_or(&[][..], |s| s.recoveries.as_slice());
    Some(match logged {
        Logged::Injection(i) => tagged(records.injections.get(i)?, "injection"),
        Logged::Fault(i) => {
            let r = recoveries.get(i)?;
            json!({
                "event": "fault",
                "server": r.server,
                "cause": r.cause,
                "rip": r.rip,
                "injected": r.injected,
                "generation": r.generation,
                "messages": r.messages,
            })
        }
        Logged::Recovery(i) => tagged(recoveries.get(i)?, "recovery"),
    })
}

/// As the VM stops: what the log never had - its last crashes, recoveries that never ended
/// (with a null latency), the faults planned that never fired (the run's final records).
fn unlogged(records: &GuestRecords) -> Vec<Value> {
    let has = |l: Logged| records.log.contains(&l);
    let recoveries = records
        .recovery
        .as_ref()
        .map_or(&[][..], |s| s.recoveries.as_slice());
    let mut out: Vec<Value> = (0..records.injections.len())
        .filter(|&i| !has(Logged::Injection(i)))
        .filter_map(|i| record(records, Logged::Injection(i)))
        .collect();
    for i in 0..recoveries.len() {
        for l in [Logged::Fault(i), Logged::Recovery(i)] {
            if !has(l) {
                out.extend(record(records, l));
            }
        }
    }
    out
}

/// `value` as JSON with `"event": name` added.
fn tagged(value: &impl serde::Serialize, name: &str) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or_default();
    v["event"] = json!(name);
    v
}
