//! Plain HTTP/1.1 over the control API's Unix socket, as a test client speaks it: one request
//! a connection, the whole answer read until the VMM closes it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// `method path` with `body` on the socket at `sock`: the status and the body of the answer.
pub fn request(sock: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(sock).expect("connect to the API socket");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    answer(s)
}

/// The answer on a connection whose request was already sent: the status and the body.
pub fn answer(mut s: UnixStream) -> (u16, String) {
    let mut text = String::new();
    s.read_to_string(&mut text).expect("answer");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// As [`request`], the body read as JSON (a body that is not JSON fails the test).
pub fn json_request(sock: &Path, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    json(request(sock, method, path, body))
}

/// As [`answer`], the body read as JSON.
pub fn json_answer(s: UnixStream) -> (u16, serde_json::Value) {
    json(answer(s))
}

fn json((status, body): (u16, String)) -> (u16, serde_json::Value) {
    let value = serde_json::from_str(&body)
        .unwrap_or_else(|_| panic!("status {status}, not JSON: {body:?}"));
    (status, value)
}

/// The server called `name` in a list of servers (`GET /servers`, a report's `servers`).
pub fn named<'a>(servers: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    servers.as_array()?.iter().find(|s| s["name"] == name)
}
