//! TEST ONLY: the `/v1/test/` routes (`sherd_api::test_hooks`), added to the
//! router only for a backend whose [`ControlBackend::test_hooks`] is true
//! (`sherdd --test-hooks`). Their input is validated like every other
//! route's before the backend sees it.

use axum::Router;
use std::str::FromStr;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sherd_api::test_hooks::{
    MAX_FILL_COUNT, MAX_FLOOD_INVALID_ENTRIES, MAX_FLOOD_SYNC_REQUESTS, TestFill, TestFlood,
    TestGossipDrop, TestPeer,
};
use sherd_protocol::EntryId;

use super::{AppState, JsonBody, parse_feed};
use crate::api::{ApiError, ControlBackend};

/// `routes` with the test routes added.
pub(super) fn routes<B: ControlBackend>(routes: Router<AppState<B>>) -> Router<AppState<B>> {
    routes
        .route("/v1/test/block", post(block::<B>))
        .route("/v1/test/unblock", post(unblock::<B>))
        .route("/v1/test/gossip-drop", post(gossip_drop::<B>))
        .route("/v1/test/flood", post(flood::<B>))
        .route("/v1/test/fill", post(fill::<B>))
        .route("/v1/test/entry/{id}", get(entry::<B>))
}

async fn block<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<TestPeer>,
) -> Result<impl IntoResponse, ApiError> {
    let peer = parse_feed("peer", &request.peer)?;
    state.backend.test_block(peer).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unblock<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<TestPeer>,
) -> Result<impl IntoResponse, ApiError> {
    let peer = parse_feed("peer", &request.peer)?;
    state.backend.test_unblock(peer).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn gossip_drop<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<TestGossipDrop>,
) -> Result<impl IntoResponse, ApiError> {
    let fraction = request.fraction;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(ApiError::invalid(
            "fraction",
            format!("must be from 0 to 1 (got {fraction})"),
        ));
    }
    state.backend.test_gossip_drop(fraction).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn flood<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<TestFlood>,
) -> Result<impl IntoResponse, ApiError> {
    let peer = parse_feed("peer", &request.peer)?;
    if request.invalid_entries > MAX_FLOOD_INVALID_ENTRIES {
        return Err(ApiError::invalid(
            "invalid_entries",
            format!("must be at most {MAX_FLOOD_INVALID_ENTRIES}"),
        ));
    }
    if request.sync_requests > MAX_FLOOD_SYNC_REQUESTS {
        return Err(ApiError::invalid(
            "sync_requests",
            format!("must be at most {MAX_FLOOD_SYNC_REQUESTS}"),
        ));
    }
    if request.invalid_entries == 0 && request.sync_requests == 0 {
        return Err(ApiError::invalid(
            "body",
            "give invalid_entries or sync_requests (or both) above 0",
        ));
    }
    let report = state
        .backend
        .test_flood(peer, request.invalid_entries, request.sync_requests)
        .await?;
    Ok(axum::Json(report))
}

async fn fill<B: ControlBackend>(
    State(state): State<AppState<B>>,
    JsonBody(request): JsonBody<TestFill>,
) -> Result<impl IntoResponse, ApiError> {
    if !(1..=MAX_FILL_COUNT).contains(&request.count) {
        return Err(ApiError::invalid(
            "count",
            format!("must be from 1 to {MAX_FILL_COUNT} (got {})", request.count),
        ));
    }
    let report = state.backend.test_fill(request.count).await?;
    Ok(axum::Json(report))
}

async fn entry<B: ControlBackend>(
    State(state): State<AppState<B>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::invalid("id", r.body_text()))?;
    let id = EntryId::from_str(&id)
        .map_err(|e| ApiError::invalid("id", format!("not an entry id: {e}")))?;
    Ok(axum::Json(state.backend.test_entry(id).await?))
}
