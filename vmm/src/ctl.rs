//! `vmm ctl PATH ...`: the control API's client (docs/api.md). One request per command; the
//! answer as a line for people, or its JSON body with `--json`. Exit status: 0 done; 66 the VM
//! refused it (no such server, a kind it cannot plan, nothing pending); 88 no VM answers at
//! PATH.

use abi::status;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

/// `vmm ctl` arguments.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The socket a `vmm run --api-sock PATH` serves.
    pub socket: PathBuf,
    /// Print the answer's JSON body instead of a line (before or after the command).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to ask.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// `vmm ctl` commands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// The VM: state, backend, uptime, the load's figures so far.
    Status,
    /// Each server: state, generation, messages, requests, crashes, restores, last recovery.
    Servers,
    /// Fault SERVER with KIND at its next message: a kind a server executes (null-deref,
    /// illegal-insn, div-zero, panic, hang, stack-overflow, corrupt-state, gp) or one the VMM
    /// injects (text-flip, nop, flip-branch, drop-branch, corrupt-src, corrupt-dst,
    /// corrupt-ptr, no-store, state-flip, stack-flip, reg-flip, msg-corrupt).
    Fault {
        /// The server.
        server: String,
        /// The fault kind.
        kind: String,
    },
    /// Cancel SERVER's pending fault.
    Cancel {
        /// The server.
        server: String,
    },
    /// Every fault, injection and recovery so far, then each new one as it happens, until the
    /// VM stops (exit 88 if it went without saying how it stopped).
    Events,
    /// Pause the guest (its time paused does not count toward --timeout).
    Pause,
    /// Resume a paused guest.
    Resume,
    /// Stop the VM (`vmm run` then exits 143, as by SIGTERM, with its report).
    Stop,
}

/// One line on stdout. `Err`: the status to exit with - a reader that went (`| head -1`) ends
/// the command as SIGPIPE would (141, silently), any other failure (a full disk) is said (70).
fn out(line: std::fmt::Arguments<'_>) -> Result<(), i32> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Err(i32::from(status::SIGNAL_BASE) + libc::SIGPIPE)
        }
        Err(e) => {
            eprintln!("vmm: ctl: cannot write the answer: {e}");
            Err(i32::from(status::VMM_INTERNAL))
        }
    }
}

/// `vmm ctl PATH events`: the stream, a line per fault and recovery, until the VM stops.
fn events(args: &CtlArgs) -> i32 {
    let lines = match crate::api_client::events(&args.socket) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("vmm: ctl: {e}");
            return i32::from(status::CTL_UNREACHABLE);
        }
    };
    let mut stopped = false;
    for line in lines {
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        stopped |= v["event"] == "stopped";
        let written = if args.json {
            out(format_args!("{line}"))
        } else {
            out(format_args!("{}", crate::api_client::event_line(&v)))
        };
        if let Err(status) = written {
            return status;
        }
    }
    if stopped {
        0
    } else {
        // The VM went without its last record: killed, or the stream was cut.
        eprintln!(
            "vmm: ctl: the event stream from {} ended before the VM said how it stopped",
            args.socket.display()
        );
        i32::from(status::CTL_UNREACHABLE)
    }
}

/// `GET /servers` as a table, one server a line.
fn servers_table(json: &Value) -> String {
    let mut table = format!(
        "{:<10} {:<8} {:>4} {:>10} {:>10} {:>8} {:>8}  last recovery",
        "server", "state", "gen", "messages", "requests", "crashes", "restores"
    );
    for s in json.as_array().into_iter().flatten() {
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let last = &s["last_recovery"];
        let last = if last.is_null() {
            "-".to_owned()
        } else {
            format!(
                "{}: {}, {} pages, {}",
                last["cause"].as_str().unwrap_or("?"),
                last["action"].as_str().unwrap_or("?"),
                n(&last["pages_restored"]),
                last["latency_us"]
                    .as_f64()
                    .map_or("restarting".to_owned(), |l| format!("{l:.1} us"))
            )
        };
        table.push_str(&format!(
            "\n{:<10} {:<8} {:>4} {:>10} {:>10} {:>8} {:>8}  {last}",
            s["name"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?"),
            n(&s["generation"]),
            n(&s["messages"]),
            n(&s["requests"]["ops"]),
            n(&s["crashes"]),
            n(&s["restores"]),
        ));
    }
    table
}

/// Whether `json` is the control API's answer to `command` (a socket that speaks HTTP and
/// JSON is not necessarily a VM).
fn answers(command: &CtlCommand, json: &Value) -> bool {
    match command {
        CtlCommand::Status => json["state"].is_string() && json["backend"].is_string(),
        CtlCommand::Pause | CtlCommand::Resume => json["state"].is_string(),
        CtlCommand::Servers => json.is_array(),
        CtlCommand::Fault { .. } | CtlCommand::Cancel { .. } | CtlCommand::Stop => {
            json["result"].is_string()
        }
        CtlCommand::Events => true,
    }
}

/// Runs `vmm ctl`; returns the exit status.
pub fn main(args: &CtlArgs) -> i32 {
    if matches!(args.command, CtlCommand::Events) {
        return events(args);
    }
    // A server's name goes into the request's path: only a name can.
    if let CtlCommand::Fault { server, .. } | CtlCommand::Cancel { server } = &args.command
        && (server.is_empty()
            || !server
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        eprintln!(
            "vmm: ctl: {:?} is not a server name (letters, digits, - and _)",
            crate::api::shown(server)
        );
        return i32::from(status::USAGE);
    }
    let (method, path, body) = match &args.command {
        CtlCommand::Status => ("GET", "/vm".to_owned(), String::new()),
        CtlCommand::Servers => ("GET", "/servers".to_owned(), String::new()),
        CtlCommand::Fault { server, kind } => (
            "PUT",
            format!("/servers/{server}/fault"),
            serde_json::json!({ "kind": kind }).to_string(),
        ),
        CtlCommand::Cancel { server } => {
            ("DELETE", format!("/servers/{server}/fault"), String::new())
        }
        CtlCommand::Events => unreachable!("streamed above"),
        CtlCommand::Pause => (
            "PATCH",
            "/vm".to_owned(),
            r#"{"state": "Paused"}"#.to_owned(),
        ),
        CtlCommand::Resume => (
            "PATCH",
            "/vm".to_owned(),
            r#"{"state": "Resumed"}"#.to_owned(),
        ),
        CtlCommand::Stop => (
            "PUT",
            "/actions".to_owned(),
            r#"{"action_type": "Stop"}"#.to_owned(),
        ),
    };
    let (code, json) = match crate::api_client::request(&args.socket, method, &path, &body) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("vmm: ctl: {e}");
            return i32::from(status::CTL_UNREACHABLE);
        }
    };
    if code != 200 {
        eprintln!(
            "vmm: ctl: {}",
            json["error"]
                .as_str()
                .unwrap_or("the VM refused the request")
        );
        return i32::from(status::CONFIG);
    }
    if !answers(&args.command, &json) {
        eprintln!(
            "vmm: ctl: {} answered, but not as vmm's control API does: {}",
            args.socket.display(),
            crate::api::shown(&json.to_string())
        );
        return i32::from(status::CTL_UNREACHABLE);
    }
    let text = if args.json {
        json.to_string()
    } else {
        match &args.command {
            CtlCommand::Status => {
                let w = &json["workload"];
                let n = |k: &str| w[k].as_u64().unwrap_or(0);
                format!(
                    "{}, KVM backend {}, up {:.1} s; requests {}, errors {}, retries {}, lost {}, mismatches {}",
                    json["state"].as_str().unwrap_or("?"),
                    json["backend"].as_str().unwrap_or("?"),
                    json["uptime_ms"].as_f64().unwrap_or(0.0) / 1e3,
                    n("ops"),
                    n("errors"),
                    n("retries"),
                    n("lost"),
                    n("mismatches"),
                )
            }
            CtlCommand::Servers => servers_table(&json),
            CtlCommand::Fault { server, kind } => {
                format!("{server}: {kind} planned for its next message")
            }
            CtlCommand::Cancel { server } => format!("{server}: cancelled"),
            CtlCommand::Events => String::new(),
            CtlCommand::Pause | CtlCommand::Resume => {
                json["state"].as_str().unwrap_or("?").to_owned()
            }
            CtlCommand::Stop => "stopping".to_owned(),
        }
    };
    match out(format_args!("{text}")) {
        Ok(()) => 0,
        Err(status) => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A socket that answers every request with `body` (200, JSON), as something other than
    /// the VM might.
    fn impostor(path: &std::path::Path, body: &'static str) {
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
        std::thread::spawn(move || {
            for mut s in listener.incoming().map_while(Result::ok) {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }

    #[test]
    fn an_answer_that_is_not_the_apis_is_no_vm() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.sock");
        impostor(&path, "{}");
        for command in [
            CtlCommand::Status,
            CtlCommand::Servers,
            CtlCommand::Pause,
            CtlCommand::Stop,
            CtlCommand::Fault {
                server: "kv".into(),
                kind: "panic".into(),
            },
        ] {
            let args = CtlArgs {
                socket: path.clone(),
                json: false,
                command,
            };
            assert_eq!(main(&args), i32::from(status::CTL_UNREACHABLE), "{args:?}");
        }
        // Something that sends without end is no VM either, and ctl does not keep it all.
        let endless = dir.path().join("endless.sock");
        let listener = std::os::unix::net::UnixListener::bind(&endless).expect("bind");
        std::thread::spawn(move || {
            for mut s in listener.incoming().map_while(Result::ok) {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
                while s.write_all(&[b'x'; 65536]).is_ok() {}
            }
        });
        let args = CtlArgs {
            socket: endless,
            json: false,
            command: CtlCommand::Status,
        };
        assert_eq!(main(&args), i32::from(status::CTL_UNREACHABLE));
        // A server's name goes into the path: anything else is refused before asking.
        for server in ["kv/fault?", "k v", "", "kv\r\nX: 1"] {
            let args = CtlArgs {
                socket: path.clone(),
                json: false,
                command: CtlCommand::Cancel {
                    server: server.into(),
                },
            };
            assert_eq!(main(&args), i32::from(status::USAGE), "{server:?}");
        }
        // The API's own shapes pass.
        assert!(answers(
            &CtlCommand::Status,
            &serde_json::json!({"state": "Running", "backend": "pvm"})
        ));
        assert!(answers(&CtlCommand::Servers, &serde_json::json!([])));
    }
}
