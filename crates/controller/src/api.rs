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
use tokio_util::sync::CancellationToken;
use whatnext_protocol::ipc::{Command, Event};

use crate::{
    state::StateHandle,
    supervisor::{ServiceClient, ServiceError},
};

/// Longest a `GET /api/state?since=V` waits for a change.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(25);

pub struct ApiContext {
    pub state: StateHandle,
    pub service: ServiceClient,
    pub token: String,
    pub shutdown: CancellationToken,
}

pub fn router(ctx: Arc<ApiContext>) -> Router {
    Router::new()
        .route("/api/state", get(get_state))
        .route("/api/connect", post(connect))
        .route("/api/shutdown", post(shutdown))
        .layer(middleware::from_fn_with_state(ctx.clone(), guard))
        .with_state(ctx)
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
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        let status = match err {
            ServiceError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, err.to_string())
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
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn guard(State(ctx): State<Arc<ApiContext>>, request: Request, next: Next) -> Response {
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
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(presented.as_bytes(), ctx.token.as_bytes()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (it is in api.json in the WhatNext home)",
        )
        .into_response();
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct StateQuery {
    /// Answer once `version > since`.
    since: Option<u64>,
    /// Longest wait in milliseconds (capped at 25 s).
    timeout_ms: Option<u64>,
}

async fn get_state(
    State(ctx): State<Arc<ApiContext>>,
    Query(query): Query<StateQuery>,
) -> Response {
    let mut rx = ctx.state.subscribe();
    if let Some(since) = query.since {
        let wait = query
            .timeout_ms
            .map_or(MAX_LONG_POLL, Duration::from_millis)
            .min(MAX_LONG_POLL);
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.version > since)).await;
    }
    let state = rx.borrow().clone();
    Json(state).into_response()
}

#[derive(Debug, Deserialize)]
struct ConnectRequest {
    /// A multiaddr ending in `/p2p/<peer id>`.
    addr: String,
    /// How long to wait for the connection, seconds (default 10).
    timeout_secs: Option<f64>,
}

async fn connect(
    State(ctx): State<Arc<ApiContext>>,
    Json(request): Json<ConnectRequest>,
) -> Result<Response, ApiError> {
    let timeout =
        Duration::try_from_secs_f64(request.timeout_secs.unwrap_or(10.0)).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "timeout_secs must be a positive number",
            )
        })?;
    let addr: multiaddr::Multiaddr = request.addr.parse().map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{:?} is not a multiaddr ({err}); expected e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…", request.addr),
        )
    })?;
    let peer_id = match addr.iter().last() {
        Some(multiaddr::Protocol::P2p(peer)) => peer.to_string(),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{addr} does not end in /p2p/<peer id>; add the peer id of the node to connect to"
                ),
            ));
        }
    };
    let command = Command::Dial {
        peer_id: Some(peer_id),
        addrs: vec![addr.to_string()],
    };
    match ctx.service.request(command, timeout).await? {
        Event::Dialed { peer_id, addr } => {
            Ok(Json(serde_json::json!({ "peer_id": peer_id, "addr": addr })).into_response())
        }
        Event::DialFailed { reason, .. } => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("could not connect to {addr}: {reason}"),
        )),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected answer from the network service: {other:?}"),
        )),
    }
}

async fn shutdown(State(ctx): State<Arc<ApiContext>>) -> Json<serde_json::Value> {
    ctx.shutdown.cancel();
    Json(serde_json::json!({ "ok": true }))
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
    }
}
