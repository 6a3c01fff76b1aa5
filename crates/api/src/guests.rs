//! Guests: the host's controls of a session's guest page (under the owner's API and its
//! guard: `POST|GET /api/playlists/<id>/guests`, `DELETE …/guests/<guest>`) and the guest
//! page itself, served on a port of its own — a separate origin with a separate cookie, so
//! a guest's browser never holds anything the owner's API takes, and the owner's view is
//! never reachable from the LAN.
//!
//! The guest server answers only `/g/<code>/…` of its own page: the page (`GET /g/<code>`,
//! the PIN in the URL's fragment), `info`, `join` (sets `wn_guest`, HttpOnly,
//! SameSite=Strict, Path `/g/<code>`), `state` (long poll like `/api/state`), and the writes
//! `tracks`, `vote`, `skip`, `react`, `comments` (refused from another origin). What a guest
//! may do is the core's and the session's business; this module only speaks HTTP.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{ConnectInfo, Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post},
};
use serde::Deserialize;
use tokio::net::TcpListener;
use whatnext_core::guests::{GuestError, JoinError, Seat};
use whatnext_protocol::{
    api::OkReply,
    guest::{
        GuestCommentRequest, GuestInfo, GuestJoinReply, GuestJoinRequest, GuestPageInfo,
        GuestReactRequest, GuestRemovedReply, GuestTrackRequest, GuestVoteRequest, GuestsReply,
        GuestsRequest, LinkSignature, SIGNATURE_HEADER, parse_signature, signed_message,
    },
    listening::SessionAction,
};

use crate::{context::Api, error::ApiError, http_server};

const GUEST_HTML: &str = include_str!("../assets/guest.html");
const GUEST_JS: &str = include_str!("../assets/guest.js");
const GUEST_CSS: &str = include_str!("../assets/guest.css");
/// The guest's cookie.
const COOKIE: &str = "wn_guest";
/// Longest a guest's `state?since=V` waits for a change.
const MAX_LONG_POLL: Duration = Duration::from_secs(25);

type Reply = Result<Response, ApiError>;

/// The host's routes, under the owner API's guard.
pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/api/playlists/{id}/guests", get(show).post(switch))
        .route("/api/playlists/{id}/guests.svg", get(qr))
        .route("/api/playlists/{id}/guests/{guest}", delete(remove))
}

impl From<GuestError> for ApiError {
    fn from(err: GuestError) -> Self {
        let err = match err {
            GuestError::Store(store) => return ApiError::from(store),
            other => other,
        };
        let status = match &err {
            GuestError::Join(JoinError::WrongPin) | GuestError::NotIn => StatusCode::UNAUTHORIZED,
            GuestError::Join(JoinError::Locked { .. } | JoinError::TooManyJoins)
            | GuestError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
            GuestError::Join(JoinError::NoSuchPage) => StatusCode::NOT_FOUND,
            GuestError::Join(JoinError::BadName(_)) => StatusCode::BAD_REQUEST,
            GuestError::Join(JoinError::Full) => StatusCode::SERVICE_UNAVAILABLE,
            GuestError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, err.to_string())
    }
}

/// What `guests ID` shows.
fn reply(api: &Api, id: &str, pin: Option<String>) -> GuestsReply {
    let core = api.core();
    let addresses = core.guests().addresses_of(id);
    let code = core.guests().code_of(id);
    let (guests, adds_per_hour) = core
        .guests()
        .list(id, std::time::Instant::now())
        .unwrap_or_default();
    let url = match (&code, addresses.first()) {
        (Some((code, pin)), Some(base)) => {
            let key = core
                .guests()
                .link_key(code)
                .map(hex::encode)
                .unwrap_or_default();
            Some(format!("{base}/g/{code}#pin={pin}&k={key}"))
        }
        _ => None,
    };
    GuestsReply {
        on: code.is_some(),
        url,
        pin: pin.or_else(|| code.as_ref().map(|(_, pin)| pin.clone())),
        also: match &code {
            Some((code, _)) => addresses
                .iter()
                .skip(1)
                .map(|base| format!("{base}/g/{code}"))
                .collect(),
            None => vec![],
        },
        guests: guests
            .into_iter()
            .map(|g| GuestInfo {
                peer_id: g.peer_id,
                name: g.name,
                idle_secs: g.idle_secs,
                added_last_hour: g.added_last_hour,
            })
            .collect(),
        adds_per_hour,
    }
}

async fn show(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Reply {
    Ok(Json(reply(&api, &id, None)).into_response())
}

/// The QR code of the guest page's URL (with its PIN), for the host's view.
async fn qr(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Reply {
    match reply(&api, &id, None).url {
        Some(url) => Ok(crate::view::qr_svg(&url)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("playlist {id} has no guest page open"),
        )),
    }
}

async fn remove(State(api): State<Arc<Api>>, Path((id, guest)): Path<(String, String)>) -> Reply {
    match api.core().guests().remove(&id, &guest) {
        Some(peer_id) => Ok(Json(GuestRemovedReply { peer_id }).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no guest {guest:?} in playlist {id}'s guest page; `whatnext session guests {id}` lists them"
            ),
        )),
    }
}

/// Opens (with its own server) or closes the guest page of playlist `id`.
async fn switch(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Json(req): Json<GuestsRequest>,
) -> Reply {
    let core = api.core();
    if !req.on {
        core.guests().close(&id);
        return Ok(Json(reply(&api, &id, None)).into_response());
    }
    let page = core.open_guests(&id, req.adds_per_hour)?;
    if !page.existing {
        let bind = if req.lan {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        let listener = match TcpListener::bind(SocketAddr::new(bind, 0)).await {
            Ok(listener) => listener,
            Err(err) => {
                core.guests().close(&id);
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("could not open a port for the guest page: {err}"),
                ));
            }
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        core.guests()
            .set_addresses(&id, page_addresses(req.lan, port));
        // The page's server stops when the page closes or the controller stops.
        let stop = core.shutdown_token().child_token();
        let closed = page.closed.clone();
        let stopper = stop.clone();
        tokio::spawn(async move {
            closed.cancelled().await;
            stopper.cancel();
        });
        let router = guest_router(Arc::clone(&api));
        let limits = http_server::Limits::for_fd_limit(http_server::raise_fd_limit());
        tokio::spawn(async move {
            if let Err(err) = http_server::serve(listener, router, stop, limits).await {
                tracing::warn!("the guest page's server stopped: {err}");
            }
        });
        tracing::info!("guest page of playlist {id} open on port {port}");
    }
    if req.relay
        && let Err(err) = core.relay_guests(&id).await
    {
        if !page.existing {
            core.guests().close(&id);
        }
        return Err(err.into());
    }
    Ok(Json(reply(&api, &id, Some(page.pin))).into_response())
}

/// `http://<addr>:<port>` for each address the page answers on, the one for its URL first:
/// loopback, or with `lan` this machine's LAN addresses (IPv4 first).
fn page_addresses(lan: bool, port: u16) -> Vec<String> {
    if !lan {
        return vec![format!("http://127.0.0.1:{port}")];
    }
    let mut ips: Vec<IpAddr> = whatnext_core::doctor::Interfaces::read()
        .map(|i| i.non_loopback)
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| entry.split(' ').next()?.parse().ok())
        .filter(|ip: &IpAddr| match ip {
            IpAddr::V4(_) => true,
            // A link-local IPv6 address needs a zone a URL cannot carry.
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    let mut addresses: Vec<String> = ips
        .into_iter()
        .map(|ip| format!("http://{}", SocketAddr::new(ip, port)))
        .collect();
    addresses.push(format!("http://127.0.0.1:{port}"));
    addresses
}

/// The guest page's own server: nothing but `/g/…`.
fn guest_router(api: Arc<Api>) -> Router {
    Router::new()
        .route(
            "/g/guest.js",
            get(|| asset("text/javascript; charset=utf-8", GUEST_JS)),
        )
        .route(
            "/g/guest.css",
            get(|| asset("text/css; charset=utf-8", GUEST_CSS)),
        )
        .route("/g/{code}", get(page))
        .route("/g/{code}/info", get(info))
        .route("/g/{code}/join", post(join))
        .route("/g/{code}/state", get(state))
        .route("/g/{code}/tracks", post(add))
        .route("/g/{code}/library", get(library))
        .route("/g/{code}/vote", post(vote))
        .route("/g/{code}/skip", post(skip))
        .route("/g/{code}/react", post(react))
        .route("/g/{code}/comments", post(comment))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&api),
            link_signatures,
        ))
        .layer(middleware::from_fn(same_origin_writes))
        .layer(middleware::from_fn(crate::router::errors_as_json))
        .layer(middleware::from_fn(crate::view::security_headers))
        .with_state(api)
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

/// A request that came through a relay's tunnel.
#[derive(Debug, Clone, Copy)]
struct Tunnelled;

/// A request signed with the page's link key (checked by [`link_signatures`]).
#[derive(Debug, Clone, Copy)]
struct SignedByLink;

/// Longest body of a guest's request.
const MAX_GUEST_BODY: usize = 64 * 1024;

/// Checks a request's link signature ([`SIGNATURE_HEADER`]) when it has one, and demands
/// one of what comes through a relay (all but the page's own files and `info`): the relay
/// never sees the link's key, so it can neither make such a request nor replay one (each
/// nonce is taken once), nor learn the PIN (a signed join carries none).
async fn link_signatures(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let mut parts = path.trim_start_matches("/g/").splitn(2, '/');
    let code = parts.next().unwrap_or("").to_string();
    let rest = parts.next().unwrap_or("");
    let open_to_all = rest.is_empty() || rest == "info" || code.starts_with("guest.");
    let signature = request
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(signature) = signature else {
        if request.extensions().get::<Tunnelled>().is_some() && !open_to_all {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "through a relay, a guest page needs the whole link the host gave (scan its QR code): this request was not signed with its key",
            )
            .into_response();
        }
        return next.run(request).await;
    };
    let refused =
        |why: &str| ApiError::new(StatusCode::UNAUTHORIZED, why.to_string()).into_response();
    let Some(key) = api.core().guests().link_key(&code) else {
        return next.run(request).await; // the page answers 404 itself
    };
    let (head, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_GUEST_BODY).await else {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large")
            .into_response();
    };
    let Some(LinkSignature {
        at_ms,
        nonce_hex: nonce,
        nonce: nonce_bytes,
        mac,
    }) = parse_signature(&signature)
    else {
        return refused("a malformed signature");
    };
    let path_and_query = head
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(path.as_str());
    let body_hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&body))
    };
    // Who signs: the guest behind the cookie (a relay cannot move a guest's signed request
    // onto another guest's cookie), or nobody yet.
    let who = cookie_token(&head.headers)
        .and_then(|token| api.core().guests().peer_of(&code, &token))
        .unwrap_or_default();
    let message = signed_message(
        &code,
        &who,
        at_ms,
        nonce,
        head.method.as_str(),
        path_and_query,
        &body_hash,
    );
    let valid = {
        use hmac::Mac as _;
        match hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) {
            Ok(mut hmac) => {
                hmac.update(message.as_bytes());
                hmac.verify_slice(&mac).is_ok()
            }
            Err(_) => false,
        }
    };
    if !valid {
        return refused("the request's signature does not match this page's link");
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if !api
        .core()
        .guests()
        .fresh_nonce(&code, nonce_bytes, at_ms, now_ms)
    {
        return refused("a request seen before, or with a clock far from the host's");
    }
    let mut request = Request::from_parts(head, axum::body::Body::from(body));
    request.extensions_mut().insert(SignedByLink);
    next.run(request).await
}

/// Writes from a page of another origin are refused (the cookie is SameSite=Strict too).
async fn same_origin_writes(request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::GET {
        let headers = request.headers();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
            && origin != format!("http://{host}")
        {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!("writes from origin {origin:?} are not allowed"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

fn page_is_open(api: &Api, code: &str) -> Result<String, ApiError> {
    api.core().guests().playlist_of(code).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this guest page is closed; ask the host for a new link",
        )
    })
}

async fn page(State(api): State<Arc<Api>>, Path(code): Path<String>) -> Reply {
    page_is_open(&api, &code)?;
    Ok(Html(GUEST_HTML).into_response())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    crate::view::cookie_value(headers, COOKIE)
}

/// The guest behind the request's cookie.
fn seat(api: &Api, code: &str, headers: &HeaderMap) -> Result<(String, Seat), ApiError> {
    page_is_open(api, code)?;
    let token = cookie_token(headers).ok_or(GuestError::NotIn)?;
    let seat = api.core().guest_seat(code, &token)?;
    Ok((token, seat))
}

async fn info(State(api): State<Arc<Api>>, Path(code): Path<String>, headers: HeaderMap) -> Reply {
    let playlist = page_is_open(&api, &code)?;
    let name = api
        .core()
        .state()
        .snapshot()
        .playlists
        .iter()
        .find(|p| p.id == playlist)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let me = seat(&api, &code, &headers)
        .ok()
        .map(|(_, seat)| seat.peer_id);
    Ok(Json(GuestPageInfo {
        playlist: name,
        joined: me.is_some(),
        me,
    })
    .into_response())
}

async fn join(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    signed: Option<axum::Extension<SignedByLink>>,
    Json(req): Json<GuestJoinRequest>,
) -> Reply {
    // Signed with the link's key: the link (which holds the PIN) is proof enough, and the
    // PIN need not travel.
    let pin = if signed.is_some() {
        None
    } else {
        Some(req.pin.as_str())
    };
    let (token, seat) = match api
        .core()
        .guest_join(&code, pin, &req.name, from.ip())
        .await
    {
        Ok(joined) => joined,
        Err(err @ GuestError::Join(JoinError::Locked { retry_after })) => {
            let mut response = ApiError::from(err).into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Ok(response);
        }
        Err(err) => return Err(err.into()),
    };
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/g/{code}");
    let mut response = Json(GuestJoinReply {
        peer_id: seat.peer_id,
        name: seat.name,
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn library(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    Query(search): Query<Search>,
    headers: HeaderMap,
) -> Reply {
    seat(&api, &code, &headers)?;
    Ok(Json(api.core().guest_library(&search.q)).into_response())
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

/// The session as the guest sees it; with `since`, once the state's version passes it (or
/// after [`MAX_LONG_POLL`], or at once when the page closes).
async fn state(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    Query(query): Query<Since>,
    headers: HeaderMap,
) -> Reply {
    let (_, seat) = seat(&api, &code, &headers)?;
    if let Some(since) = query.since {
        let mut changes = api.core().state().subscribe();
        let closed = api.core().guests().closed_token(&code);
        let closed = async move {
            if let Some(token) = closed {
                token.cancelled_owned().await;
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(MAX_LONG_POLL, changes.wait_for(|s| s.version > since)) => {}
            () = closed => {}
        }
        // Still in? (Closed pages and removed guests get their answer now.)
        let (_, again) = self::seat(&api, &code, &headers)?;
        return Ok(Json(api.core().guest_state(&again).await?).into_response());
    }
    Ok(Json(api.core().guest_state(&seat).await?).into_response())
}

async fn add(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    headers: HeaderMap,
    Json(req): Json<GuestTrackRequest>,
) -> Reply {
    let (token, seat) = seat(&api, &code, &headers)?;
    let track = api.core().guest_track(req)?;
    let id = api.core().guest_add(&code, &token, &seat, track).await?;
    Ok(Json(whatnext_protocol::api::AddedTrack { track_id: Some(id) }).into_response())
}

/// Does `action` as the guest behind the request's cookie.
async fn act(api: &Api, code: &str, headers: &HeaderMap, action: SessionAction) -> Reply {
    let (token, seat) = seat(api, code, headers)?;
    api.core().guest_act(code, &token, &seat, action).await?;
    Ok(Json(OkReply::OK).into_response())
}

async fn vote(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    headers: HeaderMap,
    Json(req): Json<GuestVoteRequest>,
) -> Reply {
    let action = SessionAction::Vote {
        track_id: req.track_id,
        vote: req.vote.value(),
    };
    act(&api, &code, &headers, action).await
}

async fn skip(State(api): State<Arc<Api>>, Path(code): Path<String>, headers: HeaderMap) -> Reply {
    act(&api, &code, &headers, SessionAction::Skip).await
}

async fn react(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    headers: HeaderMap,
    Json(req): Json<GuestReactRequest>,
) -> Reply {
    let (_, seat) = seat(&api, &code, &headers)?;
    api.core().guest_react(&seat, &req.emoji).await?;
    Ok(Json(OkReply::OK).into_response())
}

async fn comment(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    headers: HeaderMap,
    Json(req): Json<GuestCommentRequest>,
) -> Reply {
    let action = SessionAction::Comment {
        text: req.text,
        track_id: req.track_id,
        reply_to: None,
    };
    act(&api, &code, &headers, action).await
}

/// Answers guests' requests that come through a relay (see [`whatnext_core::guests::TunnelCall`])
/// with the guest page's own router, as if they had come to its port: same checks, same
/// answers. Runs until the core stops.
pub async fn serve_tunnel(
    api: Arc<Api>,
    mut calls: tokio::sync::mpsc::Receiver<whatnext_core::guests::TunnelCall>,
) {
    let router = guest_router(Arc::clone(&api));
    while let Some(call) = calls.recv().await {
        let router = router.clone();
        tokio::spawn(async move {
            let answer = tunnelled(router, call.request).await;
            let _ = call.reply.send(answer);
        });
    }
}

async fn tunnelled(
    router: Router,
    request: whatnext_protocol::guest::TunnelHttp,
) -> whatnext_protocol::guest::TunnelHttp {
    use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
    use tower::ServiceExt as _;
    use whatnext_protocol::guest::{MAX_TUNNEL_BODY, TUNNEL_HEADERS, TunnelHttp};
    let answer = |status: u16, text: &str| TunnelHttp {
        method: String::new(),
        path: String::new(),
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: B64.encode(serde_json::json!({ "error": text }).to_string()),
        client: String::new(),
    };
    let Ok(body) = B64.decode(&request.body) else {
        return answer(400, "the relay sent a body that is not base64");
    };
    if !request.path.starts_with("/g/") {
        return answer(404, "only guest pages are served here");
    }
    let mut builder = axum::http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str());
    for (name, value) in &request.headers {
        if TUNNEL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let Ok(mut http) = builder.body(axum::body::Body::from(body)) else {
        return answer(400, "the relay sent a request that is not HTTP");
    };
    let ip = request
        .client
        .parse()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    http.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 0)));
    http.extensions_mut().insert(Tunnelled);
    let Ok(response) = router.oneshot(http).await;
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_TUNNEL_BODY).await else {
        return answer(502, "the answer is too large for the tunnel");
    };
    TunnelHttp {
        method: String::new(),
        path: String::new(),
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| TUNNEL_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect(),
        body: B64.encode(&bytes),
        client: String::new(),
    }
}
