//! Guests: the host's controls of a session's guest page (`/api/playlists/<id>/guests`) and
//! the guest page's own API (`/g/<code>/…`, on a port of its own). The names here are a
//! contract: scripts and the guest page use them.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::listening::SessionView;

/// `POST /api/playlists/<id>/guests`: open (`on`) or close the session's guest page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestsRequest {
    pub on: bool,
    /// Listen on the LAN's interfaces too (default: 127.0.0.1 only).
    #[serde(default)]
    pub lan: bool,
    /// Tracks a guest may add per hour (default 10).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub adds_per_hour: Option<u32>,
    /// Also through the configured relay (`whatnext relay --guest-http PORT`), for guests
    /// off the LAN: the URL is then on the relay.
    #[serde(default)]
    pub relay: bool,
}

/// A guest, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestInfo {
    pub peer_id: String,
    pub name: String,
    /// Seconds since the guest's page last asked anything (a guest away for 5 minutes is
    /// gone).
    pub idle_secs: u64,
    pub added_last_hour: u32,
}

/// The session's guest page: what `guests ID on` prints and `guests ID` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestsReply {
    pub on: bool,
    /// `http://<addr>:<port>/g/<code>#pin=<PIN>`: the PIN in the fragment, which browsers
    /// never send, so it stays out of logs and history.
    #[ts(optional = nullable)]
    pub url: Option<String>,
    #[ts(optional = nullable)]
    pub pin: Option<String>,
    /// The other addresses the page answers on (each LAN interface with `--lan`).
    #[serde(default)]
    pub also: Vec<String>,
    pub guests: Vec<GuestInfo>,
    pub adds_per_hour: u32,
}

/// `DELETE /api/playlists/<id>/guests/<guest>`: takes a guest out (its peer id or name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestRemovedReply {
    pub peer_id: String,
}

/// `GET /g/<code>/info` (no cookie needed): what the join screen says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestPageInfo {
    /// The playlist's name.
    pub playlist: String,
    /// Whether this browser's cookie is a guest's still in.
    pub joined: bool,
    /// That guest's peer id (what its page signs as).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub me: Option<String>,
}

/// `POST /g/<code>/join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestJoinRequest {
    pub pin: String,
    pub name: String,
}

/// The answer of a join: who the guest is to the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestJoinReply {
    pub peer_id: String,
    pub name: String,
}

/// `POST /g/<code>/tracks`: a song typed in, or (`from_library`) a file of the host's
/// library found with `GET /g/<code>/library?q=…` (then `title` may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestTrackRequest {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub artists: Vec<String>,
    /// The content id (`blake3`) of a hit of the host's library.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub from_library: Option<String>,
}

/// A file of the host's library, as a guest sees it: its tags, never its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestLibraryHit {
    pub title: String,
    pub artists: Vec<String>,
    #[ts(optional = nullable)]
    pub album: Option<String>,
    #[ts(optional = nullable)]
    pub duration_ms: Option<u64>,
    /// What `from_library` names.
    pub blake3: String,
}

/// `GET /g/<code>/library?q=…`: the host's files whose title, artists or album hold every
/// word of the query (at most 20).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestLibraryReply {
    pub hits: Vec<GuestLibraryHit>,
}

/// A guest's vote on a track of up next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum GuestVote {
    Up,
    Down,
    Clear,
}

impl GuestVote {
    /// As a session vote: 1, -1 or 0.
    pub fn value(self) -> i64 {
        match self {
            GuestVote::Up => 1,
            GuestVote::Down => -1,
            GuestVote::Clear => 0,
        }
    }
}

/// `POST /g/<code>/vote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestVoteRequest {
    pub track_id: String,
    pub vote: GuestVote,
}

/// `POST /g/<code>/react`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestReactRequest {
    pub emoji: String,
}

/// `POST /g/<code>/comments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestCommentRequest {
    pub text: String,
    #[serde(default)]
    #[ts(optional = nullable)]
    pub track_id: Option<String>,
}

/// Someone in the session, as the guest page lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct GuestPerson {
    pub peer_id: String,
    pub name: String,
    pub guest: bool,
}

/// `GET /g/<code>/state[?since=V]`: the session as `session now --json` shows it, plus the
/// version to long-poll from and who is who.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct GuestState {
    pub version: u64,
    /// The playlist's name.
    pub playlist: String,
    /// The guest's own name.
    pub my_name: String,
    /// The owner, the members and the guests.
    pub people: Vec<GuestPerson>,
    /// How many tracks up next holds: the session's `up_next` here lists only the first
    /// [`GUEST_UP_NEXT`] (a phone draws them at every change, and a guest page through a
    /// relay answers within [`MAX_TUNNEL_BODY`]).
    pub up_next_total: usize,
    #[serde(flatten)]
    #[ts(flatten)]
    pub session: SessionView,
}

/// How many tracks of up next a guest's state lists (~15 kB of JSON).
pub const GUEST_UP_NEXT: usize = 100;

/// The guest tunnel between a relay and a host behind NAT: the relay serves guests'
/// browsers on `whatnext relay --guest-http PORT` and forwards each request to the host over
/// this protocol; the host answers as its guest page would.
pub const GUEST_TUNNEL_PROTOCOL: &str = "/whatnext/guest-http/1.0.0";

/// Longest body a tunnelled request or answer carries.
pub const MAX_TUNNEL_BODY: usize = 256 * 1024;

/// A message of the guest tunnel (host → relay: `register`; relay → host: `http`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TunnelRequest {
    /// The host serves these guest pages' codes: the relay forwards their requests to it
    /// for as long as it stays connected.
    Register { codes: Vec<String> },
    /// A guest's HTTP request, as the relay received it.
    Http(TunnelHttp),
}

/// An HTTP request or answer through the tunnel. `path` (with its query) for a request,
/// `status` for an answer; the body in base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelHttp {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The guest's address as the relay saw it (for the lockout).
    #[serde(default)]
    pub client: String,
}

/// The answer to a [`TunnelRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TunnelResponse {
    /// Where guests reach the host's pages on the relay (`http://<relay>:<port>`).
    Registered {
        base: String,
    },
    Refused {
        reason: String,
    },
    Http(TunnelHttp),
}

/// The headers a tunnel carries (the rest are the relay's or the browser's business).
pub const TUNNEL_HEADERS: &[&str] = &[
    "host",
    "origin",
    "cookie",
    "content-type",
    "accept",
    "set-cookie",
    "retry-after",
    "cache-control",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "x-wn-sig",
];

/// The header of a request signed with the link's key:
/// `<unix ms>.<nonce, 32 hex digits>.<HMAC-SHA256, 64 hex digits>` over
/// [`signed_message`]. A relay, which never sees the link's fragment, can neither make nor
/// replay one.
pub const SIGNATURE_HEADER: &str = "x-wn-sig";

/// A guest page's signature of one request, as it sends it in [`SIGNATURE_HEADER`]:
/// `<at_ms>.<nonce: 16 bytes, hex>.<HMAC-SHA256: hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSignature<'a> {
    pub at_ms: u64,
    /// The nonce as sent (hex): it is part of what was signed.
    pub nonce_hex: &'a str,
    pub nonce: [u8; 16],
    pub mac: Vec<u8>,
}

/// Reads a [`SIGNATURE_HEADER`] value; None when it is not one. (Whether it is right is
/// checked against the link's key by the host.)
pub fn parse_signature(header: &str) -> Option<LinkSignature<'_>> {
    let mut fields = header.splitn(3, '.');
    let (at, nonce_hex, mac) = (fields.next()?, fields.next()?, fields.next()?);
    let at_ms = at.parse::<u64>().ok()?;
    let nonce = <[u8; 16]>::try_from(hex::decode(nonce_hex).ok()?.as_slice()).ok()?;
    let mac = hex::decode(mac).ok()?;
    Some(LinkSignature {
        at_ms,
        nonce_hex,
        nonce,
        mac,
    })
}

/// What a guest page signs: the page's code, who signs (the guest's peer id once it has
/// joined, else empty: so a request cannot be passed off with another guest's cookie), the
/// time and nonce, the method, the path with its query, and the body's SHA-256 (hex), one
/// per line.
pub fn signed_message(
    code: &str,
    who: &str,
    at_ms: u64,
    nonce_hex: &str,
    method: &str,
    path: &str,
    body_sha256_hex: &str,
) -> String {
    format!("{code}\n{who}\n{at_ms}\n{nonce_hex}\n{method}\n{path}\n{body_sha256_hex}")
}
