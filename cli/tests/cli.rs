//! `sherdctl` as a black box: the built binary, run with a clean environment,
//! checked on its exit status and its exact output. These tests never start
//! a daemon (round trips with a real one are the testnet's); they pin what
//! happens without one and what the command line accepts.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// No run of the binary may take longer than this.
const LIMIT: Duration = Duration::from_secs(20);

/// The binary with none of the caller's sherd settings, and a `HOME` that
/// holds nothing (so a daemon the developer runs is never reached).
fn sherdctl(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sherdctl"));
    cmd.env_remove("SHERD_SOCKET")
        .env_remove("SHERD_DATA_DIR")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to completion, killing it past `LIMIT`. Outputs here are far
/// smaller than a pipe's buffer, so reading after exit cannot deadlock.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd.spawn().expect("sherdctl starts");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("sherdctl {cmd:?} ran longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Every command of this slice, with valid arguments.
const COMMANDS: &[&[&str]] = &[
    &["id"],
    &["status"],
    &["peers"],
    &["connect", "/ip4/127.0.0.1/tcp/4001"],
    &["contacts", "add", "12D3KooWAbc", "--name", "alice"],
    &["contacts", "list"],
    &["contacts", "remove", "12D3KooWAbc"],
    &["events", "--follow"],
    &["audit"],
    &["audit", "--from", "10", "--limit", "5"],
];

fn assert_unreachable(output: &Output, socket: &Path, reason: &str) {
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        text(&output.stderr),
        format!(
            "sherdctl: the sherd daemon is not running at {} ({reason}); start it with \
             `sherdd --data-dir DIR`, or check --socket / SHERD_SOCKET\n",
            socket.display()
        )
    );
}

#[test]
fn every_command_says_how_to_start_an_unreachable_daemon() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sherdd.sock");
    for args in COMMANDS {
        for json in [false, true] {
            let mut cmd = sherdctl(home.path());
            cmd.arg("--socket").arg(&socket).args(*args);
            if json {
                cmd.arg("--json");
            }
            assert_unreachable(&run(&mut cmd), &socket, "no socket there");
        }
    }
}

#[test]
fn the_socket_comes_from_flags_env_or_the_default_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let in_dir = dir.path().join("sherdd.sock");
    let other = dir.path().join("other.sock");

    let output = run(sherdctl(home.path())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("status"));
    assert_unreachable(&output, &in_dir, "no socket there");

    let output = run(sherdctl(home.path())
        .env("SHERD_DATA_DIR", dir.path())
        .arg("status"));
    assert_unreachable(&output, &in_dir, "no socket there");

    let output = run(sherdctl(home.path())
        .env("SHERD_SOCKET", &other)
        .arg("status"));
    assert_unreachable(&output, &other, "no socket there");

    // --socket wins over --data-dir.
    let output = run(sherdctl(home.path())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--socket")
        .arg(&other)
        .arg("status"));
    assert_unreachable(&output, &other, "no socket there");

    // An empty variable counts as unset.
    let output = run(sherdctl(home.path())
        .env("SHERD_SOCKET", "")
        .env("SHERD_DATA_DIR", dir.path())
        .arg("status"));
    assert_unreachable(&output, &in_dir, "no socket there");

    let default = home.path().join(".local/share/sherd/sherdd.sock");
    let output = run(sherdctl(home.path()).arg("status"));
    assert_unreachable(&output, &default, "no socket there");

    let xdg = dir.path().join("sherd/sherdd.sock");
    let output = run(sherdctl(home.path())
        .env("XDG_DATA_HOME", dir.path())
        .arg("status"));
    assert_unreachable(&output, &xdg, "no socket there");
}

#[test]
fn a_stale_socket_is_unreachable_too() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sherdd.sock");
    // What a killed daemon leaves behind: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let output = run(sherdctl(home.path())
        .arg("--socket")
        .arg(&socket)
        .arg("peers"));
    assert_unreachable(&output, &socket, "nothing listens on the socket");
}

#[test]
fn no_data_dir_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let output = run(sherdctl(home.path()).env_remove("HOME").arg("status"));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(
        text(&output.stderr),
        "sherdctl: cannot tell where the daemon's data dir is ($HOME is not set); \
         pass --data-dir DIR or --socket PATH\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage: sherdctl"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["status", "--bogus"], "unexpected argument '--bogus'"),
        (&["id", "extra"], "unexpected argument 'extra'"),
        (&["connect"], "<MULTIADDR>"),
        (&["contacts"], "Usage: sherdctl contacts"),
        (&["contacts", "add", "12D3KooWAbc"], "--name <NAME>"),
        (&["contacts", "remove"], "<FEED>"),
        (&["events"], "--follow"),
        (&["audit", "--limit", "0"], "0 is not in 1..=1000"),
        (&["audit", "--limit", "1001"], "1001 is not in 1..=1000"),
        (&["audit", "--from", "-1"], "unexpected argument '-1'"),
        (&["audit", "--limit", "ten"], "invalid digit"),
    ];
    for (args, expected) in cases {
        let output = run(sherdctl(home.path()).args(*args));
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert_eq!(text(&output.stdout), "", "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn help_lists_every_command_and_the_exit_statuses() {
    let home = tempfile::tempdir().unwrap();
    let output = run(sherdctl(home.path()).arg("--help"));
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    for command in [
        "id", "status", "peers", "connect", "contacts", "events", "audit",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "--help does not list {command}:\n{help}"
        );
    }
    for flag in [
        "--socket <PATH>",
        "--data-dir <DIR>",
        "--json",
        "SHERD_SOCKET",
        "SHERD_DATA_DIR",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
    for status in [
        "0  success",
        "1  the daemon refused the request",
        "2  usage error",
        "3  the daemon is unreachable",
        "4  anything else",
    ] {
        assert!(
            help.contains(status),
            "--help does not explain {status:?}:\n{help}"
        );
    }

    let output = run(sherdctl(home.path()).args(["contacts", "--help"]));
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    for command in ["add", "list", "remove"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "contacts --help does not list {command}:\n{help}"
        );
    }
}

#[test]
fn version_is_the_workspace_version() {
    let home = tempfile::tempdir().unwrap();
    let output = run(sherdctl(home.path()).arg("--version"));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        format!("sherdctl {}\n", env!("CARGO_PKG_VERSION"))
    );
}
