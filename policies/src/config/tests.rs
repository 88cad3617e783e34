use super::*;
use crate::action::Action;
use crate::context::{History, InFlight, RecoveryWindow, SentMessage};
use crate::fault::{Cause, Fault, Micros, ServerRef};

const SERVERS: [&str; 4] = ["names", "kv", "fs", "bank"];

fn err(text: &str) -> String {
    let e = load(text, &SERVERS).expect_err("config must be rejected");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "not one line: {msg}");
    msg
}

fn settings(text: &str, server: &str) -> ServerPolicy {
    load(text, &SERVERS)
        .expect("config is valid")
        .settings(server)
        .expect("declared server")
        .clone()
}

#[test]
fn no_configuration_is_the_default() {
    for text in ["", "[vm]\nmemory_mib = 64\n", "[recovery]\n"] {
        let set = load(text, &SERVERS).expect("valid");
        assert!(set.dependency_tracking());
        for (name, s) in set.iter() {
            assert_eq!(s, &ServerPolicy::default(), "{name}");
        }
    }
    let d = ServerPolicy::default();
    assert_eq!(d.policy, PolicyKind::Rollback);
    assert!(d.dependency_tracking);
    assert!(d.max_crashes >= 100, "a high threshold");
    assert_eq!(d.escalate.last(), Some(&PolicyKind::FailStop));
    assert_eq!(
        d.to_string(),
        "rollback; at most 1000 crashes per 60 s, then restart, fail-stop; dependency tracking on"
    );
}

#[test]
fn sections_inherit_key_by_key() {
    let text = r#"
        [recovery.default]
        max_crashes = 5
        window_secs = 10
        backoff_ms = 20
        [recovery.servers.kv]
        policy = "replay"
        on_replay_crash = "restart"
        [recovery.servers.fs]
        policy = "restart"
    "#;
    let kv = settings(text, "kv");
    assert_eq!(kv.policy, PolicyKind::Replay);
    assert_eq!(kv.on_replay_crash, PolicyKind::Restart);
    assert_eq!(kv.max_crashes, 5);
    assert_eq!(kv.window, Duration::from_secs(10));
    assert_eq!(kv.backoff, Duration::from_millis(20));
    assert_eq!(kv.escalate, [PolicyKind::Restart, PolicyKind::FailStop]);
    let fs = settings(text, "fs");
    assert_eq!(
        fs.escalate,
        [PolicyKind::FailStop],
        "inherited steps not above restart are dropped"
    );
    assert_eq!(settings(text, "names").policy, PolicyKind::Rollback);
    let stop = settings("[recovery.servers.bank]\npolicy = \"fail-stop\"", "bank");
    assert!(stop.escalate.is_empty());
}

#[test]
fn tracking_is_off_only_when_the_config_says_so() {
    let set = load("[recovery]\ndependency_tracking = false", &SERVERS).expect("valid");
    assert!(!set.dependency_tracking());
    assert!(set.iter().all(|(_, s)| !s.dependency_tracking));
    let on = load("[recovery]\ndependency_tracking = true", &SERVERS).expect("valid");
    assert!(on.dependency_tracking());
}

#[test]
fn unknown_server() {
    assert_eq!(
        err("[recovery.servers.kvv]\npolicy = \"replay\""),
        r#"recovery.servers.kvv: unknown server (this image declares "names", "kv", "fs", "bank")"#
    );
    assert!(err("[recovery.servers.\"a\\nb\"]").starts_with(r#"recovery.servers."a\nb": "#));
}

#[test]
fn unknown_policies() {
    assert_eq!(
        err("[recovery.default]\npolicy = \"rolback\""),
        r#"recovery.default.policy = "rolback": unknown policy, expected rollback, replay, restart or fail-stop"#
    );
    assert_eq!(
        err("[recovery.servers.kv]\nescalate = [\"restart\", \"halt\"]"),
        r#"recovery.servers.kv.escalate = "halt": unknown policy, expected rollback, replay, restart or fail-stop"#
    );
    assert_eq!(
        err("[recovery.default]\non_replay_crash = \"replay\""),
        r#"recovery.default.on_replay_crash = "replay": unknown policy, expected rollback, restart or fail-stop"#
    );
    assert_eq!(
        err("[recovery.default]\non_unsafe_dependency = \"rollback\""),
        r#"recovery.default.on_unsafe_dependency = "rollback": unknown policy, expected fail-stop or restart"#
    );
    assert!(err("[recovery.default]\npolicy = \"x\\ny\"").contains(r#""x\ny""#));
}

#[test]
fn bad_numbers() {
    for (key, value, bounds) in [
        ("max_crashes", "0", "between 1 and 100000"),
        ("max_crashes", "-3", "between 1 and 100000"),
        ("max_crashes", "100001", "between 1 and 100000"),
        ("window_secs", "0", "between 1 and 86400"),
        ("window_secs", "9223372036854775807", "between 1 and 86400"),
        ("backoff_ms", "-1", "between 0 and 10000"),
        ("backoff_max_ms", "0", "between 1 and 600000"),
    ] {
        let msg = err(&format!("[recovery.servers.fs]\n{key} = {value}"));
        assert_eq!(
            msg,
            format!("recovery.servers.fs.{key} = {value}: must be {bounds}")
        );
    }
    assert_eq!(
        err("[recovery.default]\nbackoff_ms = 500\nbackoff_max_ms = 100"),
        "recovery.default.backoff_max_ms: backoff_ms = 500 is above backoff_max_ms = 100"
    );
    assert_eq!(
        err("[recovery.default]\nbackoff_max_ms = 100\n[recovery.servers.kv]\nbackoff_ms = 500"),
        "recovery.servers.kv.backoff_ms: backoff_ms = 500 is above backoff_max_ms = 100"
    );
}

#[test]
fn bad_escalations() {
    assert_eq!(
        err("[recovery.default]\nescalate = [\"restart\", \"restart\", \"fail-stop\"]"),
        r#"recovery.default.escalate = ["restart", "restart", "fail-stop"]: "restart" cannot follow "restart": each step must be more severe than the one before (replay < rollback < restart < fail-stop)"#
    );
    assert!(
        err("[recovery.default]\nescalate = [\"rollback\", \"fail-stop\"]")
            .contains(r#""rollback" cannot follow "rollback""#),
        "a loop back to the base policy"
    );
    assert!(
        err("[recovery.default]\nescalate = [\"fail-stop\", \"restart\"]")
            .contains(r#""restart" cannot follow "fail-stop""#)
    );
    assert!(
        err("[recovery.servers.kv]\npolicy = \"restart\"\nescalate = [\"replay\", \"fail-stop\"]")
            .contains(r#""replay" cannot follow "restart""#)
    );
    assert!(
        err("[recovery.servers.kv]\npolicy = \"fail-stop\"\nescalate = [\"fail-stop\"]")
            .contains("cannot follow")
    );
    for list in ["[]", "[\"restart\"]"] {
        let msg = err(&format!("[recovery.default]\nescalate = {list}"));
        assert!(msg.contains("must end with \"fail-stop\""), "{msg}");
    }
    assert!(
        load(
            "[recovery.default]\npolicy = \"fail-stop\"\nescalate = []",
            &SERVERS
        )
        .is_ok()
    );
}

#[test]
fn replay_only_keys() {
    assert_eq!(
        err("[recovery.servers.kv]\non_replay_crash = \"fail-stop\""),
        r#"recovery.servers.kv.on_replay_crash: only applies with policy = "replay", and this server's policy is "rollback""#
    );
    let text = "[recovery.default]\npolicy = \"replay\"\n[recovery.servers.kv]\non_replay_crash = \"fail-stop\"";
    assert_eq!(settings(text, "kv").on_replay_crash, PolicyKind::FailStop);
}

#[test]
fn parse_errors_name_the_line() {
    assert_eq!(
        err("[recovery]\n\n[recovery.default]\npolcy = \"rollback\""),
        "line 4, `polcy = \"rollback\"`: unknown field `polcy`, expected one of `policy`, \
         `max_crashes`, `window_secs`, `escalate`, `backoff_ms`, `backoff_max_ms`, \
         `on_replay_crash`, `on_unsafe_dependency`"
    );
    assert!(
        err("[recovery]\ntracking = true")
            .starts_with("line 2, `tracking = true`: unknown field `tracking`")
    );
    assert_eq!(
        err("[recovery.default]\nmax_crashes = 1.5"),
        "line 2, `max_crashes = 1.5`: invalid type: floating point `1.5`, expected an integer"
    );
    assert_eq!(
        err("[recovery.default]\nmax_crashes = \"ten\""),
        "line 2, `max_crashes = \"ten\"`: invalid type: string \"ten\", expected an integer"
    );
    assert_eq!(
        err("[recovery.default]\nwindow_secs = 99999999999999999999"),
        "line 2, `window_secs = 99999999999999999999`: integer out of range"
    );
    assert_eq!(
        err("[recovery.default]\nescalate = \"fail-stop\""),
        "line 2, `escalate = \"fail-stop\"`: invalid type: string \"fail-stop\", expected a list"
    );
    assert!(err("[recovery\n").starts_with("line 1, `[recovery`: "));
    assert_eq!(
        err("recovery = 3"),
        "line 1, `recovery = 3`: invalid type: integer `3`, expected a table"
    );
}

#[test]
fn the_image_list_must_not_repeat() {
    let e = RecoveryConfig::default()
        .build(&["kv", "fs", "kv"])
        .expect_err("duplicate");
    assert_eq!(e.to_string(), r#"the image declares server "kv" twice"#);
}

fn crash_decision(
    set: &PolicySet,
    server: &str,
    sent: Vec<SentMessage>,
    idempotent: bool,
) -> Action {
    let f = Fault {
        server: ServerRef::new(1, server),
        generation: 1,
        cause: Cause::Panic,
        rip: 0,
        messages: 1,
        at: Micros(0),
    };
    let h = History::new();
    let w = RecoveryWindow {
        boundary: Some(1),
        sent,
    };
    let r = InFlight {
        label: 1,
        name: None,
        idempotent,
        state_changing: true,
        replays: 0,
    };
    set.decide(&Crash {
        fault: &f,
        history: &h,
        window: &w,
        in_flight: Some(&r),
        now: f.at,
    })
    .expect("declared server")
    .action
}

#[test]
fn built_policies_follow_their_settings() {
    let set = load(
        "[recovery.servers.kv]\npolicy = \"replay\"\n[recovery.servers.fs]\npolicy = \"restart\"\n\
         [recovery.servers.bank]\npolicy = \"fail-stop\"",
        &SERVERS,
    )
    .expect("valid");
    assert_eq!(crash_decision(&set, "kv", vec![], true), Action::Replay);
    assert_eq!(crash_decision(&set, "kv", vec![], false), Action::Rollback);
    assert_eq!(
        crash_decision(&set, "fs", vec![], true),
        Action::RestartFresh
    );
    assert_eq!(crash_decision(&set, "bank", vec![], true), Action::FailStop);
    assert_eq!(
        crash_decision(&set, "names", vec![], true),
        Action::Rollback
    );
    let unsafe_send = SentMessage {
        to: ServerRef::new(2, "fs"),
        label: 9,
        name: None,
        state_changing: true,
        peer_snapshot: None,
        peer_answered_others: false,
        peer_sent_state_changing: false,
    };
    assert_eq!(
        crash_decision(&set, "names", vec![unsafe_send.clone()], true),
        Action::FailStop
    );
    let off = load("[recovery]\ndependency_tracking = false", &SERVERS).expect("valid");
    assert_eq!(
        crash_decision(&off, "names", vec![unsafe_send], true),
        Action::Rollback
    );
    assert!(set.by_index(1).is_some() && set.by_index(4).is_none());
    assert!(set.policy("nope").is_none());
    let names: Vec<_> = set.into_policies().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, SERVERS);
}

#[test]
fn hand_built_settings_still_end_in_fail_stop() {
    let s = ServerPolicy {
        max_crashes: 1,
        escalate: vec![],
        dependency_tracking: false,
        ..ServerPolicy::default()
    };
    let p = s.build();
    let f = Fault {
        server: ServerRef::new(0, "names"),
        generation: 1,
        cause: Cause::Hang,
        rip: 0,
        messages: 1,
        at: Micros(10),
    };
    let mut h = History::new();
    h.record(crate::PastCrash {
        at: Micros(5),
        cause: Cause::Hang,
        action: crate::ActionKind::Rollback,
    });
    let w = RecoveryWindow {
        boundary: Some(1),
        sent: vec![],
    };
    let d = p.decide(&Crash {
        fault: &f,
        history: &h,
        window: &w,
        in_flight: None,
        now: f.at,
    });
    assert_eq!(d.action, Action::FailStop);
}

/// A replayed message that crashes the server again gets `on_replay_crash`'s policy.
#[test]
fn on_replay_crash_decides_a_second_crash_of_a_replay() {
    let text = "[recovery.default]\npolicy = \"replay\"\non_replay_crash = \"restart\"";
    let set = load(text, &SERVERS).expect("valid");
    let f = Fault {
        server: ServerRef::new(1, "kv"),
        generation: 1,
        cause: Cause::Panic,
        rip: 0,
        messages: 3,
        at: Micros(1),
    };
    let (h, w) = (
        History::new(),
        RecoveryWindow {
            boundary: Some(2),
            sent: vec![],
        },
    );
    let decide = |replays| {
        let m = InFlight {
            label: 1,
            name: None,
            idempotent: true,
            state_changing: true,
            replays,
        };
        let crash = Crash {
            fault: &f,
            history: &h,
            window: &w,
            in_flight: Some(&m),
            now: f.at,
        };
        set.policy("kv").expect("declared").decide(&crash).action
    };
    assert_eq!(decide(0), Action::Replay);
    assert_eq!(decide(1), Action::RestartFresh);
}

/// Section names in messages: a server name of letters, digits, `-` and `_` bare, anything else
/// quoted.
#[test]
fn sections_are_named_as_written() {
    let servers = ["my-srv_2"];
    let e = load("[recovery.servers.my-srv_2]\npolicy = \"x\"", &servers).expect_err("bad");
    assert!(
        e.to_string()
            .starts_with("recovery.servers.my-srv_2.policy"),
        "{e}"
    );
    let e = load(
        "[recovery.servers.\"a b\"]\npolicy = \"rollback\"",
        &servers,
    )
    .expect_err("bad");
    assert!(e.to_string().contains("recovery.servers.\"a b\""), "{e}");
}

/// A backoff may start at its cap.
#[test]
fn a_backoff_equal_to_its_cap_is_accepted() {
    let s = settings(
        "[recovery.default]\nbackoff_ms = 500\nbackoff_max_ms = 500",
        "kv",
    );
    assert_eq!(
        (s.backoff, s.backoff_max),
        (Duration::from_millis(500), Duration::from_millis(500))
    );
}

/// A parse error quotes its line: up to 60 characters whole, a longer one cut with "...".
#[test]
fn parse_errors_quote_at_most_60_characters() {
    for (len, cut) in [(59, false), (60, false), (61, true)] {
        let line = format!("x{}", "y".repeat(len - 1));
        let msg = err(&line);
        let shown: String = line.chars().take(60).collect();
        assert!(msg.contains(&shown), "{msg}");
        assert_eq!(msg.contains(&format!("{shown}...")), cut, "{len}: {msg}");
    }
}
