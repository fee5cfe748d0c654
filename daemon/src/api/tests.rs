//! The control API over a real socket in a temporary dir, driven by the
//! `sherd-api` client, with a mock backend that records what reaches it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use sherd_api::test_hooks::{TestEntry, TestFillReport, TestFlood, TestFloodReport};
use sherd_api::{
    AuditQuery, AuditRecord, Client, ClientError, Contact, Event, FeedStatus, Peer, SOCKET_NAME,
    Status, StreamItem,
};
use sherd_protocol::{FeedId, Keypair};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use super::{ApiError, ApiServeError, ControlBackend, serve};

/// No test may take longer than this.
const LIMIT: Duration = Duration::from_secs(20);

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("the test took too long")
}

fn feed(seed: u8) -> FeedId {
    Keypair::from_seed(&[seed; 32]).feed_id()
}

/// Records every call; contacts are kept so that remove and add can fail as
/// the node would; `fail` makes the next call fail.
struct Mock {
    calls: Mutex<Vec<String>>,
    contacts: Mutex<Vec<Contact>>,
    fail: Mutex<Option<ApiError>>,
    events: broadcast::Sender<Event>,
    /// Whether it serves the test routes (as `sherdd --test-hooks`).
    test_hooks: bool,
}

impl Mock {
    fn new(event_capacity: usize) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            contacts: Mutex::new(Vec::new()),
            fail: Mutex::new(None),
            events: broadcast::channel(event_capacity).0,
            test_hooks: false,
        }
    }

    fn with_test_hooks() -> Self {
        Self {
            test_hooks: true,
            ..Self::new(64)
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn call(&self, call: String) -> Result<(), ApiError> {
        self.calls.lock().unwrap().push(call);
        match self.fail.lock().unwrap().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl ControlBackend for Mock {
    async fn status(&self) -> Result<Status, ApiError> {
        self.call("status".into())?;
        Ok(Status {
            feed_id: feed(1).to_string(),
            version: "0.1.0".into(),
            listen: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            peers: 2,
            feeds: vec![FeedStatus {
                feed: feed(1).to_string(),
                name: None,
                seq: 7,
            }],
            received: sherd_api::Received::default(),
        })
    }

    async fn peers(&self) -> Result<Vec<Peer>, ApiError> {
        self.call("peers".into())?;
        Ok(vec![Peer {
            peer_id: feed(2).to_string(),
        }])
    }

    async fn connect(&self, addr: libp2p::Multiaddr) -> Result<(), ApiError> {
        self.call(format!("connect {addr}"))
    }

    async fn contacts(&self) -> Result<Vec<Contact>, ApiError> {
        self.call("contacts".into())?;
        Ok(self.contacts.lock().unwrap().clone())
    }

    async fn add_contact(
        &self,
        feed: FeedId,
        name: String,
        auto_approve: bool,
    ) -> Result<Contact, ApiError> {
        self.call(format!("add_contact {feed} {name} {auto_approve}"))?;
        let mut contacts = self.contacts.lock().unwrap();
        let feed = feed.to_string();
        if contacts.iter().any(|c| c.feed == feed) {
            return Err(ApiError::Conflict(format!("{feed} is already a contact")));
        }
        let contact = Contact {
            feed,
            name,
            auto_approve,
        };
        contacts.push(contact.clone());
        Ok(contact)
    }

    async fn remove_contact(&self, feed: FeedId) -> Result<(), ApiError> {
        self.call(format!("remove_contact {feed}"))?;
        let mut contacts = self.contacts.lock().unwrap();
        let feed = feed.to_string();
        let before = contacts.len();
        contacts.retain(|c| c.feed != feed);
        if contacts.len() == before {
            return Err(ApiError::NotFound(format!("{feed} is not a contact")));
        }
        Ok(())
    }

    async fn audit(&self, from: u64, limit: usize) -> Result<Vec<AuditRecord>, ApiError> {
        self.call(format!("audit {from} {limit}"))?;
        Ok((from..from + 2)
            .map(|seq| AuditRecord {
                seq,
                record: json!({ "what": "test", "seq": seq }),
            })
            .collect())
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn create_backup(
        &self,
        request: super::NewBackup,
    ) -> Result<sherd_api::Backup, ApiError> {
        self.call(format!(
            "create_backup {} {} of {} ({} secret bytes)",
            request.label,
            request.threshold,
            request.custodians.len(),
            request.secret.len()
        ))?;
        Ok(sherd_api::Backup {
            id: "ab".repeat(32),
            label: request.label,
            threshold: request.threshold,
            created_ms: 1,
            custodians: Vec::new(),
            trustees: Vec::new(),
            policy: None,
            revoked: false,
            redeemed: None,
        })
    }

    async fn revoke_backup(
        &self,
        id: sherd_protocol::BackupId,
    ) -> Result<sherd_api::Backup, ApiError> {
        self.call(format!("revoke_backup {id}"))?;
        Err(ApiError::NotFound(format!("no backup {id}")))
    }

    async fn reshare_backup(
        &self,
        old: sherd_protocol::BackupId,
        request: super::NewBackup,
    ) -> Result<sherd_api::Reshared, ApiError> {
        self.call(format!(
            "reshare_backup {old} as {} of {}",
            request.threshold,
            request.custodians.len()
        ))?;
        Err(ApiError::NotFound(format!("no backup {old}")))
    }

    async fn grants(&self) -> Result<Vec<sherd_api::Grant>, ApiError> {
        self.call("grants".into())?;
        Ok(Vec::new())
    }

    async fn backups(&self) -> Result<Vec<sherd_api::Backup>, ApiError> {
        self.call("backups".into())?;
        Ok(Vec::new())
    }

    async fn backup(&self, id: sherd_protocol::BackupId) -> Result<sherd_api::Backup, ApiError> {
        self.call(format!("backup {id}"))?;
        Err(ApiError::NotFound(format!("no backup {id}")))
    }

    async fn shards(&self) -> Result<Vec<sherd_api::HeldShard>, ApiError> {
        self.call("shards".into())?;
        Ok(Vec::new())
    }

    async fn set_auto_approve(&self, feed: FeedId, on: bool) -> Result<Contact, ApiError> {
        self.call(format!("set_auto_approve {feed} {on}"))?;
        Err(ApiError::NotFound(format!("{feed} is not a contact")))
    }

    async fn start_recovery(
        &self,
        recovery: super::NewRecovery,
    ) -> Result<sherd_api::RecoveryRequest, ApiError> {
        self.call(format!("start_recovery {recovery:?}"))?;
        Err(ApiError::NotFound("mock: no backups".into()))
    }

    async fn requests(&self) -> Result<Vec<sherd_api::RecoveryRequest>, ApiError> {
        self.call("requests".into())?;
        Ok(Vec::new())
    }

    async fn decide(
        &self,
        id: sherd_protocol::RequestId,
        from: Option<FeedId>,
        decision: super::RequestDecision,
    ) -> Result<sherd_api::RecoveryRequest, ApiError> {
        self.call(format!("decide {id} {from:?} {decision:?}"))?;
        Err(ApiError::NotFound("mock: no requests".into()))
    }

    async fn recoveries(&self) -> Result<Vec<sherd_api::Recovery>, ApiError> {
        self.call("recoveries".into())?;
        Ok(Vec::new())
    }

    async fn recovery(
        &self,
        backup: sherd_protocol::BackupId,
    ) -> Result<sherd_api::Recovery, ApiError> {
        self.call(format!("recovery {backup}"))?;
        Err(ApiError::NotFound("mock: no recoveries".into()))
    }

    async fn take_secret(
        &self,
        backup: sherd_protocol::BackupId,
    ) -> Result<sherd_api::RecoveredSecret, ApiError> {
        self.call(format!("take_secret {backup}"))?;
        Err(ApiError::NotFound("mock: no recoveries".into()))
    }

    fn test_hooks(&self) -> bool {
        self.test_hooks
    }

    async fn test_block(&self, peer: FeedId) -> Result<(), ApiError> {
        self.call(format!("test_block {peer}"))
    }

    async fn test_unblock(&self, peer: FeedId) -> Result<(), ApiError> {
        self.call(format!("test_unblock {peer}"))
    }

    async fn test_gossip_drop(&self, fraction: f64) -> Result<(), ApiError> {
        self.call(format!("test_gossip_drop {fraction}"))
    }

    async fn test_flood(
        &self,
        peer: FeedId,
        invalid_entries: u32,
        sync_requests: u32,
    ) -> Result<TestFloodReport, ApiError> {
        self.call(format!(
            "test_flood {peer} {invalid_entries} {sync_requests}"
        ))?;
        Ok(TestFloodReport {
            invalid_entries,
            sync_requests,
            sync_answered: sync_requests,
            sync_failed: 0,
            disconnected: false,
            elapsed_ms: 1,
        })
    }

    async fn test_fill(&self, count: u32) -> Result<TestFillReport, ApiError> {
        self.call(format!("test_fill {count}"))?;
        Ok(TestFillReport {
            appended: count,
            head_seq: u64::from(count),
        })
    }

    async fn test_entry(&self, id: sherd_protocol::EntryId) -> Result<TestEntry, ApiError> {
        self.call(format!("test_entry {id}"))?;
        // An entry id of all zeros stands for an erased payload.
        let erased = id.to_string().bytes().all(|b| b == b'0');
        Ok(TestEntry {
            payload_hex: (!erased).then(|| "00ff".to_owned()),
        })
    }
}

/// A server on a socket in its own temporary dir.
struct Harness {
    dir: tempfile::TempDir,
    socket: PathBuf,
    mock: Arc<Mock>,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), ApiServeError>>,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(Mock::new(64)).await
    }

    async fn start_with(mock: Mock) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(SOCKET_NAME);
        let mock = Arc::new(mock);
        let (stop, server) = spawn_server(&socket, Arc::clone(&mock));
        wait_for_socket(&socket).await;
        Self {
            client: Client::new(&socket).with_timeout(Duration::from_secs(5)),
            dir,
            socket,
            mock,
            stop: Some(stop),
            server,
        }
    }

    async fn stop(&mut self) -> Result<(), ApiServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server).await.unwrap()
    }

    /// Sends a raw request and checks the error the daemon answers with:
    /// its status, its code, and that its message contains `message`.
    async fn assert_refused(
        &self,
        method: &str,
        path: &str,
        body: &str,
        (status, code): (u16, &str),
        message: &str,
    ) {
        let bytes = (!body.is_empty() || method == "POST").then(|| body.as_bytes().to_vec());
        match self.client.send_raw(method, path, bytes).await {
            Err(ClientError::Api {
                status: got_status,
                code: got_code,
                message: got,
            }) => {
                let what = format!("{method} {path} {body}: {got}");
                assert_eq!((got_status, got_code.as_str()), (status, code), "{what}");
                assert!(got.contains(message), "{what}: expected {message:?}");
            }
            other => panic!("{method} {path} {body}: expected an error, got {other:?}"),
        }
    }
}

fn spawn_server(
    socket: &Path,
    mock: Arc<Mock>,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), ApiServeError>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let socket = socket.to_path_buf();
    let server = tokio::spawn(async move {
        serve(&socket, mock, async move {
            let _ = stopped.await;
        })
        .await
    });
    (stop, server)
}

async fn wait_for_socket(socket: &Path) {
    while !socket.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn every_endpoint_answers() {
    bounded(async {
        let mut h = Harness::start().await;
        let c = &h.client;

        let status = c.status().await.unwrap();
        assert_eq!(status.feed_id, feed(1).to_string());
        assert_eq!(status.peers, 2);
        assert_eq!(status.feeds[0].seq, 7);

        assert_eq!(c.peers().await.unwrap()[0].peer_id, feed(2).to_string());

        c.connect("/ip4/192.0.2.7/tcp/4001").await.unwrap();

        let added = c
            .add_contact(&feed(3).to_string(), "alice", false)
            .await
            .unwrap();
        assert_eq!(added.name, "alice");
        // A name of exactly the maximum length, in multi-byte characters.
        let long = "é".repeat(64);
        c.add_contact(&feed(4).to_string(), &long, false)
            .await
            .unwrap();
        let contacts = c.contacts().await.unwrap();
        assert_eq!(contacts.len(), 2);
        assert_eq!(contacts[0], added);

        c.remove_contact(&feed(3).to_string()).await.unwrap();

        let records = c.audit(AuditQuery::default()).await.unwrap();
        assert_eq!(records[0].seq, 0);
        assert_eq!(records[1].record["what"], "test");
        c.audit(AuditQuery {
            from: Some(5),
            limit: Some(10),
        })
        .await
        .unwrap();
        // Above the maximum, the limit is capped rather than refused.
        c.audit(AuditQuery {
            from: None,
            limit: Some(5000),
        })
        .await
        .unwrap();

        assert_eq!(
            h.mock.calls(),
            vec![
                "status".to_string(),
                "peers".into(),
                "connect /ip4/192.0.2.7/tcp/4001".into(),
                format!("add_contact {} alice false", feed(3)),
                format!("add_contact {} {long} false", feed(4)),
                "contacts".into(),
                format!("remove_contact {}", feed(3)),
                "audit 0 100".into(),
                "audit 5 10".into(),
                "audit 0 1000".into(),
            ]
        );
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn statuses_of_success_are_201_and_204() {
    bounded(async {
        let mut h = Harness::start().await;
        let body = json!({ "feed": feed(3).to_string(), "name": "bob" }).to_string();
        let created = h
            .client
            .send_raw("POST", "/v1/contacts", Some(body.into_bytes()))
            .await
            .unwrap();
        assert_eq!(created.status, 201);
        let contact: Contact = serde_json::from_slice(&created.body).unwrap();
        assert_eq!(contact.name, "bob");
        let removed = h
            .client
            .send_raw("DELETE", &format!("/v1/contacts/{}", feed(3)), None)
            .await
            .unwrap();
        assert_eq!((removed.status, removed.body.len()), (204, 0));
        let connected = h
            .client
            .send_raw(
                "POST",
                "/v1/connect",
                Some(br#"{"addr":"/ip4/127.0.0.1/tcp/1"}"#.to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(connected.status, 204);
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_before_the_backend() {
    bounded(async {
        let mut h = Harness::start().await;
        let bad = (400, "invalid_request");
        let no_route = (404, "not_found");
        let no_method = (405, "method_not_allowed");

        // Bodies of POST /v1/connect, and what the 400 says.
        let connect: &[(&str, &str)] = &[
            ("{", "invalid body: EOF while parsing"),
            ("", "invalid body: the body is empty"),
            ("[1]", "invalid body: expected a JSON object"),
            ("{}", "invalid body: missing field `addr`"),
            (
                r#"{"addr":"/ip4/1.2.3.4/tcp/1","admin":1}"#,
                "unknown field `admin`",
            ),
            (r#"{"addr":5}"#, "invalid addr: invalid type: integer `5`"),
            (
                r#"{"addr":"/ip4/1.2.3.4/tcp/1"} {}"#,
                "invalid body: data after the JSON value",
            ),
            (r#"{"addr":"not a multiaddr"}"#, "invalid addr: "),
            (r#"{"addr":"/ip4/999.1.1.1/tcp/1"}"#, "invalid addr: "),
            (r#"{"addr":""}"#, "invalid addr: empty"),
        ];
        for (body, message) in connect {
            h.assert_refused("POST", "/v1/connect", body, bad, message)
                .await;
        }

        // Feeds and names for POST /v1/contacts.
        let good = feed(3).to_string();
        let contacts: &[(&str, &str, &str)] = &[
            ("12D3KooWnotafeed", "alice", "invalid feed: not a feed id"),
            ("", "alice", "invalid feed: not a feed id"),
            (&good, "", "invalid name: must not be empty"),
            (&good, " \t ", "invalid name: must not be empty"),
            (
                &good,
                &"a".repeat(65),
                "invalid name: must be at most 64 characters (it has 65)",
            ),
            (
                &good,
                "ali\nce",
                "invalid name: must not contain control characters (found U+000A)",
            ),
            (
                &good,
                "\u{202E}ecila",
                "invalid name: must not contain control characters (found U+202E)",
            ),
        ];
        for (feed, name, message) in contacts {
            let body = json!({ "feed": feed, "name": name }).to_string();
            h.assert_refused("POST", "/v1/contacts", &body, bad, message)
                .await;
        }
        let body = json!({ "feed": good, "name": "a", "auto": true }).to_string();
        let message = "unknown field `auto`";
        h.assert_refused("POST", "/v1/contacts", &body, bad, message)
            .await;

        // Paths and queries.
        let routes: &[(&str, &str, (u16, &str), &str)] = &[
            (
                "DELETE",
                "/v1/contacts/nope",
                bad,
                "invalid feed: not a feed id",
            ),
            ("DELETE", "/v1/contacts/%FF", bad, "invalid feed"),
            (
                "GET",
                "/v1/audit?limit=0",
                bad,
                "invalid limit: must be at least 1",
            ),
            (
                "GET",
                "/v1/audit?limit=ten",
                bad,
                "invalid query: limit: invalid digit",
            ),
            (
                "GET",
                "/v1/audit?from=-1",
                bad,
                "invalid query: from: invalid digit",
            ),
            (
                "GET",
                "/v1/audit?since=3",
                bad,
                "unknown field `since`, expected `from` or `limit`",
            ),
            ("GET", "/v1/nothing", no_route, "no route /v1/nothing"),
            ("GET", "/status", no_route, "the control API is under /v1"),
            (
                "GET",
                "/v1/contacts/a/b",
                no_route,
                "no route /v1/contacts/a/b",
            ),
            (
                "DELETE",
                "/v1/status",
                no_method,
                "DELETE is not allowed on /v1/status",
            ),
            (
                "GET",
                "/v1/connect",
                no_method,
                "GET is not allowed on /v1/connect",
            ),
            (
                "PUT",
                "/v1/contacts",
                no_method,
                "PUT is not allowed on /v1/contacts",
            ),
        ];
        for (method, path, expected, message) in routes {
            h.assert_refused(method, path, "", *expected, message).await;
        }

        assert_eq!(
            h.mock.calls(),
            Vec::<String>::new(),
            "bad input reached the backend"
        );
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn bodies_are_capped_at_64_kib() {
    bounded(async {
        let mut h = Harness::start().await;
        let huge = vec![b' '; 1024 * 1024];
        let (status, code, message) =
            match h.client.send_raw("POST", "/v1/contacts", Some(huge)).await {
                Err(ClientError::Api {
                    status,
                    code,
                    message,
                }) => (status, code, message),
                other => panic!("expected 413, got {other:?}"),
            };
        assert_eq!((status, code.as_str()), (413, "payload_too_large"));
        assert!(message.contains("65536 bytes"), "{message}");
        // Just under the cap is read and parsed.
        let mut padded = br#"{"addr":"/ip4/127.0.0.1/tcp/1""#.to_vec();
        padded.resize(sherd_api::MAX_BODY_BYTES - 1, b' ');
        padded.push(b'}');
        h.client
            .send_raw("POST", "/v1/connect", Some(padded))
            .await
            .unwrap();
        assert_eq!(h.mock.calls(), vec!["connect /ip4/127.0.0.1/tcp/1"]);
        h.stop().await.unwrap();
    })
    .await;
}

// A chunked body declares no length, so the cap is enforced while reading.
// The typed client always sends a length: this one speaks HTTP by hand.
#[tokio::test]
async fn a_chunked_body_is_capped_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    bounded(async {
        let mut h = Harness::start().await;
        let stream = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let writer = tokio::spawn(async move {
            let head = "POST /v1/contacts HTTP/1.1\r\nHost: sherdd\r\n\
                        Transfer-Encoding: chunked\r\n\r\n";
            write.write_all(head.as_bytes()).await?;
            let chunk = format!("2000\r\n{}\r\n", " ".repeat(0x2000));
            for _ in 0..128 {
                write.write_all(chunk.as_bytes()).await?;
            }
            write.write_all(b"0\r\n\r\n").await
        });
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("}") {
            let n = read.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
        // The writer may or may not have been cut off; either is fine.
        let _ = writer.await.unwrap();
        assert_eq!(h.mock.calls(), Vec::<String>::new());
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn backend_errors_keep_their_status_and_code() {
    bounded(async {
        let mut h = Harness::start().await;
        let expect = |result: Result<(), ClientError>, status: u16, code: &str| match result {
            Err(ClientError::Api {
                status: s, code: c, ..
            }) => {
                assert_eq!((s, c.as_str()), (status, code));
            }
            other => panic!("expected {status} {code}, got {other:?}"),
        };
        let err = h
            .client
            .remove_contact(&feed(9).to_string())
            .await
            .map(drop);
        expect(err, 404, "not_found");
        h.client
            .add_contact(&feed(3).to_string(), "a", false)
            .await
            .unwrap();
        let err = h
            .client
            .add_contact(&feed(3).to_string(), "b", false)
            .await
            .map(drop);
        expect(err, 409, "conflict");
        *h.mock.fail.lock().unwrap() = Some(ApiError::Unavailable("the network is down".into()));
        expect(h.client.peers().await.map(drop), 503, "unavailable");
        *h.mock.fail.lock().unwrap() = Some(ApiError::Internal("disk full".into()));
        let err = h.client.status().await.unwrap_err();
        assert_eq!(err.to_string(), "internal error: disk full");
        assert!(!err.is_refusal());
        *h.mock.fail.lock().unwrap() =
            Some(ApiError::invalid("feed", "this is the node's own feed"));
        let err = h
            .client
            .add_contact(&feed(1).to_string(), "me", false)
            .await
            .unwrap_err();
        assert!(err.is_refusal());
        assert_eq!(err.to_string(), "invalid feed: this is the node's own feed");
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_socket_is_private_and_removed_on_shutdown() {
    use std::os::unix::fs::PermissionsExt;
    bounded(async {
        let mut h = Harness::start().await;
        let mode = std::fs::metadata(&h.socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
        h.stop().await.unwrap();
        assert!(h.dir.path().is_dir());
        assert!(!h.socket.exists(), "the socket outlived the server");
        let err = h.client.status().await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn a_second_daemon_on_a_live_socket_is_refused() {
    bounded(async {
        let mut h = Harness::start().await;
        let second = Arc::new(Mock::new(4));
        let err = serve(&h.socket, second, std::future::pending())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiServeError::AlreadyRunning { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("already running"), "{err}");
        // The first one is untouched.
        h.client.status().await.unwrap();
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_other_files_are_not() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(SOCKET_NAME);
        // What a killed daemon leaves: a socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        assert!(socket.exists());
        let mock = Arc::new(Mock::new(4));
        let (stop, server) = spawn_server(&socket, Arc::clone(&mock));
        let client = Client::new(&socket);
        let status = loop {
            match client.status().await {
                Ok(status) => break status,
                Err(ClientError::Unreachable { .. }) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(status.peers, 2);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();

        std::fs::write(&socket, b"not a socket").unwrap();
        let err = serve(&socket, mock, std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(err, ApiServeError::NotASocket { .. }), "{err:?}");
        assert_eq!(std::fs::read(&socket).unwrap(), b"not a socket");
    })
    .await;
}

#[tokio::test]
async fn events_arrive_in_order() {
    bounded(async {
        let mut h = Harness::start().await;
        let mut stream = h.client.events().await.unwrap();
        let sent: Vec<Event> = (0..50)
            .map(|seq| Event::EntryStored {
                feed: feed(1).to_string(),
                seq,
            })
            .chain([
                Event::PeerConnected {
                    peer: feed(2).to_string(),
                },
                Event::PeerBlocked {
                    peer: feed(2).to_string(),
                    duration_secs: 600,
                },
                Event::ContactAdded {
                    feed: feed(3).to_string(),
                    name: "alice".into(),
                },
                Event::ContactRemoved {
                    feed: feed(3).to_string(),
                },
                Event::PeerDisconnected {
                    peer: feed(2).to_string(),
                },
            ])
            .collect();
        for event in &sent {
            h.mock.events.send(event.clone()).unwrap();
        }
        for event in sent {
            let item = stream.next().await.unwrap().unwrap();
            assert_eq!(item, StreamItem::Event(event));
        }
        h.stop().await.unwrap();
    })
    .await;
}

// On a current-thread runtime the server cannot read the subscription while
// the test sends, so the subscriber lags by a known amount.
#[tokio::test(flavor = "current_thread")]
async fn a_lagging_subscriber_is_told_and_stays_connected() {
    bounded(async {
        let mut h = Harness::start_with(Mock::new(4)).await;
        let mut stream = h.client.events().await.unwrap();
        for seq in 0..20 {
            h.mock
                .events
                .send(Event::EntryStored {
                    feed: feed(1).to_string(),
                    seq,
                })
                .unwrap();
        }
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            StreamItem::Lagged { missed: 16 }
        );
        for seq in 16..20 {
            assert_eq!(
                stream.next().await.unwrap().unwrap(),
                StreamItem::Event(Event::EntryStored {
                    feed: feed(1).to_string(),
                    seq
                })
            );
        }
        // Still connected: later events arrive too.
        h.mock
            .events
            .send(Event::ContactRemoved {
                feed: feed(3).to_string(),
            })
            .unwrap();
        assert!(matches!(
            stream.next().await.unwrap().unwrap(),
            StreamItem::Event(Event::ContactRemoved { .. })
        ));
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_open_event_streams() {
    bounded(async {
        let mut h = Harness::start().await;
        let mut stream = h.client.events().await.unwrap();
        let started = tokio::time::Instant::now();
        h.stop().await.unwrap();
        // Well within the grace period: the stream was ended, not dropped.
        assert!(started.elapsed() < Duration::from_secs(4));
        assert!(stream.next().await.is_none());
    })
    .await;
}

#[tokio::test]
async fn recovery_routes_refuse_bad_input_before_the_backend() {
    bounded(async {
        let mut h = Harness::start().await;
        let bad = (400, "invalid_request");
        let backup = "ab".repeat(32);
        let request = "cd".repeat(16);
        let old = feed(3).to_string();
        let new = feed(4).to_string();

        let starts: &[(String, &str)] = &[
            ("{}".into(), "give `backup` (your own backup)"),
            (
                json!({ "backup": "xyz" }).to_string(),
                "invalid backup: not a backup id",
            ),
            (json!({ "owner": old }).to_string(), "invalid to: missing"),
            (json!({ "to": new }).to_string(), "invalid owner: missing"),
            (
                json!({ "owner": old, "to": old }).to_string(),
                "invalid to: the new identity must differ",
            ),
            (
                json!({ "owner": "nope", "to": new }).to_string(),
                "invalid owner: not a feed id",
            ),
            (
                json!({ "backup": backup, "kind": "owner" }).to_string(),
                "unknown field `kind`",
            ),
        ];
        for (body, message) in starts {
            h.assert_refused("POST", "/v1/requests", body, bad, message)
                .await;
        }

        let approve = format!("/v1/requests/{request}/approve");
        let deny = format!("/v1/requests/{request}/deny");
        h.assert_refused(
            "POST",
            "/v1/requests/zz/approve",
            "{}",
            bad,
            "invalid id: not a request id",
        )
        .await;
        h.assert_refused(
            "POST",
            &approve,
            r#"{"reason":"no"}"#,
            bad,
            "only a denial takes a reason",
        )
        .await;
        h.assert_refused(
            "POST",
            &deny,
            &json!({ "to": new }).to_string(),
            bad,
            "only an approval names a recipient",
        )
        .await;
        h.assert_refused(
            "POST",
            &deny,
            &json!({ "reason": "x".repeat(1025) }).to_string(),
            bad,
            "at most 1024 bytes",
        )
        .await;
        h.assert_refused(
            "POST",
            &deny,
            r#"{"reason":"a\u0007b"}"#,
            bad,
            "control characters",
        )
        .await;
        h.assert_refused(
            "POST",
            &approve,
            r#"{"from":"nope"}"#,
            bad,
            "invalid from: not a feed id",
        )
        .await;
        h.assert_refused(
            "GET",
            "/v1/recoveries/nope",
            "",
            bad,
            "invalid backup: not a backup id",
        )
        .await;
        h.assert_refused(
            "POST",
            "/v1/recoveries/nope/secret",
            "",
            bad,
            "invalid backup",
        )
        .await;
        h.assert_refused(
            "PUT",
            &format!("/v1/contacts/{old}/auto-approve"),
            "{}",
            bad,
            "missing field `auto_approve`",
        )
        .await;
        // Nothing above reached the node.
        assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());

        // Valid input does, parsed.
        h.assert_refused(
            "POST",
            &approve,
            &json!({ "to": new }).to_string(),
            (404, "not_found"),
            "mock",
        )
        .await;
        h.assert_refused(
            "POST",
            "/v1/requests",
            &json!({ "owner": old, "to": new }).to_string(),
            (404, "not_found"),
            "mock",
        )
        .await;
        let calls = h.mock.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(
            calls[0].starts_with(&format!("decide {request} None Approve")),
            "{calls:?}"
        );
        assert!(calls[1].contains("LostDevice"), "{calls:?}");
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_test_routes_do_not_exist_without_test_hooks() {
    bounded(async {
        let mut h = Harness::start().await;
        let body = json!({ "peer": feed(2).to_string() }).to_string();
        for path in [
            "/v1/test/block",
            "/v1/test/unblock",
            "/v1/test/gossip-drop",
            "/v1/test/flood",
            "/v1/test/fill",
        ] {
            h.assert_refused(
                "POST",
                path,
                &body,
                (404, "not_found"),
                &format!("no route {path}"),
            )
            .await;
        }
        let err = h.client.test_block(&feed(2).to_string()).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 404, .. }),
            "{err:?}"
        );
        let err = h.client.test_fill(10).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 404, .. }),
            "{err:?}"
        );
        let entry = "ab".repeat(32);
        let path = format!("/v1/test/entry/{entry}");
        h.assert_refused(
            "GET",
            &path,
            "",
            (404, "not_found"),
            &format!("no route {path}"),
        )
        .await;
        let err = h.client.test_entry(&entry).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Api { status: 404, .. }),
            "{err:?}"
        );
        assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_test_routes_validate_their_input_then_reach_the_backend() {
    bounded(async {
        let mut h = Harness::start_with(Mock::with_test_hooks()).await;
        let bad = (400, "invalid_request");
        let peer = feed(2).to_string();
        let refused: &[(&str, String, &str)] = &[
            ("/v1/test/block", "{}".into(), "missing field `peer`"),
            (
                "/v1/test/block",
                json!({ "peer": "nope" }).to_string(),
                "invalid peer: not a feed id",
            ),
            (
                "/v1/test/unblock",
                json!({ "peer": peer, "for_secs": 3 }).to_string(),
                "unknown field `for_secs`",
            ),
            (
                "/v1/test/gossip-drop",
                json!({ "fraction": 1.5 }).to_string(),
                "invalid fraction: must be from 0 to 1 (got 1.5)",
            ),
            (
                "/v1/test/gossip-drop",
                json!({ "fraction": -0.1 }).to_string(),
                "invalid fraction: must be from 0 to 1",
            ),
            (
                "/v1/test/gossip-drop",
                json!({ "fraction": "half" }).to_string(),
                "invalid fraction: invalid type: string",
            ),
            (
                "/v1/test/flood",
                json!({ "peer": peer }).to_string(),
                "give invalid_entries or sync_requests",
            ),
            (
                "/v1/test/flood",
                json!({ "peer": peer, "invalid_entries": 10_001 }).to_string(),
                "invalid invalid_entries: must be at most 10000",
            ),
            (
                "/v1/test/flood",
                json!({ "peer": peer, "sync_requests": 100_001 }).to_string(),
                "invalid sync_requests: must be at most 100000",
            ),
            (
                "/v1/test/flood",
                json!({ "peer": peer, "sync_requests": -1 }).to_string(),
                "invalid sync_requests: invalid value: integer `-1`",
            ),
            (
                "/v1/test/fill",
                json!({ "count": 0 }).to_string(),
                "invalid count: must be from 1 to 1000000 (got 0)",
            ),
            (
                "/v1/test/fill",
                json!({ "count": 1_000_001 }).to_string(),
                "invalid count: must be from 1 to 1000000 (got 1000001)",
            ),
            (
                "/v1/test/fill",
                json!({ "count": -5 }).to_string(),
                "invalid count: invalid value: integer `-5`",
            ),
            ("/v1/test/fill", "{}".into(), "missing field `count`"),
            (
                "/v1/test/fill",
                json!({ "count": 5, "size": 200 }).to_string(),
                "unknown field `size`",
            ),
        ];
        for (path, body, message) in refused {
            h.assert_refused("POST", path, body, bad, message).await;
        }
        h.assert_refused(
            "GET",
            "/v1/test/block",
            "",
            (405, "method_not_allowed"),
            "GET is not allowed on /v1/test/block",
        )
        .await;
        for (id, message) in [
            ("nope", "invalid id: not an entry id"),
            (&"ab".repeat(31), "invalid id: not an entry id"),
            (&"AB".repeat(32), "invalid id: not an entry id"),
        ] {
            h.assert_refused("GET", &format!("/v1/test/entry/{id}"), "", bad, message)
                .await;
        }
        h.assert_refused(
            "POST",
            &format!("/v1/test/entry/{}", "ab".repeat(32)),
            "{}",
            (405, "method_not_allowed"),
            "POST is not allowed on /v1/test/entry/",
        )
        .await;
        assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());

        let c = &h.client;
        c.test_block(&peer).await.unwrap();
        c.test_unblock(&peer).await.unwrap();
        c.test_gossip_drop(0.25).await.unwrap();
        c.test_gossip_drop(1.0).await.unwrap();
        let report = c
            .test_flood(&TestFlood {
                peer: peer.clone(),
                invalid_entries: 20,
                sync_requests: 3,
            })
            .await
            .unwrap();
        assert_eq!((report.invalid_entries, report.sync_requests), (20, 3));
        let filled = c.test_fill(1_000_000).await.unwrap();
        assert_eq!((filled.appended, filled.head_seq), (1_000_000, 1_000_000));
        let stored = c.test_entry(&"ab".repeat(32)).await.unwrap();
        assert_eq!(stored.payload_hex.as_deref(), Some("00ff"));
        let erased = c.test_entry(&"0".repeat(64)).await.unwrap();
        assert_eq!(erased.payload_hex, None);
        assert_eq!(
            h.mock.calls(),
            vec![
                format!("test_block {peer}"),
                format!("test_unblock {peer}"),
                "test_gossip_drop 0.25".into(),
                "test_gossip_drop 1".into(),
                format!("test_flood {peer} 20 3"),
                "test_fill 1000000".into(),
                format!("test_entry {}", "ab".repeat(32)),
                format!("test_entry {}", "0".repeat(64)),
            ]
        );
        h.stop().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_emergency_policy_is_validated_before_the_backend() {
    bounded(async {
        let mut h = Harness::start().await;
        let bad = (400, "invalid_request");
        let c = feed(3).to_string();
        let t = feed(4).to_string();
        let body = |extra: serde_json::Value| {
            let mut b = json!({
                "label": "seed", "threshold": 1, "custodians": [c], "secret": "c2VjcmV0",
            });
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b.to_string()
        };
        let cases: &[(serde_json::Value, &str)] = &[
            (
                json!({ "trustees": [c] }),
                "a custodian cannot also be a trustee",
            ),
            (
                json!({ "trustees": [t, t] }),
                "invalid trustees[1]: listed twice",
            ),
            (
                json!({ "trustees": ["nope"] }),
                "invalid trustees[0]: not a feed id",
            ),
            (
                json!({ "release": "sometimes" }),
                "must be \"approve\" or \"auto\"",
            ),
            (json!({ "veto_delay_secs": 31_536_001 }), "at most 31536000"),
            (
                json!({ "one_time": true }),
                "one-time access limits what a trustee can do: name a trustee too",
            ),
        ];
        for (extra, message) in cases {
            h.assert_refused("POST", "/v1/backups", &body(extra.clone()), bad, message)
                .await;
        }
        assert!(h.mock.calls().is_empty(), "{:?}", h.mock.calls());
        h.stop().await.unwrap();
    })
    .await;
}
