//! The control API's client side (`vmm ctl`, `vmm demo`): one request on a fresh connection
//! to the socket, its status and JSON body; or the `GET /events` stream, line by line, and one
//! line of text for each of its records.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a request may take.
const WITHIN: Duration = Duration::from_secs(5);

/// One request: the status and the JSON body. `Err`: why no answer came, in words.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Value), String> {
    let shown = socket.display();
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("no VM answers at {shown}: {e}"))?;
    let _ = s.set_read_timeout(Some(WITHIN));
    let _ = s.set_write_timeout(Some(WITHIN));
    // A failed write may still have an answer (the VM answers a request it refuses at once,
    // e.g. one too large, and closes): read it before saying there is none.
    let sent = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let text = match (read_answer(&mut s), sent) {
        (Ok(text), _) if !text.is_empty() => text,
        (_, Err(e)) => return Err(format!("no VM answers at {shown}: {e}")),
        (Err(e), Ok(())) => return Err(no_answer(&shown, &e)),
        (Ok(_), Ok(())) => return Err(format!("no answer from {shown}: it closed")),
    };
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{shown} answered something that is not HTTP"))?;
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .ok_or_else(|| format!("{shown} answered without a JSON body"))?;
    Ok((code, json))
}

/// Largest answer read (the API's are a few KiB).
const MAX_ANSWER: u64 = 1 << 20;

/// The whole answer, bounded in size and in time (something else on the socket may send
/// without end).
fn read_answer(s: &mut UnixStream) -> std::io::Result<String> {
    let deadline = std::time::Instant::now() + 2 * WITHIN;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() as u64 > MAX_ANSWER || std::time::Instant::now() > deadline {
            return Err(std::io::Error::other(format!(
                "an answer of over {} KiB or {} s: not the control API",
                MAX_ANSWER >> 10,
                (2 * WITHIN).as_secs()
            )));
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Why no answer came: a timeout said as one.
fn no_answer(shown: &impl std::fmt::Display, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("no answer from {shown} within {} s", WITHIN.as_secs())
        }
        _ => format!("no answer from {shown}: {e}"),
    }
}

/// The `GET /events` stream: its lines (one JSON record each) until the VM stops. `Err`: no VM
/// answers at `socket`.
pub fn events(socket: &Path) -> Result<impl Iterator<Item = String>, String> {
    let shown = socket.display();
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("no VM answers at {shown}: {e}"))?;
    s.write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("no VM answers at {shown}: {e}"))?;
    // The head within the usual time; the records may then be far apart.
    let _ = s.set_read_timeout(Some(WITHIN));
    let handle = s.try_clone().map_err(|e| format!("{shown}: {e}"))?;
    let mut reader = BufReader::new(s);
    // Record by record (the head's lines first), each bounded: a line past the bound ends the
    // stream.
    let mut next = move || {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_ANSWER)
            .read_until(b'\n', &mut line)
            .ok()?;
        (n > 0 && line.ends_with(b"\n")).then(|| {
            String::from_utf8_lossy(&line[..n - 1])
                .trim_end_matches('\r')
                .to_owned()
        })
    };
    // The head, up to its blank line.
    loop {
        match next() {
            Some(l) if l.is_empty() => break,
            Some(_) => {}
            None => return Err(format!("no answer from {shown}")),
        }
    }
    let _ = handle.set_read_timeout(None);
    Ok(std::iter::from_fn(next))
}

/// One line for people about an event record: `kv: panic at rip 0x4407ae (generation 0)` for a
/// fault, `kv: panic recovered by rollback, 3 pages in 396.3 us` for a recovery (`kv: panic,
/// left stopped` for a fail-stop).
pub fn event_line(v: &Value) -> String {
    let server = v["server"].as_str().unwrap_or("?");
    let cause = v["cause"].as_str().unwrap_or("?");
    match v["event"].as_str() {
        Some("fault") => format!(
            "{server}: {cause} at rip {:#x} (generation {})",
            v["rip"].as_u64().unwrap_or(0),
            v["generation"].as_u64().unwrap_or(0)
        ),
        Some("recovery") if v["action"] == "fail-stop" => {
            format!("{server}: {cause}, left stopped")
        }
        Some("recovery") => format!(
            "{server}: {cause} recovered by {}, {} pages in {}",
            v["action"].as_str().unwrap_or("?"),
            v["pages_restored"].as_u64().unwrap_or(0),
            v["latency_us"]
                .as_f64()
                .map_or("? us".to_owned(), |l| format!("{l:.1} us"))
        ),
        Some("stopped") => format!(
            "the VM stopped with status {}{}",
            v["exit_status"].as_u64().unwrap_or(0),
            v["message"]
                .as_str()
                .map_or(String::new(), |m| format!(": {m}"))
        ),
        Some("injection") => format!(
            "{}: {} injected at message {}{}",
            v["target"].as_str().unwrap_or("?"),
            v["kind"].as_str().unwrap_or("?"),
            v["message"].as_u64().unwrap_or(0),
            v["concrete"]["spec"]
                .as_str()
                .map_or(String::new(), |s| format!("; replay {s}"))
        ),
        _ => format!("{server}: {v}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_record_reads_as_one_line() {
        let fault = json!({"event": "fault", "server": "kv", "cause": "panic", "rip": 0x4407ae, "generation": 0});
        assert_eq!(
            event_line(&fault),
            "kv: panic at rip 0x4407ae (generation 0)"
        );
        let back = json!({"event": "recovery", "server": "kv", "cause": "panic", "action": "rollback", "pages_restored": 3, "latency_us": 396.31});
        assert_eq!(
            event_line(&back),
            "kv: panic recovered by rollback, 3 pages in 396.3 us"
        );
        let stopped =
            json!({"event": "recovery", "server": "fs", "cause": "hang", "action": "fail-stop"});
        assert_eq!(event_line(&stopped), "fs: hang, left stopped");
        let stopped = json!({"event": "stopped", "exit_status": 143, "message": "stopped through the control API (as by SIGTERM)"});
        assert_eq!(
            event_line(&stopped),
            "the VM stopped with status 143: stopped through the control API (as by SIGTERM)"
        );
        let injected = json!({"event": "injection", "target": "kv", "kind": "flip-branch", "message": 840, "concrete": {"spec": "kv:flip-branch@840:at=0x4406f9"}});
        assert_eq!(
            event_line(&injected),
            "kv: flip-branch injected at message 840; replay kv:flip-branch@840:at=0x4406f9"
        );
    }
}
