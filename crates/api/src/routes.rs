//! The node's routes: the state (a long poll), connecting and disconnecting, invites and
//! links, the doctor, the IPC debug log, settings, shutdown. Each one calls the core.

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use whatnext_core::{
    invite::peer_id_of,
    links::{DEFAULT_LINK_TIMEOUT, link_timeout},
    supervisor::PeerError,
};
use whatnext_protocol::{
    api::{
        ConfigChange, ConnectReply, ConnectRequest, DisconnectRequest, DoctorReport, LinkReply,
        OkReply, OpenRequest,
    },
    state::LinkStatus,
};

use crate::{context::Api, error::ApiError};

/// Longest a `GET /api/state?since=V` waits for a change.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(25);

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/state", get(get_state))
        .route("/api/connect", post(connect))
        .route("/api/invite", get(invite))
        .route("/api/open", post(open_link))
        .route("/api/shutdown", post(shutdown))
        .route("/api/config", post(set_config))
        .route("/api/debug/ipc", get(debug_ipc))
        .route("/api/doctor", get(doctor))
        .route("/api/disconnect", post(disconnect))
}

#[derive(Debug, Deserialize)]
struct StateQuery {
    /// Answer once `version > since`.
    since: Option<u64>,
    /// Longest wait in milliseconds (capped at 25 s).
    timeout_ms: Option<u64>,
}

async fn get_state(State(api): State<Arc<Api>>, Query(query): Query<StateQuery>) -> Response {
    let mut rx = api.core().state().subscribe();
    if let Some(since) = query.since {
        let wait = query
            .timeout_ms
            .map_or(MAX_LONG_POLL, Duration::from_millis)
            .min(MAX_LONG_POLL);
        // Shutdown ends the wait too: the server's graceful stop waits for open requests.
        tokio::select! {
            _ = tokio::time::timeout(wait, rx.wait_for(|s| s.version > since)) => {}
            () = api.core().shutdown_token().cancelled() => {}
        }
    }
    let state = rx.borrow().clone();
    Json(state).into_response()
}

async fn connect(
    State(api): State<Arc<Api>>,
    Json(request): Json<ConnectRequest>,
) -> Result<Response, ApiError> {
    let timeout = link_timeout(request.timeout_secs)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    let addr: multiaddr::Multiaddr = request.addr.parse().map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not a multiaddr ({err}); expected e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…", request.addr),
        )
    })?;
    let peer_id = peer_id_of(&addr).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{addr} does not end in /p2p/<peer id>; add the peer id of the node to connect to"
            ),
        )
    })?;
    let dialed = api
        .core()
        .connect(peer_id, addr.to_string(), timeout)
        .await
        .map_err(|err| match err {
            PeerError::Failed(reason) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("could not connect to {addr}: {reason}"),
            ),
            other => other.into(),
        })?;
    Ok(Json(ConnectReply {
        peer_id: dialed.peer_id,
        addr: dialed.addr,
        dial_ms: dialed.micros.map(|us| us as f64 / 1000.0),
    })
    .into_response())
}

async fn invite(State(api): State<Arc<Api>>) -> Result<Json<LinkReply>, ApiError> {
    let link = api
        .core()
        .invite()
        .map_err(|message| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message))?;
    Ok(Json(LinkReply {
        link: link.to_string(),
    }))
}

/// Opens a `whtnxt://` link. Answers with the attempt: 200 when pending or connected, 400
/// when the link is invalid, 502 when the connection failed.
async fn open_link(
    State(api): State<Arc<Api>>,
    Json(request): Json<OpenRequest>,
) -> Result<Response, ApiError> {
    let timeout = link_timeout(request.timeout_secs)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    let attempt = api
        .core()
        .open_link(&request.url, request.wait, timeout)
        .await;
    let status = match attempt.status {
        LinkStatus::Pending | LinkStatus::Connected => StatusCode::OK,
        LinkStatus::Invalid => StatusCode::BAD_REQUEST,
        LinkStatus::Failed => StatusCode::BAD_GATEWAY,
    };
    Ok((status, Json(attempt)).into_response())
}

/// Hangs up on a peer (all its connections).
async fn disconnect(
    State(api): State<Arc<Api>>,
    Json(request): Json<DisconnectRequest>,
) -> Result<Json<OkReply>, ApiError> {
    api.core()
        .disconnect(request.peer_id, DEFAULT_LINK_TIMEOUT)
        .await?;
    Ok(Json(OkReply::OK))
}

/// A connection diagnosis (`whatnext doctor`).
async fn doctor(State(api): State<Arc<Api>>) -> Json<DoctorReport> {
    Json(api.core().doctor())
}

/// The last frames between the controller and the network service (debug panel).
async fn debug_ipc(State(api): State<Arc<Api>>) -> Json<Vec<String>> {
    Json(api.core().recent_frames())
}

/// Applies settings that can change while running (`whatnext config set` also writes them
/// to config.toml).
async fn set_config(
    State(api): State<Arc<Api>>,
    Json(change): Json<ConfigChange>,
) -> Result<Json<OkReply>, ApiError> {
    // Everything is checked before anything is applied: a refusal changes nothing.
    let name = change
        .display_name
        .map(|name| whatnext_home::config::check_display_name(&name))
        .transpose()
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    let music_dirs = change
        .music_dirs
        .map(|dirs| whatnext_home::config::check_music_dirs(&dirs))
        .transpose()
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    if let Some(name) = name {
        api.core().set_display_name(name).await;
    }
    if let Some(dirs) = music_dirs {
        api.core().set_music_dirs(dirs).await.map_err(|message| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the music folders could not be changed: {message}"),
            )
        })?;
    }
    Ok(Json(OkReply::OK))
}

async fn shutdown(State(api): State<Arc<Api>>) -> Json<OkReply> {
    api.core().shutdown();
    Json(OkReply::OK)
}
