//! `sherd-testnet scenario`, run as the built binary the way CI runs it:
//! `--all --json` passes every scenario with sane counts and leaves nothing
//! behind; a failing scenario names its step, the error and the end of the
//! blamed node's log, exits 1, and still leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one run of the binary may take (`--all` takes seconds).
const LIMIT: Duration = Duration::from_secs(300);

/// The scenarios `--all` runs, in order.
const SCENARIOS: [&str; 15] = [
    "happy-path",
    "lost-device",
    "offline-custodian",
    "byzantine-custodian",
    "crash",
    "emergency-veto",
    "emergency-release",
    "one-time",
    "revoke",
    "reshare",
    "health-check",
    "request-flood",
    "partition",
    "flood",
    "gossip-50",
];

/// What a run of `sherd-testnet` printed.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `sherd-testnet ARGS` with `envs`, within [`LIMIT`]: past it, the run
/// gets SIGTERM (which it answers by cleaning up), then SIGKILL, and the test
/// fails.
fn sherd_testnet(args: &[&str], envs: &[(&str, &Path)]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_sherd-testnet"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHERD_") {
            command.env_remove(&key);
        }
    }
    let started = Instant::now();
    let mut child = command
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(20));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = |status| Run {
        status,
        stdout: std::fs::read_to_string(&stdout).unwrap(),
        stderr: std::fs::read_to_string(&stderr).unwrap(),
        took: started.elapsed(),
    };
    match status {
        Some(status) => run(status),
        None => panic!(
            "sherd-testnet {args:?} did not finish within {LIMIT:?}\n{:#?}",
            run(ExitStatus::default())
        ),
    }
}

/// Processes whose command line mentions `dir` (a sherdd of that testnet
/// has `--data-dir DIR/NAME`). Zombies have an empty command line.
fn processes_under(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push((pid, shown));
        }
    }
    found
}

/// The scenario's testnet directory is gone and no process runs in it (a
/// killed process leaves /proc a moment after its parent saw it die).
fn assert_nothing_left(report: &Value) {
    let dir = PathBuf::from(report["dir"].as_str().expect("a dir in the report"));
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sherd-testnet-"),
        "{dir:?}"
    );
    assert!(!dir.exists(), "{} is still there", dir.display());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_under(&dir);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left running: {left:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(report: &Value, key: &str) -> u64 {
    report["counts"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key} in {}", report["counts"]))
}

#[test]
fn every_scenario_passes_with_sane_counts_and_leaves_nothing_behind() {
    let run = sherd_testnet(&["scenario", "--all", "--json"], &[]);
    assert!(run.status.success(), "{run:#?}");
    let all: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", run.stdout));
    assert_eq!(all["ok"], true, "{all:#}");
    let reports = all["scenarios"].as_array().unwrap();
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, SCENARIOS);

    for report in reports {
        let name = report["scenario"].as_str().unwrap();
        assert_eq!(report["ok"], true, "{report:#}");
        assert!(report.get("failure").is_none(), "{report:#}");
        let steps = report["steps"].as_array().unwrap();
        assert!(steps.len() >= 5, "{name}: {} steps", steps.len());
        for (i, step) in steps.iter().enumerate() {
            assert_eq!(step["n"].as_u64(), Some(i as u64 + 1), "{step}");
            assert_eq!(step["ok"], true, "{step}");
            assert!(!step["name"].as_str().unwrap().is_empty(), "{step}");
            assert!(step["ms"].as_f64().unwrap() >= 0.0, "{step}");
        }
        let total = report["total_ms"].as_f64().unwrap();
        let summed: f64 = steps.iter().map(|s| s["ms"].as_f64().unwrap()).sum();
        assert!(
            total >= summed,
            "{name}: total {total} ms < steps {summed} ms"
        );

        // Every scenario of a 3-of-5 backup but a vetoed one ends with the
        // exact secret, from 3 valid shards; those of a 2-of-3 one that
        // recover, from 2.
        let two_of_three = ["revoke", "reshare", "health-check", "request-flood"];
        if two_of_three.contains(&name) {
            assert_eq!(count(report, "threshold"), 2, "{name}");
            assert_eq!(count(report, "secret_bytes"), 32, "{name}");
            assert_eq!(count(report, "acks"), 3, "{name}");
            assert_eq!(count(report, "custodians"), 3, "{name}");
            if ["reshare", "request-flood"].contains(&name) {
                assert_eq!(count(report, "shards"), 2, "{name}");
                assert_eq!(count(report, "rejected_shards"), 0, "{name}");
            }
        } else if !["flood", "gossip-50"].contains(&name) {
            assert_eq!(count(report, "threshold"), 3, "{name}");
            assert_eq!(count(report, "secret_bytes"), 32, "{name}");
            assert_eq!(count(report, "acks"), 5, "{name}");
            if name != "emergency-veto" {
                assert_eq!(count(report, "shards"), 3, "{name}");
            }
        }
        match name {
            "happy-path" => {
                assert_eq!(count(report, "approvals"), 3);
                assert_eq!(count(report, "rejected_shards"), 0);
                assert_eq!(count(report, "shards_released"), 3);
            }
            "lost-device" => {
                assert_eq!(count(report, "daemons"), 7);
                assert_eq!(count(report, "approvals"), 2);
                assert_eq!(count(report, "rejected_shards"), 0);
                assert_eq!(count(report, "shards_released"), 3);
            }
            "offline-custodian" => {
                assert_eq!(count(report, "acks_while_offline"), 4);
                assert_eq!(count(report, "restarts"), 1);
                assert_eq!(count(report, "rejected_shards"), 0);
            }
            "emergency-veto" => {
                assert_eq!(count(report, "vetoed"), 5);
                assert_eq!(count(report, "trustees"), 1);
            }
            "emergency-release" => {
                // `release: auto`: every custodian releases once the window
                // closes, none before (checked by the scenario).
                assert_eq!(count(report, "shards_released"), 5);
                assert_eq!(count(report, "rejected_shards"), 0);
            }
            "one-time" => {
                // Found on each custodian's disk before the redemption, in
                // no file of it after: 5 shard payloads and 5 replies.
                assert_eq!(count(report, "shard_payloads_found_before"), 5);
                assert_eq!(count(report, "shards_released"), 5);
                assert_eq!(count(report, "shards_erased"), 5);
                assert_eq!(count(report, "payloads_erased"), 10);
                assert_eq!(count(report, "owner_denials"), 5);
                assert_eq!(count(report, "rejected_shards"), 0);
            }
            "revoke" => {
                assert_eq!(count(report, "daemons"), 4);
                assert_eq!(count(report, "shard_payloads_found_before"), 3);
                assert_eq!(count(report, "pending"), 3);
                assert_eq!(count(report, "erased"), 3);
            }
            "reshare" => {
                assert_eq!(count(report, "daemons"), 5);
                assert_eq!(count(report, "old_erased"), 3);
                assert_eq!(count(report, "approvals"), 2);
            }
            "health-check" => {
                assert_eq!(count(report, "daemons"), 4);
                assert_eq!(count(report, "proved"), 3);
                assert_eq!(count(report, "silent_reports"), 1);
                assert_eq!(count(report, "restarts"), 1);
                assert_eq!(count(report, "stops"), 1);
                count(report, "silent_after_ms");
                count(report, "back_after_ms");
            }
            "request-flood" => {
                assert_eq!(count(report, "requests"), 5);
                assert_eq!(count(report, "taken_per_custodian"), 3);
                // 2 ignored by each of the 3 custodians.
                assert_eq!(count(report, "rate_limited"), 6);
                assert_eq!(count(report, "approvals"), 2);
            }
            "byzantine-custodian" => {
                assert_eq!(count(report, "rejected_shards"), 1);
                assert_eq!(count(report, "approvals"), 3);
                // The byzantine one's, and three honest ones.
                assert_eq!(count(report, "shards_released"), 4);
            }
            "crash" => {
                let before = count(report, "killed_before_commit");
                let after = count(report, "killed_after_commit");
                assert!(before >= 1 && after >= 1, "{}", report["counts"]);
                assert_eq!(count(report, "approve_kills"), before + after);
                assert_eq!(count(report, "shards_released_by_c1"), before + after);
                assert_eq!(count(report, "kills"), 3 + before + after);
                assert_eq!(count(report, "restarts"), count(report, "kills") + 1);
                assert_eq!(count(report, "height_checks"), count(report, "restarts"));
                assert_eq!(count(report, "backups"), 4);
            }
            "partition" => {
                assert_eq!(count(report, "daemons"), 6);
                // {owner, c1, c2} x {c3, c4, c5}, each blocked from both ends.
                assert_eq!(count(report, "blocked_links"), 9);
                assert_eq!(count(report, "shards_before_heal"), 1);
                assert_eq!(count(report, "shards_after_heal"), 3);
                assert_eq!(count(report, "approvals"), 3);
                assert_eq!(count(report, "rejected_shards"), 0);
                assert_eq!(count(report, "shards_released"), 3);
            }
            "flood" => {
                assert_eq!(count(report, "daemons"), 3);
                // trudy for its requests, mallory for its invalid entries.
                assert_eq!(count(report, "blocks"), 2);
                assert_eq!(count(report, "invalid_entries"), 200);
                let sent = count(report, "sync_requests");
                assert!(sent > 512, "{}", report["counts"]);
                assert_eq!(
                    count(report, "sync_answered") + count(report, "sync_failed"),
                    sent,
                    "{}",
                    report["counts"]
                );
                assert!(count(report, "status_samples") >= 2, "{}", report["counts"]);
                assert!(count(report, "flood_max_us") < 2_000_000);
                let (before, after) = (
                    count(report, "rss_before_kib"),
                    count(report, "rss_after_kib"),
                );
                assert!(
                    before > 0 && after < before + 64 * 1024,
                    "{}",
                    report["counts"]
                );
            }
            "gossip-50" => {
                assert_eq!(count(report, "daemons"), 50);
                assert_eq!(count(report, "followers"), 49);
                assert_eq!(count(report, "entries"), 2);
                let (t90, t99) = (
                    count(report, "reached_90_ms"),
                    count(report, "reached_99_ms"),
                );
                assert!(t90 <= t99, "{}", report["counts"]);
                // 99% of 50, rounded up: every node, each timed by its own
                // event stream.
                assert_eq!(count(report, "timed_nodes"), 50);
                // Duplicates are counted against unique deliveries: each of
                // the 49 receivers appended the 2 entries exactly once.
                assert_eq!(count(report, "unique_deliveries"), 98);
                assert!(report["counts"]["duplicate_ratio_permille"].is_u64());
                assert!(count(report, "rss_sum_kib") > 0);
            }
            other => panic!("unexpected scenario {other}"),
        }
        assert_nothing_left(report);
    }
    // The narration went to stderr, with the closing table.
    assert!(
        run.stderr.contains("ok: 15 of 15 scenarios passed"),
        "{run:#?}"
    );
    eprintln!(
        "scenario --all took {:.2} s (the report says {:.0} ms)",
        run.took.as_secs_f64(),
        all["total_ms"].as_f64().unwrap()
    );
}

#[test]
fn a_failing_scenario_names_its_step_and_the_nodes_log_and_cleans_up() {
    // The real sherdd, except that c2 tampers with the shard it releases:
    // the owner's recovery refuses it, which happy-path does not expect.
    let fake = tempfile::tempdir().unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_sherd-testnet")).with_file_name("sherdd");
    let sherdd = fake.path().join("sherdd");
    std::fs::write(
        &sherdd,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *\"/c2 \"*) exec '{0}' \"$@\" --test-tamper-releases ;;\n  \
             *) exec '{0}' \"$@\" ;;\nesac\n",
            built.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&sherdd, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let file = fake.path().join("report.json");
    let run = sherd_testnet(
        &[
            "scenario",
            "happy-path",
            "--json",
            "--report",
            file.to_str().unwrap(),
        ],
        &[("SHERD_SHERDD", &sherdd)],
    );
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(report, written);

    assert_eq!(report["scenario"], "happy-path");
    assert_eq!(report["ok"], false);
    let steps = report["steps"].as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!(last["ok"], false, "{report:#}");
    assert!(
        last["name"].as_str().unwrap().contains("gathers 3 shards"),
        "{report:#}"
    );
    assert!(steps[..steps.len() - 1].iter().all(|s| s["ok"] == true));
    let failure = &report["failure"];
    assert_eq!(failure["step"], last["n"], "{report:#}");
    assert_eq!(failure["node"], "owner", "{report:#}");
    let error = failure["error"].as_str().unwrap();
    assert!(error.contains("shards refused, none expected"), "{error}");
    let tail = failure["log_tail"].as_array().unwrap();
    assert!(!tail.is_empty() && tail.len() <= 20, "{report:#}");
    assert!(
        tail.iter()
            .any(|l| l.as_str().unwrap().contains("sherd_daemon")),
        "{report:#}"
    );
    // The narration names the step and shows the log on stderr.
    assert!(run.stderr.contains("FAILED: happy-path, step"), "{run:#?}");
    assert!(
        run.stderr.contains("--- last 20 lines of owner's log ---"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("1 of 1 scenario failed: happy-path"));
    assert_nothing_left(&report);
}

#[test]
fn scenarios_are_listed_and_an_unknown_one_is_a_usage_error() {
    let list = sherd_testnet(&["scenario", "--list"], &[]);
    assert!(list.status.success(), "{list:#?}");
    let listed: Vec<&str> = list
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, SCENARIOS);

    let unknown = sherd_testnet(&["scenario", "no-such-scenario"], &[]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:#?}");
    assert!(unknown.stderr.contains("happy-path"), "{unknown:#?}");
}
