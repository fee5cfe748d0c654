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
    &[
        "contacts",
        "add",
        "12D3KooWAbc",
        "--name",
        "alice",
        "--auto-approve",
    ],
    &["contacts", "list"],
    &["contacts", "remove", "12D3KooWAbc"],
    &["contacts", "auto-approve", "12D3KooWAbc", "on"],
    &["contacts", "auto-approve", "12D3KooWAbc", "off"],
    &["events", "--follow"],
    &["audit"],
    &["audit", "--from", "10", "--limit", "5"],
    &["backup", "list"],
    &["backup", "show", "ab12"],
    &["shards"],
    &["grants"],
    &["request-recovery", "ab12"],
    &[
        "request-recovery",
        "--owner",
        "12D3KooWOld",
        "--to",
        "12D3KooWNew",
    ],
    &[
        "request-recovery",
        "--owner",
        "12D3KooWOld",
        "--to",
        "12D3KooWNew",
        "--backup",
        "ab12",
    ],
    &["requests"],
    &["approve", "0a1b"],
    &["approve", "0a1b", "--from", "12D3KooWAbc"],
    &["deny", "0a1b"],
    &[
        "deny",
        "0a1b",
        "--reason",
        "call me first",
        "--from",
        "12D3KooWAbc",
    ],
    &["forward", "0a1b", "--to", "12D3KooWNew"],
    &[
        "forward",
        "0a1b",
        "--to",
        "12D3KooWNew",
        "--from",
        "12D3KooWAbc",
    ],
    // stdout is a pipe here, so the secret may go there.
    &["recover"],
    &["recover", "ab12", "--timeout", "5"],
    &["recover", "ab12", "--show"],
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
    let output = dir.path().join("secret");
    let recover_to_file: &[&std::ffi::OsStr] =
        &["recover".as_ref(), "--output".as_ref(), output.as_ref()];
    let commands = COMMANDS
        .iter()
        .map(|args| args.iter().map(|a| a.as_ref()).collect::<Vec<_>>())
        .chain([recover_to_file.to_vec()]);
    for args in commands {
        for json in [false, true] {
            let mut cmd = sherdctl(home.path());
            cmd.arg("--socket").arg(&socket).args(&args);
            if json {
                cmd.arg("--json");
            }
            assert_unreachable(&run(&mut cmd), &socket, "no socket there");
        }
    }
    // Nothing was fetched, so nothing was written.
    assert!(!output.exists());
}

#[test]
fn recover_never_overwrites_a_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken");
    std::fs::write(&taken, "keep me").unwrap();
    // Refused before the daemon is asked anything: no socket is needed to
    // tell, and the secret stays with the daemon.
    let output = run(sherdctl(home.path())
        .arg("--socket")
        .arg(dir.path().join("sherdd.sock"))
        .args(["recover", "--output"])
        .arg(&taken));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert_eq!(text(&output.stdout), "");
    assert_eq!(
        text(&output.stderr),
        format!(
            "sherdctl: {} exists; the secret is only written to a new file, name another\n",
            taken.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "keep me");
}

#[test]
fn request_recovery_shapes_are_checked_before_the_daemon_is_asked() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shapes = "give either BACKUP (to recover your own backup, or one you are a trustee of) \
                  or --owner OLD --to NEW [--backup BACKUP] (on a custodian's node, for an owner \
                  who lost their device)";
    let cases: &[(&[&str], String)] = &[
        (&[], format!("nothing to recover: {shapes}")),
        (
            &["ab12", "--owner", "12D3KooWOld", "--to", "12D3KooWNew"],
            format!("BACKUP and --owner/--to/--backup do not go together; {shapes}"),
        ),
        (
            &["--owner", "12D3KooWOld"],
            format!("--owner needs --to NEW, the owner's new feed id; {shapes}"),
        ),
        (
            &["--to", "12D3KooWNew"],
            format!("--to needs --owner OLD, the owner's old feed id; {shapes}"),
        ),
        (
            &["--backup", "ab12"],
            "--backup goes with --owner and --to; to recover your own backup, give it \
             alone: `sherdctl request-recovery BACKUP`"
                .to_owned(),
        ),
    ];
    for (args, expected) in cases {
        let output = run(sherdctl(home.path())
            .arg("--socket")
            .arg(dir.path().join("sherdd.sock"))
            .arg("request-recovery")
            .args(*args));
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert_eq!(text(&output.stdout), "", "{args:?}");
        assert_eq!(
            text(&output.stderr),
            format!("sherdctl: {expected}\n"),
            "{args:?}"
        );
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
        (&["contacts", "auto-approve", "12D3KooWAbc"], "<on|off>"),
        (
            &["contacts", "auto-approve", "12D3KooWAbc", "yes"],
            "invalid value 'yes' for '<on|off>'",
        ),
        (&["approve"], "<REQUEST>"),
        (&["deny"], "<REQUEST>"),
        (
            &["deny", "0a1b", "--reason"],
            "a value is required for '--reason <TEXT>'",
        ),
        (&["forward", "0a1b"], "--to <NEW>"),
        (&["requests", "extra"], "unexpected argument 'extra'"),
        (
            &["recover", "--output", "f", "--show"],
            "'--output <FILE>' cannot be used with '--show'",
        ),
        (&["recover", "--timeout", "0"], "0 is not in 1.."),
        (&["recover", "a", "b"], "unexpected argument 'b'"),
        (&["grants", "extra"], "unexpected argument 'extra'"),
    ];
    for (args, expected) in cases {
        let output = run(sherdctl(home.path()).args(*args));
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert_eq!(text(&output.stdout), "", "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// `backup create` up to its first use of the socket: the secret from
/// `--file`, the custodians, and `extra`.
fn backup_create(home: &Path, socket: &Path, secret: &Path, extra: &[&str]) -> Output {
    run(sherdctl(home)
        .arg("--socket")
        .arg(socket)
        .args(["backup", "create", "--label", "seed", "--threshold", "1"])
        .args(["--custodian", "12D3KooWAbc", "--file"])
        .arg(secret)
        .args(extra))
}

#[test]
fn backup_create_takes_trustees_and_their_terms() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sherdd.sock");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "my seed words").unwrap();
    let accepted: &[&[&str]] = &[
        &[],
        &["--trustee", "12D3KooWT"],
        &[
            "--trustee",
            "12D3KooWT",
            "--trustee",
            "12D3KooWU",
            "--veto-delay",
            "3d",
            "--one-time",
            "--release",
            "auto",
        ],
        &["--trustee", "12D3KooWT", "--veto-delay", "90"],
        &["--trustee", "12D3KooWT", "--veto-delay", "30m"],
        &["--trustee", "12D3KooWT", "--veto-delay", "365d"],
        &["--trustee", "12D3KooWT", "--release", "approve"],
    ];
    for extra in accepted {
        for json in [false, true] {
            let mut extra = extra.to_vec();
            if json {
                extra.push("--json");
            }
            let output = backup_create(home.path(), &socket, &secret, &extra);
            assert_unreachable(&output, &socket, "no socket there");
        }
    }
    let forms = "write a number and a unit: 90s, 30m, 72h or 3d (a bare number is seconds)";
    let too_long = "at most 365d (a year, 31536000 seconds)";
    let refused: &[(&[&str], String)] = &[
        (
            &["--trustee", "12D3KooWT", "--veto-delay", "2w"],
            format!("invalid value '2w' for '--veto-delay <DURATION>': {forms}"),
        ),
        (
            &["--trustee", "12D3KooWT", "--veto-delay", "1.5h"],
            format!("invalid value '1.5h' for '--veto-delay <DURATION>': {forms}"),
        ),
        (
            &["--trustee", "12D3KooWT", "--veto-delay", ""],
            format!("invalid value '' for '--veto-delay <DURATION>': {forms}"),
        ),
        (
            &["--trustee", "12D3KooWT", "--veto-delay", "366d"],
            format!("invalid value '366d' for '--veto-delay <DURATION>': {too_long}"),
        ),
        (
            &["--trustee", "12D3KooWT", "--release", "sometimes"],
            "invalid value 'sometimes' for '--release <approve|auto>'".to_owned(),
        ),
        (
            &["--trustee"],
            "a value is required for '--trustee <FEED>'".to_owned(),
        ),
        // The terms of emergency access mean nothing without a trustee.
        (
            &["--veto-delay", "3d"],
            "the following required arguments were not provided:\n  --trustee <FEED>".to_owned(),
        ),
        (
            &["--one-time"],
            "the following required arguments were not provided:\n  --trustee <FEED>".to_owned(),
        ),
        (
            &["--release", "auto"],
            "the following required arguments were not provided:\n  --trustee <FEED>".to_owned(),
        ),
    ];
    for (extra, expected) in refused {
        let output = backup_create(home.path(), &socket, &secret, extra);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {output:?}");
        assert_eq!(text(&output.stdout), "", "{extra:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
    let output = run(sherdctl(home.path()).args(["backup", "create", "--help"]));
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    for flag in [
        "--trustee <FEED>",
        "--veto-delay <DURATION>",
        "--one-time",
        "--release <approve|auto>",
        "[default: 72h]",
        "`sherdctl deny REQUEST`",
    ] {
        assert!(help.contains(flag), "no {flag} in:\n{help}");
    }
}

#[test]
fn help_lists_every_command_and_the_exit_statuses() {
    let home = tempfile::tempdir().unwrap();
    let output = run(sherdctl(home.path()).arg("--help"));
    assert_eq!(output.status.code(), Some(0));
    let help = text(&output.stdout);
    for command in [
        "id",
        "status",
        "peers",
        "connect",
        "contacts",
        "backup",
        "shards",
        "grants",
        "request-recovery",
        "requests",
        "approve",
        "deny",
        "forward",
        "recover",
        "events",
        "audit",
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
    for command in ["add", "list", "remove", "auto-approve"] {
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
