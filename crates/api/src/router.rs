//! The router: every route under the guard. Defences, in order: the listener is bound to
//! 127.0.0.1 only; the `Host` header must name a loopback host (403 otherwise: DNS
//! rebinding); writes from a page of another origin are refused; every request carries the
//! per-run token as `Authorization: Bearer <token>` or the view's session cookie (401
//! otherwise). Every error answer of the API is `{"error": …}`, axum's own rejections
//! included.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};

use crate::{context::Api, error::ApiError, guests, media, playlists, routes, session, view};

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .merge(routes::routes())
        .merge(playlists::routes())
        .merge(session::routes())
        .merge(guests::routes())
        .merge(media::routes())
        .merge(view::routes())
        .layer(middleware::from_fn_with_state(api.clone(), guard))
        .layer(middleware::from_fn(errors_as_json))
        .layer(middleware::from_fn(view::security_headers))
        .with_state(api)
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

async fn guard(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
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
        .is_some_and(|t| api.access().is_token(t));
    let cookie =
        view::session_cookie(request.headers()).is_some_and(|c| api.access().is_view_secret(&c));
    if !bearer && !cookie {
        if !path.starts_with("/api/") {
            return view::login_needed();
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
pub(crate) async fn errors_as_json(request: Request, next: Next) -> Response {
    let is_api =
        request.uri().path().starts_with("/api/") || request.uri().path().starts_with("/g/");
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
}
