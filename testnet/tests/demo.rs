//! `sherd-testnet demo`, `--keep` and `down`, run as the built binary, the
//! way a person runs them: the story ends with the exact secret, and nothing
//! is left behind (no daemon, no directory) unless asked for, and then
//! `down` ends it all.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one run of the binary may take.
const LIMIT: Duration = Duration::from_secs(180);

/// What a run of `sherd-testnet` printed.
#[derive(Debug)]
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
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
    let mut child = command
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
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
    };
    match status {
        Some(status) => run(status),
        None => panic!(
            "sherd-testnet {args:?} did not finish within {LIMIT:?}\n{:#?}",
            run(ExitStatus::default())
        ),
    }
}

/// The testnet's directory, from the demo's first line (`... data in DIR`).
fn root_of(run: &Run) -> PathBuf {
    let first = run.stdout.lines().next().unwrap_or_default();
    let (_, dir) = first
        .split_once("data in ")
        .unwrap_or_else(|| panic!("no `data in DIR` in {first:?}"));
    let dir = PathBuf::from(dir.trim());
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sherd-testnet-"),
        "{dir:?}"
    );
    dir
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

/// Waits a little for processes under `dir` to be gone (a killed process
/// leaves /proc a moment after its parent saw it die), then asserts it.
fn assert_no_process_under(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_under(dir);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left running: {left:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value after `label` on the line that starts with it (after indentation).
fn field<'a>(run: &'a Run, label: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{}", run.stdout))
}

#[test]
fn the_demo_tells_the_recovery_of_the_exact_secret_and_leaves_nothing_behind() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("kept.json");
    let run = sherd_testnet(&["demo", "--state", state_file.to_str().unwrap()], &[]);
    assert!(run.status.success(), "{run:#?}");

    // Nine steps, each with its time; the four typed commands shown.
    for step in 1..=9 {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("[{step}/9] ")))
            .unwrap_or_else(|| panic!("no step {step} in:\n{}", run.stdout));
        assert!(line.ends_with(" s"), "{line}");
    }
    for command in [
        "request-recovery --owner 12D3KooW",
        " approve ",
        " forward ",
        " recover ",
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with("$ sherdctl --socket ") && l.contains(command)),
            "no `{command}` command shown:\n{}",
            run.stdout
        );
    }
    // The secret shown at the start is the one recovered at the end.
    let secret = field(&run, "secret ");
    assert_eq!(secret.len(), 64, "32 bytes in hex: {secret}");
    assert_eq!(field(&run, "recovered "), secret);
    assert!(run.stdout.contains("byte for byte"), "{}", run.stdout);
    assert!(run.stdout.contains("mode 0600"), "{}", run.stdout);
    let last = run.stdout.lines().last().unwrap();
    assert!(last.starts_with("ok: "), "{last}");

    // Nothing left: no daemon, no directory, nothing recorded.
    let root = root_of(&run);
    assert!(!root.exists(), "{} is still there", root.display());
    assert_no_process_under(&root);
    assert!(!state_file.exists());
}

/// Runs `down` against `state` when dropped, so that a failed test leaves
/// no daemon running.
struct DownOnDrop<'a>(&'a Path);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = sherd_testnet(&["down", "--state", self.0.to_str().unwrap()], &[]);
        }
    }
}

/// The kept networks recorded in `state`: each one's directory and pids.
fn recorded(state: &Path) -> Vec<(PathBuf, Vec<u32>)> {
    let text = std::fs::read_to_string(state).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let root = PathBuf::from(n["root"].as_str().unwrap());
            let pids = n["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|node| u32::try_from(node["pid"].as_u64().unwrap()).unwrap())
                .collect();
            (root, pids)
        })
        .collect()
}

#[test]
fn kept_networks_run_on_after_the_program_exits_until_down() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("kept.json");
    let state_arg = state_file.to_str().unwrap();
    let _down = DownOnDrop(&state_file);

    let demo = sherd_testnet(&["demo", "--keep", "--state", state_arg], &[]);
    assert!(demo.status.success(), "{demo:#?}");
    assert!(
        demo.stdout.contains("sherd-testnet down --state"),
        "{demo:#?}"
    );
    let up = sherd_testnet(&["up", "--nodes", "2", "--keep", "--state", state_arg], &[]);
    assert!(up.status.success(), "{up:#?}");

    let networks = recorded(&state_file);
    assert_eq!(networks.len(), 2);
    assert_eq!(networks[0].0, root_of(&demo));
    // The owner's node was lost in the story: c1..c5 and the new identity run on.
    assert_eq!(networks[0].1.len(), 6);
    assert_eq!(networks[1].1.len(), 2);
    for (root, pids) in &networks {
        let running: Vec<u32> = processes_under(root).iter().map(|(p, _)| *p).collect();
        for pid in pids {
            assert!(running.contains(pid), "{pid} is not running: {running:?}");
        }
    }
    // Each node answers on the socket its printed line names.
    let kept_line = demo
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("new ") && l.contains("sherdctl --socket "))
        .unwrap_or_else(|| panic!("no line for the new identity:\n{}", demo.stdout));
    let socket = kept_line
        .split_once("sherdctl --socket ")
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime
        .block_on(sherd_api::Client::new(socket).status())
        .unwrap();
    assert!(kept_line.contains(&status.feed_id), "{kept_line}");

    let down = sherd_testnet(&["down", "--state", state_arg], &[]);
    assert!(down.status.success(), "{down:#?}");
    assert!(down.stdout.contains("stopped 6 daemons"), "{down:#?}");
    assert!(down.stdout.contains("stopped 2 daemons"), "{down:#?}");
    for (root, _) in &networks {
        assert!(!root.exists(), "{} is still there", root.display());
        assert_no_process_under(root);
    }
    assert!(!state_file.exists());

    let again = sherd_testnet(&["down", "--state", state_arg], &[]);
    assert!(again.status.success(), "{again:#?}");
    assert!(again.stdout.starts_with("no kept network"), "{again:#?}");
}

#[test]
fn a_failing_step_is_named_with_the_end_of_the_nodes_log_and_cleaned_up() {
    // The real sherdd beside a sherdctl that always fails: step 6, the first
    // typed command, fails on c1.
    let fake = tempfile::tempdir().unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_sherd-testnet")).with_file_name("sherdd");
    let sherdd = fake.path().join("sherdd");
    std::os::unix::fs::symlink(&built, &sherdd).unwrap();
    let sherdctl = fake.path().join("sherdctl");
    std::fs::write(
        &sherdctl,
        "#!/bin/sh\necho 'sherdctl: the daemon said no (a test)' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &sherdctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("kept.json");
    let run = sherd_testnet(
        &["demo", "--state", state_file.to_str().unwrap()],
        &[("SHERD_SHERDD", &sherdd)],
    );
    assert_eq!(run.status.code(), Some(1), "{run:#?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("[6/9] ") && l.contains("FAILED after")),
        "{run:#?}"
    );
    assert!(run.stderr.contains("step 6/9 failed"), "{run:#?}");
    assert!(
        run.stderr.contains("the daemon said no (a test)"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("--- last 20 lines of c1's log ---"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("control API listening"), "{run:#?}");
    assert!(!run.stdout.contains("ok: "), "{run:#?}");

    let root = root_of(&run);
    assert!(!root.exists(), "{} is still there", root.display());
    assert_no_process_under(&root);
}
