//! The API's HTTP/1.1 on the wire: one request read, bounded in size, and one answer written.

use serde_json::Value;
use std::io::{Read, Write};

/// Largest request head read.
pub const MAX_HEAD: usize = 16 << 10;
/// Largest request body read.
pub const MAX_BODY: usize = 64 << 10;

/// Writes an answer (and nothing after it: the connection closes).
pub fn respond(stream: &mut impl Write, status: u16, body: &Value) {
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
pub fn read_request(stream: &mut impl Read) -> Result<(String, String, Vec<u8>), (u16, String)> {
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
