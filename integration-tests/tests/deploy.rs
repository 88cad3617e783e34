//! The deployment recipes of docs/fleet.md: the Kubernetes manifests validate offline against
//! Kubernetes 1.33 with `kubernetes-validate --strict` (installed by `.ci/run`; this test fails
//! loudly without it), a manifest with a misspelt field does not (so the validation is real),
//! and the manifests and the Slurm script agree with the exit-status contract and each other.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

/// The validator: `$KUBERNETES_VALIDATE`, the one `.ci/run` installs, or one on PATH.
fn validator() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBERNETES_VALIDATE") {
        return PathBuf::from(p);
    }
    let ci = repo().join("target/ci-tools/venv/bin/kubernetes-validate");
    if ci.exists() {
        return ci;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubernetes-validate"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "kubernetes-validate not found: run .ci/run (it installs it), or `pip install \
             kubernetes-validate`, or set KUBERNETES_VALIDATE"
        )
    })
}

fn validate(files: &[PathBuf]) -> std::process::Output {
    Command::new(validator())
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(files)
        .output()
        .expect("run kubernetes-validate")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_kubernetes_manifests_validate_strictly_and_a_misspelt_one_does_not() {
    let files = manifests();
    assert!(files.len() >= 2, "{files:?}");
    let out = validate(&files);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for f in &files {
        let name = f.file_name().expect("name").to_string_lossy();
        assert!(text.contains(&format!("{name} passed")), "{name}: {text}");
    }
    let job = repo().join("deploy/kubernetes/fleet-job.yaml");
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("misspelt.yaml");
    let yaml = std::fs::read_to_string(&job).expect("job");
    std::fs::write(
        &bad,
        yaml.replacen("backoffLimitPerIndex", "backofLimitPerIndex", 1),
    )
    .expect("write");
    let out = validate(&[bad]);
    assert!(!out.status.success(), "a misspelt field passed --strict");
}

/// The numbers the recipes carry are the contract's: the statuses a shard fails on at once,
/// the one that is a result, and the shard count given twice in the Job.
#[test]
fn the_recipes_agree_with_the_exit_statuses_and_themselves() {
    use abi::status;
    let job =
        std::fs::read_to_string(repo().join("deploy/kubernetes/fleet-job.yaml")).expect("job");
    let fail_now = format!(
        "values: [{}, {}, {}]",
        status::USAGE,
        status::IMAGE,
        status::CONFIG
    );
    assert!(job.contains(&fail_now), "podFailurePolicy: {fail_now}");
    let result = format!("-eq {}", status::FLEET_BAD);
    assert!(job.contains(&result), "a shard with bad cases succeeds");
    let field = |key: &str| -> String {
        let line = job
            .lines()
            .map(str::trim)
            .position(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"));
        let lines: Vec<&str> = job.lines().map(str::trim).collect();
        match key {
            "- name: JOB_COMPLETIONS" => lines[line + 1]
                .trim_start_matches("value:")
                .trim()
                .trim_matches('"')
                .to_owned(),
            _ => lines[line][key.len()..].trim().to_owned(),
        }
    };
    assert_eq!(field("completions:"), field("- name: JOB_COMPLETIONS"));
    assert!(job.contains("--shard auto") && job.contains("--resume"));
    let sbatch =
        std::fs::read_to_string(repo().join("deploy/slurm/fleet-array.sbatch")).expect("sbatch");
    assert!(sbatch.contains(&result), "a task with bad cases succeeds");
    assert!(sbatch.contains("--shard auto") && sbatch.contains("--resume"));
    let out = Command::new("bash")
        .arg("-n")
        .arg(repo().join("deploy/slurm/fleet-array.sbatch"))
        .output()
        .expect("bash -n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Job's container script, run by `sh` with a stand-in `vmm` on PATH: it passes SIGTERM on
/// to vmm (the shell is PID 1 in a pod, and PID 1 ignores SIGTERM) and waits for vmm's own
/// status, turns "bad cases found" (85) into success, and keeps every other status.
#[test]
fn the_jobs_script_forwards_sigterm_and_maps_the_statuses() {
    let job =
        std::fs::read_to_string(repo().join("deploy/kubernetes/fleet-job.yaml")).expect("job");
    let marker = "args:\n            - |\n";
    let start = job.find(marker).expect("a literal block script") + marker.len();
    let script: String = job[start..]
        .lines()
        .take_while(|l| l.starts_with("              "))
        .map(|l| format!("{}\n", &l[14..]))
        .collect();
    assert!(script.contains("vmm fleet run"), "{script}");
    let tmp = tempfile::tempdir().expect("tmp");
    let fake = tmp.path().join("vmm");
    let started = tmp.path().join("started");
    let run = |body: &str| {
        std::fs::write(&fake, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", tmp.path().display()))
            .env("JOB_COMPLETION_INDEX", "2")
            .spawn()
            .expect("sh")
    };
    for (exit, want) in [(85, 0), (66, 66), (0, 0), (86, 86)] {
        let status = run(&format!("exit {exit}")).wait().expect("wait");
        assert_eq!(status.code(), Some(want), "vmm exiting {exit}");
    }
    // A vmm that says it started, then stops with 86 on SIGTERM (as `fleet run` does).
    let mut sh = run(&format!(
        "trap 'exit 86' TERM\ntouch {}\nwhile :; do sleep 0.05; done",
        started.display()
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stand-in never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(sh.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(
        sh.wait().expect("wait").code(),
        Some(86),
        "vmm got the SIGTERM"
    );
}
