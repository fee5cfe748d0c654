//! The notifiers against the real thing: commands run by the OS, mail sent
//! to a real SMTP server (aiosmtpd) on 127.0.0.1, failures audited in a real
//! store.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use serde_json::{Value, json};
use sherd_api::Event;
use sherd_protocol::content::RequestKind;
use sherd_protocol::{BackupId, EntryId, FeedId, Keypair, RequestId};
use tokio::sync::broadcast;

use super::command::{self, CommandError};
use super::notice::{self, Notice};
use super::smtp::Mailer;
use super::*;
use crate::engine::records::{RequestRecord, RequestState, Role};
use crate::store::{Store, StoreThread};

/// How long a test waits for something that takes milliseconds.
const LIMIT: Duration = Duration::from_secs(20);

fn feed(seed: u8) -> FeedId {
    Keypair::from_seed(&[seed; 32]).feed_id()
}

fn request_received() -> Event {
    Event::RequestReceived {
        request: RequestId([7; 16]).to_string(),
        kind: "owner".into(),
        backup: BackupId([8; 32]).to_string(),
        requester: feed(2).to_string(),
        recipient: feed(2).to_string(),
    }
}

fn record(role: Role, state: RequestState) -> RequestRecord {
    RequestRecord {
        kind: RequestKind::Owner,
        role,
        backup: BackupId([8; 32]),
        owner: feed(2),
        recipient: feed(2),
        custodians: vec![feed(1)],
        entry: EntryId([9; 32]),
        received_ms: 1_000,
        expires_ms: 2_000,
        state,
    }
}

fn notice_of(event: &Event, record: Option<RequestRecord>) -> Option<Notice> {
    Notice::of_event(
        event,
        &Selection::default(),
        &feed(1),
        1_700_000_000_000,
        record.as_ref(),
    )
}

#[test]
fn the_default_selection_is_what_a_person_acts_on_or_should_know() {
    let selection = Selection::default();
    for kind in [
        "request_received",
        "release_due",
        "request_denied",
        "shard_released",
        "recovery_complete",
        "recovery_failed",
        "shard_erased",
        "revoke_acked",
        "peer_blocked",
        "lagged",
    ] {
        assert!(selection.wants(kind), "{kind}");
    }
    for kind in [
        "entry_stored",
        "peer_connected",
        "ack_received",
        "shard_held",
    ] {
        assert!(!selection.wants(kind), "{kind}");
    }
    assert!(Selection::All.wants("entry_stored"));
    for kind in DEFAULT_KINDS {
        assert!(ALL_KINDS.contains(kind), "{kind}");
    }
    let stored = Event::EntryStored {
        feed: feed(2).to_string(),
        seq: 3,
    };
    assert!(notice_of(&stored, None).is_none());
}

#[test]
fn a_request_to_decide_says_so_and_how() {
    let pending = record(Role::Custodian, RequestState::Pending);
    let notice = notice_of(&request_received(), Some(pending)).unwrap();
    assert_eq!(notice.kind, "request_received");
    assert_eq!(
        notice.subject,
        "sherd: a recovery request waits for your approval"
    );
    let id = RequestId([7; 16]).to_string();
    assert!(
        notice.text.contains(&format!("`sherdctl approve {id}`")),
        "{}",
        notice.text
    );
    // The event as the stream sends it, plus what the notifier adds.
    let json = &notice.json;
    assert_eq!(json["event"], "request_received");
    assert_eq!(json["request"], id.as_str());
    assert_eq!(json["node"], feed(1).to_string().as_str());
    assert_eq!(json["time_ms"], 1_700_000_000_000u64);
    assert_eq!(json["role"], "custodian");
    assert_eq!(json["state"], "pending");
    assert_eq!(
        json["summary"],
        "a recovery request waits for your approval"
    );
    assert!(json.get("veto_ends_ms").is_none());
}

#[test]
fn a_trustee_request_tells_the_owner_when_the_veto_window_ends() {
    let ends = 1_700_000_000_000 + 72 * 3_600_000;
    let waiting = record(
        Role::Owner,
        RequestState::Waiting {
            release_at_ms: ends,
        },
    );
    let notice = notice_of(&request_received(), Some(waiting)).unwrap();
    assert_eq!(
        notice.subject,
        "sherd: a trustee asks for your backup; veto it before 2023-11-17 22:13 UTC"
    );
    assert!(
        notice.text.contains("(72 hours from now)"),
        "{}",
        notice.text
    );
    assert!(notice.text.contains("`sherdctl deny "), "{}", notice.text);
    assert_eq!(notice.json["veto_ends_ms"], ends);
    assert_eq!(notice.json["role"], "owner");

    let custodian = record(
        Role::Custodian,
        RequestState::Waiting {
            release_at_ms: ends,
        },
    );
    let notice = notice_of(&request_received(), Some(custodian)).unwrap();
    assert_eq!(
        notice.subject,
        "sherd: an emergency request's veto window runs until 2023-11-17 22:13 UTC"
    );
    // Without a record, the words still say what came.
    let notice = notice_of(&request_received(), None).unwrap();
    assert_eq!(notice.subject, "sherd: a recovery request arrived");
    assert!(notice.json.get("role").is_none());
}

#[test]
fn every_default_kind_has_its_own_words_and_no_added_field_hides_the_events() {
    let backup = BackupId([8; 32]).to_string();
    let request = RequestId([7; 16]).to_string();
    let events = [
        Event::ReleaseDue {
            request: request.clone(),
            backup: backup.clone(),
        },
        Event::ShardReleased {
            request: request.clone(),
            backup: backup.clone(),
            recipient: feed(3).to_string(),
        },
        Event::RequestDenied {
            request: request.clone(),
            backup: backup.clone(),
            by: feed(2).to_string(),
        },
        Event::RecoveryComplete {
            backup: backup.clone(),
        },
        Event::RecoveryFailed {
            backup: backup.clone(),
            reason: "too few shards".into(),
        },
        Event::ShardErased {
            backup: backup.clone(),
            owner: feed(2).to_string(),
        },
        Event::RevokeAcked {
            backup: backup.clone(),
            custodian: feed(3).to_string(),
            erased: 1,
            custodians: 3,
        },
        Event::GrantReceived {
            backup: backup.clone(),
            owner: feed(2).to_string(),
        },
        Event::PeerBlocked {
            peer: "12D3KooWA".into(),
            duration_secs: 600,
        },
    ];
    let mut subjects = std::collections::BTreeSet::new();
    for event in &events {
        let notice = notice_of(event, None).unwrap();
        let original = serde_json::to_value(event).unwrap();
        for (key, value) in original.as_object().unwrap() {
            assert_eq!(&notice.json[key], value, "{key} of {}", notice.kind);
        }
        assert!(notice.subject.starts_with("sherd: "), "{}", notice.subject);
        assert!(!notice.text.is_empty());
        assert!(
            subjects.insert(notice.subject.clone()),
            "{}",
            notice.subject
        );
    }
    let blocked = notice_of(events.last().unwrap(), None).unwrap();
    assert!(blocked.text.contains("for 10 minutes"), "{}", blocked.text);
}

#[test]
fn a_missed_stretch_is_one_notification() {
    let notice = Notice::missed(3, &Selection::default(), &feed(1), 5).unwrap();
    assert_eq!(notice.subject, "sherd: 3 events missed");
    assert_eq!(notice.json["event"], "lagged");
    assert_eq!(notice.json["missed"], 3);
    let only_requests = Selection::Kinds(vec!["request_received"]);
    assert!(Notice::missed(3, &only_requests, &feed(1), 5).is_none());
}

#[test]
fn times_and_spans_read_as_people_write_them() {
    assert_eq!(notice::utc(0), "1970-01-01 00:00 UTC");
    assert_eq!(notice::utc(951_782_400_000), "2000-02-29 00:00 UTC");
    assert_eq!(notice::utc(1_700_000_000_000), "2023-11-14 22:13 UTC");
    assert_eq!(notice::utc(4_102_444_799_000), "2099-12-31 23:59 UTC");
    assert_eq!(notice::span(1), "1 second");
    assert_eq!(notice::span(600), "10 minutes");
    assert_eq!(notice::span(72 * 3_600), "72 hours");
    assert_eq!(notice::span(7 * 86_400), "7 days");
}

fn sh(script: &str, timeout: Duration) -> CommandConfig {
    CommandConfig {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        timeout,
    }
}

fn sample_notice() -> Notice {
    let pending = record(Role::Custodian, RequestState::Pending);
    notice_of(&request_received(), Some(pending)).unwrap()
}

#[tokio::test]
async fn a_command_gets_the_notification_whole_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got.json");
    let script = format!("cat > '{}'", out.display());
    let notice = sample_notice();
    command::run(&sh(&script, Duration::from_secs(10)), &notice.json_line())
        .await
        .unwrap();
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(got.ends_with('\n') && got.lines().count() == 1, "{got:?}");
    let parsed: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(parsed, notice.json);
}

#[tokio::test]
async fn a_command_that_hangs_is_killed_at_its_time_limit() {
    let started = Instant::now();
    let err = command::run(&sh("exec sleep 30", Duration::from_millis(300)), b"{}\n")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "killed after 300 ms without finishing");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // One that never reads its input does not hang on it either.
    let err = command::run(
        &sh("exec sleep 30", Duration::from_millis(300)),
        &[b'x'; 200_000],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CommandError::TimedOut(_)), "{err}");
}

/// Whether process `pid` is gone (or a zombie left for its reaper).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[tokio::test]
async fn what_a_command_started_is_killed_with_it_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // The shell starts a background sleep, says its pid, and waits on it.
    let script = format!("sleep 30 & echo $! > '{}'; wait", pidfile.display());
    let err = command::run(&sh(&script, Duration::from_millis(500)), b"{}\n")
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::TimedOut(_)), "{err}");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_gone(pid) {
        assert!(
            Instant::now() < deadline,
            "the background sleep {pid} lives on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_failing_command_is_reported_with_its_status_and_stderr() {
    let err = command::run(
        &sh(
            "cat > /dev/null; echo 'no route' >&2; echo 'to host' >&2; exit 3",
            LIMIT,
        ),
        b"{}\n",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CommandError::Failed { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "exit status: 3; stderr ends: no route / to host"
    );
    let missing = CommandConfig {
        argv: vec!["/nonexistent/sherd-notify".into()],
        timeout: LIMIT,
    };
    let err = command::run(&missing, b"{}\n").await.unwrap_err();
    assert!(matches!(err, CommandError::Spawn(_)), "{err}");
}

fn open_store(dir: &Path) -> (Store, StoreThread) {
    Store::open(
        &dir.join("store.redb"),
        Arc::new(Keypair::from_seed(&[1; 32])),
    )
    .unwrap()
}

/// Polls `probe` every 20 ms until it gives a value; fails past [`LIMIT`].
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn audit_lines(store: &Store) -> Vec<Value> {
    store
        .audit_log(0, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| serde_json::from_slice(&bytes).unwrap())
        .collect()
}

#[tokio::test]
async fn a_failing_command_is_audited_and_later_notifications_still_go_out() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _thread) = open_store(dir.path());
    let out = dir.path().join("delivered");
    // Fails on a release, hangs on a denial, delivers anything else.
    let script = format!(
        "n=$(cat); case \"$n\" in *shard_released*) echo refused >&2; exit 1;; \
         *request_denied*) exec sleep 30;; esac; printf '%s\\n' \"$n\" >> '{}'",
        out.display()
    );
    let config = NotifyConfig {
        commands: vec![sh(&script, Duration::from_secs(2))],
        ..NotifyConfig::default()
    };
    let (events, rx) = broadcast::channel(16);
    let notifier = Notifier::start(config, feed(1), rx, store.clone()).unwrap();
    let backup = BackupId([8; 32]).to_string();
    let request = RequestId([7; 16]).to_string();
    for event in [
        Event::ShardReleased {
            request: request.clone(),
            backup: backup.clone(),
            recipient: feed(3).to_string(),
        },
        Event::RequestDenied {
            request: request.clone(),
            backup: backup.clone(),
            by: feed(2).to_string(),
        },
        Event::EntryStored {
            feed: feed(2).to_string(),
            seq: 1,
        },
        Event::RecoveryComplete {
            backup: backup.clone(),
        },
    ] {
        events.send(event).unwrap();
    }
    let delivered = eventually("the notification after the failures", || {
        std::fs::read_to_string(&out).ok().filter(|s| !s.is_empty())
    })
    .await;
    let kinds: Vec<String> = delivered
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // entry_stored is not selected by default.
    assert_eq!(kinds, ["recovery_complete"]);
    let failures = eventually("two audit lines", || {
        let lines: Vec<Value> = audit_lines(&store)
            .into_iter()
            .filter(|l| l["event"] == "notification_failed")
            .collect();
        (lines.len() == 2).then_some(lines)
    })
    .await;
    assert_eq!(failures[0]["kind"], "shard_released");
    assert_eq!(failures[0]["notifier"], "command sh");
    assert_eq!(
        failures[0]["reason"],
        "exit status: 1; stderr ends: refused"
    );
    assert_eq!(failures[1]["kind"], "request_denied");
    assert_eq!(failures[1]["reason"], "killed after 2 s without finishing");
    notifier.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_request_is_described_from_its_record_even_one_committed_just_after_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _thread) = open_store(dir.path());
    let out = dir.path().join("delivered");
    let config = NotifyConfig {
        commands: vec![sh(&format!("cat >> '{}'", out.display()), LIMIT)],
        ..NotifyConfig::default()
    };
    let (events, rx) = broadcast::channel(16);
    let notifier = Notifier::start(config, feed(1), rx, store.clone()).unwrap();
    events.send(request_received()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pending = record(Role::Custodian, RequestState::Pending);
    store
        .engine_write(crate::store::EngineWrite::updates(vec![
            crate::store::EngineUpdate::Request {
                requester: feed(2),
                id: RequestId([7; 16]),
                record: serde_json::to_vec(&pending).unwrap(),
            },
        ]))
        .await
        .unwrap();
    let line = eventually("the notification", || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .await;
    let got: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(got["summary"], "a recovery request waits for your approval");
    assert_eq!(got["role"], "custodian");
    assert_eq!(got["state"], "pending");
    notifier.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_notifier_that_fell_behind_says_how_many_events_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _thread) = open_store(dir.path());
    let out = dir.path().join("delivered");
    let script = format!("cat >> '{}'", out.display());
    let config = NotifyConfig {
        commands: vec![sh(&script, LIMIT)],
        ..NotifyConfig::default()
    };
    // Five events into a channel that keeps two, before the notifier reads.
    let (events, rx) = broadcast::channel(2);
    for n in 0..5 {
        events
            .send(Event::RecoveryComplete {
                backup: format!("backup {n}"),
            })
            .unwrap();
    }
    let notifier = Notifier::start(config, feed(1), rx, store).unwrap();
    let lines = eventually("three notifications", || {
        let text = std::fs::read_to_string(&out).ok()?;
        (text.lines().count() == 3).then_some(text)
    })
    .await;
    let got: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got[0]["event"], "lagged");
    assert_eq!(got[0]["missed"], 3);
    assert_eq!(got[1]["backup"], "backup 3");
    assert_eq!(got[2]["backup"], "backup 4");
    notifier.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn shutdown_is_bounded_even_with_a_command_running() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _thread) = open_store(dir.path());
    let config = NotifyConfig {
        commands: vec![sh("exec sleep 30", Duration::from_secs(60))],
        ..NotifyConfig::default()
    };
    let (events, rx) = broadcast::channel(16);
    let notifier = Notifier::start(config, feed(1), rx, store).unwrap();
    events
        .send(Event::RecoveryComplete { backup: "b".into() })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    notifier.shutdown(Duration::from_millis(200)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

fn smtp_config(port: u16) -> SmtpConfig {
    let mailbox = |s: &str| s.parse::<Mailbox>().unwrap();
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: SmtpTls::None,
        from: mailbox("sherd <sherd@example.org>"),
        to: vec![
            mailbox("owner@example.org"),
            mailbox("Second <second@example.org>"),
        ],
        credentials: None,
    }
}

#[tokio::test]
async fn a_mail_server_that_is_down_is_retried_a_bounded_number_of_times() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer = Mailer::new(
        smtp_config(port),
        Duration::from_secs(5),
        vec![Duration::from_millis(10); 2],
    )
    .unwrap();
    let err = mailer.deliver(&sample_notice()).await.unwrap_err();
    assert!(err.ends_with("(3 attempts)"), "{err}");
}

/// A real SMTP server, aiosmtpd, writing what it receives into a Maildir;
/// killed on drop, so a failing test leaves no process behind.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// The server, or `None` (with the reason printed) when no Python with
    /// aiosmtpd is given: `SHERD_TEST_PYTHON`. With
    /// `SHERD_REQUIRE_SMTP_TEST=1` (scripts/test.sh sets both) its absence
    /// fails the test instead.
    fn start() -> Option<Self> {
        let Some(python) = std::env::var_os("SHERD_TEST_PYTHON") else {
            let why = "SHERD_TEST_PYTHON is not set (a python with aiosmtpd; \
                       scripts/test.sh makes one in target/test-venv)";
            assert!(
                std::env::var("SHERD_REQUIRE_SMTP_TEST").as_deref() != Ok("1"),
                "SHERD_REQUIRE_SMTP_TEST=1 but {why}"
            );
            eprintln!("skipping the SMTP test: {why}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        let log = dir.path().join("aiosmtpd.log");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log_file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("cannot start SHERD_TEST_PYTHON -m aiosmtpd");
        let mut server = Self {
            child,
            port,
            maildir,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("aiosmtpd exited ({status}): {}", server.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The messages received, as text.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .map(|e| {
                let mut text = String::new();
                std::fs::File::open(e.unwrap().path())
                    .unwrap()
                    .read_to_string(&mut text)
                    .unwrap();
                text.replace("\r\n", "\n")
            })
            .collect()
    }
}

/// Undoes quoted-printable (RFC 2045 6.7): soft line breaks and `=XX`.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let mut out = Vec::new();
    let mut bytes = joined.bytes();
    while let Some(b) = bytes.next() {
        if b == b'=' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_notification_arrives_by_mail_at_a_real_smtp_server() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let mailer = Mailer::new(smtp_config(server.port), LIMIT, Vec::new()).unwrap();
    let notice = sample_notice();
    mailer.deliver(&notice).await.unwrap();
    let message = eventually("the mail in the Maildir", || {
        server.messages().into_iter().next()
    })
    .await;
    let (headers, body) = message.split_once("\n\n").unwrap();
    // Unfold long header lines before looking at them.
    let headers = headers.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} header in:\n{headers}"))
            .to_owned()
    };
    assert_eq!(
        header("Subject"),
        "sherd: a recovery request waits for your approval"
    );
    assert_eq!(
        header("To"),
        "owner@example.org, Second <second@example.org>"
    );
    assert_eq!(header("From"), "sherd <sherd@example.org>");
    assert_eq!(header("X-RcptTo"), "owner@example.org, second@example.org");
    assert!(
        header("Content-Type").starts_with("text/plain; charset=utf-8"),
        "{headers}"
    );
    // lettre picks 7bit, or quoted-printable for lines over 76 characters.
    let body = match header("Content-Transfer-Encoding").as_str() {
        "7bit" => body.to_owned(),
        "quoted-printable" => decode_quoted_printable(body),
        other => panic!("unexpected encoding {other}"),
    };
    assert!(
        body.starts_with("a recovery request waits for your approval\n"),
        "{body}"
    );
    let json = body
        .split_once("The event, as JSON:\n\n")
        .and_then(|(_, rest)| rest.split_once("\n\n-- \n"))
        .map(|(json, _)| json)
        .unwrap_or_else(|| panic!("no JSON in:\n{body}"));
    let parsed: Value = serde_json::from_str(json).unwrap();
    assert_eq!(parsed, notice.json);
    assert_eq!(parsed["request"], json!(RequestId([7; 16]).to_string()));
    drop(server);
}
