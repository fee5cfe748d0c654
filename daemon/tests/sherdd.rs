//! `sherdd` as a black box: what a user sees when it cannot start,
//! `sherdd reindex` beside and after a running daemon, and the TEST ONLY
//! routes of `--test-hooks` (absent without the flag; a flood is blocked
//! and the victim keeps answering).

use std::process::Command;
use std::time::{Duration, Instant};

fn sherdd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sherdd"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHERD_") {
            c.env_remove(key);
        }
    }
    c
}

#[test]
fn a_bad_listen_address_is_named_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let out = sherdd()
        .arg("--data-dir")
        .arg(dir.path().join("node"))
        .args(["--listen", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("sherdd: config `network.listen`: \"nonsense\" is not a multiaddr"),
        "{err}"
    );
    assert!(!dir.path().join("node").exists(), "nothing was created");
}

#[test]
fn a_key_file_others_can_read_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = data.join("identity.key");
    // A valid plain key file (magic, version 1, kind plain, public key, seed).
    let kp = sherd_protocol::Keypair::from_seed(&[7; 32]);
    let mut bytes = b"SHERDKEY\x01\x01".to_vec();
    bytes.extend_from_slice(kp.feed_id().as_bytes());
    bytes.extend_from_slice(&[7; 32]);
    std::fs::write(&key, bytes).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sherdd()
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--mdns", "false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has mode 0644"), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
}

/// A `sherdd` started by a test: killed and reaped on drop, whatever the
/// test's fate.
struct Running {
    child: std::process::Child,
    log: std::path::PathBuf,
    /// The banner's lines, up to the first `listen` one.
    banner: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts a daemon on loopback, mDNS off, and waits (bounded) for its banner.
    fn start(data: &std::path::Path, log: std::path::PathBuf) -> Self {
        Self::start_with(data, log, &[])
    }

    /// [`Running::start`] with more arguments.
    fn start_with(data: &std::path::Path, log: std::path::PathBuf, args: &[&str]) -> Self {
        use std::io::BufRead;
        use std::process::Stdio;

        let child = sherdd()
            .env("RUST_LOG", "info")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--mdns", "false"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut running = Self {
            child,
            log,
            banner: Vec::new(),
        };
        let stdout = running.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads to the end, so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.trim_start().starts_with("listen ") => {
                    running.banner.push(line);
                    return running;
                }
                Ok(line) => running.banner.push(line),
                Err(_) => panic!(
                    "sherdd gave no banner within {LIMIT:?}; its log:\n{}",
                    running.log_text()
                ),
            }
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (through kill(1): no `unsafe` here), then a bounded wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "sherdd did not stop within {LIMIT:?} of SIGTERM; its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}; its log:\n{}", self.log_text());
    }
}

/// How long any one wait of these tests may take.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `command` to its end within [`LIMIT`] (killed past it), capturing both streams.
fn output_within(mut command: Command, dir: &std::path::Path) -> std::process::Output {
    let (out, err) = (dir.join("out"), dir.join("err"));
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(out).unwrap(),
        stderr: std::fs::read(err).unwrap(),
    }
}

#[test]
fn reindex_is_refused_beside_a_running_daemon_and_works_once_it_stopped() {
    use sherd_daemon::store::{IncomingEntry, Store};
    use sherd_protocol::Keypair;
    use sherd_protocol::entry::{PayloadKind, SignedHeader};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let reindex = || {
        let mut c = sherdd();
        c.arg("reindex").arg("--data-dir").arg(&data);
        c
    };

    let daemon = Running::start(&data, dir.path().join("sherdd.log"));
    let out = output_within(reindex(), dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "sherdd: a daemon is running on this data dir; stop it first ({} is open in another process)\n",
            data.join("store.redb").display()
        )
    );
    assert!(out.stdout.is_empty());
    daemon.stop();

    // Feeds of two peers in the store the daemon left, as replication would
    // have put them there.
    let store_path = data.join("store.redb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (feeds, entries) = rt.block_on(async {
        let (store, thread) = Store::open(
            &store_path,
            std::sync::Arc::new(Keypair::from_seed(&[1; 32])),
        )
        .unwrap();
        for (seed, n) in [(2u8, 3usize), (3, 5)] {
            let kp = Keypair::from_seed(&[seed; 32]);
            let mut run: Vec<IncomingEntry> = Vec::new();
            for i in 0..n {
                let payload = format!("{{\"n\":{i}}}").into_bytes();
                let prev = run.last().map(|e| &e.header);
                let header = SignedHeader::sign_next(
                    &kp,
                    prev,
                    1_700_000_000_000,
                    PayloadKind::Public,
                    &payload,
                )
                .unwrap();
                run.push(IncomingEntry {
                    header,
                    payload: Some(payload),
                });
            }
            let out = store
                .ingest(kp.feed_id(), run, 1_700_000_000_000)
                .await
                .unwrap();
            assert_eq!(out.appended, n);
        }
        let feeds = store.feeds().unwrap();
        drop(store);
        thread.join();
        (feeds.len(), feeds.iter().map(|(_, seq)| seq).sum::<u64>())
    });
    assert!(
        feeds >= 2 && entries >= 8,
        "{feeds} feeds, {entries} entries"
    );

    let out = output_within(reindex(), dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seconds = stdout
        .strip_prefix(&format!("reindexed {feeds} feeds, {entries} entries in "))
        .and_then(|rest| rest.strip_suffix(" s\n"))
        .unwrap_or_else(|| panic!("unexpected summary: {stdout:?}"));
    assert!(seconds.parse::<f64>().is_ok(), "{stdout:?}");
    assert!(out.stderr.is_empty());

    // The daemon starts again on the reindexed store.
    Running::start(&data, dir.path().join("sherdd-2.log")).stop();
}

/// A client of the daemon in `data`, once its control socket answers.
async fn client_of(data: &std::path::Path) -> sherd_api::Client {
    let client = sherd_api::Client::new(data.join(sherd_api::SOCKET_NAME));
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match client.status().await {
            Ok(_) => return client,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the daemon in {} does not answer: {e}", data.display()),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_test_routes_exist_only_with_the_test_hooks_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let rt = runtime();
    let body = |peer: &str| Some(format!(r#"{{"peer":"{peer}"}}"#).into_bytes());
    let other = sherd_protocol::Keypair::from_seed(&[9; 32])
        .feed_id()
        .to_string();

    let plain = Running::start(&data, dir.path().join("plain.log"));
    assert!(
        !plain.banner.iter().any(|l| l.contains("WARNING")),
        "{:?}",
        plain.banner
    );
    rt.block_on(async {
        let client = client_of(&data).await;
        for path in ["/v1/test/block", "/v1/test/flood"] {
            match client.send_raw("POST", path, body(&other)).await {
                Err(sherd_api::ClientError::Api {
                    status,
                    code,
                    message,
                }) => {
                    assert_eq!((status, code.as_str()), (404, "not_found"), "{message}");
                    assert!(message.contains(&format!("no route {path}")), "{message}");
                }
                other => panic!("{path}: expected 404, got {other:?}"),
            }
        }
    });
    plain.stop();

    let hooked = Running::start_with(&data, dir.path().join("hooked.log"), &["--test-hooks"]);
    assert!(
        hooked
            .banner
            .iter()
            .any(|l| l.trim_start().starts_with("WARNING --test-hooks")),
        "{:?}",
        hooked.banner
    );
    rt.block_on(async {
        let client = client_of(&data).await;
        let me = client.status().await.unwrap().feed_id;
        let err = client.test_block(&me).await.unwrap_err();
        assert!(err.is_refusal(), "{err:?}");
        assert!(err.to_string().contains("this node's own feed"), "{err}");
        client.test_block(&other).await.unwrap();
        client.test_unblock(&other).await.unwrap();
        client.test_gossip_drop(0.0).await.unwrap();
    });
    assert!(
        hooked.log_text().contains("test hooks on"),
        "{}",
        hooked.log_text()
    );
    hooked.stop();
}

/// The audit record of `peer`'s block on the node `client` talks to, once
/// there is one.
async fn block_record(client: &sherd_api::Client, peer: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let records = client
            .audit(sherd_api::AuditQuery {
                from: None,
                limit: Some(1000),
            })
            .await
            .unwrap();
        if let Some(r) = records
            .into_iter()
            .map(|r| r.record)
            .find(|r| r["event"] == "peer_blocked" && r["peer"] == peer)
        {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{peer} was not blocked within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn flooding_daemons_are_blocked_and_the_victim_keeps_answering() {
    use sherd_api::test_hooks::TestFlood;

    let dir = tempfile::tempdir().unwrap();
    let node = |name: &str| {
        let data = dir.path().join(name);
        let running = Running::start_with(
            &data,
            dir.path().join(format!("{name}.log")),
            &["--test-hooks"],
        );
        (data, running)
    };
    let (victim_dir, victim) = node("victim");
    let (gossiper_dir, gossiper) = node("gossiper");
    let (syncer_dir, syncer) = node("syncer");
    let rt = runtime();
    rt.block_on(async {
        let v = client_of(&victim_dir).await;
        let g = client_of(&gossiper_dir).await;
        let s = client_of(&syncer_dir).await;
        let v_status = v.status().await.unwrap();
        let g_status = g.status().await.unwrap();
        let s_status = s.status().await.unwrap();
        // The victim follows the gossiper (so its gossip reaches it) and is
        // connected to both.
        v.add_contact(&g_status.feed_id, "gossiper", false)
            .await
            .unwrap();
        v.connect(&g_status.listen[0]).await.unwrap();
        s.connect(&v_status.listen[0]).await.unwrap();
        // The invalid entries continue the gossiper's chain: the victim must
        // hold its head (else they are gaps, fetched, not strikes).
        let g_seq = g_status.feeds[0].seq;
        let deadline = tokio::time::Instant::now() + LIMIT;
        while v
            .status()
            .await
            .unwrap()
            .feeds
            .iter()
            .all(|f| f.feed != g_status.feed_id || f.seq < g_seq)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the victim did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Invalid entries: refused (409) until the gossiper has seen the
        // victim subscribe to its feed.
        let deadline = tokio::time::Instant::now() + LIMIT;
        let gossiped = loop {
            let flood = TestFlood {
                peer: v_status.feed_id.clone(),
                invalid_entries: 20,
                sync_requests: 0,
            };
            match g.test_flood(&flood).await {
                Ok(report) => break report,
                Err(e) if e.to_string().contains("does not follow") => {
                    assert!(tokio::time::Instant::now() < deadline, "{e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(gossiped.invalid_entries, 20, "{gossiped:?}");
        let record = block_record(&v, &g_status.feed_id).await;
        assert_eq!(record["reason"], "invalid entry gossiped", "{record}");

        // Sync requests, with the victim's status asked every 20 ms meanwhile.
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let probe = {
            let v = v.clone();
            tokio::spawn(async move {
                let mut times = Vec::new();
                while !*stopped.borrow_and_update() {
                    let asked = tokio::time::Instant::now();
                    v.status().await.unwrap();
                    times.push(asked.elapsed());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                times
            })
        };
        let flooded = s
            .test_flood(&TestFlood {
                peer: v_status.feed_id.clone(),
                invalid_entries: 0,
                sync_requests: 5_000,
            })
            .await
            .unwrap();
        let record = block_record(&v, &s_status.feed_id).await;
        stop.send(true).unwrap();
        let mut times = probe.await.unwrap();
        times.sort();
        assert_eq!(record["reason"], "too many sync requests", "{record}");
        assert!(flooded.disconnected, "{flooded:?}");
        assert!(flooded.sync_requests < 5_000, "{flooded:?}");
        let worst = *times.last().unwrap();
        eprintln!(
            "invalid gossip: {gossiped:?}\nsync flood: {flooded:?}\nvictim status during the \
             flood: {} answers, median {:?}, worst {worst:?}",
            times.len(),
            times[times.len() / 2],
        );
        assert!(worst < Duration::from_secs(2), "{worst:?}");

        // Both are cut off; the victim answers as before.
        let peers = v.peers().await.unwrap();
        assert!(
            peers
                .iter()
                .all(|p| p.peer_id != g_status.feed_id && p.peer_id != s_status.feed_id),
            "{peers:?}"
        );
    });
    victim.stop();
    gossiper.stop();
    syncer.stop();
}
