//! The control API server: HTTP/1.1 and JSON over a Unix socket (mode 0600)
//! in the data dir, versioned under `/v1`, with an event stream as
//! Server-Sent Events. The wire types and the client are in `sherd-api`.
//!
//! The server never reaches into the node: everything it does goes through a
//! [`ControlBackend`], and every request is validated here (body size, JSON
//! shape, unknown fields, feed ids, multiaddrs, names) before the backend is
//! called, so bad input never reaches the node and changes nothing. It never
//! listens on a network address: the socket's file mode is the access
//! control.
//!
//! The TEST ONLY routes under `/v1/test/` (`sherd_api::test_hooks`) are part
//! of the router only when the backend says so ([`ControlBackend::test_hooks`],
//! true only for `sherdd --test-hooks`); otherwise they answer 404 like any
//! unknown path.
//!
//! [`serve`] owns the socket file: it refuses to start when another daemon
//! answers on it, replaces a stale one, and removes it on the way out.

mod routes;
#[cfg(test)]
mod tests;

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sherd_api::test_hooks::{TestEntry, TestFillReport, TestFloodReport};
use sherd_api::{
    AuditRecord, Backup, Contact, ErrorBody, Event, HeldShard, Peer, RecoveredSecret, Recovery,
    RecoveryRequest, Status, code,
};
use sherd_protocol::{BackupId, EntryId, FeedId, RequestId};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch};
use zeroize::Zeroizing;

/// How long open connections (event streams included) get to finish once
/// shutdown is asked for; then they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the control API needs from the node. The server calls it only with
/// validated input: a parsed [`FeedId`] or [`libp2p::Multiaddr`], a contact
/// name that is 1 to 64 characters, not blank, without control or bidi
/// control characters.
/// A backup request after the server validated it: feed ids parsed, the
/// secret decoded (and zeroized when dropped), every bound checked.
#[derive(Clone)]
pub struct NewBackup {
    /// What the secret is (1 to 256 bytes, no control characters).
    pub label: String,
    /// Shards needed to recover (1 to the number of custodians).
    pub threshold: u8,
    /// The custodians (1 to 32, distinct).
    pub custodians: Vec<FeedId>,
    /// The secret (1 byte to 16 KiB).
    pub secret: Zeroizing<Vec<u8>>,
    /// Trustees (0 to 8, distinct, none a custodian).
    pub trustees: Vec<FeedId>,
    /// Seconds the owner has to veto a trustee (at most a year).
    pub veto_delay_secs: u32,
    /// Whether a trustee's access is one-time.
    pub one_time: bool,
    /// Who releases to a trustee after the window.
    pub release: sherd_protocol::content::Release,
}

impl std::fmt::Debug for NewBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewBackup")
            .field("label", &self.label)
            .field("threshold", &self.threshold)
            .field("custodians", &self.custodians)
            .field(
                "secret",
                &format_args!("<{} bytes redacted>", self.secret.len()),
            )
            .finish()
    }
}

/// A recovery to start, after the server validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewRecovery {
    /// This node, the owner of `backup`, asks its custodians.
    Owner {
        /// One of this node's backups.
        backup: BackupId,
    },
    /// This node, a custodian of `owner`, forwards toward `to`.
    LostDevice {
        /// The owner's old identity.
        owner: Box<FeedId>,
        /// The owner's new identity.
        to: Box<FeedId>,
        /// The backup, if named.
        backup: Option<BackupId>,
    },
}

/// The user's decision on a request asked of this node, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestDecision {
    /// Release the shard (only to `to`, if given).
    Approve {
        /// The recipient the user verified.
        to: Option<FeedId>,
    },
    /// Refuse it.
    Deny {
        /// Why (at most 1024 bytes, no control characters).
        reason: Option<String>,
    },
}

pub trait ControlBackend: Send + Sync + 'static {
    /// `GET /v1/status`.
    fn status(&self) -> impl Future<Output = Result<Status, ApiError>> + Send;
    /// `GET /v1/peers`: the peers connected now.
    fn peers(&self) -> impl Future<Output = Result<Vec<Peer>, ApiError>> + Send;
    /// `POST /v1/connect`: dial `addr` and return once the connection is up
    /// (204, and `sherdctl` says "connected") or the dial failed
    /// ([`ApiError::Unavailable`] with the reason). Bound the wait well
    /// under the client's `sherd_api::DEFAULT_TIMEOUT` (30 s).
    fn connect(&self, addr: libp2p::Multiaddr)
    -> impl Future<Output = Result<(), ApiError>> + Send;
    /// `GET /v1/contacts`.
    fn contacts(&self) -> impl Future<Output = Result<Vec<Contact>, ApiError>> + Send;
    /// `POST /v1/contacts`: follow `feed` under `name`; answers 201 with the
    /// contact as stored.
    fn add_contact(
        &self,
        feed: FeedId,
        name: String,
        auto_approve: bool,
    ) -> impl Future<Output = Result<Contact, ApiError>> + Send;
    /// `PUT /v1/contacts/{feed}/auto-approve`; [`ApiError::NotFound`] if
    /// `feed` is not a contact.
    fn set_auto_approve(
        &self,
        feed: FeedId,
        auto_approve: bool,
    ) -> impl Future<Output = Result<Contact, ApiError>> + Send;
    /// `DELETE /v1/contacts/{feed}`: answers 204 on `Ok`;
    /// [`ApiError::NotFound`] if `feed` is not a contact.
    fn remove_contact(&self, feed: FeedId) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// `GET /v1/audit`: at most `limit` records (1 to 1000) from `from` on,
    /// in order.
    fn audit(
        &self,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, ApiError>> + Send;
    /// `GET /v1/events`: a new subscription, taken when the client connects;
    /// the stream ends when the sender is dropped or the server shuts down.
    fn events(&self) -> broadcast::Receiver<Event>;
    /// `POST /v1/backups`: make and publish a backup; answers 201 with it.
    fn create_backup(
        &self,
        request: NewBackup,
    ) -> impl Future<Output = Result<Backup, ApiError>> + Send;
    /// `GET /v1/backups`: this node's backups, with their custodians' acks.
    fn backups(&self) -> impl Future<Output = Result<Vec<Backup>, ApiError>> + Send;
    /// `GET /v1/backups/{id}`: one of them; [`ApiError::NotFound`] if unknown.
    fn backup(&self, id: BackupId) -> impl Future<Output = Result<Backup, ApiError>> + Send;
    /// `GET /v1/shards`: the shards this node holds for others.
    fn shards(&self) -> impl Future<Output = Result<Vec<HeldShard>, ApiError>> + Send;
    /// `POST /v1/backups/{id}/revoke`: revoke one of this node's backups.
    fn revoke_backup(&self, id: BackupId) -> impl Future<Output = Result<Backup, ApiError>> + Send;
    /// `POST /v1/backups/{id}/reshare`: make a new backup of `request` and
    /// revoke backup `old` in one step; answers 201 with both.
    fn reshare_backup(
        &self,
        old: BackupId,
        request: NewBackup,
    ) -> impl Future<Output = Result<sherd_api::Reshared, ApiError>> + Send;
    /// `GET /v1/grants`: the backups this node may ask for as a trustee.
    fn grants(&self) -> impl Future<Output = Result<Vec<sherd_api::Grant>, ApiError>> + Send;
    /// `POST /v1/requests`: start a recovery; answers 201 with the request.
    fn start_recovery(
        &self,
        recovery: NewRecovery,
    ) -> impl Future<Output = Result<RecoveryRequest, ApiError>> + Send;
    /// `GET /v1/requests`: every request this node made, was asked, or
    /// receives the shards of.
    fn requests(&self) -> impl Future<Output = Result<Vec<RecoveryRequest>, ApiError>> + Send;
    /// `POST /v1/requests/{id}/approve|deny`: decide a request asked of
    /// this node (made by `from`, if given).
    fn decide(
        &self,
        id: RequestId,
        from: Option<FeedId>,
        decision: RequestDecision,
    ) -> impl Future<Output = Result<RecoveryRequest, ApiError>> + Send;
    /// `GET /v1/recoveries`.
    fn recoveries(&self) -> impl Future<Output = Result<Vec<Recovery>, ApiError>> + Send;
    /// `GET /v1/recoveries/{backup}`; [`ApiError::NotFound`] if none.
    fn recovery(&self, backup: BackupId)
    -> impl Future<Output = Result<Recovery, ApiError>> + Send;
    /// `POST /v1/recoveries/{backup}/secret`: the secret, once.
    fn take_secret(
        &self,
        backup: BackupId,
    ) -> impl Future<Output = Result<RecoveredSecret, ApiError>> + Send;

    /// Whether the TEST ONLY routes under `/v1/test/` are served. Asked once,
    /// when the router is built; no by default, and only `sherdd
    /// --test-hooks` says yes. Without them the `test_*` methods below are
    /// never called.
    fn test_hooks(&self) -> bool {
        false
    }
    /// TEST ONLY, `POST /v1/test/block`: cut `peer` off, both ways.
    fn test_block(&self, _peer: FeedId) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Err(no_test_hooks()) }
    }
    /// TEST ONLY, `POST /v1/test/unblock`: let `peer` back in.
    fn test_unblock(&self, _peer: FeedId) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Err(no_test_hooks()) }
    }
    /// TEST ONLY, `POST /v1/test/gossip-drop`: drop `fraction` (0 to 1,
    /// checked) of incoming gossip.
    fn test_gossip_drop(
        &self,
        _fraction: f64,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        async { Err(no_test_hooks()) }
    }
    /// TEST ONLY, `POST /v1/test/flood`: misbehave toward `peer` (counts
    /// checked against their maxima, not both 0).
    fn test_flood(
        &self,
        _peer: FeedId,
        _invalid_entries: u32,
        _sync_requests: u32,
    ) -> impl Future<Output = Result<TestFloodReport, ApiError>> + Send {
        async { Err(no_test_hooks()) }
    }
    /// TEST ONLY, `POST /v1/test/fill`: append `count` (1 to
    /// `MAX_FILL_COUNT`, checked) filler entries to the node's own feed.
    fn test_fill(
        &self,
        _count: u32,
    ) -> impl Future<Output = Result<TestFillReport, ApiError>> + Send {
        async { Err(no_test_hooks()) }
    }
    /// TEST ONLY, `GET /v1/test/entry/{id}`: the stored payload of entry
    /// `id` (`None` once erased); [`ApiError::NotFound`] if not stored.
    fn test_entry(&self, _id: EntryId) -> impl Future<Output = Result<TestEntry, ApiError>> + Send {
        async { Err(no_test_hooks()) }
    }
}

/// What a backend without test hooks answers, should it be asked anyway.
fn no_test_hooks() -> ApiError {
    ApiError::NotFound("this daemon runs without --test-hooks".into())
}

/// Why a request failed, as the client sees it: each variant is one HTTP
/// status and one stable [`code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A field of the request is malformed, unknown or out of range (400,
    /// `invalid_request`).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field, as the client spelled it (`body` for the body as a whole).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The thing named does not exist (404, `not_found`).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (405, `method_not_allowed`).
    /// Raised by the server itself.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The request contradicts the node's state (409, `conflict`).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than `sherd_api::MAX_BODY_BYTES` (413,
    /// `payload_too_large`). Raised by the server itself.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The node cannot do this now (503, `unavailable`).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or a failing disk (500, `internal`).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// [`ApiError::Invalid`] for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status and the stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid { .. } => (StatusCode::BAD_REQUEST, code::INVALID_REQUEST),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, code::NOT_FOUND),
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, code::METHOD_NOT_ALLOWED)
            }
            Self::Conflict(_) => (StatusCode::CONFLICT, code::CONFLICT),
            Self::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, code::PAYLOAD_TOO_LARGE)
            }
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "control request failed");
        }
        let body = ErrorBody {
            code: code.to_owned(),
            message: self.to_string(),
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Why the control API could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiServeError {
    /// Another daemon answers on the socket: this data dir is in use.
    #[error(
        "another sherd daemon is already running on {}; stop it, or give this one \
         another --data-dir",
        socket.display()
    )]
    AlreadyRunning {
        /// The socket.
        socket: PathBuf,
    },
    /// Something that is not a socket sits where the socket goes; it is
    /// left alone.
    #[error("{} exists and is not a socket; move it away", socket.display())]
    NotASocket {
        /// The path.
        socket: PathBuf,
    },
    /// The socket could not be checked, removed, bound or restricted to
    /// its owner.
    #[error("control socket {}: cannot {action}: {source}", socket.display())]
    Socket {
        /// The socket.
        socket: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// Serving failed.
    #[error("control API: {0}")]
    Serve(#[source] io::Error),
}

/// Serves the control API on `socket_path` until `shutdown` resolves.
///
/// Refuses to start if another daemon answers on the socket, replaces a
/// stale socket file (never any other kind of file), binds and sets the
/// socket's mode to 0600 at once (the data dir is 0700, so nobody else can
/// reach it in between). On `shutdown` it removes the socket file first (new
/// clients then see "not running"), ends the event streams, gives requests in
/// flight a few seconds to finish, and returns.
pub async fn serve<B: ControlBackend>(
    socket_path: &Path,
    backend: Arc<B>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiServeError> {
    let socket = socket_path.to_path_buf();
    clear_stale_socket(&socket).await?;
    let listener = UnixListener::bind(&socket).map_err(|source| ApiServeError::Socket {
        socket: socket.clone(),
        action: "bind",
        source,
    })?;
    let identity = match restrict(&socket) {
        Ok(identity) => identity,
        Err(source) => {
            drop(listener);
            let _ = std::fs::remove_file(&socket);
            return Err(ApiServeError::Socket {
                socket,
                action: "set mode 0600 on",
                source,
            });
        }
    };
    tracing::info!(socket = %socket.display(), "control API listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let app = routes::router(backend, stop_rx.clone());
    let mut stopping = stop_rx;
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        })
        .into_future();
    tokio::pin!(server);

    let result = tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            remove_if_ours(&socket, identity);
            let _ = stop_tx.send(true);
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("control connections still open after the grace period; dropped");
                    Ok(())
                }
            }
        }
    };
    remove_if_ours(&socket, identity);
    tracing::info!("control API stopped");
    result.map_err(ApiServeError::Serve)
}

/// Makes room for the socket: nothing there is fine; a socket nobody answers
/// on is stale and removed; a live one means another daemon.
async fn clear_stale_socket(socket: &Path) -> Result<(), ApiServeError> {
    let io_error = |action, source| ApiServeError::Socket {
        socket: socket.to_path_buf(),
        action,
        source,
    };
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("inspect", e)),
    };
    if !meta.file_type().is_socket() {
        return Err(ApiServeError::NotASocket {
            socket: socket.to_path_buf(),
        });
    }
    match UnixStream::connect(socket).await {
        Ok(_) => Err(ApiServeError::AlreadyRunning {
            socket: socket.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %socket.display(), "removing a stale control socket");
            match std::fs::remove_file(socket) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_error("remove the stale", e)),
            }
        }
        // Anything else (a full backlog, no permission) may be a live
        // daemon: refuse rather than pull the socket from under it.
        Err(e) => Err(io_error("check", e)),
    }
}

/// Device and inode of the socket file, to remove only our own.
type SocketIdentity = (u64, u64);

/// Sets mode 0600 on the freshly bound socket.
fn restrict(socket: &Path) -> io::Result<SocketIdentity> {
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let meta = std::fs::symlink_metadata(socket)?;
    Ok((meta.dev(), meta.ino()))
}

/// Removes the socket file if it is still the one we bound (another daemon
/// may have replaced a socket it believed stale).
fn remove_if_ours(socket: &Path, identity: SocketIdentity) {
    let ours = std::fs::symlink_metadata(socket).is_ok_and(|m| (m.dev(), m.ino()) == identity);
    if ours && let Err(e) = std::fs::remove_file(socket) {
        tracing::warn!(socket = %socket.display(), error = %e, "cannot remove the control socket");
    }
}
