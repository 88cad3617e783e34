//! The command line's tests: parsing, statuses, one-line errors, help.

use super::*;
use clap::CommandFactory;

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn guest_figures_join_the_final_line() {
    let mut report = vm::RunReport {
        status: 0,
        message: None,
        backend: abi::Backend::Pvm,
        image: "t".into(),
        elapsed: std::time::Duration::ZERO,
        unknown_pio: 0,
        unknown_mmio: 0,
        console_lost: 0,
        workload: None,
        workload_so_far: None,
        faults: 0,
        recovery: None,
        injections: Vec::new(),
        classification: None,
    };
    assert_eq!(guest_figures(&report), "");
    // A workload that never reported (stopped first): what its clients published, if anything.
    report.workload_so_far = Some(abi::monitor::WorkloadReport::default());
    assert_eq!(guest_figures(&report), "");
    report.workload_so_far = Some(abi::monitor::WorkloadReport {
        ops: 64,
        retries: 1,
        ..Default::default()
    });
    assert_eq!(
        guest_figures(&report),
        "; workload so far ops=64 errors=0 retries=1 lost=0 mismatches=0"
    );
    report.workload = Some(abi::monitor::WorkloadReport {
        ops: 500,
        mismatches: 1,
        ..Default::default()
    });
    report.faults = 2;
    assert_eq!(
        guest_figures(&report),
        "; workload ops=500 errors=0 retries=0 lost=0 mismatches=1; 2 task faults"
    );
    report.classification = Some(Class::SilentCorruption);
    assert!(guest_figures(&report).ends_with("; 2 task faults; classification silent-corruption"));
}

#[test]
fn parse_errors_use_the_usage_status() {
    assert_eq!(
        main_with(["vmm", "run", "--memory", "lots"]),
        i32::from(status::USAGE)
    );
    assert_eq!(main_with(["vmm", "frobnicate"]), i32::from(status::USAGE));
    assert_eq!(main_with(["vmm"]), i32::from(status::USAGE));
}

#[test]
fn usage_errors_are_one_line() {
    let e = Cli::try_parse_from(["vmm", "run", "--memroy", "5"]).unwrap_err();
    let line = usage_error_line(&e);
    assert!(line.contains("--memroy"), "{line}");
    assert!(
        line.contains("(tip: a similar argument exists: '--memory')"),
        "{line}"
    );
    assert!(!line.contains('\n') && !line.starts_with("error"), "{line}");
    let e = Cli::try_parse_from(["vmm", "fault-sites"]).unwrap_err();
    assert_eq!(
        usage_error_line(&e),
        "the following required arguments were not provided: <TARGET>, <KIND>"
    );
    let help = |args: &[&str]| {
        help_for(
            Cli::command(),
            &args.iter().map(OsString::from).collect::<Vec<_>>(),
        )
    };
    assert_eq!(help(&["vmm", "fault-sites"]), "vmm fault-sites --help");
    assert_eq!(
        help(&["vmm", "bench", "boot", "--runs", "x"]),
        "vmm bench boot --help"
    );
    assert_eq!(help(&["vmm", "frobnicate", "run"]), "vmm --help");
    let commands = |args: &[&str]| {
        commands_of(
            Cli::command(),
            &args.iter().map(OsString::from).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        commands(&["vmm"]),
        ["run", "bench", "fault-sites", "fleet", "ctl", "demo"]
    );
    assert_eq!(commands(&["vmm", "bench"]), ["boot", "recovery", "fleet"]);
    assert_eq!(help(&["vmm", "--memory", "run"]), "vmm --help");
}

#[test]
fn help_and_version_succeed() {
    assert_eq!(main_with(["vmm", "--help"]), 0);
    assert_eq!(main_with(["vmm", "run", "--help"]), 0);
    assert_eq!(main_with(["vmm", "--version"]), 0);
}

/// One status per kind of mistake: a value that does not parse (not a number, a negative
/// number, a malformed spec) is a usage error, 64; a well-formed value that cannot be
/// honoured (out of range, a file that cannot be read) is 66. Each of these returns before
/// any VM boots.
#[test]
fn unparsable_values_are_usage_errors_and_unusable_ones_config_errors() {
    let usage = [
        vec!["vmm", "run", "--memory", "-1"],
        vec!["vmm", "run", "--memory", "lots"],
        vec!["vmm", "run", "--timeout", "-1"],
        vec!["vmm", "run", "--timeout", "nan"],
        vec!["vmm", "run", "--fault", "kv"],
        vec!["vmm", "run", "--fault", "kv:panic@1@2"],
        vec!["vmm", "run", "--fault-seed", "3"],
        vec!["vmm", "run", "--no-recovery", "--fault", "kv:panic@3"],
        vec!["vmm", "bench", "boot", "--runs", "x"],
        vec!["vmm", "bench", "boot", "--runs", "-3"],
    ];
    for args in usage {
        assert_eq!(
            main_with(args.clone()),
            i32::from(status::USAGE),
            "{args:?}"
        );
    }
    let config = [
        vec!["vmm", "run", "--memory", "0"],
        vec!["vmm", "run", "--memory", "3073"],
        vec!["vmm", "run", "--timeout", "0"],
        vec!["vmm", "run", "--timeout", "1e9"],
        vec!["vmm", "run", "--config", "/nonexistent.toml"],
        vec!["vmm", "run", "--snapshot-versions", "1"],
        vec!["vmm", "bench", "boot", "--runs", "0"],
        vec!["vmm", "bench", "boot", "--memory", "0"],
        vec!["vmm", "bench", "recovery", "--rounds", "0"],
        vec!["vmm", "bench", "recovery", "--seconds", "601"],
        vec!["vmm", "bench", "fleet", "--cases", "0"],
        vec!["vmm", "bench", "fleet", "--jobs", "0"],
        vec!["vmm", "fleet", "run", "/nonexistent.toml"],
    ];
    for args in config {
        assert_eq!(
            main_with(args.clone()),
            i32::from(status::CONFIG),
            "{args:?}"
        );
    }
}

#[test]
fn guest_args_follow_the_double_dash() {
    let cli =
        Cli::try_parse_from(["vmm", "run", "img", "--", "ops=5", "--seed=7"]).expect("parses");
    let Command::Run(args) = cli.command else {
        panic!("parsed as run")
    };
    assert_eq!(args.image, Some(PathBuf::from("img")));
    assert_eq!(args.guest_args, ["ops=5", "--seed=7"]);
}

/// A report that could not be written is found before the run, not after it: these return
/// at once (no VM is booted, no benchmark run).
#[test]
fn output_files_in_missing_directories_are_refused_up_front() {
    let missing = "/nonexistent-vmm-test-dir/r.json";
    for args in [
        vec!["vmm", "run", "--report", missing],
        vec!["vmm", "bench", "boot", "--json", missing],
        vec!["vmm", "bench", "recovery", "--json", missing],
    ] {
        assert_eq!(
            main_with(args.clone()),
            i32::from(status::USAGE),
            "{args:?}"
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ok = dir.path().join("r.json");
    assert_eq!(crate::files::check_output(&ok), Ok(()));
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("read dir").count(),
        0,
        "the check leaves nothing behind"
    );
    let e =
        crate::files::check_output(std::path::Path::new(missing)).expect_err("missing directory");
    assert!(e.contains("does not exist"), "{e}");
    let e = crate::files::check_output(dir.path()).expect_err("a directory");
    assert!(e.contains("is a directory"), "{e}");
}

#[test]
fn help_lists_the_exit_statuses() {
    let help = exit_status_help();
    assert!(help.contains("128+N"), "{help}");
    assert!(help.contains("83"), "{help}");
}
