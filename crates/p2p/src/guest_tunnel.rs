//! The relay's side of the guest tunnel (`whatnext relay --guest-http PORT`): guests off
//! the LAN open a host's guest page on the relay; the relay forwards each HTTP request over
//! `/whatnext/guest-http/1.0.0` to the host that registered the page's code, and sends its
//! answer back. The relay checks nothing a guest sends (PINs, cookies: the host does) and
//! keeps nothing of it; it only forwards, within limits, and forgets a host's pages when
//! the host's last connection closes.
//!
//! The HTTP side runs in tasks of its own and talks to the swarm's loop through a channel:
//! the loop owns the table of tunnels and the requests in flight.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Request, Response, body::Bytes, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use libp2p::{PeerId, request_response::OutboundRequestId};
use tokio::sync::{mpsc, oneshot};
use whatnext_protocol::guest::{
    MAX_TUNNEL_BODY, TUNNEL_HEADERS, TunnelHttp, TunnelRequest, TunnelResponse,
};

/// What a relay allows the guest tunnels.
#[derive(Debug, Clone)]
pub struct TunnelLimits {
    /// Guest pages registered at once, over all hosts.
    pub max_pages: usize,
    /// Guest pages one host may register.
    pub max_pages_per_host: usize,
    /// Requests forwarded per page per second (a long poll is one).
    pub requests_per_second: u32,
    /// Requests in flight at once, over all pages (long polls wait up to 25 s each).
    pub max_in_flight: usize,
    /// Guests' HTTP connections open at once (idle ones included): a flood of sockets is
    /// turned away at the door instead of taking every descriptor.
    pub max_connections: usize,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        Self {
            max_pages: 1024,
            max_pages_per_host: 16,
            requests_per_second: 50,
            max_in_flight: 2048,
            max_connections: 4096,
        }
    }
}

/// The host's answer to a guest's request, or the status and reason it failed with.
pub type Answer = Result<TunnelHttp, (u16, String)>;

/// A guest's request on its way to the swarm's loop.
pub struct Forward {
    pub code: String,
    pub request: TunnelHttp,
    pub reply: oneshot::Sender<Answer>,
}

/// The tunnels, owned by the relay's swarm loop.
pub struct Tunnels {
    limits: TunnelLimits,
    /// Where guests reach the pages: `http://<relay>:<port>`.
    pub base: String,
    /// Code → the host that serves it.
    pages: HashMap<String, PeerId>,
    /// Code → (start of the current second, requests in it).
    rate: HashMap<String, (Instant, u32)>,
    in_flight: HashMap<OutboundRequestId, oneshot::Sender<Answer>>,
}

impl Tunnels {
    pub fn new(limits: TunnelLimits, base: String) -> Tunnels {
        Tunnels {
            limits,
            base,
            pages: HashMap::new(),
            rate: HashMap::new(),
            in_flight: HashMap::new(),
        }
    }

    /// A host's `register`: the answer to send back.
    pub fn register(&mut self, host: PeerId, codes: Vec<String>) -> TunnelResponse {
        let theirs = self.pages.values().filter(|p| **p == host).count();
        let fresh = codes
            .iter()
            .filter(|c| self.pages.get(*c) != Some(&host))
            .count();
        if theirs + fresh > self.limits.max_pages_per_host
            || self.pages.len() + fresh > self.limits.max_pages
        {
            return TunnelResponse::Refused {
                reason: "this relay carries as many guest pages as it takes".into(),
            };
        }
        for code in codes {
            let valid = !code.is_empty()
                && code.len() <= 64
                && code.bytes().all(|b| b.is_ascii_alphanumeric());
            if valid {
                self.pages.insert(code, host);
            }
        }
        tracing::info!("{host} now has {} guest page(s) here", theirs + fresh);
        TunnelResponse::Registered {
            base: self.base.clone(),
        }
    }

    /// Where a guest's request goes, or why it does not.
    pub fn route(&mut self, code: &str) -> Result<PeerId, (u16, String)> {
        let Some(host) = self.pages.get(code).copied() else {
            return Err((
                404,
                "no such guest page here (the host may have closed it, or gone offline)".into(),
            ));
        };
        if self.in_flight.len() >= self.limits.max_in_flight {
            return Err((503, "the relay is busy; try again in a moment".into()));
        }
        let now = Instant::now();
        let (since, count) = self.rate.entry(code.to_string()).or_insert((now, 0));
        if now.duration_since(*since) >= Duration::from_secs(1) {
            *since = now;
            *count = 0;
        }
        *count += 1;
        if *count > self.limits.requests_per_second {
            return Err((
                429,
                "too many requests for this guest page; slow down".into(),
            ));
        }
        Ok(host)
    }

    pub fn sent(&mut self, id: OutboundRequestId, reply: oneshot::Sender<Answer>) {
        self.in_flight.insert(id, reply);
    }

    /// The host's answer (or the failure) of request `id`.
    pub fn answered(&mut self, id: OutboundRequestId, answer: Answer) {
        if let Some(reply) = self.in_flight.remove(&id) {
            let _ = reply.send(answer);
        }
    }

    /// A host gone: its pages go with it.
    pub fn forget(&mut self, host: &PeerId) {
        let before = self.pages.len();
        self.pages.retain(|_, p| p != host);
        let gone = before - self.pages.len();
        if gone > 0 {
            tracing::info!("{host} left; its {gone} guest page(s) closed here");
        }
        let pages = &self.pages;
        self.rate.retain(|code, _| pages.contains_key(code));
    }
}

/// The host's answer as the tunnel's result.
pub fn answer_of(body: serde_json::Value) -> Answer {
    match serde_json::from_value::<TunnelResponse>(body) {
        Ok(TunnelResponse::Http(http)) => Ok(http),
        Ok(TunnelResponse::Refused { reason }) => Err((502, reason)),
        Ok(TunnelResponse::Registered { .. }) | Err(_) => {
            Err((502, "the host answered something else".into()))
        }
    }
}

/// A host's message to us, if it is a registration.
pub fn registration(body: serde_json::Value) -> Option<Vec<String>> {
    match serde_json::from_value::<TunnelRequest>(body) {
        Ok(TunnelRequest::Register { codes }) => Some(codes),
        _ => None,
    }
}

/// Serves guests' browsers on `listener`, handing each request to the swarm's loop; at most
/// `max_connections` at once.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    forward: mpsc::Sender<Forward>,
    max_connections: usize,
) {
    let open = std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = std::sync::Arc::clone(&open).try_acquire_owned() else {
            drop(stream); // full: the newcomer goes, the guests already in stay
            continue;
        };
        let forward = forward.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request| {
                let forward = forward.clone();
                async move { Ok::<_, Infallible>(handle(request, from, forward).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            // Long polls hold a connection 25 s; anything past a minute is stuck.
            let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
        });
    }
}

fn reply(status: u16, body: Bytes, headers: &[(String, String)]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::try_from(name.as_str()),
            hyper::header::HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn error(status: u16, text: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        Bytes::from(serde_json::json!({ "error": text }).to_string()),
        &[("content-type".into(), "application/json".into())],
    )
}

async fn handle(
    request: Request<hyper::body::Incoming>,
    from: SocketAddr,
    forward: mpsc::Sender<Forward>,
) -> Response<Full<Bytes>> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(code) = path
        .strip_prefix("/g/")
        .and_then(|rest| rest.split(['/', '?']).next())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
    else {
        return error(404, "this relay serves guest pages only (/g/<code>)");
    };
    let method = request.method().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter(|(name, _)| TUNNEL_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let body = match Limited::new(request.into_body(), MAX_TUNNEL_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(413, "the request is too large"),
    };
    let (reply_tx, answer) = oneshot::channel();
    let sent = forward
        .send(Forward {
            code,
            request: TunnelHttp {
                method,
                path,
                status: 0,
                headers,
                body: B64.encode(&body),
                client: from.ip().to_string(),
            },
            reply: reply_tx,
        })
        .await;
    if sent.is_err() {
        return error(503, "the relay is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(35), answer).await {
        Ok(Ok(Ok(http))) => match B64.decode(&http.body) {
            Ok(body) => reply(http.status, Bytes::from(body), &http.headers),
            Err(_) => error(502, "the host's answer was garbled"),
        },
        Ok(Ok(Err((status, text)))) => error(status, &text),
        _ => error(504, "the host did not answer in time"),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Idle sockets take at most `max_connections`; one more is closed at once, and a guest
    /// already connected is still answered.
    #[tokio::test]
    async fn a_flood_of_idle_sockets_is_turned_away_at_the_door() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (forward, mut forwards) = mpsc::channel::<Forward>(8);
        tokio::spawn(serve_http(listener, forward, 2));
        let mut guest = tokio::net::TcpStream::connect(addr).await.expect("guest");
        let _idle = tokio::net::TcpStream::connect(addr).await.expect("idle");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut byte)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the third socket was kept: {read:?}"
        );
        // The guest's request still goes through to the loop.
        guest
            .write_all(b"GET /g/abc/info HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("send");
        let forwarded = tokio::time::timeout(Duration::from_secs(5), forwards.recv())
            .await
            .expect("in time")
            .expect("a request");
        assert_eq!(forwarded.code, "abc");
        assert_eq!(forwarded.request.path, "/g/abc/info");
    }
}
