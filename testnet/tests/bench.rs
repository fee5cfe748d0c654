//! `sherd-testnet bench`, run as the built binary with tiny sizes: the JSON
//! report has every field, with values that follow from what was asked
//! (never a timing threshold: CI machines vary), and nothing is left
//! behind. And the fill test hook it seeds feeds with: 404 on a daemon
//! without `--test-hooks`, validated and exact on one with it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sherd_api::ClientError;
use sherd_testnet::Testnet;

/// How long one run of the binary may take (the tiny bench takes seconds).
const LIMIT: Duration = Duration::from_secs(180);

/// Runs `sherd-testnet ARGS` with its temporary files under `tmp`, within
/// [`LIMIT`] (then SIGTERM, which it answers by cleaning up, then SIGKILL);
/// returns its exit code, stdout and stderr.
fn sherd_testnet(args: &[&str], tmp: &Path) -> (Option<i32>, String, String) {
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
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(20));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sherd-testnet {args:?} did not finish within {LIMIT:?}\n{}",
                std::fs::read_to_string(&stderr).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code(),
        std::fs::read_to_string(&stdout).unwrap(),
        std::fs::read_to_string(&stderr).unwrap(),
    )
}

/// Processes whose command line mentions `dir` (every sherdd of a testnet
/// has `--data-dir` under it).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
    }
    found
}

fn f64_of(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v:#}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key} in {v:#}"))
}

#[test]
fn a_tiny_bench_reports_every_figure_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bench.json");
    let testnets = tmp.path().join("testnets");
    std::fs::create_dir(&testnets).unwrap();
    let (code, stdout, stderr) = sherd_testnet(
        &[
            "bench",
            "--json",
            "--report",
            file.to_str().unwrap(),
            "--only",
            "idle-rss",
            "catchup",
            "recovery",
            "--catchup-sizes",
            "200",
            "--recovery-sizes",
            "3of5",
            "--runs",
            "1",
            "--idle-daemons",
            "2",
        ],
        &testnets,
    );
    assert_eq!(code, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(report, written);

    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["failed"], Value::Array(Vec::new()), "{report:#}");
    assert!(u64_of(&report, "started_unix_s") > 0);
    assert!(f64_of(&report, "total_ms") > 0.0);
    let machine = &report["machine"];
    assert!(u64_of(machine, "cores") >= 1, "{machine:#}");
    assert!(
        ["release", "debug", "unknown"].contains(&machine["sherdd_profile"].as_str().unwrap()),
        "{machine:#}"
    );
    assert!(machine["sherdd"].as_str().unwrap().ends_with("sherdd"));

    let idle = &report["idle_rss"];
    assert_eq!(u64_of(idle, "daemons"), 2, "{idle:#}");
    assert_eq!(idle["each_kib"].as_array().unwrap().len(), 2, "{idle:#}");
    let (min, median, max) = (
        u64_of(idle, "min_kib"),
        u64_of(idle, "median_kib"),
        u64_of(idle, "max_kib"),
    );
    assert!(0 < min && min <= median && median <= max, "{idle:#}");

    let catchup = report["catchup"].as_array().unwrap();
    assert_eq!(catchup.len(), 1, "{report:#}");
    let c = &catchup[0];
    assert_eq!(u64_of(c, "entries"), 200, "{c:#}");
    assert_eq!(u64_of(c, "seeded_entries"), 200, "{c:#}");
    assert_eq!(c["runs_ms"].as_array().unwrap().len(), 1, "{c:#}");
    let took = f64_of(c, "median_ms");
    assert!(took > 0.0, "{c:#}");
    assert_eq!(f64_of(c, "min_ms"), took);
    assert_eq!(f64_of(c, "max_ms"), took);
    assert!(f64_of(c, "entries_per_s") > 0.0, "{c:#}");
    assert!(f64_of(c, "seed_ms") > 0.0, "{c:#}");
    assert_eq!(f64_of(c, "poll_every_ms"), 20.0, "{c:#}");
    // The window the end lay in is part of the run.
    let precision = f64_of(c, "precision_ms");
    assert!(0.0 < precision && precision <= took, "{c:#}");
    assert!(u64_of(c, "source_rss_kib") > 0 && u64_of(c, "follower_rss_kib") > 0);

    let recovery = report["recovery"].as_array().unwrap();
    assert_eq!(recovery.len(), 1, "{report:#}");
    let r = &recovery[0];
    assert_eq!((u64_of(r, "threshold"), u64_of(r, "custodians")), (3, 5));
    assert_eq!(r["runs_ms"].as_array().unwrap().len(), 1, "{r:#}");
    // Zero only if the owner's event beat the approval's answer here; from
    // the approval's sending, never less.
    let after = f64_of(r, "median_ms");
    let with = &r["with_approval"];
    assert_eq!(with["runs_ms"].as_array().unwrap().len(), 1, "{r:#}");
    assert!(0.0 <= after && after <= f64_of(with, "median_ms"), "{r:#}");
    assert!(f64_of(with, "median_ms") > 0.0, "{r:#}");
    let owner_links = u64_of(r, "owner_links");
    assert!((1..=5).contains(&owner_links), "{r:#}");
    assert!(u64_of(r, "links") >= 5, "{r:#}");

    assert_eq!(report["gossip_50"], Value::Null, "not asked for");

    // The steps were narrated on stderr; every daemon is gone, and so is
    // every testnet directory.
    assert!(stderr.contains("catchup: "), "{stderr}");
    assert!(stderr.contains("run 1: follower1 starts fresh"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&testnets).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_under(&testnets).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left running: {:#?}",
            processes_under(&testnets)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_bench_arguments_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&["bench", "--only", "nope"][..], "invalid value 'nope'"),
        (&["bench", "--recovery-sizes", "6of5"], "a threshold of 6"),
        (&["bench", "--catchup-sizes", "0"], "invalid value '0'"),
        (&["bench", "--runs", "0"], "invalid value '0'"),
    ] {
        let (code, _, stderr) = sherd_testnet(args, tmp.path());
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fill_hook_is_404_without_test_hooks_and_exact_with_them() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut net = Testnet::new().unwrap();
        net.start("plain").await.unwrap();
        net.start_with("hooked", &["--test-hooks"]).await.unwrap();

        let plain = net.node("plain").unwrap().client();
        let err = plain.test_fill(5).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 404, .. }),
            "{err:?}"
        );
        assert_eq!(plain.status().await.unwrap().feeds[0].seq, 0);

        let hooked = net.node("hooked").unwrap();
        let client = hooked.client();
        let err = client.test_fill(0).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 400, .. }),
            "{err:?}"
        );
        let filled = client.test_fill(1_250).await.unwrap();
        assert_eq!((filled.appended, filled.head_seq), (1_250, 1_250));
        let filled = client.test_fill(3).await.unwrap();
        assert_eq!((filled.appended, filled.head_seq), (3, 1_253));
        let status = client.status().await.unwrap();
        assert_eq!(status.feeds[0].feed, hooked.feed_id());
        assert_eq!(status.feeds[0].seq, 1_253);

        // Real entries of a real feed: a follower fetches and stores them.
        net.connect("plain", "hooked").await.unwrap();
        let feed = hooked.feed_id().to_owned();
        plain.add_contact(&feed, "hooked", false).await.unwrap();
        loop {
            let status = plain.status().await.unwrap();
            if status
                .feeds
                .iter()
                .any(|f| f.feed == feed && f.seq == 1_253)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        net.close().await.unwrap();
    })
    .await
    .expect("the test took too long");
}
