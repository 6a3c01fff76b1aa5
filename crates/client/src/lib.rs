//! A typed client of the running controller's loopback HTTP API, for the CLI (and any other
//! sync program on the same machine). It finds the URL and bearer token in the home's
//! `api.json` and offers one method per route, whose bodies and answers are the
//! [`whatnext_protocol::api`], [`whatnext_protocol::state`] and
//! [`whatnext_protocol::playlist`] types the controller serves, so no caller builds or reads
//! untyped JSON. Failures are a [`ClientError`]: the controller's own `{"error"}` text with
//! its status, a controller that is not running (no `api.json`, or a stale one left by a
//! killed controller: the connection is refused), one that cannot be reached, or an answer
//! that does not read as the route's type.
//!
//! Sync (ureq, one agent per request with a timeout over the whole exchange); no async
//! runtime of its own.
//!
//! Invariant: every answer is read into the route's `whatnext_protocol` type, at most
//! [`MAX_ANSWER_BYTES`] of it, or fails as a [`ClientError`] that names the route; nothing
//! here panics on what the controller or the network sends.

mod error;

use std::{path::PathBuf, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use whatnext_home::{ApiInfo, Home, HomeError};
use whatnext_protocol::{
    api::{
        AddTracksRequest, AddedTrack, AddedTracks, ConfigChange, ConnectReply, ConnectRequest,
        CreatePlaylistRequest, CreatedReply, DisconnectRequest, DoctorReport, ErrorReply,
        ImportRequest, LinkReply, LoginLinkReply, MAX_BULK_BODY_BYTES, MoveRequest, OkReply,
        OpenRequest, PlaylistView, RenameRequest, RevokeRequest, SaveHistoryRequest, ShareRequest,
    },
    listening::{SessionAction, SessionView},
    playlist::{NewTrack, PlaylistSummary},
    state::{AppState, LinkAttempt},
};

pub use crate::error::ClientError;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Largest answer read (ureq's default, 10 MB, is less than a big playlist's JSON).
pub const MAX_ANSWER_BYTES: u64 = 512 * 1024 * 1024;

/// How long a quick request (state, invite, doctor, config, …) may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How long a playlist request may take: generous, as a write waits for fsync, and a
/// 10,000-track import is one request.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(120);
/// A library scan reads every new file whole (tags, BLAKE3).
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(3600);

/// The controller's wait for a connection when a request names none (its
/// `DEFAULT_LINK_TIMEOUT`).
const DEFAULT_LINK_SECS: f64 = 15.0;

/// The HTTP wait is this much longer than a dial's, so the dial's own error wins.
const DIAL_MARGIN: Duration = Duration::from_secs(5);

/// The longest long poll the controller holds (its `MAX_LONG_POLL`).
const MAX_LONG_POLL: Duration = Duration::from_secs(25);

/// A client of the controller that runs for one home.
#[derive(Debug, Clone)]
pub struct Client {
    home: PathBuf,
    info: ApiInfo,
}

enum Method {
    Get,
    Delete,
    Post(Option<Vec<u8>>),
}

impl Client {
    /// Reads `<home>/api.json`. Fails with "not running" ([`HomeError::NotRunning`]) when
    /// no controller runs for `home`.
    pub fn for_home(home: &Home) -> Result<Self> {
        let info = home.read_api_info()?;
        Ok(Self {
            home: home.dir().to_path_buf(),
            info,
        })
    }

    /// The controller's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.info.url
    }

    /// The controller's pid, as `api.json` says.
    pub fn pid(&self) -> u32 {
        self.info.pid
    }

    /// `GET /api/state`: the whole state now.
    pub fn state(&self) -> Result<AppState> {
        self.get("/api/state", TIMEOUT)
    }

    /// `GET /api/state?since=V`: the state once its version passes `since`, or as it is
    /// after `wait` (the controller holds a poll 25 s at most).
    pub fn state_after(&self, since: u64, wait: Duration) -> Result<AppState> {
        let wait = wait.min(MAX_LONG_POLL);
        let route = format!("/api/state?since={since}&timeout_ms={}", wait.as_millis());
        self.get(&route, wait + TIMEOUT)
    }

    /// `POST /api/connect`: dial a multiaddr ending in `/p2p/<peer id>` and wait until
    /// connected (or failed: a 502 with the reason).
    pub fn connect(&self, request: &ConnectRequest) -> Result<ConnectReply> {
        let wait = dial_wait(request.timeout_secs);
        self.post("/api/connect", Some(request), wait)
    }

    /// `POST /api/disconnect`: close every connection to a peer.
    pub fn disconnect(&self, peer_id: &str) -> Result<OkReply> {
        let request = DisconnectRequest {
            peer_id: peer_id.to_string(),
        };
        self.post("/api/disconnect", Some(&request), dial_wait(None))
    }

    /// `GET /api/invite`: a link a friend can open to connect to this node.
    pub fn invite(&self) -> Result<LinkReply> {
        self.get("/api/invite", TIMEOUT)
    }

    /// `POST /api/open`: open a `whtnxt://` link. The answer is the attempt, also when the
    /// controller refused the link (400) or could not connect (502): read its `status`.
    pub fn open(&self, request: &OpenRequest) -> Result<LinkAttempt> {
        let route = "/api/open";
        let body = encode(route, request)?;
        let wait = dial_wait(request.timeout_secs);
        let mut response = self.call(route, Method::Post(Some(body)), wait)?;
        let status = response.status();
        if status.is_success() {
            return read_json(route, response);
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if matches!(status.as_u16(), 400 | 502)
            && let Ok(attempt) = serde_json::from_str::<LinkAttempt>(&text)
        {
            return Ok(attempt);
        }
        Err(error_answer(route, status.as_u16(), &text))
    }

    /// `GET /api/doctor`: the controller's diagnosis of connectivity.
    pub fn doctor(&self) -> Result<DoctorReport> {
        self.get("/api/doctor", TIMEOUT)
    }

    /// `POST /api/config`: change settings while running.
    pub fn set_config(&self, change: &ConfigChange) -> Result<OkReply> {
        self.post("/api/config", Some(change), TIMEOUT)
    }

    /// `POST /api/login-link`: a fresh one-time login URL for the view.
    pub fn login_link(&self) -> Result<LoginLinkReply> {
        self.post::<(), _>("/api/login-link", None, TIMEOUT)
    }

    /// `POST /api/shutdown`: ask the controller to stop.
    pub fn shutdown(&self) -> Result<OkReply> {
        self.post::<(), _>("/api/shutdown", None, TIMEOUT)
    }

    /// `GET /api/playlists`: every playlist's summary, newest change first.
    pub fn playlists(&self) -> Result<Vec<PlaylistSummary>> {
        self.get("/api/playlists", STORE_TIMEOUT)
    }

    /// `POST /api/playlists`: create a playlist; the answer holds its id.
    pub fn create_playlist(&self, request: &CreatePlaylistRequest) -> Result<CreatedReply> {
        self.post("/api/playlists", Some(request), STORE_TIMEOUT)
    }

    /// `GET /api/playlists/{id}`: the playlist with its tracks and members.
    pub fn playlist(&self, id: &str) -> Result<PlaylistView> {
        self.get(&playlist_route(id, ""), STORE_TIMEOUT)
    }

    /// `POST /api/playlists/{id}/tracks` with one track.
    pub fn add_track(&self, id: &str, track: &NewTrack) -> Result<AddedTrack> {
        let request = AddTracksRequest::One(track.clone());
        self.post(
            &playlist_route(id, "/tracks"),
            Some(&request),
            STORE_TIMEOUT,
        )
    }

    /// `POST /api/playlists/{id}/tracks` with a batch. A batch over the route's limit
    /// ([`MAX_BULK_BODY_BYTES`]) is [`ClientError::TooLarge`], and nothing is sent.
    pub fn add_tracks(&self, id: &str, tracks: Vec<NewTrack>) -> Result<AddedTracks> {
        let request = AddTracksRequest::Batch { tracks };
        self.post_bulk(&playlist_route(id, "/tracks"), &request)
    }

    /// `POST /api/playlists/{id}/move`: move a track to another index.
    pub fn move_track(&self, id: &str, request: &MoveRequest) -> Result<OkReply> {
        self.post(&playlist_route(id, "/move"), Some(request), STORE_TIMEOUT)
    }

    /// `DELETE /api/playlists/{id}/tracks/{track_id}`.
    pub fn remove_track(&self, id: &str, track_id: &str) -> Result<OkReply> {
        let route = playlist_route(id, &format!("/tracks/{}", encode_segment(track_id)));
        self.delete(&route, STORE_TIMEOUT)
    }

    /// `POST /api/playlists/{id}/rename`.
    pub fn rename_playlist(&self, id: &str, request: &RenameRequest) -> Result<OkReply> {
        self.post(&playlist_route(id, "/rename"), Some(request), STORE_TIMEOUT)
    }

    /// `DELETE /api/playlists/{id}`: the playlist moves to the store's trash.
    pub fn delete_playlist(&self, id: &str) -> Result<OkReply> {
        self.delete(&playlist_route(id, ""), STORE_TIMEOUT)
    }

    /// `GET /api/playlists/{id}/export`: the playlist as Markdown with YAML front matter.
    pub fn export_playlist(&self, id: &str, format: Option<&str>) -> Result<String> {
        let mut route = playlist_route(id, "/export");
        if let Some(format) = format {
            // A name of a format (`md`, `m3u`, `xspf`): nothing in it needs escaping.
            route.push_str(&format!("?format={format}"));
        }
        let response = self.call(&route, Method::Get, STORE_TIMEOUT)?;
        let mut response = check_status(&route, response)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|source| ClientError::BadAnswer { route, source })
    }

    /// `POST /api/playlists/import`: create a playlist from Markdown written by export. A
    /// request over the route's limit ([`MAX_BULK_BODY_BYTES`]: the text escaped as JSON)
    /// is [`ClientError::TooLarge`], and nothing is sent (the controller would hang up
    /// mid-upload, which reads as "broken pipe").
    pub fn import_playlist(&self, request: &ImportRequest) -> Result<CreatedReply> {
        self.post_bulk("/api/playlists/import", request)
    }

    /// `POST /api/playlists/{id}/share`: a link that lets a friend join the playlist.
    pub fn share_playlist(&self, id: &str, request: &ShareRequest) -> Result<LinkReply> {
        self.post(&playlist_route(id, "/share"), Some(request), STORE_TIMEOUT)
    }

    /// `POST /api/playlists/{id}/revoke`: stop sharing the playlist with one member.
    pub fn revoke_member(&self, id: &str, request: &RevokeRequest) -> Result<OkReply> {
        self.post(&playlist_route(id, "/revoke"), Some(request), STORE_TIMEOUT)
    }

    /// `GET /api/playlists/{id}/session`: the playlist's listening session as this member
    /// sees it now.
    pub fn session(&self, id: &str) -> Result<SessionView> {
        self.get(&playlist_route(id, "/session"), STORE_TIMEOUT)
    }

    /// `POST /api/playlists/{id}/session`: one action in the session; the answer is the
    /// session after it. An action the session's rules forbid this member is
    /// [`ClientError::Api`] with status 403 and the controller's reason (who may).
    pub fn session_act(&self, id: &str, action: &SessionAction) -> Result<SessionView> {
        self.post(&playlist_route(id, "/session"), Some(action), STORE_TIMEOUT)
    }

    /// `POST /api/playlists/{id}/session/save`: a new playlist holding what played in the
    /// session, in play order; the answer holds its id.
    pub fn save_session(&self, id: &str, request: &SaveHistoryRequest) -> Result<CreatedReply> {
        self.post(
            &playlist_route(id, "/session/save"),
            Some(request),
            STORE_TIMEOUT,
        )
    }

    /// `GET /api/playlists/{id}/guests`: the session's guest page and who is in it.
    pub fn guests(&self, id: &str) -> Result<whatnext_protocol::guest::GuestsReply> {
        self.get(&playlist_route(id, "/guests"), STORE_TIMEOUT)
    }

    /// `POST /api/playlists/{id}/guests`: opens (or closes) the session's guest page.
    pub fn switch_guests(
        &self,
        id: &str,
        request: &whatnext_protocol::guest::GuestsRequest,
    ) -> Result<whatnext_protocol::guest::GuestsReply> {
        self.post(&playlist_route(id, "/guests"), Some(request), STORE_TIMEOUT)
    }

    /// `DELETE /api/playlists/{id}/guests/{guest}`: takes a guest out (peer id or name).
    pub fn remove_guest(
        &self,
        id: &str,
        guest: &str,
    ) -> Result<whatnext_protocol::guest::GuestRemovedReply> {
        let route = playlist_route(id, &format!("/guests/{}", encode_segment(guest)));
        self.delete(&route, STORE_TIMEOUT)
    }

    /// `POST /api/library/scan`: scans the music folders (can take minutes on a big
    /// library; the state's `library.scanning` shows progress meanwhile).
    pub fn library_scan(&self) -> Result<whatnext_protocol::media::ScanReport> {
        self.post::<(), _>("/api/library/scan", None, SCAN_TIMEOUT)
    }

    /// `GET /api/library[?q=QUERY]`: the music library, or what matches `query`.
    pub fn library(&self, query: Option<&str>) -> Result<whatnext_protocol::media::LibraryReply> {
        let route = match query {
            Some(q) => format!("/api/library?q={}", encode_segment(q)),
            None => "/api/library".to_string(),
        };
        self.get(&route, STORE_TIMEOUT)
    }

    /// `POST /api/library/file`: reads one audio file (anywhere) into the library.
    pub fn library_file(&self, path: &str) -> Result<whatnext_protocol::media::LibraryEntry> {
        let request = whatnext_protocol::media::LibraryFileRequest {
            path: path.to_string(),
        };
        self.post("/api/library/file", Some(&request), STORE_TIMEOUT)
    }

    fn get<T: DeserializeOwned>(&self, route: &str, timeout: Duration) -> Result<T> {
        let response = self.call(route, Method::Get, timeout)?;
        read_json(route, response)
    }

    fn delete<T: DeserializeOwned>(&self, route: &str, timeout: Duration) -> Result<T> {
        let response = self.call(route, Method::Delete, timeout)?;
        read_json(route, response)
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        route: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T> {
        let body = body.map(|body| encode(route, body)).transpose()?;
        let response = self.call(route, Method::Post(body), timeout)?;
        read_json(route, response)
    }

    /// A POST to a bulk route, sized before it is sent.
    fn post_bulk<B: Serialize, T: DeserializeOwned>(&self, route: &str, body: &B) -> Result<T> {
        let body = encode(route, body)?;
        if body.len() > MAX_BULK_BODY_BYTES {
            return Err(ClientError::TooLarge {
                route: route.to_string(),
                bytes: body.len(),
                limit: MAX_BULK_BODY_BYTES,
            });
        }
        let response = self.call(route, Method::Post(Some(body)), STORE_TIMEOUT)?;
        read_json(route, response)
    }

    /// Sends one request; transport failures become errors that say what happened. The
    /// answer may have any status.
    fn call(
        &self,
        route: &str,
        method: Method,
        timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let url = format!("{}{route}", self.info.url);
        let auth = format!("Bearer {}", self.info.token);
        let response = match method {
            Method::Get => agent.get(&url).header("Authorization", &auth).call(),
            Method::Delete => agent.delete(&url).header("Authorization", &auth).call(),
            Method::Post(None) => agent.post(&url).header("Authorization", &auth).send_empty(),
            Method::Post(Some(body)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body),
        };
        match response {
            Ok(response) => Ok(response),
            Err(ureq::Error::Io(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                // api.json outlived its controller (e.g. after `kill -9`).
                Err(HomeError::NotRunning {
                    home: self.home.clone(),
                }
                .into())
            }
            Err(source) => Err(ClientError::Unreachable {
                url: self.info.url.clone(),
                source,
            }),
        }
    }
}

/// How long to wait for the answer of a request that dials for `timeout_secs`.
fn dial_wait(timeout_secs: Option<f64>) -> Duration {
    let secs = timeout_secs.unwrap_or(DEFAULT_LINK_SECS).max(0.0);
    // A wait no `Duration` holds (infinite, absurd) is refused by the controller at once.
    Duration::try_from_secs_f64(secs).map_or(TIMEOUT, |wait| wait + DIAL_MARGIN)
}

fn encode<B: Serialize>(route: &str, body: &B) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|source| ClientError::Encode {
        route: route.to_string(),
        source,
    })
}

fn read_json<T: DeserializeOwned>(
    route: &str,
    response: ureq::http::Response<ureq::Body>,
) -> Result<T> {
    check_status(route, response)?
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_json()
        .map_err(|source| ClientError::BadAnswer {
            route: route.to_string(),
            source,
        })
}

/// The response if its status is a success, else the error it carries.
fn check_status(
    route: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<ureq::http::Response<ureq::Body>> {
    if response.status().is_success() {
        return Ok(response);
    }
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Err(error_answer(route, response.status().as_u16(), &text))
}

/// An error answer: the controller's `{"error"}` text, or the start of whatever else came.
fn error_answer(route: &str, status: u16, text: &str) -> ClientError {
    match serde_json::from_str::<ErrorReply>(text) {
        Ok(reply) => ClientError::Api {
            route: route.to_string(),
            status,
            message: reply.error,
        },
        Err(_) => ClientError::Http {
            route: route.to_string(),
            status,
            body: text.chars().take(1024).collect(),
        },
    }
}

fn playlist_route(id: &str, rest: &str) -> String {
    format!("/api/playlists/{}{rest}", encode_segment(id))
}

/// Ids are hex, but users type anything: keep a path segment a path segment.
fn encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
