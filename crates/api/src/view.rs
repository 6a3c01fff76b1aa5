//! The view: HTML/CSS/JS embedded in the binary, served on the loopback API's origin.
//!
//! Login: `whatnext ui` (or `run` at start) asks for a one-time URL `/login?t=…`; opening it
//! sets an HttpOnly, SameSite=Strict session cookie and redirects to `/`. The page then uses
//! the same JSON API as the CLI, with the cookie instead of the bearer token, and follows the
//! state with a long poll on `/api/state?since=V`.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use whatnext_protocol::api::LoginLinkReply;

use crate::context::Api;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const CLIENT_JS: &str = include_str!("../assets/client.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

pub const COOKIE: &str = "wn_session";

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/client.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    CLIENT_JS,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    STYLE_CSS,
                )
            }),
        )
        // The page's own files, gzipped when the browser takes it (a phone on Wi-Fi or
        // through a relay loads them too): about a quarter of the bytes.
        .layer(tower_http::compression::CompressionLayer::new())
        .route("/login", get(login))
        .route("/api/login-link", post(login_link))
        .route("/api/invite.svg", get(invite_qr))
}

/// The page shown to a browser without the session cookie.
pub fn login_needed() -> Response {
    let body = "<!doctype html><meta charset=utf-8><title>WhatNext</title><h1>WhatNext</h1><p>This page needs a login link. Run <code>whatnext ui</code> to open one.</p>";
    (StatusCode::UNAUTHORIZED, Html(body)).into_response()
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE)
}

/// The value of cookie `name`, if the request carries one.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .filter(|value| !value.is_empty())
                .map(str::to_string)
        })
}

async fn login_link(State(api): State<Arc<Api>>) -> Json<LoginLinkReply> {
    Json(LoginLinkReply {
        url: api.access().new_login_url(),
    })
}

/// The invite link as a QR code, for a friend's phone.
async fn invite_qr(State(api): State<Arc<Api>>) -> Response {
    let link = match api.core().invite() {
        Ok(link) => link.to_string(),
        Err(message) => return (StatusCode::SERVICE_UNAVAILABLE, message).into_response(),
    };
    qr_svg(&link)
}

/// A QR code of `text`, as SVG.
pub fn qr_svg(text: &str) -> Response {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
        }
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw the QR code: {err}"),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    t: Option<String>,
}

async fn login(State(api): State<Arc<Api>>, Query(query): Query<LoginQuery>) -> Response {
    let presented = query.t.unwrap_or_default();
    if !api.access().redeem_login_token(&presented) {
        let body = "<!doctype html><meta charset=utf-8><title>WhatNext</title><h1>WhatNext</h1><p>This login link was already used, has expired, or is wrong. Run <code>whatnext ui</code> for a new one.</p>";
        return (StatusCode::UNAUTHORIZED, Html(body)).into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        api.access().view_secret()
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Headers every answer carries: no inline scripts or foreign origins, no sniffing, no
/// framing, no referrer leaking the port.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// The view's TypeScript definitions must be those of the Rust API types; `tsc --checkJs`
    /// then checks the view's code against them (scripts/test).
    #[test]
    fn api_types_are_current() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/api.d.ts");
        let generated = whatnext_protocol::api::typescript_definitions();
        if std::env::var_os("UPDATE_API_TYPES").is_some() {
            std::fs::write(&path, &generated).expect("writes assets/api.d.ts");
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is out of date with the Rust API types; regenerate it with \
             `UPDATE_API_TYPES=1 cargo test -p whatnext-api api_types`, then fix what \
             `tsc` reports in the view",
            path.display()
        );
    }
}
