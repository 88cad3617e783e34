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
        408 => "Request Timeout",
        411 => "Length Required",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Header fields read in a request.
const MAX_HEADERS: usize = 32;

/// Reads one request: method, path (without a query), body. `Err`: the status and why.
pub fn read_request(stream: &mut impl Read) -> Result<(String, String, Vec<u8>), (u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = head_end(&buf) {
            break end;
        }
        // Never more than the limit, whatever the chunks.
        let room = (MAX_HEAD + 4).saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Err((431, format!("request head over {MAX_HEAD} bytes")));
        }
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err((400, "connection closed mid-request".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(read_error("the request", &e)),
        }
    };
    if head_end > MAX_HEAD + 4 {
        return Err((431, format!("request head over {MAX_HEAD} bytes")));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => {
            return Err((431, format!("more than {MAX_HEADERS} header fields")));
        }
        _ => return Err((400, "not an HTTP/1.1 request".into())),
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    let path = target.split_once('?').map_or(target, |(p, _)| p).to_owned();
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if header("transfer-encoding").is_some() {
        return Err((
            411,
            "a body must come with Content-Length (no Transfer-Encoding)".into(),
        ));
    }
    let lengths = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .count();
    if lengths > 1 {
        return Err((400, "more than one Content-Length".into()));
    }
    let length = header("content-length")
        .map(|v| {
            std::str::from_utf8(v)
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
            Err(e) => return Err(read_error("the body", &e)),
        }
    }
    body.truncate(length);
    Ok((method, path, body))
}

/// Where the head ends (after its blank line: CRLF CRLF, or bare LF LF as some clients send).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A failed read of `what`: a timeout is 408, anything else 400.
fn read_error(what: &str, e: &std::io::Error) -> (u16, String) {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => (
            408,
            format!("{what} did not come within the time a client has"),
        ),
        _ => (400, format!("reading {what}: {e}")),
    }
}

/// `text` shortened for an error message (a path can be as long as a request head).
pub fn shown(text: &str) -> String {
    const SHOWN: usize = 120;
    match text.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request whose head is `len` bytes long (terminator included).
    fn head_of(len: usize) -> Vec<u8> {
        let start = b"GET /vm HTTP/1.1\r\nX: ";
        let mut h = start.to_vec();
        h.resize(len - 4, b'a');
        h.extend_from_slice(b"\r\n\r\n");
        h
    }

    /// A reader that hands out `bytes`, then the error `then`.
    struct Feed(std::io::Cursor<Vec<u8>>, std::io::ErrorKind);
    impl Read for Feed {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(self.1.into()),
                n => Ok(n),
            }
        }
    }

    fn read(bytes: &[u8]) -> Result<(String, String, Vec<u8>), (u16, String)> {
        read_request(&mut Feed(
            std::io::Cursor::new(bytes.to_vec()),
            std::io::ErrorKind::WouldBlock,
        ))
    }

    #[test]
    fn the_head_limit_is_exact_and_said_as_431() {
        assert!(read(&head_of(MAX_HEAD + 4)).is_ok());
        assert_eq!(read(&head_of(MAX_HEAD + 5)).map_err(|e| e.0), Err(431));
        assert_eq!(read(&head_of(4 * MAX_HEAD)).map_err(|e| e.0), Err(431));
    }

    #[test]
    fn bad_requests_get_the_status_that_says_why() {
        let mut many = b"GET /vm HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(read(&many).map_err(|e| e.0), Err(431));
        let chunked =
            b"PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(read(chunked).map_err(|e| e.0), Err(411));
        // A client that sends half a request and then nothing, until its time is up.
        let (status, why) = read(b"GET /vm HTT").expect_err("incomplete");
        assert_eq!(status, 408, "{why}");
        let (status, _) =
            read(b"PUT /actions HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}").expect_err("short body");
        assert_eq!(status, 408);
        assert_eq!(read(b"nonsense\r\n\r\n").map_err(|e| e.0), Err(400));
        let twice = b"PUT /actions HTTP/1.1\r\nContent-Length: 16\r\nContent-Length: 3\r\n\r\n{}";
        assert_eq!(read(twice).map_err(|e| e.0), Err(400));
        // Bare LF line ends are a request too.
        let (_, path, _) = read(b"GET /vm HTTP/1.1\nHost: x\n\n").expect("bare LF");
        assert_eq!(path, "/vm");
    }

    #[test]
    fn a_query_is_not_part_of_the_path_and_the_body_is_read_whole() {
        let (method, path, body) =
            read(b"PATCH /vm?pretty=1 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd")
                .expect("a request");
        assert_eq!((method.as_str(), path.as_str()), ("PATCH", "/vm"));
        assert_eq!(body, b"abcd");
    }

    #[test]
    fn long_texts_are_shortened_for_errors() {
        assert_eq!(shown("/vm"), "/vm");
        let long = "é".repeat(5000);
        let s = shown(&long);
        assert!(s.ends_with("...") && s.chars().count() == 123, "{s}");
    }
}
