//! The `/v1` routes: extraction and validation of every request, the call to
//! the [`ControlBackend`], and the shape of the answer.
//!
//! Validation lives here and nowhere else: a handler calls the backend only
//! with parsed, checked values. Nothing here keeps state beyond a request,
//! except the event streams, which end when the server stops.

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use sherd_api::{
    AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX, AddContact, AuditQuery, CONTACT_NAME_MAX_CHARS,
    ConnectRequest, CreateBackup, DecideRequest, Lagged, MAX_BODY_BYTES, REASON_MAX_BYTES,
    SetAutoApprove, StartRecovery,
};
use sherd_protocol::{BackupId, FeedId, RequestId};
use tokio::sync::watch;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tracing::Instrument;

use super::{ApiError, ControlBackend, NewBackup, NewRecovery, RequestDecision};

mod test_hooks;

/// A comment line on an idle event stream this often, so that clients and
/// anything in between see the connection is alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What every handler gets: the backend, and the server's stop signal (for
/// the event streams, which would otherwise outlive a graceful shutdown).
struct AppState<B> {
    backend: Arc<B>,
    stop: watch::Receiver<bool>,
}

// Not derived: the derive would ask for `B: Clone`, and `Arc<B>` is enough.
impl<B> Clone for AppState<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            stop: self.stop.clone(),
        }
    }
}

/// The control API's router, with its state; the test routes only if the
/// backend serves them.
pub(super) fn router<B: ControlBackend>(backend: Arc<B>, stop: watch::Receiver<bool>) -> Router {
    let routes = Router::new()
        .route("/v1/status", get(status::<B>))
        .route("/v1/peers", get(peers::<B>))
        .route("/v1/connect", post(connect::<B>))
        .route("/v1/contacts", get(contacts::<B>).post(add_contact::<B>))
        .route("/v1/contacts/{feed}", delete(remove_contact::<B>))
        .route(
            "/v1/contacts/{feed}/auto-approve",
            put(set_auto_approve::<B>),
        )
        .route("/v1/requests", get(requests::<B>).post(start_recovery::<B>))
        .route("/v1/requests/{id}/approve", post(approve::<B>))
        .route("/v1/requests/{id}/deny", post(deny::<B>))
        .route("/v1/recoveries", get(recoveries::<B>))
        .route("/v1/recoveries/{backup}", get(recovery::<B>))
        .route("/v1/recoveries/{backup}/secret", post(take_secret::<B>))
        .route("/v1/audit", get(audit::<B>))
        .route("/v1/backups", get(backups::<B>).post(create_backup::<B>))
        .route("/v1/backups/{id}", get(backup::<B>))
        .route("/v1/backups/{id}/revoke", post(revoke_backup::<B>))
        .route("/v1/backups/{id}/reshare", post(reshare_backup::<B>))
        .route("/v1/shards", get(shards::<B>))
        .route("/v1/grants", get(grants::<B>))
        .route("/v1/events", get(events::<B>));
    let routes = if backend.test_hooks() {
        tracing::warn!("control API: serving the test hooks under /v1/test/");
        test_hooks::routes(routes)
    } else {
        routes
    };
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(guard))
        .with_state(AppState { backend, stop })
}

/// Every request: a span with its method and path, and an early 413 when the
/// declared length is over the limit (the body is then never read).
async fn guard(request: Request, next: Next) -> Response {
    let span = tracing::debug_span!(
        "control",
        method = %request.method(),
        path = %request.uri().path(),
    );
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }
        .into_response();
    }
    async move {
        let response = next.run(request).await;
        tracing::debug!(status = %response.status(), "answered");
        response
    }
    .instrument(span)
    .await
}

/// A JSON body: at most `MAX_BODY_BYTES`, one JSON value of type `T` and
/// nothing after it. Errors name the field at fault.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                }
            } else {
                ApiError::invalid("body", r.body_text())
            }
        })?;
        // serde would also take a struct as an array of its fields; the API
        // speaks objects only.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => {
                return Err(ApiError::invalid(
                    "body",
                    "the body is empty; expected a JSON object",
                ));
            }
            Some(b'{') => {}
            Some(_) => return Err(ApiError::invalid("body", "expected a JSON object")),
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // Unknown and missing fields are named by serde itself; a bad
            // value is named by its path.
            if path == "." || inner.is_syntax() || inner.is_eof() {
                ApiError::invalid("body", inner.to_string())
            } else {
                ApiError::invalid(path, inner.to_string())
            }
        })?;
        de.end()
            .map_err(|e| ApiError::invalid("body", format!("data after the JSON value: {e}")))?;
        Ok(Self(value))
    }
}

fn parse_feed(field: &str, value: &str) -> Result<FeedId, ApiError> {
    FeedId::from_str(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn parse_multiaddr(value: &str) -> Result<libp2p::Multiaddr, ApiError> {
    const EXAMPLE: &str = "expected a multiaddr like /ip4/192.0.2.7/tcp/4001";
    let addr = libp2p::Multiaddr::from_str(value)
        .map_err(|e| ApiError::invalid("addr", format!("{e}; {EXAMPLE}")))?;
    if addr.is_empty() {
        return Err(ApiError::invalid("addr", format!("empty; {EXAMPLE}")));
    }
    Ok(addr)
}

/// A contact name is shown next to feed ids in every listing, so it must be
/// visible and unable to disguise what surrounds it: not blank, at most
/// `CONTACT_NAME_MAX_CHARS` characters, no control characters and no bidi
/// controls (which can make a name display as another).
fn validate_name(name: &str) -> Result<(), ApiError> {
    let field = "name";
    if name.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    let chars = name.chars().count();
    if chars > CONTACT_NAME_MAX_CHARS {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {CONTACT_NAME_MAX_CHARS} characters (it has {chars})"),
        ));
    }
    let is_bidi_control = |c: char| matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if let Some(c) = name.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        return Err(ApiError::invalid(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// The limits of a backup request, checked here so that bad input never
/// reaches the node: label 1 to 256 bytes without control characters, 1 to 32
/// distinct custodians, a threshold between 1 and their number, a secret of
/// 1 byte to 16 KiB in standard base64.
fn validate_backup(request: &CreateBackup) -> Result<NewBackup, ApiError> {
    use base64::Engine as _;
    use sherd_protocol::content::{MAX_CUSTODIANS, MAX_LABEL_LEN};
    use sherd_protocol::secret::MAX_SECRET_LEN;

    let label = &request.label;
    if label.trim().is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(ApiError::invalid(
            "label",
            format!("must be 1 to {MAX_LABEL_LEN} bytes"),
        ));
    }
    if let Some(c) = label.chars().find(|c| c.is_control()) {
        return Err(ApiError::invalid(
            "label",
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if request.custodians.is_empty() || request.custodians.len() > MAX_CUSTODIANS {
        return Err(ApiError::invalid(
            "custodians",
            format!("must list 1 to {MAX_CUSTODIANS} feeds"),
        ));
    }
    let mut custodians = Vec::with_capacity(request.custodians.len());
    for (i, c) in request.custodians.iter().enumerate() {
        let feed = parse_feed(&format!("custodians[{i}]"), c)?;
        if custodians.contains(&feed) {
            return Err(ApiError::invalid(
                format!("custodians[{i}]"),
                "listed twice",
            ));
        }
        custodians.push(feed);
    }
    if request.threshold == 0 || usize::from(request.threshold) > custodians.len() {
        return Err(ApiError::invalid(
            "threshold",
            format!(
                "must be between 1 and the number of custodians ({})",
                custodians.len()
            ),
        ));
    }
    let secret = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(request.secret.as_bytes())
            .map_err(|_| ApiError::invalid("secret", "must be standard base64 with padding"))?,
    );
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(ApiError::invalid(
            "secret",
            format!(
                "must be 1 to {MAX_SECRET_LEN} bytes (it has {})",
                secret.len()
            ),
        ));
    }
    let mut trustees = Vec::with_capacity(request.trustees.len());
    if request.trustees.len() > sherd_protocol::content::MAX_TRUSTEES {
        return Err(ApiError::invalid(
            "trustees",
            format!(
                "must list at most {} feeds",
                sherd_protocol::content::MAX_TRUSTEES
            ),
        ));
    }
    for (i, t) in request.trustees.iter().enumerate() {
        let field = format!("trustees[{i}]");
        let feed = parse_feed(&field, t)?;
        if trustees.contains(&feed) {
            return Err(ApiError::invalid(field, "listed twice"));
        }
        if custodians.contains(&feed) {
            return Err(ApiError::invalid(
                field,
                "a custodian cannot also be a trustee",
            ));
        }
        trustees.push(feed);
    }
    if request.one_time && trustees.is_empty() {
        // One-time limits a trustee's access; without one it would promise
        // nothing (the owner's own recoveries never redeem a backup).
        return Err(ApiError::invalid(
            "one_time",
            "one-time access limits what a trustee can do: name a trustee too",
        ));
    }
    let veto_delay_secs = request
        .veto_delay_secs
        .unwrap_or(sherd_api::DEFAULT_VETO_DELAY_SECS);
    if veto_delay_secs > sherd_protocol::content::MAX_VETO_DELAY_SECS {
        return Err(ApiError::invalid(
            "veto_delay_secs",
            format!(
                "must be at most {} (a year)",
                sherd_protocol::content::MAX_VETO_DELAY_SECS
            ),
        ));
    }
    let release = match request.release.as_deref() {
        None | Some("approve") => sherd_protocol::content::Release::Approve,
        Some("auto") => sherd_protocol::content::Release::Auto,
        Some(_) => {
            return Err(ApiError::invalid(
                "release",
                "must be \"approve\" or \"auto\"",
            ));
        }
    };
    Ok(NewBackup {
        label: label.clone(),
        threshold: request.threshold,
        custodians,
        secret,
        trustees,
        veto_delay_secs,
        one_time: request.one_time,
        release,
    })
}

async fn create_backup<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<CreateBackup>,
) -> Result<impl IntoResponse, ApiError> {
    let backup = validate_backup(&request)?;
    let made = state.backend.create_backup(backup).await?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

async fn backups<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.backups().await?))
}

async fn backup<B: ControlBackend>(
    State(state): State<AppState<B>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = path_backup(id, "id")?;
    Ok(axum::Json(state.backend.backup(id).await?))
}

async fn revoke_backup<B: ControlBackend>(
    State(state): State<AppState<B>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = path_backup(id, "id")?;
    Ok(axum::Json(state.backend.revoke_backup(id).await?))
}

async fn reshare_backup<B: ControlBackend>(
    State(state): State<AppState<B>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(request): JsonBody<CreateBackup>,
) -> Result<impl IntoResponse, ApiError> {
    let id = path_backup(id, "id")?;
    let backup = validate_backup(&request)?;
    let made = state.backend.reshare_backup(id, backup).await?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

async fn grants<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.grants().await?))
}

async fn shards<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.shards().await?))
}

async fn status<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.status().await?))
}

async fn peers<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.peers().await?))
}

async fn connect<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<ConnectRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let addr = parse_multiaddr(&request.addr)?;
    state.backend.connect(addr).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn contacts<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.contacts().await?))
}

async fn add_contact<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<AddContact>,
) -> Result<impl IntoResponse, ApiError> {
    let feed = parse_feed("feed", &request.feed)?;
    validate_name(&request.name)?;
    let contact = state
        .backend
        .add_contact(feed, request.name, request.auto_approve)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(contact)))
}

async fn remove_contact<B: ControlBackend>(
    State(state): State<AppState<B>>,
    feed: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(feed) = feed.map_err(|r| ApiError::invalid("feed", r.body_text()))?;
    let feed = parse_feed("feed", &feed)?;
    state.backend.remove_contact(feed).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_auto_approve<B: ControlBackend>(
    State(state): State<AppState<B>>,
    feed: Result<Path<String>, PathRejection>,
    JsonBody(request): JsonBody<SetAutoApprove>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(feed) = feed.map_err(|r| ApiError::invalid("feed", r.body_text()))?;
    let feed = parse_feed("feed", &feed)?;
    let contact = state
        .backend
        .set_auto_approve(feed, request.auto_approve)
        .await?;
    Ok(axum::Json(contact))
}

fn parse_backup(field: &str, value: &str) -> Result<BackupId, ApiError> {
    BackupId::from_str(value).map_err(|e| ApiError::invalid(field, format!("not a backup id: {e}")))
}

/// A backup id from the path, named `field` in errors.
fn path_backup(
    path: Result<Path<String>, PathRejection>,
    field: &str,
) -> Result<BackupId, ApiError> {
    let Path(backup) = path.map_err(|r| ApiError::invalid(field, r.body_text()))?;
    parse_backup(field, &backup)
}

/// The two shapes of `POST /v1/requests`: `backup` alone (owner), or `owner`
/// and `to` with an optional `backup` (lost device).
fn validate_start(request: &StartRecovery) -> Result<NewRecovery, ApiError> {
    let backup = request
        .backup
        .as_deref()
        .map(|b| parse_backup("backup", b))
        .transpose()?;
    match (&request.owner, &request.to, backup) {
        (None, None, Some(backup)) => Ok(NewRecovery::Owner { backup }),
        (None, None, None) => Err(ApiError::invalid(
            "body",
            "give `backup` (your own backup), or `owner` and `to` (a lost device)",
        )),
        (Some(owner), Some(to), backup) => {
            let owner = parse_feed("owner", owner)?;
            let to = parse_feed("to", to)?;
            if owner == to {
                return Err(ApiError::invalid(
                    "to",
                    "the new identity must differ from the old one",
                ));
            }
            Ok(NewRecovery::LostDevice {
                owner: Box::new(owner),
                to: Box::new(to),
                backup,
            })
        }
        (Some(_), None, _) => Err(ApiError::invalid(
            "to",
            "missing: a lost-device recovery names the owner's new identity",
        )),
        (None, Some(_), _) => Err(ApiError::invalid(
            "owner",
            "missing: a lost-device recovery names the owner's old identity",
        )),
    }
}

async fn start_recovery<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<StartRecovery>,
) -> Result<impl IntoResponse, ApiError> {
    let recovery = validate_start(&request)?;
    let made = state.backend.start_recovery(recovery).await?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

async fn requests<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.requests().await?))
}

fn path_request(path: Result<Path<String>, PathRejection>) -> Result<RequestId, ApiError> {
    let Path(id) = path.map_err(|r| ApiError::invalid("id", r.body_text()))?;
    RequestId::from_str(&id).map_err(|e| ApiError::invalid("id", format!("not a request id: {e}")))
}

/// A deny reason travels to the requester and shows in its listings: at most
/// `REASON_MAX_BYTES`, no control characters.
fn validate_reason(reason: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(reason) = reason else {
        return Ok(None);
    };
    if reason.len() > REASON_MAX_BYTES {
        return Err(ApiError::invalid(
            "reason",
            format!("must be at most {REASON_MAX_BYTES} bytes"),
        ));
    }
    if let Some(c) = reason.chars().find(|c| c.is_control()) {
        return Err(ApiError::invalid(
            "reason",
            format!(
                "must not contain control characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(Some(reason.to_owned()))
}

async fn approve<B: ControlBackend>(
    State(state): State<AppState<B>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(request): JsonBody<DecideRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = path_request(id)?;
    if request.reason.is_some() {
        return Err(ApiError::invalid("reason", "only a denial takes a reason"));
    }
    let from = request
        .from
        .as_deref()
        .map(|f| parse_feed("from", f))
        .transpose()?;
    let to = request
        .to
        .as_deref()
        .map(|t| parse_feed("to", t))
        .transpose()?;
    let decided = state
        .backend
        .decide(id, from, RequestDecision::Approve { to })
        .await?;
    Ok(axum::Json(decided))
}

async fn deny<B: ControlBackend>(
    State(state): State<AppState<B>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(request): JsonBody<DecideRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let id = path_request(id)?;
    if request.to.is_some() {
        return Err(ApiError::invalid(
            "to",
            "only an approval names a recipient",
        ));
    }
    let from = request
        .from
        .as_deref()
        .map(|f| parse_feed("from", f))
        .transpose()?;
    let reason = validate_reason(request.reason.as_deref())?;
    let decided = state
        .backend
        .decide(id, from, RequestDecision::Deny { reason })
        .await?;
    Ok(axum::Json(decided))
}

async fn recoveries<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.backend.recoveries().await?))
}

async fn recovery<B: ControlBackend>(
    State(state): State<AppState<B>>,
    backup: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let backup = path_backup(backup, "backup")?;
    Ok(axum::Json(state.backend.recovery(backup).await?))
}

async fn take_secret<B: ControlBackend>(
    State(state): State<AppState<B>>,
    backup: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let backup = path_backup(backup, "backup")?;
    let secret = state.backend.take_secret(backup).await?;
    // Never cached by anything between us and the client.
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(secret)))
}

async fn audit<B: ControlBackend>(
    State(state): State<AppState<B>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::invalid("query", query_error(&r)))?;
    let limit = match query.limit {
        None => AUDIT_LIMIT_DEFAULT,
        Some(0) => return Err(ApiError::invalid("limit", "must be at least 1")),
        Some(limit) => limit.min(AUDIT_LIMIT_MAX),
    };
    let records = state.backend.audit(query.from.unwrap_or(0), limit).await?;
    Ok(axum::Json(records))
}

/// axum's message without its "Failed to deserialize query string: " lead.
fn query_error(rejection: &QueryRejection) -> String {
    let text = rejection.body_text();
    match text.split_once(": ") {
        Some((_, rest)) => rest.to_owned(),
        None => text,
    }
}

async fn events<B: ControlBackend>(
    State(state): State<AppState<B>>,
) -> Sse<impl Stream<Item = Result<sse::Event, Infallible>>> {
    // Subscribe before answering: every event after the client has the
    // response head is delivered.
    let receiver = state.backend.events();
    let mut stop = state.stop.clone();
    let stream = BroadcastStream::new(receiver)
        .map(|item| {
            Ok(match item {
                Ok(event) => sse::Event::default()
                    .json_data(event)
                    .unwrap_or_else(|_| sse::Event::default().comment("an event failed to encode")),
                // A slow reader loses events, not its connection: it is told
                // how many, and may look at the audit log for what matters.
                Err(BroadcastStreamRecvError::Lagged(missed)) => sse::Event::default()
                    .event("lagged")
                    .json_data(Lagged { missed })
                    .unwrap_or_else(|_| sse::Event::default().event("lagged").data("{}")),
            })
        })
        .take_until(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no route {}; the control API is under /v1",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
