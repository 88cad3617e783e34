//! `GET /events`: the VM's fault, injection and recovery records as a stream of JSON lines.

use super::state::ApiState;
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
pub fn events(mut stream: UnixStream, state: &ApiState) {
    if stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n",
        )
        .is_err()
    {
        return;
    }
    // Crashes whose fault event went out, and whose recovery event did; injections sent.
    let (mut faults, mut recoveries, mut injections) = (0, 0, 0);
    loop {
        let stopping = state.stop.load(Ordering::Relaxed);
        let new: Vec<Value> = {
            let records = state.records.lock().unwrap_or_else(|e| e.into_inner());
            let all = records
                .recovery
                .as_ref()
                .map_or(&[][..], |s| s.recoveries.as_slice());
            let mut new: Vec<Value> = records
                .injections
                .iter()
                .skip(injections)
                .map(|i| {
                    let mut v = serde_json::to_value(i).unwrap_or_default();
                    v["event"] = json!("injection");
                    v
                })
                .collect();
            injections = records.injections.len();
            new.extend(all.iter().skip(faults).map(|r| {
                json!({
                    "event": "fault",
                    "server": r.server,
                    "cause": r.cause,
                    "rip": r.rip,
                    "injected": r.injected,
                    "generation": r.generation,
                    "messages": r.messages,
                })
            }));
            faults = all.len();
            // Recoveries in order: one still restarting holds back those after it.
            for r in all.iter().skip(recoveries) {
                if r.latency_us.is_none() && r.action != "fail-stop" && !stopping {
                    break;
                }
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["event"] = json!("recovery");
                new.push(v);
                recoveries += 1;
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
                    json!({ "event": "stopped", "exit_status": status, "message": message })
                );
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
