//! The API's own guarantees, without a VM: a client that never reads its event stream is cut
//! off after the write timeout and never holds what the vCPU needs meanwhile.

use super::*;
use crate::faults::classify::Class;
use crate::faults::record::Injection;
use crate::memory::GuestMemory;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use vm_memory::GuestAddress;

/// An API over 64 KiB of zeroed guest memory (its monitor page at 0), no servers, no pause.
fn state() -> ApiState {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).expect("mmap");
    ApiState {
        live: crate::live::LiveFaults::new(mem.clone(), 0, Vec::new(), Default::default()),
        backend: "test",
        started: Instant::now(),
        progress: crate::progress::Progress::new(mem, 0, Vec::new()),
        records: Default::default(),
        stop: Default::default(),
        pause: None,
        stop_vm: None,
        ended: std::sync::Mutex::new(None),
    }
}

/// An injection record of about `bytes` bytes of JSON.
fn injection(bytes: usize) -> Injection {
    Injection {
        spec: "x".repeat(bytes),
        target: "kv".into(),
        kind: "panic",
        message: 1,
        rip: None,
        concrete: None,
        activated: Some(true),
        steps: None,
        detected_as: None,
        undone: false,
        note: None,
        class: Class::NoEffect,
    }
}

#[test]
fn an_event_stream_nobody_reads_is_cut_off_and_holds_nothing_meanwhile() {
    let state = Arc::new(state());
    // Far more than a socket buffers: the stream's write blocks until its timeout.
    state
        .records
        .lock()
        .expect("records")
        .publish_injection(injection(16 << 20));
    let (server, mut client) = UnixStream::pair().expect("socketpair");
    client
        .write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let (done, ended) = mpsc::channel();
    // Not scoped: a stream that never ends must fail this test, not hang it.
    let serving = Arc::clone(&state);
    std::thread::spawn(move || {
        serve_one(server, &serving);
        let _ = done.send(());
    });
    // The stream is writing the record (its head and the record's first byte are here) ...
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n\r\n{") {
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).expect("the answer's start");
        seen.push(byte[0]);
        assert!(seen.len() < 4096, "{}", String::from_utf8_lossy(&seen));
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"));
    // ... and while it waits on this client, what the vCPU locks stays free: the VMM records
    // more, as it does after a fault.
    for _ in 0..10 {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut records = loop {
            match state.records.try_lock() {
                Ok(records) => break records,
                Err(_) if Instant::now() < deadline => std::thread::yield_now(),
                Err(e) => panic!("the vCPU's records are held while a client is slow: {e}"),
            }
        };
        records.publish_injection(injection(10));
    }
    assert!(
        ended.try_recv().is_err(),
        "the stream ended before its write could have timed out"
    );
    // The VM never stops here, and the client never reads: the write timeout alone ends it.
    ended
        .recv_timeout(CLIENT_TIME + Duration::from_secs(5))
        .expect("the stream is cut off after its write timeout");
    // What the client can still read ends (EOF) short of the record: it was cut off.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("read");
    assert!(rest.len() < 16 << 20, "{} bytes", rest.len());
}

#[test]
fn at_exit_the_socket_is_removed_only_if_the_path_still_holds_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("v.sock");
    let socket = ApiSocket::bind(&path).expect("bind");
    socket.remove();
    assert!(!path.exists(), "its own socket is removed");

    // Someone replaced it with a file of theirs while the VM ran: left alone.
    let socket = ApiSocket::bind(&path).expect("bind again");
    std::fs::remove_file(&path).expect("unlink");
    std::fs::write(&path, "precious").expect("write");
    socket.remove();
    assert_eq!(std::fs::read_to_string(&path).expect("kept"), "precious");

    // ... or with another socket (another VMM's): left alone too.
    std::fs::remove_file(&path).expect("unlink");
    let socket = ApiSocket::bind(&path).expect("bind a third time");
    std::fs::remove_file(&path).expect("unlink");
    let other = std::os::unix::net::UnixListener::bind(&path).expect("another socket");
    socket.remove();
    assert!(
        std::fs::symlink_metadata(&path)
            .expect("kept")
            .file_type()
            .is_socket()
    );
    drop(other);
}

#[test]
fn a_client_past_the_limit_reads_a_503_not_a_reset() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("v.sock");
    let stop = Arc::new(AtomicBool::new(false));
    let served = ApiSocket::bind(&path)
        .expect("bind")
        .serve(Arc::new(state()), Arc::clone(&stop))
        .expect("serve");
    // Clients that send nothing hold every place (each until its 2 s are up); the accept
    // queue takes them in order, before the next.
    let idle: Vec<UnixStream> = (0..MAX_CLIENTS)
        .map(|_| UnixStream::connect(&path).expect("connect"))
        .collect();
    let mut late = UnixStream::connect(&path).expect("connect");
    late.write_all(b"GET /vm HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    late.read_to_string(&mut answer)
        .expect("an answer, not a reset");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("too many clients"), "{answer}");
    drop(idle);
    stop.store(true, Ordering::Relaxed);
    served.join().expect("the API thread");
}
