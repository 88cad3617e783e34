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

mod events;
mod http;
mod routes;
mod state;

pub use http::shown;
pub use state::ApiState;

use http::{read_request, respond};
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a client may take to send its request or read the answer.
const CLIENT_TIME: Duration = Duration::from_secs(2);
/// How long the accepting thread reads the request of a client it turns away.
const BUSY_READ: Duration = Duration::from_millis(100);
/// Most of a refused request read after the answer.
const DRAIN: usize = 1 << 20;
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
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == self.file);
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
                let clients = Arc::new(AtomicUsize::new(0));
                let serve = move |stream| serve_one(stream, &state);
                accept_each(
                    || self.listener.accept().map(|(s, _)| s),
                    &stop,
                    &clients,
                    "vmm-api-client",
                    Arc::new(serve),
                    busy,
                );
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

/// A connection past [`MAX_CLIENTS`]: its request read (briefly: this is the accepting
/// thread), so that the client reads the 503 rather than a reset, then closed.
fn busy(mut stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(BUSY_READ));
    let _ = stream.set_write_timeout(Some(BUSY_READ));
    let _ = read_request(&mut stream);
    respond(
        &mut stream,
        503,
        &json!({ "error": format!("too many clients: {MAX_CLIENTS} are being served, try again") }),
    );
}

/// One connection: one request, one answer, then closed.
fn serve_one(mut stream: UnixStream, state: &ApiState) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(CLIENT_TIME));
    let _ = stream.set_write_timeout(Some(CLIENT_TIME));
    let (status, body) = match read_request(&mut stream) {
        Ok((method, path, _)) if method == "GET" && path.trim_end_matches('/') == "/events" => {
            return events::events(stream, state);
        }
        Ok((method, path, _)) if method == "GET" && path.trim_end_matches('/') == "/metrics" => {
            return metrics(&mut stream, state);
        }
        Ok((method, path, body)) => routes::route(&method, &path, &body, state),
        Err((status, why)) => {
            respond(&mut stream, status, &json!({ "error": why }));
            // The client may still be sending what was refused: let it finish (briefly,
            // boundedly), so that it reads this answer rather than a reset.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.set_read_timeout(Some(BUSY_READ));
            let until = Instant::now() + 5 * BUSY_READ;
            let (mut chunk, mut drained) = ([0u8; 4096], 0);
            while drained < DRAIN && Instant::now() < until {
                match std::io::Read::read(&mut stream, &mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
            return;
        }
    };
    respond(&mut stream, status, &body);
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
            // A connection a thread, as on the API's socket: an idle client holds up no scrape.
            // One turned away is closed at once (a scraper retries).
            let clients = Arc::new(AtomicUsize::new(0));
            let serve = move |stream| scrape(stream, &state);
            accept_each(
                || listener.accept().map(|(s, _)| s),
                &stop,
                &clients,
                "vmm-metrics-client",
                Arc::new(serve),
                drop,
            );
        })
}

/// Accepts connections until `stop`, each served by `serve` on a thread of its own while fewer
/// than [`MAX_CLIENTS`] are (`clients` counts them); one more is handed to `busy`.
fn accept_each<S: Send + 'static>(
    mut accept: impl FnMut() -> std::io::Result<S>,
    stop: &AtomicBool,
    clients: &Arc<AtomicUsize>,
    name: &str,
    serve: Arc<dyn Fn(S) + Send + Sync>,
    busy: impl Fn(S),
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(stream) = accept() else {
            // Nothing waiting (or a failed accept): look at the stop flag again soon.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            busy(stream);
            continue;
        }
        let (serve, count) = (Arc::clone(&serve), Arc::clone(clients));
        let spawned = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                serve(stream);
                count.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            // The stream went with the closure: the client sees a close.
            clients.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One connection on the metrics address: `GET /metrics`, and nothing else.
fn scrape(mut stream: std::net::TcpStream, state: &ApiState) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(CLIENT_TIME));
    let _ = stream.set_write_timeout(Some(CLIENT_TIME));
    match read_request(&mut stream) {
        Ok((m, p, _)) if m == "GET" && p.trim_end_matches('/') == "/metrics" => {
            metrics(&mut stream, state);
        }
        Ok((m, p, _)) if p.trim_end_matches('/') == "/metrics" => respond(
            &mut stream,
            405,
            &json!({ "error": format!("{} is not allowed on /metrics", http::shown(&m)) }),
        ),
        Ok((_, p, _)) => respond(
            &mut stream,
            404,
            &json!({ "error": format!("no resource {}: only /metrics here", http::shown(&p)) }),
        ),
        Err((status, why)) => respond(&mut stream, status, &json!({ "error": why })),
    }
}

#[cfg(test)]
mod tests;
