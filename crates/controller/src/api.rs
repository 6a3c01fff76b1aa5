//! The loopback HTTP API (axum): the only way the CLI and the view reach the controller.
//!
//! Defences, in order: the listener is bound to 127.0.0.1 only; the `Host` header must name
//! a loopback host (403 otherwise: DNS rebinding); every request carries the per-run token as
//! `Authorization: Bearer <token>` (401 otherwise).

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{Query, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use whatnext_protocol::{
    api::{
        ConfigChange, ConnectReply, ConnectRequest, DisconnectRequest, DoctorReport, ErrorReply,
        LinkReply, OkReply, OpenRequest,
    },
    state::LinkStatus,
};

use crate::{
    app::{App, DEFAULT_LINK_TIMEOUT},
    supervisor::{PeerError, ServiceError},
};

/// Longest a `GET /api/state?since=V` waits for a change.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(25);

pub fn router(app: Arc<App>) -> Router {
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
        .merge(crate::playlists_api::routes())
        .merge(crate::view::routes())
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(middleware::from_fn(errors_as_json))
        .layer(middleware::from_fn(crate::view::security_headers))
        .with_state(app)
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorReply {
            error: self.message,
        });
        (self.status, body).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let status = match err {
            ServiceError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ServiceError::Unexpected { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<PeerError> for ApiError {
    fn from(err: PeerError) -> Self {
        match err {
            PeerError::Failed(reason) => ApiError::new(StatusCode::BAD_GATEWAY, reason),
            PeerError::Refused(message) => ApiError::new(StatusCode::BAD_REQUEST, message),
            PeerError::Service(err) => err.into(),
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:port
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
/// Empty credentials never match, not even an empty secret.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Host {host:?} is not this machine's loopback address"),
        )
        .into_response();
    }
    let path = request.uri().path();
    if path == "/login" {
        return next.run(request).await; // checks its own one-time token
    }
    // Writes from a page of another origin are refused (the cookie is SameSite=Strict too).
    if request.method() != axum::http::Method::GET
        && let Some(origin) = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        && origin != format!("http://{host}")
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!("writes from origin {origin:?} are not allowed"),
        )
        .into_response();
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| same_secret(t.as_bytes(), app.token.as_bytes()));
    let cookie = crate::view::session_cookie(request.headers())
        .is_some_and(|c| same_secret(c.as_bytes(), app.view_secret.as_bytes()));
    if !bearer && !cookie {
        if !path.starts_with("/api/") {
            return crate::view::login_needed();
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (it is in api.json in the WhatNext home)",
        )
        .into_response();
    }
    next.run(request).await
}

/// Longest plain-text error body rewritten as JSON (axum's rejections are one line).
const MAX_PLAIN_ERROR: usize = 4096;

/// Every error answer of the API has the documented shape `{"error": "…"}`: axum's own
/// rejections (a JSON body of the wrong type, a bad query, a body over the limit) come as
/// text/plain and are rewritten here, keeping their status.
async fn errors_as_json(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !is_api || !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), MAX_PLAIN_ERROR)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_string();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        message
    };
    ApiError::new(status, message).into_response()
}

#[derive(Debug, Deserialize)]
struct StateQuery {
    /// Answer once `version > since`.
    since: Option<u64>,
    /// Longest wait in milliseconds (capped at 25 s).
    timeout_ms: Option<u64>,
}

async fn get_state(State(app): State<Arc<App>>, Query(query): Query<StateQuery>) -> Response {
    let mut rx = app.state.subscribe();
    if let Some(since) = query.since {
        let wait = query
            .timeout_ms
            .map_or(MAX_LONG_POLL, Duration::from_millis)
            .min(MAX_LONG_POLL);
        // Shutdown ends the wait too: the server's graceful stop waits for open requests.
        tokio::select! {
            _ = tokio::time::timeout(wait, rx.wait_for(|s| s.version > since)) => {}
            () = app.shutdown.cancelled() => {}
        }
    }
    let state = rx.borrow().clone();
    Json(state).into_response()
}

async fn connect(
    State(app): State<Arc<App>>,
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
    let peer_id = crate::app::peer_id_of(&addr).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{addr} does not end in /p2p/<peer id>; add the peer id of the node to connect to"
            ),
        )
    })?;
    let dialed = app
        .service
        .dial(Some(peer_id), vec![addr.to_string()], timeout)
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

async fn invite(State(app): State<Arc<App>>) -> Result<Json<LinkReply>, ApiError> {
    let link = app
        .invite()
        .map_err(|message| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message))?;
    Ok(Json(LinkReply {
        link: link.to_string(),
    }))
}

/// Opens a `whtnxt://` link. Answers with the attempt: 200 when pending or connected, 400
/// when the link is invalid, 502 when the connection failed.
async fn open_link(
    State(app): State<Arc<App>>,
    Json(request): Json<OpenRequest>,
) -> Result<Response, ApiError> {
    let timeout = link_timeout(request.timeout_secs)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
    let attempt = app.open_link(&request.url, request.wait, timeout).await;
    let status = match attempt.status {
        LinkStatus::Pending | LinkStatus::Connected => StatusCode::OK,
        LinkStatus::Invalid => StatusCode::BAD_REQUEST,
        LinkStatus::Failed => StatusCode::BAD_GATEWAY,
    };
    Ok((status, Json(attempt)).into_response())
}

/// Reads a caller's timeout in seconds.
pub fn link_timeout(secs: Option<f64>) -> Result<Duration, String> {
    match secs {
        None => Ok(DEFAULT_LINK_TIMEOUT),
        Some(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("timeout must be a positive number of seconds, not {secs}")),
    }
}

/// Hangs up on a peer (all its connections).
async fn disconnect(
    State(app): State<Arc<App>>,
    Json(request): Json<DisconnectRequest>,
) -> Result<Json<OkReply>, ApiError> {
    app.service
        .hang_up(request.peer_id, DEFAULT_LINK_TIMEOUT)
        .await?;
    Ok(Json(OkReply::OK))
}

/// A connection diagnosis (`whatnext doctor`).
async fn doctor(State(app): State<Arc<App>>) -> Json<DoctorReport> {
    let state = app.state.snapshot();
    let interfaces = crate::doctor::Interfaces::read();
    Json(crate::doctor::diagnose(&state, interfaces.as_ref()))
}

/// The last frames between the controller and the network service (debug panel).
async fn debug_ipc(State(app): State<Arc<App>>) -> Json<Vec<String>> {
    Json(app.service.recent_frames())
}

/// Applies settings that can change while running (`whatnext config set` also writes them
/// to config.toml).
async fn set_config(
    State(app): State<Arc<App>>,
    Json(change): Json<ConfigChange>,
) -> Result<Json<OkReply>, ApiError> {
    if let Some(name) = change.display_name {
        let name = whatnext_home::config::check_display_name(&name)
            .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, message))?;
        app.library.set_display_name(name);
    }
    Ok(Json(OkReply::OK))
}

async fn shutdown(State(app): State<Arc<App>>) -> Json<OkReply> {
    app.shutdown.cancel();
    Json(OkReply::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:1",
            "[::1]:9",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:80",
            "127.0.0.1.evil.example",
            "",
            "[::2]:1",
            "10.0.0.1:1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(
            !same_secret(b"", b""),
            "an empty credential must never match"
        );
    }
}
