//! Guests: people at the party who join a listening session from a phone's browser, with
//! no app. The member who opens a guest page (`whatnext session guests ID on`) is their
//! host: its app keeps a key for each guest and makes the guest's edits with it, so they
//! reach every member signed by and attributed to the guest, under the rules every member
//! checks (a guest holds no playback and changes no mode).
//!
//! This module is the registry of open pages and of the guests in them: the code in each
//! page's URL, its PIN (checked in constant time; ten wrong tries in a minute, from one
//! address or from all, lock the page for a minute), the guests' cookies (kept as hashes),
//! their keys, names and add limits. It does no I/O: the API crate serves the pages and the
//! [`Core`](crate::Core) writes the edits.
//!
//! One lock, never held across an `.await`; every operation is a few map lookups.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use libp2p_identity::Keypair;
use rand::Rng as _;
use tokio_util::sync::CancellationToken;
use whatnext_protocol::{
    guest::{GuestLibraryHit, GuestLibraryReply, GuestPerson, GuestState, GuestTrackRequest},
    listening::SessionAction,
    playlist::{Author, NewTrack},
};
use whatnext_store::StoreError;

use crate::{listening, state::now_ms};

/// Wrong PINs that lock a page (from one address, or from all together)…
pub const MAX_WRONG_PINS: usize = 10;
/// …within this long…
pub const WRONG_PIN_WINDOW: Duration = Duration::from_secs(60);
/// …for this long.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// A guest not heard from for this long (a phone asleep, out of Wi-Fi) is gone: joining
/// again needs the PIN and makes a new guest.
pub const GUEST_GRACE: Duration = Duration::from_secs(5 * 60);
/// Tracks a guest may add per hour, unless the host says otherwise.
pub const DEFAULT_ADDS_PER_HOUR: u32 = 10;
/// Guests one page takes.
pub const MAX_GUESTS_PER_PAGE: usize = 500;
/// Comments a guest may post per minute.
pub const COMMENTS_PER_MINUTE: usize = 6;
/// Longest guest name, in characters.
pub const MAX_GUEST_NAME: usize = 40;
/// Joins one address may make per [`JOIN_WINDOW`] (each is a new member of the playlist;
/// a party behind one router still fits).
pub const JOINS_PER_ADDRESS: usize = 30;
pub const JOIN_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Hits of a guest's library search.
pub const MAX_LIBRARY_HITS: usize = 20;
/// How far a signed request's time may be from ours (phones' clocks are set by the network).
pub const SIGNED_REQUEST_SKEW: Duration = Duration::from_secs(5 * 60);
/// Nonces of signed requests remembered per page.
const MAX_NONCES: usize = 50_000;
/// Digits of a PIN.
const PIN_DIGITS: usize = 6;

/// Why a guest may not join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("this guest page is closed; ask the host for a new link")]
    NoSuchPage,
    #[error("wrong PIN; check it with the host")]
    WrongPin,
    #[error("too many wrong PINs; try again in {} s", retry_after.as_secs().max(1))]
    Locked { retry_after: Duration },
    #[error("{0}")]
    BadName(String),
    #[error("this session has as many guests as it takes ({MAX_GUESTS_PER_PAGE})")]
    Full,
    #[error("too many guests joined from this address lately; try again in a few minutes")]
    TooManyJoins,
}

/// Why a guest's edit was not taken (before the session's own rules are asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestLimit {
    #[error("you added {0} tracks in the last hour, as many as the host allows; try again later")]
    Adds(u32),
    #[error("at most {COMMENTS_PER_MINUTE} comments a minute; wait a moment")]
    Comments,
}

/// A page just opened, or the one already open.
#[derive(Debug, Clone)]
pub struct OpenPage {
    pub code: String,
    pub pin: String,
    /// Cancelled when the page closes: the API's server for it stops.
    pub closed: CancellationToken,
    /// Whether it was open already (the same code and PIN are given again).
    pub existing: bool,
}

/// A guest as the API sees it on each request.
#[derive(Clone)]
pub struct Seat {
    pub playlist: String,
    pub peer_id: String,
    pub name: String,
    pub key: Keypair,
}

/// A guest, for the host's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEntry {
    pub peer_id: String,
    pub name: String,
    /// Seconds since the guest was last heard from.
    pub idle_secs: u64,
    pub added_last_hour: u32,
}

struct Guest {
    peer_id: String,
    name: String,
    key: Keypair,
    last_seen: Instant,
    /// When the guest's recent tracks and comments were added.
    adds: VecDeque<Instant>,
    comments: VecDeque<Instant>,
}

struct Page {
    playlist: String,
    /// The link's key (in the URL's fragment, never sent): requests signed with it are
    /// the page's own, whoever carried them (see [`Guests::link_key`]).
    link_key: [u8; 16],
    /// Signed requests' nonces seen lately, so none is taken twice, oldest first.
    nonces: VecDeque<(u64, [u8; 16])>,
    /// The relay that forwards guests' requests for this page (`--relay`), by peer id.
    relay: Option<String>,
    /// Where the page answers: its URL's start (`http://<addr>:<port>`), then any other
    /// addresses (each LAN interface).
    addresses: Vec<String>,
    pin: String,
    closed: CancellationToken,
    adds_per_hour: u32,
    /// Cookie hash → guest.
    guests: HashMap<[u8; 32], Guest>,
    /// Wrong PINs: when, and from where.
    wrong: VecDeque<(Instant, IpAddr)>,
    /// Joins of the last [`JOIN_WINDOW`]: when, and from where.
    joins: VecDeque<(Instant, IpAddr)>,
    /// Until when an address (or, under `None`, everyone) may not try.
    locked: HashMap<Option<IpAddr>, Instant>,
}

#[derive(Default)]
struct Registry {
    /// Code → page.
    pages: HashMap<String, Page>,
}

/// The open guest pages (see the module's documentation).
#[derive(Default)]
pub struct Guests {
    registry: Mutex<Registry>,
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Equal without saying where they differ: the time taken does not depend on the PIN typed.
fn same_pin(typed: &str, pin: &str) -> bool {
    let (typed, pin) = (typed.as_bytes(), pin.as_bytes());
    let mut differ = u8::from(typed.len() != pin.len());
    for (i, expected) in pin.iter().enumerate() {
        differ |= typed.get(i).copied().unwrap_or(0) ^ expected;
    }
    differ == 0
}

/// A name as guests may give it: trimmed, one line, not empty, not too long.
pub fn clean_guest_name(name: &str) -> Result<String, String> {
    let name = whatnext_protocol::playlist::clean_display_name(name);
    if name.is_empty() {
        return Err("type the name the others should see".into());
    }
    if name.chars().count() > MAX_GUEST_NAME {
        return Err(format!(
            "a name has at most {MAX_GUEST_NAME} characters; take a shorter one"
        ));
    }
    Ok(name)
}

fn prune(times: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

impl Guests {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Every change below leaves the maps whole, so a panic elsewhere cannot have left
        // them half-written.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a guest page for `playlist` (a fresh code and PIN), or gives the one open.
    pub fn open(&self, playlist: &str, adds_per_hour: Option<u32>) -> OpenPage {
        let mut registry = self.lock();
        if let Some((code, page)) = registry
            .pages
            .iter_mut()
            .find(|(_, p)| p.playlist == playlist)
        {
            if let Some(adds) = adds_per_hour {
                page.adds_per_hour = adds;
            }
            return OpenPage {
                code: code.clone(),
                pin: page.pin.clone(),
                closed: page.closed.clone(),
                existing: true,
            };
        }
        let mut rng = rand::rng();
        let code = hex::encode(rng.random::<[u8; 12]>());
        let pin: String = (0..PIN_DIGITS)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        let closed = CancellationToken::new();
        registry.pages.insert(
            code.clone(),
            Page {
                playlist: playlist.to_string(),
                link_key: rng.random(),
                nonces: VecDeque::new(),
                relay: None,
                addresses: Vec::new(),
                pin: pin.clone(),
                closed: closed.clone(),
                adds_per_hour: adds_per_hour.unwrap_or(DEFAULT_ADDS_PER_HOUR),
                guests: HashMap::new(),
                wrong: VecDeque::new(),
                joins: VecDeque::new(),
                locked: HashMap::new(),
            },
        );
        OpenPage {
            code,
            pin,
            closed,
            existing: false,
        }
    }

    /// Closes the guest page of `playlist`: its server stops and every guest's cookie is
    /// void at once. Whether one was open.
    pub fn close(&self, playlist: &str) -> bool {
        let mut registry = self.lock();
        let codes: Vec<String> = registry
            .pages
            .iter()
            .filter(|(_, p)| p.playlist == playlist)
            .map(|(code, _)| code.clone())
            .collect();
        for code in &codes {
            if let Some(page) = registry.pages.remove(code) {
                page.closed.cancel();
            }
        }
        !codes.is_empty()
    }

    /// Records where `playlist`'s page answers (`http://<addr>:<port>` each, the one for its
    /// URL first), once its server listens.
    pub fn set_addresses(&self, playlist: &str, addresses: Vec<String>) {
        if let Some(page) = self
            .lock()
            .pages
            .values_mut()
            .find(|p| p.playlist == playlist)
        {
            page.addresses = addresses;
        }
    }

    /// Records that relay `peer` forwards `playlist`'s guests, at `base` (its URL first).
    pub fn set_relay(&self, playlist: &str, peer: &str, base: String) {
        if let Some(page) = self
            .lock()
            .pages
            .values_mut()
            .find(|p| p.playlist == playlist)
        {
            page.relay = Some(peer.to_string());
            page.addresses.retain(|a| *a != base);
            page.addresses.insert(0, base);
        }
    }

    /// The codes of the pages relay `peer` forwards.
    pub fn relayed_codes(&self, peer: &str) -> Vec<String> {
        self.lock()
            .pages
            .iter()
            .filter(|(_, p)| p.relay.as_deref() == Some(peer))
            .map(|(code, _)| code.clone())
            .collect()
    }

    /// Whether relay `peer` may forward requests for page `code` (it is the one the page
    /// registered with).
    pub fn relayed_by(&self, code: &str, peer: &str) -> bool {
        self.lock()
            .pages
            .get(code)
            .is_some_and(|p| p.relay.as_deref() == Some(peer))
    }

    /// Where `playlist`'s page answers (see [`Guests::set_addresses`]).
    pub fn addresses_of(&self, playlist: &str) -> Vec<String> {
        self.lock()
            .pages
            .values()
            .find(|p| p.playlist == playlist)
            .map(|p| p.addresses.clone())
            .unwrap_or_default()
    }

    /// The playlist whose page has `code`.
    pub fn playlist_of(&self, code: &str) -> Option<String> {
        self.lock().pages.get(code).map(|p| p.playlist.clone())
    }

    /// Cancelled when page `code` closes.
    pub fn closed_token(&self, code: &str) -> Option<CancellationToken> {
        self.lock().pages.get(code).map(|p| p.closed.clone())
    }

    /// The key in page `code`'s link (the URL's fragment holds it as `k=`, hex).
    pub fn link_key(&self, code: &str) -> Option<[u8; 16]> {
        self.lock().pages.get(code).map(|p| p.link_key)
    }

    /// Takes signed request `nonce` (made at `at_ms`, Unix ms) on page `code` once: false
    /// when seen already, or when `at_ms` is more than [`SIGNED_REQUEST_SKEW`] from `now_ms`.
    pub fn fresh_nonce(&self, code: &str, nonce: [u8; 16], at_ms: u64, now_ms: u64) -> bool {
        let skew = SIGNED_REQUEST_SKEW.as_millis() as u64;
        if at_ms.abs_diff(now_ms) > skew {
            return false;
        }
        let mut registry = self.lock();
        let Some(page) = registry.pages.get_mut(code) else {
            return false;
        };
        // What is older than the skew can no longer be offered: forget it.
        while page
            .nonces
            .front()
            .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > 2 * skew)
            || page.nonces.len() >= MAX_NONCES
        {
            page.nonces.pop_front();
        }
        if page.nonces.iter().any(|(_, n)| *n == nonce) {
            return false;
        }
        page.nonces.push_back((now_ms, nonce));
        true
    }

    /// The code of `playlist`'s open page.
    pub fn code_of(&self, playlist: &str) -> Option<(String, String)> {
        self.lock()
            .pages
            .iter()
            .find(|(_, p)| p.playlist == playlist)
            .map(|(code, p)| (code.clone(), p.pin.clone()))
    }

    /// Lets a guest in with the page's PIN under `name`; returns the cookie's value and the
    /// guest (a new key, so a new member of the session to everyone).
    /// `pin`: what the guest typed, or `None` when the request was signed with the link's
    /// key (which only the link holds, with the PIN).
    pub fn join(
        &self,
        code: &str,
        pin: Option<&str>,
        name: &str,
        from: IpAddr,
        now: Instant,
    ) -> Result<(String, Seat), JoinError> {
        let mut registry = self.lock();
        let page = registry.pages.get_mut(code).ok_or(JoinError::NoSuchPage)?;
        page.locked.retain(|_, until| *until > now);
        let locked_until = [page.locked.get(&Some(from)), page.locked.get(&None)]
            .into_iter()
            .flatten()
            .max()
            .copied();
        if let Some(until) = locked_until {
            return Err(JoinError::Locked {
                retry_after: until.saturating_duration_since(now),
            });
        }
        if let Some(pin) = pin
            && !same_pin(pin.trim(), &page.pin)
        {
            while page
                .wrong
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= WRONG_PIN_WINDOW)
            {
                page.wrong.pop_front();
            }
            page.wrong.push_back((now, from));
            let from_here = page.wrong.iter().filter(|(_, ip)| *ip == from).count();
            if from_here >= MAX_WRONG_PINS {
                page.locked.insert(Some(from), now + LOCKOUT);
            }
            if page.wrong.len() >= MAX_WRONG_PINS {
                page.locked.insert(None, now + LOCKOUT);
            }
            return Err(JoinError::WrongPin);
        }
        let name = clean_guest_name(name).map_err(JoinError::BadName)?;
        // Each join is a new member in the playlist: one address makes only so many.
        while page
            .joins
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= JOIN_WINDOW)
        {
            page.joins.pop_front();
        }
        // (Loopback is this machine: the host trying its own page, or tests of many.)
        if !from.is_loopback()
            && page.joins.iter().filter(|(_, ip)| *ip == from).count() >= JOINS_PER_ADDRESS
        {
            return Err(JoinError::TooManyJoins);
        }
        page.joins.push_back((now, from));
        page.guests
            .retain(|_, g| now.saturating_duration_since(g.last_seen) < GUEST_GRACE);
        if page.guests.len() >= MAX_GUESTS_PER_PAGE {
            return Err(JoinError::Full);
        }
        let token = hex::encode(rand::rng().random::<[u8; 32]>());
        let key = Keypair::generate_ed25519();
        let guest = Guest {
            peer_id: key.public().to_peer_id().to_string(),
            name,
            key,
            last_seen: now,
            adds: VecDeque::new(),
            comments: VecDeque::new(),
        };
        let seat = Seat {
            playlist: page.playlist.clone(),
            peer_id: guest.peer_id.clone(),
            name: guest.name.clone(),
            key: guest.key.clone(),
        };
        page.guests.insert(token_hash(&token), guest);
        Ok((token, seat))
    }

    /// The guest whose cookie is `token` on page `code`, if still in (which it stays for
    /// [`GUEST_GRACE`] after each request).
    pub fn seat(&self, code: &str, token: &str, now: Instant) -> Option<Seat> {
        let mut registry = self.lock();
        let page = registry.pages.get_mut(code)?;
        let guest = page.guests.get_mut(&token_hash(token))?;
        if now.saturating_duration_since(guest.last_seen) >= GUEST_GRACE {
            page.guests.remove(&token_hash(token));
            return None;
        }
        guest.last_seen = now;
        Some(Seat {
            playlist: page.playlist.clone(),
            peer_id: guest.peer_id.clone(),
            name: guest.name.clone(),
            key: guest.key.clone(),
        })
    }

    /// The peer id of the guest whose cookie is `token` on page `code` (no refresh of its
    /// grace: this only names who signs).
    pub fn peer_of(&self, code: &str, token: &str) -> Option<String> {
        self.lock()
            .pages
            .get(code)?
            .guests
            .get(&token_hash(token))
            .map(|g| g.peer_id.clone())
    }

    /// Counts `count` new tracks of a guest against the host's hourly limit, if there is room.
    pub fn take_adds(
        &self,
        code: &str,
        token: &str,
        count: u32,
        now: Instant,
    ) -> Result<(), GuestLimit> {
        let mut registry = self.lock();
        let Some(page) = registry.pages.get_mut(code) else {
            return Ok(()); // gone: the seat check says so
        };
        let limit = page.adds_per_hour;
        let Some(guest) = page.guests.get_mut(&token_hash(token)) else {
            return Ok(());
        };
        prune(&mut guest.adds, Duration::from_secs(3600), now);
        if guest.adds.len() as u64 + u64::from(count) > u64::from(limit) {
            return Err(GuestLimit::Adds(limit));
        }
        guest.adds.extend(std::iter::repeat_n(now, count as usize));
        Ok(())
    }

    /// Gives back the last add counted for a guest (the add itself was refused).
    pub fn refund_add(&self, code: &str, token: &str) {
        if let Some(guest) = self
            .lock()
            .pages
            .get_mut(code)
            .and_then(|p| p.guests.get_mut(&token_hash(token)))
        {
            guest.adds.pop_back();
        }
    }

    /// Counts a comment of a guest, if there is room in its minute.
    pub fn take_comment(&self, code: &str, token: &str, now: Instant) -> Result<(), GuestLimit> {
        let mut registry = self.lock();
        let Some(guest) = registry
            .pages
            .get_mut(code)
            .and_then(|p| p.guests.get_mut(&token_hash(token)))
        else {
            return Ok(());
        };
        prune(&mut guest.comments, Duration::from_secs(60), now);
        if guest.comments.len() >= COMMENTS_PER_MINUTE {
            return Err(GuestLimit::Comments);
        }
        guest.comments.push_back(now);
        Ok(())
    }

    /// The guests in `playlist`'s page now, and its hourly add limit.
    pub fn list(&self, playlist: &str, now: Instant) -> Option<(Vec<GuestEntry>, u32)> {
        let mut registry = self.lock();
        let page = registry
            .pages
            .values_mut()
            .find(|p| p.playlist == playlist)?;
        page.guests
            .retain(|_, g| now.saturating_duration_since(g.last_seen) < GUEST_GRACE);
        let mut guests: Vec<GuestEntry> = page
            .guests
            .values_mut()
            .map(|g| {
                prune(&mut g.adds, Duration::from_secs(3600), now);
                GuestEntry {
                    peer_id: g.peer_id.clone(),
                    name: g.name.clone(),
                    idle_secs: now.saturating_duration_since(g.last_seen).as_secs(),
                    added_last_hour: g.adds.len() as u32,
                }
            })
            .collect();
        guests.sort_by(|a, b| a.name.cmp(&b.name).then(a.peer_id.cmp(&b.peer_id)));
        Some((guests, page.adds_per_hour))
    }

    /// Takes guest `peer` (its peer id, or its name when only one guest has it) out of
    /// `playlist`'s page: its cookie is void at once. Whether there was one.
    pub fn remove(&self, playlist: &str, peer: &str) -> Option<String> {
        let mut registry = self.lock();
        let page = registry
            .pages
            .values_mut()
            .find(|p| p.playlist == playlist)?;
        let by_name: Vec<[u8; 32]> = page
            .guests
            .iter()
            .filter(|(_, g)| g.name == peer)
            .map(|(k, _)| *k)
            .collect();
        let key = page
            .guests
            .iter()
            .find(|(_, g)| g.peer_id == peer)
            .map(|(k, _)| *k)
            .or_else(|| (by_name.len() == 1).then(|| by_name[0]))?;
        page.guests.remove(&key).map(|g| g.peer_id)
    }
}

/// A guest's HTTP request that came through a relay, for the API to answer as its guest
/// page would (the core knows no HTTP).
pub struct TunnelCall {
    pub request: whatnext_protocol::guest::TunnelHttp,
    pub reply: tokio::sync::oneshot::Sender<whatnext_protocol::guest::TunnelHttp>,
}

/// Why a guest's request was not done.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error(transparent)]
    Limit(#[from] GuestLimit),
    #[error("you are no longer in this session; join again with the PIN")]
    NotIn,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::Core {
    /// The open guest pages.
    pub fn guests(&self) -> &Guests {
        &self.guests
    }

    /// Opens the guest page of shared playlist `id` (or gives the one open).
    pub fn open_guests(
        &self,
        id: &str,
        adds_per_hour: Option<u32>,
    ) -> Result<OpenPage, StoreError> {
        let snapshot = self.state.snapshot();
        if !snapshot.playlists.iter().any(|p| p.id == id) {
            return Err(StoreError::UnknownPlaylist(id.to_string()));
        }
        if !snapshot.sessions.iter().any(|s| s.id == id) {
            return Err(StoreError::Invalid(format!(
                "playlist {id} is not shared: share it first (`whatnext playlist share {id}`), then guests can join its session"
            )));
        }
        Ok(self.guests.open(id, adds_per_hour))
    }

    /// Has a relay forward guests' requests for `id`'s open page (guests off the LAN reach a
    /// host behind NAT through it); returns the page's base on the relay.
    pub async fn relay_guests(&self, id: &str) -> Result<String, StoreError> {
        use whatnext_protocol::{
            guest::{TunnelRequest, TunnelResponse},
            ipc::AppProtocol,
            state::HelperRole,
        };
        let (code, _) = self
            .guests
            .code_of(id)
            .ok_or_else(|| StoreError::Invalid(format!("playlist {id} has no guest page open")))?;
        let relays: Vec<String> = self
            .state
            .snapshot()
            .helpers
            .iter()
            .filter(|h| h.role == HelperRole::Relay && h.connected)
            .filter_map(|h| h.peer_id.clone())
            .collect();
        if relays.is_empty() {
            return Err(StoreError::Invalid(
                "no relay is connected: add one to `relays` in config.toml (a server running `whatnext relay --guest-http PORT`), or use --lan".into(),
            ));
        }
        let mut why = Vec::new();
        for relay in relays {
            let body = serde_json::to_value(TunnelRequest::Register {
                codes: vec![code.clone()],
            })
            .unwrap_or(serde_json::Value::Null);
            let answer = self
                .service
                .app_request(
                    relay.clone(),
                    AppProtocol::GuestHttp,
                    body,
                    Duration::from_secs(10),
                )
                .await;
            match answer.map(serde_json::from_value::<TunnelResponse>) {
                Ok(Ok(TunnelResponse::Registered { base })) => {
                    self.guests.set_relay(id, &relay, base.clone());
                    return Ok(base);
                }
                Ok(Ok(TunnelResponse::Refused { reason })) => {
                    why.push(format!("{relay}: {reason}"))
                }
                Ok(Ok(other)) => why.push(format!("{relay}: answered {other:?}")),
                Ok(Err(err)) => why.push(format!("{relay}: {err}")),
                Err(err) => why.push(format!("{relay}: {err}")),
            }
        }
        Err(StoreError::Invalid(format!(
            "no relay took the guest page ({}); does it run with --guest-http?",
            why.join("; ")
        )))
    }

    /// Lets a guest in with the PIN: a new key, named among the members and marked as our
    /// guest in the playlist (so every member knows whose it is). Returns the cookie's value.
    pub async fn guest_join(
        &self,
        code: &str,
        pin: Option<&str>,
        name: &str,
        from: IpAddr,
    ) -> Result<(String, Seat), GuestError> {
        let (token, seat) = self.guests.join(code, pin, name, from, Instant::now())?;
        let host = self.library.author_for(&seat.playlist).peer_id;
        let (playlist, guest) = (seat.playlist.clone(), author_of(&seat));
        let recorded = self
            .library
            .write(move |store, _, _| {
                let changed = store.add_guest(&playlist, &guest, &host)?;
                Ok(((), changed.then_some(playlist)))
            })
            .await;
        if let Err(err) = recorded {
            self.guests.remove(&seat.playlist, &seat.peer_id);
            return Err(err.into());
        }
        tracing::info!("{} joined playlist {} as a guest", seat.name, seat.playlist);
        Ok((token, seat))
    }

    /// The guest behind cookie `token` on page `code`, still in.
    pub fn guest_seat(&self, code: &str, token: &str) -> Result<Seat, GuestError> {
        self.guests
            .seat(code, token, Instant::now())
            .ok_or(GuestError::NotIn)
    }

    /// The session as guest `seat` sees it now, with the state's version.
    pub async fn guest_state(&self, seat: &Seat) -> Result<GuestState, StoreError> {
        let snapshot = self.state.snapshot();
        let online = listening::online_count(&snapshot, &seat.playlist);
        let reactions = snapshot
            .sessions
            .iter()
            .find(|s| s.id == seat.playlist)
            .map(|s| s.reactions.clone())
            .unwrap_or_default();
        let offsets = self.sessions.clock_offsets();
        let (id, me, my_name) = (
            seat.playlist.clone(),
            seat.peer_id.clone(),
            seat.name.clone(),
        );
        let mut state = self
            .library
            .read(move |store| {
                let mut session = listening::view_now(store, &id, &me, online, now_ms(), &offsets)?;
                let (name, people) = store.people_of(&id)?;
                let guests = store.session_facts(&id)?.guests;
                let mut seen = std::collections::HashSet::new();
                let people = people
                    .iter()
                    .filter(|a| seen.insert(a.peer_id.clone()))
                    .map(|a| GuestPerson {
                        peer_id: a.peer_id.clone(),
                        name: if a.display_name.is_empty() {
                            whatnext_protocol::playlist::short_peer(&a.peer_id)
                        } else {
                            a.display_name.clone()
                        },
                        guest: guests.contains_key(&a.peer_id),
                    })
                    .collect();
                // A guest's page lists the first few (see `GUEST_UP_NEXT`).
                let up_next_total = session.up_next.len();
                session
                    .up_next
                    .truncate(whatnext_protocol::guest::GUEST_UP_NEXT);
                Ok(GuestState {
                    version: snapshot.version,
                    playlist: name,
                    my_name,
                    people,
                    up_next_total,
                    session,
                })
            })
            .await?;
        state.session.reactions = reactions;
        Ok(state)
    }

    /// Adds a track on behalf of a guest, within the host's hourly limit and the session's
    /// rules (its turn, in turns mode). Returns the track's id.
    pub async fn guest_add(
        &self,
        code: &str,
        token: &str,
        seat: &Seat,
        track: NewTrack,
    ) -> Result<String, GuestError> {
        self.guests.take_adds(code, token, 1, Instant::now())?;
        let (id, guest, key) = (seat.playlist.clone(), author_of(seat), seat.key.clone());
        let added = self
            .library
            .write(move |store, _, now| {
                let ids = store.add_tracks_for_guest(&id, &[track], &guest, &key, now)?;
                Ok((ids, Some(id)))
            })
            .await
            .inspect_err(|_| self.guests.refund_add(code, token))?;
        added
            .into_iter()
            .next()
            .ok_or_else(|| GuestError::Store(StoreError::Invalid("nothing was added".into())))
    }

    /// The host's library as a guest may search it: by title, artists and album only (a
    /// file's path says nothing to a guest and is never shown), at most 20 hits.
    pub fn guest_library(&self, query: &str) -> GuestLibraryReply {
        if query.trim().is_empty() {
            return GuestLibraryReply { hits: vec![] };
        }
        let hits = self
            .music
            .find(Some(query), MAX_LIBRARY_HITS, false)
            .entries
            .into_iter()
            .map(|e| GuestLibraryHit {
                title: e.title,
                artists: e.artists,
                album: e.album,
                duration_ms: e.duration_ms,
                blake3: e.content.blake3,
            })
            .collect();
        GuestLibraryReply { hits }
    }

    /// The track a guest asks for: typed in, or a file of our library by its content id.
    pub fn guest_track(&self, request: GuestTrackRequest) -> Result<NewTrack, GuestError> {
        match request.from_library {
            Some(blake3) => self
                .music
                .entry(&blake3)
                .map(|e| e.to_track())
                .ok_or_else(|| {
                    GuestError::Store(StoreError::Invalid(
                        "that song is not in the host's library (any more); search again".into(),
                    ))
                }),
            None => Ok(NewTrack {
                title: request.title,
                artists: request.artists,
                ..NewTrack::default()
            }),
        }
    }

    /// A vote, a skip vote or a comment of a guest; anything else a guest may not do.
    pub async fn guest_act(
        &self,
        code: &str,
        token: &str,
        seat: &Seat,
        action: SessionAction,
    ) -> Result<(), GuestError> {
        match &action {
            SessionAction::Vote { .. } | SessionAction::Skip => {}
            SessionAction::Comment { .. } => {
                self.guests.take_comment(code, token, Instant::now())?
            }
            _ => {
                return Err(GuestError::Store(StoreError::Invalid(
                    "a guest adds, votes, votes to skip, reacts and comments; the rest is for members".into(),
                )));
            }
        }
        let (id, guest, key) = (seat.playlist.clone(), author_of(seat), seat.key.clone());
        self.library
            .write(move |store, _, now| {
                store.session_act_for_guest(&id, &action, &guest, &key, now)?;
                Ok(((), Some(id)))
            })
            .await?;
        Ok(())
    }

    /// A guest's reaction: shown here, and sent to the members as our guest's.
    pub async fn guest_react(&self, seat: &Seat, emoji: &str) -> Result<(), GuestError> {
        self.sessions
            .react(&seat.playlist, emoji, Some(&seat.peer_id))
            .await
            .map_err(|err| GuestError::Store(StoreError::Invalid(format!("{err:#}"))))
    }
}

fn author_of(seat: &Seat) -> Author {
    Author {
        peer_id: seat.peer_id.clone(),
        display_name: seat.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20));
    const THERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 21));

    fn wrong(pin: &str) -> String {
        pin.chars()
            .map(|c| if c == '0' { '1' } else { '0' })
            .collect()
    }

    #[test]
    fn a_guest_joins_with_the_pin_and_keeps_its_seat_while_it_comes_back() {
        let guests = Guests::default();
        let page = guests.open("road-trip", None);
        assert_eq!(page.pin.len(), PIN_DIGITS);
        assert!(
            guests.open("road-trip", None).existing,
            "one page per playlist"
        );
        let now = Instant::now();
        let (token, seat) = guests
            .join(&page.code, Some(&page.pin), "  Dee  ", HERE, now)
            .expect("joins");
        assert_eq!(
            (seat.name.as_str(), seat.playlist.as_str()),
            ("Dee", "road-trip")
        );
        assert_eq!(seat.peer_id, seat.key.public().to_peer_id().to_string());
        let later = now + GUEST_GRACE - Duration::from_secs(1);
        assert!(
            guests.seat(&page.code, &token, later).is_some(),
            "back in time"
        );
        assert!(guests.seat(&page.code, "forged", later).is_none());
        let gone = later + GUEST_GRACE;
        assert!(
            guests.seat(&page.code, &token, gone).is_none(),
            "away too long"
        );
        assert!(matches!(
            guests.join(&page.code, Some(&page.pin), " ", HERE, now),
            Err(JoinError::BadName(_))
        ));
    }

    #[test]
    fn ten_wrong_pins_lock_the_address_then_everyone_for_a_minute() {
        let guests = Guests::default();
        let page = guests.open("p", None);
        let now = Instant::now();
        for _ in 0..MAX_WRONG_PINS {
            assert_eq!(
                guests
                    .join(&page.code, Some(&wrong(&page.pin)), "x", HERE, now)
                    .err(),
                Some(JoinError::WrongPin)
            );
        }
        // Locked, even with the right PIN, here and (ten wrong in all) everywhere.
        for from in [HERE, THERE] {
            assert!(matches!(
                guests.join(&page.code, Some(&page.pin), "x", from, now),
                Err(JoinError::Locked { .. })
            ));
        }
        let after = now + LOCKOUT + Duration::from_millis(1);
        assert!(
            guests
                .join(&page.code, Some(&page.pin), "x", HERE, after)
                .is_ok()
        );

        // Nine wrong from one address and one from another lock everyone, not just one.
        let page = guests.open("q", None);
        for i in 0..MAX_WRONG_PINS {
            let from = if i == 0 { THERE } else { HERE };
            let _ = guests.join(&page.code, Some(&wrong(&page.pin)), "x", from, now);
        }
        assert!(matches!(
            guests.join(&page.code, Some(&page.pin), "x", THERE, now),
            Err(JoinError::Locked { .. })
        ));
        // Wrong tries spread over more than a minute lock nothing.
        let page = guests.open("r", None);
        for i in 0..(2 * MAX_WRONG_PINS) as u64 {
            let at = now + Duration::from_secs(7 * i);
            let _ = guests.join(&page.code, Some(&wrong(&page.pin)), "x", HERE, at);
        }
        let at = now + Duration::from_secs(7 * 2 * MAX_WRONG_PINS as u64);
        assert!(
            guests
                .join(&page.code, Some(&page.pin), "x", HERE, at)
                .is_ok()
        );
    }

    #[test]
    fn closing_a_page_voids_every_cookie_and_removing_a_guest_voids_its_own() {
        let guests = Guests::default();
        let page = guests.open("p", Some(2));
        let now = Instant::now();
        let (dee, _) = guests
            .join(&page.code, Some(&page.pin), "Dee", HERE, now)
            .expect("dee");
        let (eli, eli_seat) = guests
            .join(&page.code, Some(&page.pin), "Eli", THERE, now)
            .expect("eli");
        assert_eq!(guests.take_adds(&page.code, &dee, 2, now), Ok(()));
        assert_eq!(
            guests.take_adds(&page.code, &dee, 1, now),
            Err(GuestLimit::Adds(2))
        );
        let hour = now + Duration::from_secs(3600);
        assert_eq!(guests.take_adds(&page.code, &dee, 1, hour), Ok(()));
        // A refused add gives its room back.
        assert_eq!(guests.take_adds(&page.code, &dee, 1, hour), Ok(()));
        assert_eq!(
            guests.take_adds(&page.code, &dee, 1, hour),
            Err(GuestLimit::Adds(2))
        );
        guests.refund_add(&page.code, &dee);
        assert_eq!(guests.take_adds(&page.code, &dee, 1, hour), Ok(()));
        let (list, limit) = guests.list("p", now).expect("open");
        assert_eq!(limit, 2);
        assert_eq!(
            list.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["Dee", "Eli"]
        );
        assert_eq!(guests.remove("p", "Eli"), Some(eli_seat.peer_id));
        assert!(guests.seat(&page.code, &eli, now).is_none());
        assert!(guests.seat(&page.code, &dee, now).is_some());
        assert_eq!(
            guests.peer_of(&page.code, &dee),
            guests.seat(&page.code, &dee, now).map(|s| s.peer_id)
        );
        assert!(guests.close("p"));
        assert!(page.closed.is_cancelled());
        assert!(guests.seat(&page.code, &dee, now).is_none());
        assert_eq!(
            guests
                .join(&page.code, Some(&page.pin), "Dee", HERE, now)
                .err(),
            Some(JoinError::NoSuchPage)
        );
    }

    #[test]
    fn a_signed_requests_nonce_is_taken_once_and_only_when_fresh() {
        let guests = Guests::default();
        let page = guests.open("p", None);
        let now = 1_800_000_000_000;
        assert!(guests.fresh_nonce(&page.code, [1; 16], now, now));
        assert!(
            !guests.fresh_nonce(&page.code, [1; 16], now + 5, now + 10),
            "a replay"
        );
        assert!(guests.fresh_nonce(&page.code, [2; 16], now - 1000, now));
        let skew = SIGNED_REQUEST_SKEW.as_millis() as u64;
        assert!(
            !guests.fresh_nonce(&page.code, [3; 16], now - skew - 1, now),
            "too old"
        );
        assert!(
            !guests.fresh_nonce(&page.code, [4; 16], now + skew + 1, now),
            "from the future"
        );
        assert!(!guests.fresh_nonce("nope", [5; 16], now, now));
        assert_ne!(
            guests.link_key(&page.code),
            guests.link_key(&guests.open("q", None).code)
        );
    }

    #[test]
    fn one_address_joins_only_so_many_times() {
        let guests = Guests::default();
        let page = guests.open("p", None);
        let now = Instant::now();
        for i in 0..JOINS_PER_ADDRESS {
            assert!(
                guests
                    .join(&page.code, Some(&page.pin), &format!("g{i}"), HERE, now)
                    .is_ok()
            );
        }
        assert_eq!(
            guests
                .join(&page.code, Some(&page.pin), "one more", HERE, now)
                .err(),
            Some(JoinError::TooManyJoins)
        );
        assert!(
            guests
                .join(&page.code, Some(&page.pin), "elsewhere", THERE, now)
                .is_ok()
        );
        let later = now + JOIN_WINDOW;
        assert!(
            guests
                .join(&page.code, Some(&page.pin), "later", HERE, later)
                .is_ok()
        );
    }

    #[test]
    fn the_pin_check_compares_every_digit() {
        assert!(same_pin("123456", "123456"));
        for typed in ["123457", "023456", "12345", "1234567", ""] {
            assert!(!same_pin(typed, "123456"), "{typed}");
        }
    }
}
