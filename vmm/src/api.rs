//! The control API (`vmm run --api-sock PATH`): HTTP/1.1 with JSON bodies on a Unix socket,
//! created owner-only (0600), refused if the path holds anything but a stale socket, removed
//! at exit. Served on its own threads: each connection on one of at most
//! [`MAX_CLIENTS`], bounded in size and time (a slow or stuck client is cut off, and never
//! stalls the vCPU or another client). docs/api.md.
//!
//! ```text
//!  GET    /vm                   {"state": "Running", "backend": "pvm", "uptime_ms": 1234}
//!  GET    /servers              [{"name": "kv"}, ...]
//!  PUT    /servers/{name}/fault {"kind": "panic"}  -> crash it at its next message
//!  DELETE /servers/{name}/fault                    -> cancel one still pending
//!  GET    /events               one JSON line per recovery, as they happen
//!  GET    /metrics              OpenMetrics text: crashes, restores, latency, ...
//! ```

use crate::live::{LiveError, LiveFaults, Outcome};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Largest request head read.
const MAX_HEAD: usize = 16 << 10;
/// Largest request body read.
const MAX_BODY: usize = 64 << 10;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIME: Duration = Duration::from_secs(2);
/// Connections served at once; more are answered 503 at once.
pub const MAX_CLIENTS: usize = 16;

/// The control surfaces a run serves (`--api-sock`, `--metrics-addr`, `--metrics-public`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Control {
    /// The API's Unix socket.
    pub api_sock: Option<PathBuf>,
    /// Where to serve `GET /metrics` over TCP.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Allow a metrics address that is not loopback.
    pub metrics_public: bool,
}

impl Control {
    /// True when anything is served.
    pub fn any(&self) -> bool {
        self.api_sock.is_some() || self.metrics_addr.is_some()
    }
}

/// What the API serves from.
#[derive(Debug)]
pub struct ApiState {
    /// Live faults.
    pub live: LiveFaults,
    /// The KVM backend's name.
    pub backend: &'static str,
    /// When the VM started.
    pub started: Instant,
    /// The servers and the figures they publish.
    pub progress: crate::progress::Progress,
    /// What the guest reported; the recovery summary is published there after every fault.
    pub records: Arc<std::sync::Mutex<crate::records::GuestRecords>>,
    /// Set when the VM has stopped: event streams end.
    pub stop: Arc<AtomicBool>,
    /// The pause switch (with `--api-sock`).
    pub pause: Option<Arc<crate::pause::Pause>>,
    /// Written to stop the VM (`PUT /actions` with `Stop`).
    pub stop_vm: Option<vmm_sys_util::eventfd::EventFd>,
    /// How the VM ended (`vmm run`'s exit status and its line), once it has: served until the
    /// API goes, and the event stream's last record.
    pub ended: std::sync::Mutex<Option<(u8, Option<String>)>>,
}

/// `GET /servers`: each server, with its recovery counters and its last recovery when the VM
/// runs with recovery.
fn servers(state: &ApiState) -> Value {
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

/// A bound API socket.
#[derive(Debug)]
pub struct ApiSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's device and inode as bound: removed at exit only if still this one.
    file: (u64, u64),
}

impl ApiSocket {
    /// Binds `path`: refused if something other than a stale socket is there (a live one is
    /// another VMM's), made owner-only.
    pub fn bind(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(format!(
                        "{shown}: a socket someone is serving on: not taken"
                    ));
                }
                std::fs::remove_file(path).map_err(|e| format!("{shown}: stale socket: {e}"))?;
            }
            Ok(_) => return Err(format!("{shown} exists and is not a socket: not replaced")),
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("{shown}: {e}"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{shown}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("{shown}: {e}"))?;
        let bound = std::fs::symlink_metadata(path).map_err(|e| format!("{shown}: {e}"))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            file: (bound.dev(), bound.ino()),
        })
    }

    /// Removes the socket file, if the path still holds the one bound (not whatever someone
    /// put there since).
    fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| {
            m.file_type().is_socket() && (m.dev(), m.ino()) == self.file
        });
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Serves on a thread until `stop` is set; the socket is removed then, and the thread ends
    /// once the connections still open have ended (at most [`CLIENT_TIME`] later).
    pub fn serve(
        self,
        state: Arc<ApiState>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("vmm-api".into())
            .spawn(move || {
                let clients = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                while !stop.load(Ordering::Relaxed) {
                    match self.listener.accept() {
                        Ok((mut stream, _)) => {
                            if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                                clients.fetch_sub(1, Ordering::AcqRel);
                                let _ = stream.set_write_timeout(Some(CLIENT_TIME));
                                respond(&mut stream, 503, &json!({ "error": "too many clients" }));
                                continue;
                            }
                            let (state, count) = (Arc::clone(&state), Arc::clone(&clients));
                            let spawned = std::thread::Builder::new()
                                .name("vmm-api-client".into())
                                .spawn(move || {
                                    serve_one(stream, &state);
                                    count.fetch_sub(1, Ordering::AcqRel);
                                });
                            if spawned.is_err() {
                                // The stream went with the closure: the client sees a close.
                                clients.fetch_sub(1, Ordering::AcqRel);
                            }
                        }
                        // Nothing waiting: look at the stop flag again soon.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                self.remove();
                // Event streams end with how the VM ended: let those still open write it (each
                // client is bounded in time, and so is this wait).
                let deadline = Instant::now() + CLIENT_TIME;
                while clients.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
    }
}

/// One connection: one request, one answer, then closed.
fn serve_one(mut stream: UnixStream, state: &ApiState) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(CLIENT_TIME));
    let _ = stream.set_write_timeout(Some(CLIENT_TIME));
    let (status, body) = match read_request(&mut stream) {
        Ok((method, path, _)) if method == "GET" && path.trim_end_matches('/') == "/events" => {
            return events(stream, state);
        }
        Ok((method, path, _)) if method == "GET" && path.trim_end_matches('/') == "/metrics" => {
            return metrics(&mut stream, state);
        }
        Ok((method, path, body)) => route(&method, &path, &body, state),
        Err((status, why)) => (status, json!({ "error": why })),
    };
    respond(&mut stream, status, &body);
}

/// `GET /events`: every fault and recovery so far, then each new one as it happens, one JSON
/// object a line, until the VM stops or the client goes (a client that does not read is cut
/// off after the write timeout). A crash makes two: `{"event": "fault", "server", "cause",
/// "rip", "injected", "generation", "messages"}` as soon as the VMM has it, and `{"event":
/// "recovery", ...}` (the report's whole recovery entry) once the server runs again (its
/// latency is known), or at once for one left stopped, or as the VM stops. A fault of the VMM's
/// kinds also makes `{"event": "injection", ...}` (the report's injection record: target, kind,
/// message, rip, the concrete corruption and the spec that replays it) when it is carried out.
fn events(mut stream: UnixStream, state: &ApiState) {
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

impl ApiState {
    fn ended(&self) -> Option<(u8, Option<String>)> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// `Running`, `Paused` or `Stopped`.
fn vm_state(state: &ApiState) -> &'static str {
    if state.ended().is_some() {
        "Stopped"
    } else if state.pause.as_ref().is_some_and(|p| p.is_paused()) {
        "Paused"
    } else {
        "Running"
    }
}

/// Answers `GET /metrics`: OpenMetrics text.
fn metrics(stream: &mut impl Write, state: &ApiState) {
    let text = {
        let records = state.records.lock().unwrap_or_else(|e| e.into_inner());
        crate::metrics::text(records.recovery.as_ref(), &state.progress.servers())
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Checks `--metrics-addr`: a loopback address unless `public` (`--metrics-public`).
pub fn bind_metrics(
    addr: std::net::SocketAddr,
    public: bool,
) -> Result<std::net::TcpListener, String> {
    if !public && !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: add --metrics-public to serve metrics beyond this machine"
        ));
    }
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{addr}: {e}"))?;
    Ok(listener)
}

/// Serves `GET /metrics` (and nothing else) on `listener` until `stop` is set, a connection at
/// a time (each bounded in time and size).
pub fn serve_metrics(
    listener: std::net::TcpListener,
    state: Arc<ApiState>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vmm-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(CLIENT_TIME));
                        let _ = stream.set_write_timeout(Some(CLIENT_TIME));
                        match read_request(&mut stream) {
                            Ok((m, p, _))
                                if m == "GET" && p.trim_end_matches('/') == "/metrics" =>
                            {
                                metrics(&mut stream, &state);
                            }
                            Ok((_, p, _)) => respond(
                                &mut stream,
                                404,
                                &json!({ "error": format!("no resource {p}: only /metrics here") }),
                            ),
                            Err((status, why)) => {
                                respond(&mut stream, status, &json!({ "error": why }));
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })
}

/// Writes an answer (and nothing after it: the connection closes).
fn respond(stream: &mut impl Write, status: u16, body: &Value) {
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Reads one request: method, path, body. `Err`: the status and why.
fn read_request(stream: &mut impl Read) -> Result<(String, String, Vec<u8>), (u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err((413, format!("request head over {MAX_HEAD} bytes")));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err((400, "connection closed mid-request".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err((400, format!("reading the request: {e}"))),
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err((400, "not an HTTP/1.1 request".into())),
    }
    let method = req.method.unwrap_or_default().to_owned();
    let path = req.path.unwrap_or_default().to_owned();
    let length = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or((400, "Content-Length is not a number".to_owned()))
        })
        .transpose()?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err((413, format!("body of {length} bytes: at most {MAX_BODY}")));
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) => return Err((400, "connection closed mid-body".into())),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) => return Err((400, format!("reading the body: {e}"))),
        }
    }
    body.truncate(length);
    Ok((method, path, body))
}

/// Answers one request: status and JSON body.
fn route(method: &str, path: &str, body: &[u8], state: &ApiState) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("PUT", ["actions"]) => {
            let action = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                v.get("action_type")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
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
            let want = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned));
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
                "uptime_ms": state.started.elapsed().as_millis() as u64,
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
            let kind = match serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_owned))
            {
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
            answer(name, &kind, state.live.plan(name, &kind))
        }
        ("DELETE", ["servers", name, "fault"]) => answer(name, "", state.live.cancel(name)),
        (
            _,
            ["vm"] | ["servers"] | ["servers", _, "fault"] | ["events"] | ["metrics"] | ["actions"],
        ) => (
            405,
            json!({ "error": format!("{method} is not allowed on {path}") }),
        ),
        _ => (404, json!({ "error": format!("no resource {path}") })),
    }
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

#[cfg(test)]
mod tests;
