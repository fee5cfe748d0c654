//! A small client of the control API: HTTP/1.1 over the daemon's Unix socket,
//! one connection per request, JSON in and out, and the event stream read as
//! Server-Sent Events.
//!
//! It never retries, never starts a daemon and never caches: each call is one
//! request, and an error says which of "nobody answers", "the daemon said
//! no" or "the answer made no sense" happened.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::sse::{SseMessage, SseParser};
use crate::test_hooks::{
    TestEntry, TestFill, TestFillReport, TestFlood, TestFloodReport, TestGossipDrop, TestPeer,
};
use crate::types::{
    AddContact, AuditQuery, AuditRecord, Backup, ConnectRequest, Contact, CreateBackup,
    DecideRequest, ErrorBody, Event, Grant, HeldShard, Lagged, Peer, RecoveredSecret, Recovery,
    RecoveryRequest, Reshared, SetAutoApprove, StartRecovery, Status,
};

/// How long a request may take, from connecting to the last byte of the
/// answer, unless [`Client::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer larger than this is refused (the largest legitimate one, a page
/// of 1000 audit records, is far smaller).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A client of one daemon, named by its socket. Cheap to clone; it holds no
/// connection between calls.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing answers on the socket: no daemon runs there (or it is not
    /// ours to talk to).
    #[error(
        "the sherd daemon is not running at {} ({}); start it with \
         `sherdd --data-dir DIR`, or check --socket / SHERD_SOCKET",
        socket.display(),
        unreachable_reason(source)
    )]
    Unreachable {
        /// The socket that was tried.
        socket: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// The daemon refused the request (4xx) or failed doing it (5xx), and
    /// said why.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code (see [`code`](crate::code)).
        code: String,
        /// The daemon's explanation.
        message: String,
    },
    /// The daemon's answer was not what this client understands: a daemon of
    /// another version, or a bug.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    /// The daemon accepted the connection but did not answer in time.
    #[error("the daemon did not answer within {} s", .0.as_secs_f32())]
    Timeout(Duration),
}

/// Why connecting failed, in words for the one-line message.
fn unreachable_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no socket there".into(),
        std::io::ErrorKind::ConnectionRefused => "nothing listens on the socket".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

impl ClientError {
    /// True for a 4xx answer: the daemon understood and refused the request.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Api { status, .. } if (400..500).contains(status))
    }
}

/// An answer to [`Client::send_raw`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The HTTP status (always 2xx: other answers are [`ClientError::Api`]).
    pub status: u16,
    /// The body, unparsed.
    pub body: Vec<u8>,
}

/// One item of the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamItem {
    /// Something happened in the node.
    Event(Event),
    /// This subscriber read too slowly and missed this many events; the
    /// stream goes on.
    Lagged {
        /// Events dropped.
        missed: u64,
    },
}

/// The daemon's event stream ([`Client::events`]).
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
    parser: SseParser,
    done: bool,
}

impl Client {
    /// A client of the daemon listening on `socket`. Nothing is contacted
    /// until the first call.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another time limit per request (the event
    /// stream is bounded only until its first byte).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/v1/status").await
    }

    /// `GET /v1/peers`.
    pub async fn peers(&self) -> Result<Vec<Peer>, ClientError> {
        self.get("/v1/peers").await
    }

    /// `POST /v1/connect`: dial `addr`, a multiaddr.
    pub async fn connect(&self, addr: &str) -> Result<(), ClientError> {
        let body = ConnectRequest {
            addr: addr.to_owned(),
        };
        self.send_json(Method::POST, "/v1/connect", &body).await?;
        Ok(())
    }

    /// `POST /v1/backups`: back up a secret (sent over the socket only).
    pub async fn create_backup(&self, request: &CreateBackup) -> Result<Backup, ClientError> {
        let raw = self.send_json(Method::POST, "/v1/backups", request).await?;
        decode("/v1/backups", &raw.body)
    }

    /// `GET /v1/backups`: this node's backups.
    pub async fn backups(&self) -> Result<Vec<Backup>, ClientError> {
        self.get("/v1/backups").await
    }

    /// `GET /v1/backups/{id}`.
    pub async fn backup(&self, id: &str) -> Result<Backup, ClientError> {
        self.get(&format!("/v1/backups/{}", encode_segment(id)))
            .await
    }

    /// `POST /v1/backups/{id}/reshare`: back the secret up anew (sent over
    /// the socket only) and revoke backup `id`, in one step.
    pub async fn reshare_backup(
        &self,
        id: &str,
        request: &CreateBackup,
    ) -> Result<Reshared, ClientError> {
        let path = format!("/v1/backups/{}/reshare", encode_segment(id));
        let raw = self.send_json(Method::POST, &path, request).await?;
        decode(&path, &raw.body)
    }

    /// `POST /v1/backups/{id}/revoke`: withdraw a backup; its custodians
    /// erase their shards.
    pub async fn revoke_backup(&self, id: &str) -> Result<Backup, ClientError> {
        let path = format!("/v1/backups/{}/revoke", encode_segment(id));
        let raw = self.request(Method::POST, &path, None).await?;
        decode(&path, &raw.body)
    }

    /// `GET /v1/grants`: backups this node may ask for as a trustee.
    pub async fn grants(&self) -> Result<Vec<Grant>, ClientError> {
        self.get("/v1/grants").await
    }

    /// `GET /v1/shards`: shards this node holds for others (not those
    /// erased on revocation or redemption).
    pub async fn shards(&self) -> Result<Vec<HeldShard>, ClientError> {
        self.get("/v1/shards").await
    }

    /// `GET /v1/contacts`.
    pub async fn contacts(&self) -> Result<Vec<Contact>, ClientError> {
        self.get("/v1/contacts").await
    }

    /// `POST /v1/contacts`: follow `feed` under `name`; with `auto_approve`,
    /// its recovery requests are approved without asking.
    pub async fn add_contact(
        &self,
        feed: &str,
        name: &str,
        auto_approve: bool,
    ) -> Result<Contact, ClientError> {
        let body = AddContact {
            feed: feed.to_owned(),
            name: name.to_owned(),
            auto_approve,
        };
        let raw = self.send_json(Method::POST, "/v1/contacts", &body).await?;
        decode("/v1/contacts", &raw.body)
    }

    /// `PUT /v1/contacts/{feed}/auto-approve`: whether `feed`'s recovery
    /// requests are approved without asking.
    pub async fn set_auto_approve(
        &self,
        feed: &str,
        auto_approve: bool,
    ) -> Result<Contact, ClientError> {
        let path = format!("/v1/contacts/{}/auto-approve", encode_segment(feed));
        let body = SetAutoApprove { auto_approve };
        let raw = self.send_json(Method::PUT, &path, &body).await?;
        decode(&path, &raw.body)
    }

    /// `DELETE /v1/contacts/{feed}`.
    pub async fn remove_contact(&self, feed: &str) -> Result<(), ClientError> {
        let path = format!("/v1/contacts/{}", encode_segment(feed));
        self.request(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// `GET /v1/audit`: audit records from `query.from` on, at most
    /// `query.limit` of them.
    pub async fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, ClientError> {
        let mut params = Vec::new();
        if let Some(from) = query.from {
            params.push(format!("from={from}"));
        }
        if let Some(limit) = query.limit {
            params.push(format!("limit={limit}"));
        }
        let mut path = "/v1/audit".to_owned();
        if !params.is_empty() {
            path.push('?');
            path.push_str(&params.join("&"));
        }
        self.get(&path).await
    }

    /// `POST /v1/requests`: start a recovery, as the owner (`backup` only)
    /// or for an owner who lost its device (`owner` and `to`).
    pub async fn start_recovery(
        &self,
        request: &StartRecovery,
    ) -> Result<RecoveryRequest, ClientError> {
        let raw = self
            .send_json(Method::POST, "/v1/requests", request)
            .await?;
        decode("/v1/requests", &raw.body)
    }

    /// `GET /v1/requests`: the recovery requests this node made, was asked,
    /// or receives the shards of.
    pub async fn requests(&self) -> Result<Vec<RecoveryRequest>, ClientError> {
        self.get("/v1/requests").await
    }

    /// `POST /v1/requests/{id}/approve`: release this node's shard for the
    /// request (only to `decision.to`, if given).
    pub async fn approve(
        &self,
        id: &str,
        decision: &DecideRequest,
    ) -> Result<RecoveryRequest, ClientError> {
        self.decide(id, "approve", decision).await
    }

    /// `POST /v1/requests/{id}/deny`: refuse the request, telling the
    /// requester `decision.reason`, if given.
    pub async fn deny(
        &self,
        id: &str,
        decision: &DecideRequest,
    ) -> Result<RecoveryRequest, ClientError> {
        self.decide(id, "deny", decision).await
    }

    async fn decide(
        &self,
        id: &str,
        verb: &str,
        decision: &DecideRequest,
    ) -> Result<RecoveryRequest, ClientError> {
        let path = format!("/v1/requests/{}/{verb}", encode_segment(id));
        let raw = self.send_json(Method::POST, &path, decision).await?;
        decode(&path, &raw.body)
    }

    /// `GET /v1/recoveries`: the recoveries this node collects shards for.
    pub async fn recoveries(&self) -> Result<Vec<Recovery>, ClientError> {
        self.get("/v1/recoveries").await
    }

    /// `GET /v1/recoveries/{backup}`.
    pub async fn recovery(&self, backup: &str) -> Result<Recovery, ClientError> {
        self.get(&format!("/v1/recoveries/{}", encode_segment(backup)))
            .await
    }

    /// `POST /v1/recoveries/{backup}/secret`: the recovered secret. The
    /// daemon hands it over once and forgets it; a second call is refused
    /// (409, `conflict`). The copy of the answer this client read is
    /// zeroized.
    pub async fn take_secret(&self, backup: &str) -> Result<RecoveredSecret, ClientError> {
        let path = format!("/v1/recoveries/{}/secret", encode_segment(backup));
        let raw = self.request(Method::POST, &path, None).await?;
        let body = zeroize::Zeroizing::new(raw.body);
        decode(&path, &body)
    }

    /// `GET /v1/events`: the node's events from now on, until the daemon
    /// stops or the stream is dropped. The daemon keeps no history: what
    /// happened before this call is in the audit log.
    pub async fn events(&self) -> Result<EventStream, ClientError> {
        let response = self
            .bounded(self.send(Method::GET, "/v1/events", None))
            .await?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = self.bounded(read_body(response.into_body())).await?;
            return Err(api_error(status, &body));
        }
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(ClientError::Protocol(
                "/v1/events did not answer with an event stream".into(),
            ));
        }
        Ok(EventStream {
            body: response.into_body(),
            parser: SseParser::default(),
            done: false,
        })
    }

    /// TEST ONLY, `POST /v1/test/block` (a daemon started with
    /// `--test-hooks`; any other answers 404): cut `peer` off until
    /// [`Client::test_unblock`].
    pub async fn test_block(&self, peer: &str) -> Result<(), ClientError> {
        let body = TestPeer {
            peer: peer.to_owned(),
        };
        self.send_json(Method::POST, "/v1/test/block", &body)
            .await?;
        Ok(())
    }

    /// TEST ONLY, `POST /v1/test/unblock`: let `peer` back in; the daemon
    /// redials the addresses it knew for it.
    pub async fn test_unblock(&self, peer: &str) -> Result<(), ClientError> {
        let body = TestPeer {
            peer: peer.to_owned(),
        };
        self.send_json(Method::POST, "/v1/test/unblock", &body)
            .await?;
        Ok(())
    }

    /// TEST ONLY, `POST /v1/test/gossip-drop`: drop this fraction (0 to 1)
    /// of the gossip messages that arrive.
    pub async fn test_gossip_drop(&self, fraction: f64) -> Result<(), ClientError> {
        let body = TestGossipDrop { fraction };
        self.send_json(Method::POST, "/v1/test/gossip-drop", &body)
            .await?;
        Ok(())
    }

    /// TEST ONLY, `POST /v1/test/flood`: misbehave toward `request.peer`;
    /// answers once the flood is over (within about 20 seconds).
    pub async fn test_flood(&self, request: &TestFlood) -> Result<TestFloodReport, ClientError> {
        let raw = self
            .send_json(Method::POST, "/v1/test/flood", request)
            .await?;
        decode("/v1/test/flood", &raw.body)
    }

    /// TEST ONLY, `POST /v1/test/fill`: append `count` filler entries to the
    /// node's own feed; answers once they are committed (a million take
    /// tens of seconds: give this client a longer timeout for large counts).
    pub async fn test_fill(&self, count: u32) -> Result<TestFillReport, ClientError> {
        let raw = self
            .send_json(Method::POST, "/v1/test/fill", &TestFill { count })
            .await?;
        decode("/v1/test/fill", &raw.body)
    }

    /// TEST ONLY, `GET /v1/test/entry/{id}`: the payload of entry `id` as
    /// the node stores it (`None` once erased); 404 if it stores no such
    /// entry.
    pub async fn test_entry(&self, id: &str) -> Result<TestEntry, ClientError> {
        self.get(&format!("/v1/test/entry/{}", encode_segment(id)))
            .await
    }

    /// Sends any request and returns the answer unparsed; a non-2xx answer
    /// is still [`ClientError::Api`]. For tests and tools that must send what
    /// the typed methods cannot, bad input included. `path` starts with `/`.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ClientError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::Protocol(format!("{method:?} is not an HTTP method")))?;
        self.request(method, path, body).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let raw = self.request(Method::GET, path, None).await?;
        decode(path, &raw.body)
    }

    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<RawResponse, ClientError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        self.request(method, path, Some(body)).await
    }

    /// One request, bounded in time from connect to the answer's last byte.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ClientError> {
        self.bounded(async {
            let response = self.send(method, path, body).await?;
            let status = response.status().as_u16();
            let body = read_body(response.into_body()).await?;
            if (200..300).contains(&status) {
                Ok(RawResponse {
                    status,
                    // Moved rather than copied when the buffer is not shared,
                    // so that `take_secret` zeroizes the copy it decodes
                    // (hyper's own read buffers are out of reach).
                    body: Vec::from(body),
                })
            } else {
                Err(api_error(status, &body))
            }
        })
        .await
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
    }

    /// Connects, sends the request and returns the answer's head; the
    /// connection lives as long as the answer's body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Unreachable {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Protocol(format!("HTTP handshake: {e}")))?;
        // The connection task ends when the answer's body is read or dropped;
        // its errors surface through `send_request` and the body.
        tokio::spawn(connection);

        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "sherdd");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(format!("cannot build the request: {e}")))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Protocol(format!("the daemon dropped the request: {e}")))
    }
}

impl EventStream {
    /// The next item: `None` once the daemon has closed the stream (it is
    /// shutting down). An event this client cannot read is an `Err` and the
    /// stream goes on; a broken connection is an `Err` and then `None`.
    pub async fn next(&mut self) -> Option<Result<StreamItem, ClientError>> {
        loop {
            while let Some(message) = self.parser.pop() {
                if let Some(item) = interpret(message) {
                    return Some(item);
                }
            }
            if self.done {
                return None;
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(ClientError::Protocol(format!(
                        "the event stream broke: {e}"
                    ))));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && let Err(e) = self.parser.push(&data)
                    {
                        self.done = true;
                        return Some(Err(ClientError::Protocol(e)));
                    }
                }
            }
        }
    }
}

/// An SSE message as a stream item; `None` for event types this client does
/// not know (a newer daemon may send more).
fn interpret(message: SseMessage) -> Option<Result<StreamItem, ClientError>> {
    match message.event.as_deref() {
        None | Some("message") => Some(
            serde_json::from_str(&message.data)
                .map(StreamItem::Event)
                .map_err(|e| ClientError::Protocol(format!("event {}: {e}", message.data))),
        ),
        Some("lagged") => Some(
            serde_json::from_str::<Lagged>(&message.data)
                .map(|l| StreamItem::Lagged { missed: l.missed })
                .map_err(|e| ClientError::Protocol(format!("lagged note: {e}"))),
        ),
        Some(_) => None,
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, ClientError> {
    Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| ClientError::Protocol(format!("reading the answer: {e}")))
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body)
        .map_err(|e| ClientError::Protocol(format!("the answer to {path}: {e}")))
}

fn api_error(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { code, message }) => ClientError::Api {
            status,
            code,
            message,
        },
        Err(_) => ClientError::Protocol(format!(
            "HTTP {status} without an error body: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// Percent-encodes a path segment: everything but RFC 3986's unreserved
/// characters, so that whatever the user typed stays one segment and the
/// daemon, not the URI parser, says what is wrong with it.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("12D3KooWabc"), "12D3KooWabc");
        assert_eq!(encode_segment("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
        assert_eq!(encode_segment(""), "");
    }

    #[test]
    fn error_bodies_become_api_errors() {
        let err = api_error(404, br#"{"code":"not_found","message":"no contact F"}"#);
        assert!(err.is_refusal());
        assert_eq!(err.to_string(), "no contact F");
        let err = api_error(502, b"<html>bad gateway</html>");
        assert!(matches!(err, ClientError::Protocol(_)));
    }

    #[test]
    fn the_unreachable_message_says_how_to_start_the_daemon() {
        let err = ClientError::Unreachable {
            socket: "/tmp/x/sherdd.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let message = err.to_string();
        assert!(
            message.starts_with(
                "the sherd daemon is not running at /tmp/x/sherdd.sock (no socket there); "
            ),
            "{message}"
        );
        assert!(message.contains("sherdd --data-dir DIR"), "{message}");
        assert!(message.contains("SHERD_SOCKET"), "{message}");
    }

    /// What the fake daemon of [`answer_once`] received.
    #[derive(Debug, PartialEq, Eq)]
    struct Received {
        method: String,
        path: String,
        body: String,
    }

    /// A fake daemon on a fresh socket: it takes one request, answers
    /// `status` with `body`, and hands back what it received.
    fn answer_once(status: u16, body: &str) -> (Client, tokio::task::JoinHandle<Received>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = std::env::temp_dir().join(format!(
            "sherd-api-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let client = Client::new(&socket).with_timeout(Duration::from_secs(10));
        let body = body.to_owned();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = std::fs::remove_file(&socket);
            let mut request = Vec::new();
            let head_end = loop {
                let mut chunk = [0; 4096];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed before the end of the head");
                request.extend_from_slice(&chunk[..n]);
                if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
            };
            let head = String::from_utf8(request[..head_end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while request.len() < head_end + length {
                let mut chunk = [0; 4096];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the client closed before the end of the body");
                request.extend_from_slice(&chunk[..n]);
            }
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            let mut words = head.split_whitespace();
            Received {
                method: words.next().unwrap().to_owned(),
                path: words.next().unwrap().to_owned(),
                body: String::from_utf8(request[head_end..].to_vec()).unwrap(),
            }
        });
        (client, server)
    }

    fn received(method: &str, path: &str, body: &str) -> Received {
        Received {
            method: method.into(),
            path: path.into(),
            body: body.into(),
        }
    }

    const CONTACT: &str = r#"{"feed":"F/1","name":"alice","auto_approve":true}"#;
    const REQUEST: &str = r#"{"id":"0a","kind":"lost_device","role":"custodian",
        "backup":"b1","owner":"O","requester":"R","recipient":"N","custodians":["C"],
        "received_ms":1,"expires_ms":2,"state":"released","released":"e1"}"#;
    const RECOVERY: &str = r#"{"backup":"b1","owner":"O","kind":"owner","shards":1,
        "threshold":2,"state":"collecting","requests":["0a"],
        "rejected":[{"custodian":"C","entry":"e2","reason":"bad"}],"denied":[]}"#;

    #[tokio::test]
    async fn contacts_routes_send_what_the_daemon_expects() {
        let (client, server) = answer_once(201, CONTACT);
        let contact = client.add_contact("F/1", "alice", true).await.unwrap();
        assert!(contact.auto_approve);
        assert_eq!(
            server.await.unwrap(),
            received(
                "POST",
                "/v1/contacts",
                r#"{"feed":"F/1","name":"alice","auto_approve":true}"#
            )
        );
        // `auto_approve: false` is the default and is left out, so that an
        // older daemon still accepts the request.
        let (client, server) = answer_once(201, CONTACT);
        client.add_contact("F", "alice", false).await.unwrap();
        assert_eq!(server.await.unwrap().body, r#"{"feed":"F","name":"alice"}"#);

        let (client, server) = answer_once(200, CONTACT);
        client.set_auto_approve("F/1", false).await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            received(
                "PUT",
                "/v1/contacts/F%2F1/auto-approve",
                r#"{"auto_approve":false}"#
            )
        );
    }

    #[tokio::test]
    async fn request_routes_send_what_the_daemon_expects() {
        let (client, server) = answer_once(201, REQUEST);
        let start = StartRecovery {
            backup: None,
            owner: Some("O".into()),
            to: Some("N".into()),
        };
        let request = client.start_recovery(&start).await.unwrap();
        assert_eq!(request.released.as_deref(), Some("e1"));
        assert_eq!(request.owner_name, None);
        assert_eq!(
            server.await.unwrap(),
            received("POST", "/v1/requests", r#"{"owner":"O","to":"N"}"#)
        );

        let (client, server) = answer_once(200, &format!("[{REQUEST}]"));
        assert_eq!(client.requests().await.unwrap().len(), 1);
        assert_eq!(server.await.unwrap(), received("GET", "/v1/requests", ""));

        let (client, server) = answer_once(200, REQUEST);
        let forward = DecideRequest {
            to: Some("N".into()),
            ..DecideRequest::default()
        };
        client.approve("0a", &forward).await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            received("POST", "/v1/requests/0a/approve", r#"{"to":"N"}"#)
        );

        let (client, server) = answer_once(200, REQUEST);
        let deny = DecideRequest {
            from: Some("R".into()),
            reason: Some("not you".into()),
            ..DecideRequest::default()
        };
        client.deny("a/b", &deny).await.unwrap();
        assert_eq!(
            server.await.unwrap(),
            received(
                "POST",
                "/v1/requests/a%2Fb/deny",
                r#"{"from":"R","reason":"not you"}"#
            )
        );
    }

    #[tokio::test]
    async fn recovery_routes_send_what_the_daemon_expects() {
        let (client, server) = answer_once(200, &format!("[{RECOVERY}]"));
        let all = client.recoveries().await.unwrap();
        assert_eq!(all[0].rejected[0].reason, "bad");
        assert_eq!(server.await.unwrap(), received("GET", "/v1/recoveries", ""));

        let (client, server) = answer_once(200, RECOVERY);
        let one = client.recovery("b1").await.unwrap();
        assert_eq!((one.shards, one.threshold), (1, Some(2)));
        assert_eq!(
            server.await.unwrap(),
            received("GET", "/v1/recoveries/b1", "")
        );

        let (client, server) =
            answer_once(200, r#"{"backup":"b1","label":"seed","secret":"c2VjcmV0"}"#);
        let secret = client.take_secret("b1").await.unwrap();
        assert_eq!(secret.secret.as_str(), "c2VjcmV0");
        assert!(!format!("{secret:?}").contains("c2VjcmV0"));
        assert_eq!(
            server.await.unwrap(),
            received("POST", "/v1/recoveries/b1/secret", "")
        );

        // The secret is handed over once; the second call is a refusal.
        let (client, server) = answer_once(
            409,
            r#"{"code":"conflict","message":"the secret of b1 was already handed over"}"#,
        );
        let err = client.take_secret("b1").await.unwrap_err();
        assert!(err.is_refusal());
        assert_eq!(err.to_string(), "the secret of b1 was already handed over");
        server.await.unwrap();
    }

    #[test]
    fn sse_messages_become_items() {
        let event = SseMessage {
            event: None,
            data: r#"{"event":"contact_removed","feed":"F"}"#.into(),
        };
        assert_eq!(
            interpret(event).unwrap().unwrap(),
            StreamItem::Event(Event::ContactRemoved { feed: "F".into() })
        );
        let lagged = SseMessage {
            event: Some("lagged".into()),
            data: r#"{"missed":4}"#.into(),
        };
        assert_eq!(
            interpret(lagged).unwrap().unwrap(),
            StreamItem::Lagged { missed: 4 }
        );
        let future = SseMessage {
            event: Some("something_new".into()),
            data: "{}".into(),
        };
        assert!(interpret(future).is_none());
        let garbage = SseMessage {
            event: None,
            data: "{".into(),
        };
        assert!(interpret(garbage).unwrap().is_err());
    }
}
