//! What the dashboard shows, and what its keys do: built from the control API's answers
//! (`GET /vm`, `GET /servers`, the `GET /events` stream) and the run's output lines. Pure: no
//! terminal, no socket; the loop in `demo.rs` feeds it and carries out the [`Action`]s it asks
//! for.

use crate::report::WorkloadFigures;
use serde_json::Value;
use std::collections::VecDeque;

/// Lines of console kept.
pub const CONSOLE_LINES: usize = 400;
/// Event lines kept.
pub const EVENT_LINES: usize = 200;
/// Requests-per-second samples kept per server (one a second).
pub const HISTORY: usize = 60;
/// Seconds between two crashes of a fault storm (at least: the next waits for the last to be
/// over).
pub const STORM_EVERY: f64 = 1.0;
/// How long a storm waits for a fault it planned to strike before it cancels it and goes on
/// (its server got no message).
pub const STORM_PATIENCE: f64 = 10.0;

/// One server's row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerRow {
    /// Its name.
    pub name: String,
    /// `running`, `paused` or `stopped`.
    pub state: String,
    /// Its generation.
    pub generation: u64,
    /// Messages it received.
    pub messages: u64,
    /// Its clients' requests and how they went.
    pub requests: WorkloadFigures,
    /// Crashes and restores.
    pub crashes: u64,
    /// Restores.
    pub restores: u64,
    /// The last recovery's latency, in microseconds.
    pub last_latency_us: Option<f64>,
    /// Requests per second, one sample a second, oldest first.
    pub rate: VecDeque<u64>,
    /// Requests at the last sample, and when (seconds since the demo began).
    sampled: Option<(u64, f64)>,
}

/// What happened, for the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Something the demo did (a fault planned, a pause).
    Action,
    /// A server crashed.
    Fault,
    /// A server came back.
    Recovered,
    /// Something went wrong (a request refused, a server left stopped).
    Problem,
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since the demo began.
    pub at: f64,
    /// What kind of line.
    pub kind: EventKind,
    /// The line.
    pub text: String,
}

/// Something the loop is to do for a key or the storm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Crash `server` with `kind` at its next message.
    Fault {
        /// The server.
        server: String,
        /// The kind.
        kind: String,
    },
    /// Cancel `server`'s pending fault.
    Cancel {
        /// The server.
        server: String,
    },
    /// Pause the VM.
    Pause,
    /// Resume it.
    Resume,
    /// Stop the VM and quit.
    Quit,
}

/// A key the dashboard knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Select the server above.
    Up,
    /// Select the server below.
    Down,
    /// `c`: crash the selected server.
    Crash,
    /// `k`: the next fault kind.
    NextKind,
    /// `s`: a fault storm, on or off.
    Storm,
    /// `p`: pause or resume.
    Pause,
    /// `q`: quit.
    Quit,
}

impl Key {
    /// The key for a character, if any.
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c {
            'c' => Self::Crash,
            'k' => Self::NextKind,
            's' => Self::Storm,
            'p' | ' ' => Self::Pause,
            'q' => Self::Quit,
            'j' => Self::Down,
            _ => return None,
        })
    }
}

/// The whole dashboard.
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    /// `Running`, `Paused`, or what the VM ended with.
    pub vm_state: String,
    /// The KVM backend.
    pub backend: String,
    /// Since the VM started, in milliseconds.
    pub uptime_ms: u64,
    /// The API socket (for `vmm ctl` in another terminal).
    pub socket: String,
    /// The servers, in the image's order.
    pub servers: Vec<ServerRow>,
    /// The load so far (every server's requests).
    pub workload: WorkloadFigures,
    /// The event log, oldest first.
    pub events: VecDeque<Event>,
    /// The run's output (guest console and vmm's lines), oldest first.
    pub console: VecDeque<String>,
    /// The selected server (an index into `servers`).
    pub selected: usize,
    /// The fault kinds `c` can plan, and the one it plans.
    pub kinds: Vec<String>,
    /// Index into `kinds`.
    pub kind: usize,
    /// A fault storm: when its next crash is due (seconds since the demo began), and the
    /// server it goes to next.
    pub storm: Option<(f64, usize)>,
    /// The storm's last fault while it is not over: its server, when it was planned, and
    /// whether it struck (a fault or injection record came).
    pub storm_fault: Option<StormFault>,
    /// How the VM ended (the event stream's last record): its exit status and line.
    pub ended: Option<(i32, Option<String>)>,
}

/// A fault the storm planned and waits on.
#[derive(Clone, Debug, PartialEq)]
pub struct StormFault {
    /// Its server.
    pub server: String,
    /// When it was planned (seconds since the demo began).
    pub planned: f64,
    /// Whether it struck yet.
    pub struck: bool,
}

impl Dashboard {
    /// A dashboard for the VM serving on `socket`, whose live fault kinds are `kinds`.
    pub fn new(socket: String, kinds: Vec<String>) -> Self {
        let kind = kinds.iter().position(|k| k == "panic").unwrap_or(0);
        Self {
            vm_state: "Starting".to_owned(),
            socket,
            kinds,
            kind,
            ..Self::default()
        }
    }

    /// The kind `c` plans.
    pub fn kind(&self) -> &str {
        self.kinds.get(self.kind).map_or("panic", String::as_str)
    }

    /// The workload's verdict so far: `clean`, or what went wrong.
    pub fn verdict(&self) -> &'static str {
        let w = &self.workload;
        if w.mismatches > 0 {
            "MISMATCHES"
        } else if w.lost > 0 {
            "clean, with losses declared"
        } else {
            "clean"
        }
    }

    /// A `GET /vm` answer.
    pub fn apply_vm(&mut self, v: &Value) {
        if let Some(s) = v["state"].as_str() {
            self.vm_state = s.to_owned();
        }
        if let Some(b) = v["backend"].as_str() {
            self.backend = b.to_owned();
        }
        self.uptime_ms = v["uptime_ms"].as_u64().unwrap_or(self.uptime_ms);
        if let Ok(w) = serde_json::from_value(v["workload"].clone()) {
            self.workload = w;
        }
    }

    /// A `GET /servers` answer, at `now` (seconds since the demo began): the rows, and a rate
    /// sample for each server whose last one is a second old.
    pub fn apply_servers(&mut self, v: &Value, now: f64) {
        let Some(list) = v.as_array() else {
            return;
        };
        for s in list {
            let Some(name) = s["name"].as_str() else {
                continue;
            };
            let i = match self.servers.iter().position(|r| r.name == name) {
                Some(i) => i,
                None => {
                    self.servers.push(ServerRow {
                        name: name.to_owned(),
                        ..ServerRow::default()
                    });
                    self.servers.len() - 1
                }
            };
            let row = &mut self.servers[i];
            let n = |v: &Value| v.as_u64().unwrap_or(0);
            row.state = s["state"].as_str().unwrap_or("?").to_owned();
            row.generation = n(&s["generation"]);
            row.messages = n(&s["messages"]);
            row.requests = serde_json::from_value(s["requests"].clone()).unwrap_or_default();
            row.crashes = n(&s["crashes"]);
            row.restores = n(&s["restores"]);
            row.last_latency_us = s["last_recovery"]["latency_us"].as_f64();
            match row.sampled {
                None => row.sampled = Some((row.requests.ops, now)),
                Some((ops, at)) if now - at >= 1.0 => {
                    let rate = row.requests.ops.saturating_sub(ops) as f64 / (now - at);
                    row.rate.push_back(rate.round() as u64);
                    if row.rate.len() > HISTORY {
                        row.rate.pop_front();
                    }
                    row.sampled = Some((row.requests.ops, now));
                }
                Some(_) => {}
            }
        }
        self.selected = self.selected.min(self.servers.len().saturating_sub(1));
    }

    /// A record of the `GET /events` stream, at `now`. The last (`stopped`) carries how the VM
    /// ended and its final figures.
    pub fn apply_event(&mut self, v: &Value, now: f64) {
        let event = v["event"].as_str();
        let server = v["server"].as_str().or(v["target"].as_str());
        if let Some(f) = &mut self.storm_fault
            && server == Some(f.server.as_str())
        {
            match event {
                Some("fault") => f.struck = true,
                // Over: back at work, left stopped, or injected (which may do nothing at all).
                Some("recovery" | "injection") => self.storm_fault = None,
                _ => {}
            }
        }
        if event == Some("stopped") {
            self.ended = Some((
                v["exit_status"]
                    .as_i64()
                    .and_then(|s| i32::try_from(s).ok())
                    .unwrap_or(-1),
                v["message"].as_str().map(str::to_owned),
            ));
            if let Ok(w) = serde_json::from_value(v["workload"].clone()) {
                self.workload = w;
            }
            self.apply_servers(&v["servers"], now);
        }
        let kind = match (event, v["action"].as_str()) {
            (Some("fault" | "injection"), _) => EventKind::Fault,
            (Some("stopped"), _) => EventKind::Action,
            (Some("recovery"), Some("fail-stop")) => EventKind::Problem,
            (Some("recovery"), _) => EventKind::Recovered,
            _ => EventKind::Problem,
        };
        self.log(now, kind, crate::api_client::event_line(v));
    }

    /// Adds a line to the event log.
    pub fn log(&mut self, at: f64, kind: EventKind, text: String) {
        self.events.push_back(Event { at, kind, text });
        if self.events.len() > EVENT_LINES {
            self.events.pop_front();
        }
    }

    /// A line of the run's output.
    pub fn console_line(&mut self, line: String) {
        self.console.push_back(line);
        if self.console.len() > CONSOLE_LINES {
            self.console.pop_front();
        }
    }

    /// A key, at `now`: what the loop is to do for it, if anything.
    pub fn key(&mut self, key: Key, now: f64) -> Option<Action> {
        match key {
            Key::Up => self.selected = self.selected.saturating_sub(1),
            Key::Down => {
                self.selected = (self.selected + 1).min(self.servers.len().saturating_sub(1));
            }
            Key::NextKind => self.kind = (self.kind + 1) % self.kinds.len().max(1),
            Key::Crash => {
                let server = self.servers.get(self.selected)?.name.clone();
                return Some(Action::Fault {
                    server,
                    kind: self.kind().to_owned(),
                });
            }
            Key::Storm => {
                if self.storm.take().is_some() {
                    self.log(now, EventKind::Action, "fault storm over".to_owned());
                    // Its last fault, if it has not struck yet, goes with it.
                    return match self.storm_fault.take() {
                        Some(f) if !f.struck => Some(Action::Cancel { server: f.server }),
                        _ => None,
                    };
                } else {
                    self.storm = Some((now, self.selected));
                    self.log(
                        now,
                        EventKind::Action,
                        format!(
                            "fault storm: a {} a second, server after server (s again to end it)",
                            self.kind()
                        ),
                    );
                }
            }
            Key::Pause if self.vm_state == "Paused" => return Some(Action::Resume),
            Key::Pause => return Some(Action::Pause),
            Key::Quit => return Some(Action::Quit),
        }
        None
    }

    /// Time passes (`now`): the storm's next crash, when due and the last one is over (its
    /// server recovered: a hang takes its budget to be caught, and faults must not pile up).
    /// It goes to the servers in turn, skipping those that get no messages (a fault would wait
    /// there); a fault that has not struck within [`STORM_PATIENCE`] is cancelled.
    pub fn tick(&mut self, now: f64) -> Option<Action> {
        let (due, next) = self.storm?;
        // A paused VM plans no fault (it would be refused): the storm waits with it.
        if self.vm_state == "Paused" {
            return None;
        }
        if let Some(f) = &self.storm_fault {
            if !f.struck && now - f.planned >= STORM_PATIENCE {
                let server = f.server.clone();
                self.storm_fault = None;
                return Some(Action::Cancel { server });
            }
            return None;
        }
        if now < due || self.servers.is_empty() {
            return None;
        }
        let count = self.servers.len();
        let pick = (0..count)
            .map(|i| (next + i) % count)
            .find(|&i| self.servers[i].messages > 0)?;
        self.storm = Some((now + STORM_EVERY, pick + 1));
        self.storm_fault = Some(StormFault {
            server: self.servers[pick].name.clone(),
            planned: now,
            struck: false,
        });
        Some(Action::Fault {
            server: self.servers[pick].name.clone(),
            kind: self.kind().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn servers(kv_ops: u64) -> Value {
        json!([
            {"name": "names", "state": "running", "generation": 0, "messages": 5,
             "requests": {"ops": 3, "errors": 0, "retries": 0, "lost": 0, "mismatches": 0},
             "crashes": 0, "restores": 0, "last_recovery": null},
            {"name": "kv", "state": "running", "generation": 1, "messages": kv_ops + 1,
             "requests": {"ops": kv_ops, "errors": 0, "retries": 1, "lost": 0, "mismatches": 0},
             "crashes": 1, "restores": 1, "last_recovery": {"latency_us": 396.3}},
            {"name": "crasher", "state": "running", "generation": 0, "messages": 0,
             "requests": {"ops": 0, "errors": 0, "retries": 0, "lost": 0, "mismatches": 0},
             "crashes": 0, "restores": 0, "last_recovery": null},
        ])
    }

    fn dashboard() -> Dashboard {
        Dashboard::new(
            "/tmp/v.sock".into(),
            vec!["null-deref".into(), "panic".into(), "hang".into()],
        )
    }

    #[test]
    fn rows_and_rates_come_from_the_polls() {
        let mut d = dashboard();
        d.apply_servers(&servers(100), 0.0);
        d.apply_servers(&servers(400), 0.5);
        assert!(d.servers[1].rate.is_empty(), "under a second: no sample");
        d.apply_servers(&servers(700), 1.5);
        let kv = &d.servers[1];
        assert_eq!((kv.name.as_str(), kv.generation, kv.restores), ("kv", 1, 1));
        assert_eq!(kv.rate, [400], "600 requests in 1.5 s");
        assert_eq!(kv.last_latency_us, Some(396.3));
        assert_eq!(d.servers.len(), 3, "one row a server, however many polls");
        d.apply_vm(
            &json!({"state": "Paused", "backend": "pvm", "uptime_ms": 1500,
            "workload": {"ops": 710, "errors": 0, "retries": 1, "lost": 0, "mismatches": 2}}),
        );
        assert_eq!((d.vm_state.as_str(), d.workload.ops), ("Paused", 710));
        assert_eq!(d.verdict(), "MISMATCHES");
    }

    #[test]
    fn keys_select_pick_a_kind_and_ask_for_actions() {
        let mut d = dashboard();
        d.apply_servers(&servers(10), 0.0);
        assert_eq!(d.kind(), "panic", "the default kind");
        assert_eq!(d.key(Key::Down, 0.0), None);
        assert_eq!(
            d.key(Key::Crash, 0.0),
            Some(Action::Fault {
                server: "kv".into(),
                kind: "panic".into()
            })
        );
        d.key(Key::NextKind, 0.0);
        d.key(Key::NextKind, 0.0);
        assert_eq!(d.kind(), "null-deref", "kinds wrap around");
        for _ in 0..5 {
            d.key(Key::Down, 0.0);
        }
        assert_eq!(d.selected, 2, "the selection stays on the list");
        assert_eq!(d.key(Key::Pause, 0.0), Some(Action::Pause));
        d.vm_state = "Paused".into();
        assert_eq!(d.key(Key::Pause, 0.0), Some(Action::Resume));
        assert_eq!(d.key(Key::Quit, 0.0), Some(Action::Quit));
        assert_eq!(Key::from_char('x'), None);
    }

    #[test]
    fn a_storm_crashes_a_working_server_a_second_in_turn_until_ended() {
        let mut d = dashboard();
        d.apply_servers(&servers(10), 0.0);
        assert_eq!(d.tick(5.0), None, "no storm");
        d.key(Key::Storm, 10.0);
        let fault = |s: &str| {
            Some(Action::Fault {
                server: s.into(),
                kind: "panic".into(),
            })
        };
        let record = |event: &str, server: &str| json!({"event": event, "server": server});
        d.vm_state = "Paused".into();
        assert_eq!(d.tick(10.0), None, "paused: nothing planned");
        d.vm_state = "Running".into();
        assert_eq!(d.tick(10.0), fault("names"));
        assert_eq!(d.tick(10.5), None, "one a second");
        d.apply_event(&record("fault", "names"), 10.6);
        assert_eq!(
            d.tick(11.0),
            None,
            "names is not back yet (a hang takes its budget)"
        );
        d.apply_event(&record("recovery", "kv"), 11.5);
        assert_eq!(
            d.tick(11.6),
            None,
            "another server's recovery is not names'"
        );
        d.apply_event(&record("recovery", "names"), 12.0);
        assert_eq!(d.tick(12.0), fault("kv"));
        // An injection may do nothing: it is over once carried out.
        d.apply_event(&json!({"event": "injection", "target": "kv"}), 12.2);
        // The crasher gets no messages: skipped.
        assert_eq!(d.tick(13.0), fault("names"));
        // Ended before names' fault struck: it is cancelled, not left to strike later.
        assert_eq!(
            d.key(Key::Storm, 13.5),
            Some(Action::Cancel {
                server: "names".into()
            })
        );
        assert_eq!(d.tick(14.0), None, "over");
        assert!(d.events.iter().any(|e| e.text == "fault storm over"));
        // A fault that never strikes is given up after a while and the storm goes on.
        d.key(Key::Storm, 20.0);
        assert_eq!(d.tick(20.0), fault("names"), "from the selected server");
        assert_eq!(d.tick(20.0 + STORM_PATIENCE - 0.1), None);
        assert_eq!(
            d.tick(20.0 + STORM_PATIENCE),
            Some(Action::Cancel {
                server: "names".into()
            })
        );
        assert_eq!(d.tick(20.0 + STORM_PATIENCE + 0.1), fault("kv"));
        // One that struck is not cancelled when the storm ends.
        d.apply_event(&record("fault", "kv"), 31.0);
        assert_eq!(d.key(Key::Storm, 31.5), None);
    }

    #[test]
    fn the_last_record_says_how_the_vm_ended_with_its_final_figures() {
        let mut d = dashboard();
        d.apply_servers(&servers(10), 0.0);
        d.apply_event(
            &json!({"event": "stopped", "exit_status": 84,
                "message": "recovery policy stopped the VM after a crash of kv",
                "workload": {"ops": 99, "errors": 0, "retries": 0, "lost": 0, "mismatches": 0},
                "servers": servers(20)}),
            3.0,
        );
        assert_eq!(
            d.ended,
            Some((
                84,
                Some("recovery policy stopped the VM after a crash of kv".into())
            ))
        );
        assert_eq!(d.workload.ops, 99);
        assert_eq!(d.servers[1].requests.ops, 20, "the final figures");
    }

    #[test]
    fn events_become_log_lines_and_logs_are_bounded() {
        let mut d = dashboard();
        d.apply_event(
            &json!({"event": "recovery", "server": "kv", "cause": "panic", "action": "rollback",
                "pages_restored": 2, "latency_us": 10.0}),
            1.0,
        );
        let e = &d.events[0];
        assert_eq!(e.kind, EventKind::Recovered);
        assert!(e.text.contains("recovered"), "{}", e.text);
        for i in 0..CONSOLE_LINES + 5 {
            d.console_line(format!("line {i}"));
            d.log(2.0, EventKind::Action, format!("event {i}"));
        }
        assert_eq!(d.console.len(), CONSOLE_LINES);
        assert_eq!(d.events.len(), EVENT_LINES);
        assert_eq!(d.console.back().map(String::as_str), Some("line 404"));
    }
}
