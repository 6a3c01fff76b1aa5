//! `AppState`: the controller's single source of truth, as published to the CLI and the view.
//!
//! Field names here are a public contract (`whatnext status --json`, `GET /api/state`):
//! fields may be added, never renamed.

use serde::{Deserialize, Serialize};

use crate::playlist::PlaylistSummary;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// The service is being spawned or the node is starting to listen.
    Starting,
    /// The node is up and listening.
    Running,
    /// The service died or hung; a new one is on its way (with backoff).
    Restarting,
    /// The service crashed too often; the controller stopped restarting it. See `last_error`.
    Failed,
    /// The controller is shutting down.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct AppState {
    /// Grows by at least one on every change; long-pollers wait for it to pass their cursor.
    pub version: u64,
    /// The controller's process id.
    pub pid: u32,
    pub peer_id: String,
    pub node: NodeStatus,
    pub listen_addrs: Vec<String>,
    /// Addresses other peers confirmed they can reach us at.
    pub external_addrs: Vec<String>,
    pub service: ServiceInfo,
    pub connections: Vec<Connection>,
    /// Peers found by discovery (mDNS, later the DHT) and not yet expired.
    pub discovered: Vec<String>,
    /// The most recent problem still going on, in the words of whoever reported it.
    pub last_error: Option<String>,
    /// What `last_error` is about, so it can clear when the problem is over: a peer id
    /// (cleared when a connection to that peer opens), [`PROBLEM_SERVICE`] (cleared when the
    /// network service runs again), or none (an event with no end: kept until the next one).
    #[serde(default)]
    pub last_error_about: Option<String>,
    /// The home directory this controller owns.
    pub home: String,
    /// The names of the people our playlists name, by peer id: `connections`, `sessions`
    /// and `link_attempts` name peers by id, a view shows them by these names.
    #[serde(default)]
    pub people: std::collections::BTreeMap<String, String>,
    /// The name friends see on what this member does.
    #[serde(default)]
    pub display_name: String,
    /// Whether the user picked it (config.toml or the view), or it is the account's name
    /// taken by default (the view then asks, once).
    #[serde(default)]
    pub display_name_chosen: bool,
    /// Unix milliseconds when the controller started.
    pub started_at_ms: u64,
    /// The most recent links opened (newest last, at most [`MAX_LINK_ATTEMPTS`]).
    #[serde(default)]
    pub link_attempts: Vec<LinkAttempt>,
    /// Every playlist in the store, newest change first.
    #[serde(default)]
    pub playlists: Vec<PlaylistSummary>,
    /// Shared playlists and their members connected now.
    #[serde(default)]
    pub sessions: Vec<SessionState>,
    /// What AutoNAT concluded about our reachability.
    #[serde(default)]
    pub nat: NatStatus,
    /// Relays holding a reservation for us: peers behind other NATs reach us through them.
    #[serde(default)]
    pub relay_reservations: Vec<RelayReservation>,
    /// The configured bootstrap and relay nodes and whether we are connected to them.
    #[serde(default)]
    pub helpers: Vec<HelperNode>,
    /// The most recent failed dials (newest last, at most [`MAX_DIAL_FAILURES`]).
    #[serde(default)]
    pub dial_failures: Vec<DialFailure>,
    /// DCUtR hole punches: attempts that made a relayed connection direct, and those that failed.
    #[serde(default)]
    pub hole_punches: HolePunchCounts,
    /// Whether mDNS (LAN discovery) is on.
    #[serde(default)]
    pub mdns: bool,
    /// Damage the store found (at start, or since: a write that failed) and what it did about
    /// it. Nothing in the store is deleted: `kept_at` says where the pieces are.
    #[serde(default)]
    pub store_problems: Vec<StoreProblem>,
    /// Every network service this controller runs: "main" first (the one `peer_id`,
    /// `service`, `node` and `listen_addrs` describe), then one per playlist shared with
    /// `--isolated`, each with its own identity.
    #[serde(default)]
    pub services: Vec<ServiceEntry>,
    /// The music library: how many files, which folders, and a scan under way.
    #[serde(default)]
    pub library: LibraryStatus,
    /// Audio moving between this home and members, now.
    #[serde(default)]
    pub transfers: Vec<Transfer>,
    /// Audio this home wants (it plays, or is up next) that cannot come now, and why: e.g.
    /// its members are reachable only through a relay, whose limits stop audio.
    #[serde(default)]
    pub media_waiting: Vec<MediaWaiting>,
}

/// Audio that cannot come now, and why, in words for the listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct MediaWaiting {
    pub blake3: String,
    pub reason: String,
}

/// Audio moving to or from a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Transfer {
    pub blake3: String,
    pub peer_id: String,
    /// Bytes moved (and verified, when fetching) so far.
    pub bytes: u64,
    pub size: u64,
    pub direction: TransferDirection,
}

/// Which way audio moves (JSON: "download", "upload").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum TransferDirection {
    /// From a member to this home.
    Download,
    /// From this home to a member.
    Upload,
}

/// The music library as the state shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LibraryStatus {
    /// Audio files in the library.
    pub files: usize,
    /// The music folders scanned (config `music_dirs`).
    pub dirs: Vec<String>,
    /// A scan under way.
    pub scanning: Option<crate::media::ScanProgress>,
}

/// [`AppState::last_error_about`] for a problem of the network service itself.
pub const PROBLEM_SERVICE: &str = "service";

/// The name of the main network service in [`AppState::services`].
pub const MAIN_SERVICE: &str = "main";

/// One network service (a `whatnext p2p` child with its own identity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ServiceEntry {
    /// "main", or the id of the playlist an isolated service serves.
    pub name: String,
    /// Its process id; null between a crash and its restart.
    pub pid: Option<u32>,
    /// The peer id it is known by (an isolated one differs from the main one).
    pub peer_id: String,
    /// How many times the controller restarted it.
    pub restarts: u32,
    pub node: NodeStatus,
    pub listen_addrs: Vec<String>,
    /// The shared playlists (ids) whose members it serves.
    pub sessions: Vec<String>,
}

/// One problem the playlist store found, for `status`, `doctor` and the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct StoreProblem {
    /// The playlist it concerns.
    pub playlist_id: String,
    /// What happened and what was done about it, in plain words.
    pub what: String,
    /// Where the damaged or set-aside bytes are kept, if any were.
    pub kept_at: Option<String>,
}

/// What AutoNAT concluded about our reachability (JSON: "public", "private", "unknown").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum NatStatus {
    /// Other peers reached us on an address they could dial back.
    Public,
    /// Behind a NAT or firewall: peers need a relay (or a hole punch) to reach us.
    Private,
    /// Not known yet (no probe answered), or forgotten with the service that knew.
    #[default]
    Unknown,
}

/// What a configured helper node is for (JSON: "bootstrap", "relay").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum HelperRole {
    /// A DHT bootstrap node.
    Bootstrap,
    /// A relay to hold a reservation on when behind NAT.
    Relay,
}

/// This node's place in a shared playlist (JSON: "owner", "member").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum SessionRole {
    /// We shared it.
    Owner,
    /// We joined it through someone's link.
    Member,
}

/// Who opened a connection (JSON: "dialer", "listener").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We dialed.
    Dialer,
    /// The peer dialed us.
    Listener,
}

/// How one step of opening a link tried to reach the peer (JSON: "known", "direct",
/// "relay", "dht").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DialMethod {
    /// Addresses the node already knows for the peer (a link without addresses).
    Known,
    /// The link's own addresses.
    Direct,
    /// Through the link's relay (a `/p2p-circuit` address).
    Relay,
    /// Addresses found by a DHT lookup of the peer id.
    Dht,
}

/// The JSON name of each value, for human output (the same text `--json` shows).
macro_rules! as_str {
    ($type:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

as_str!(NodeStatus {
    Starting => "starting",
    Running => "running",
    Restarting => "restarting",
    Failed => "failed",
    Stopped => "stopped",
});
as_str!(NatStatus { Public => "public", Private => "private", Unknown => "unknown" });
as_str!(HelperRole { Bootstrap => "bootstrap", Relay => "relay" });
as_str!(SessionRole { Owner => "owner", Member => "member" });
as_str!(Direction { Dialer => "dialer", Listener => "listener" });
as_str!(DialErrorKind {
    Refused => "refused",
    TimedOut => "timed_out",
    Unreachable => "unreachable",
    WrongPeer => "wrong_peer",
    NoAddresses => "no_addresses",
    OwnPeerId => "own_peer_id",
    Relay => "relay",
    NotFound => "not_found",
    Protocol => "protocol",
    NotRunning => "not_running",
    Other => "other",
});
as_str!(DialMethod { Known => "known", Direct => "direct", Relay => "relay", Dht => "dht" });

pub const MAX_DIAL_FAILURES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct RelayReservation {
    pub relay_peer_id: String,
    /// Our `/p2p-circuit` address on that relay, as it goes into invites.
    pub addr: String,
    pub since_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct HelperNode {
    pub addr: String,
    pub role: HelperRole,
    pub peer_id: Option<String>,
    pub connected: bool,
    /// Why the last dial to it failed, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct DialFailure {
    pub peer_id: Option<String>,
    pub reason: String,
    /// What kind of failure `reason` is, for explanations and advice.
    #[serde(default)]
    pub kind: DialErrorKind,
    pub at_ms: u64,
}

/// Why a dial failed, as a kind: what the doctor and the view explain, instead of matching
/// the text of libp2p's errors. The service decides it from the typed error where it can;
/// [`DialErrorKind::from_reason`] is the one place that reads a text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DialErrorKind {
    /// Nothing listens there (connection refused).
    Refused,
    /// No answer in time: a firewall or NAT drops the packets.
    TimedOut,
    /// No route to that address from here.
    Unreachable,
    /// A different node answered at that address.
    WrongPeer,
    /// There was no address to try.
    NoAddresses,
    /// That is this node's own peer id.
    OwnPeerId,
    /// The relay refused or could not be reached.
    Relay,
    /// The DHT did not find the peer.
    NotFound,
    /// Something answered that does not speak our protocols (noise, multistream).
    Protocol,
    /// The network service is not running.
    NotRunning,
    /// Anything else; the reason's text says what.
    #[default]
    Other,
}

impl DialErrorKind {
    /// Reads the kind off an error text (the error chain of a libp2p dial error, or one of
    /// the service's own reasons).
    pub fn from_reason(reason: &str) -> DialErrorKind {
        let lower = reason.to_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
        if has(&["connection refused"]) {
            DialErrorKind::Refused
        } else if has(&["timed out", "timeout"]) {
            DialErrorKind::TimedOut
        } else if has(&["network is unreachable", "no route to host", "unreachable"]) {
            DialErrorKind::Unreachable
        } else if has(&["wrong peer", "unexpected peer"]) {
            DialErrorKind::WrongPeer
        } else if has(&["own peer id"]) {
            DialErrorKind::OwnPeerId
        } else if has(&["no addresses", "nothing to dial"]) {
            DialErrorKind::NoAddresses
        } else if has(&["reservation", "relay"]) {
            DialErrorKind::Relay
        } else if has(&["dht", "knows no peers", "not found"]) {
            DialErrorKind::NotFound
        } else if has(&["noise", "negotiat", "handshake"]) {
            DialErrorKind::Protocol
        } else if has(&["not running"]) {
            DialErrorKind::NotRunning
        } else {
            DialErrorKind::Other
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct HolePunchCounts {
    pub succeeded: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct SessionState {
    /// The playlist id.
    pub id: String,
    pub role: SessionRole,
    pub connected_members: Vec<String>,
    /// The network service serving it: "main", or the playlist id for an isolated share.
    #[serde(default = "main_service")]
    pub service: String,
    /// Reactions of the last 30 seconds (ours and those of members online), oldest first.
    #[serde(default)]
    pub reactions: Vec<crate::listening::Reaction>,
}

fn main_service() -> String {
    MAIN_SERVICE.to_string()
}

impl AppState {
    /// The state of a controller that has just started: version 1, node starting.
    pub fn initial(pid: u32, peer_id: String, home: String, started_at_ms: u64) -> Self {
        Self {
            version: 1,
            pid,
            peer_id,
            node: NodeStatus::Starting,
            listen_addrs: vec![],
            external_addrs: vec![],
            service: ServiceInfo::default(),
            connections: vec![],
            discovered: vec![],
            last_error: None,
            last_error_about: None,
            home,
            people: Default::default(),
            display_name: String::new(),
            display_name_chosen: false,
            started_at_ms,
            link_attempts: vec![],
            playlists: vec![],
            sessions: vec![],
            nat: NatStatus::Unknown,
            relay_reservations: vec![],
            helpers: vec![],
            dial_failures: vec![],
            hole_punches: HolePunchCounts::default(),
            mdns: false,
            store_problems: vec![],
            services: vec![],
            library: LibraryStatus::default(),
            transfers: vec![],
            media_waiting: vec![],
        }
    }

    /// Refreshes what [`AppState::services`] derives from the rest of the state: the main
    /// entry (from `peer_id`, `service`, `node`, `listen_addrs`) and every entry's sessions.
    /// Returns whether anything changed.
    pub fn derive_services(&mut self) -> bool {
        let main = ServiceEntry {
            name: MAIN_SERVICE.to_string(),
            pid: self.service.pid,
            peer_id: self.peer_id.clone(),
            restarts: self.service.restarts,
            node: self.node,
            listen_addrs: self.listen_addrs.clone(),
            sessions: vec![],
        };
        let mut services = self.services.clone();
        match services.first_mut() {
            Some(first) if first.name == MAIN_SERVICE => *first = main,
            _ => services.insert(0, main),
        }
        for entry in &mut services {
            entry.sessions = self
                .sessions
                .iter()
                .filter(|s| s.service == entry.name)
                .map(|s| s.id.clone())
                .collect();
        }
        let changed = services != self.services;
        self.services = services;
        changed
    }
}

/// How many link attempts `AppState` remembers.
pub const MAX_LINK_ATTEMPTS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ServiceInfo {
    /// Process id of the current network service; null between a crash and its restart.
    pub pid: Option<u32>,
    /// How many times the controller restarted the service since it started.
    pub restarts: u32,
    /// Why the service last had to be restarted (kept after it runs again, when
    /// `last_error` has cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_exit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct Connection {
    pub peer_id: String,
    /// Remote address of the connection.
    pub addr: String,
    pub transport: String,
    /// Last measured round-trip time; null until the first ping completes.
    pub rtt_ms: Option<f64>,
    pub direction: Direction,
    pub relayed: bool,
    /// Unix milliseconds when the connection was established.
    pub since_ms: u64,
    /// The service's id of this connection (several may exist to one peer).
    pub connection_id: u64,
    /// How far the peer's clock is from ours, once measured (members of a shared playlist:
    /// players keep in step with the clock of whoever holds playback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub clock: Option<ClockEstimate>,
}

/// A peer's clock against ours, from NTP-style exchanges over the connection: the sample
/// with the lowest round trip of the last few.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ClockEstimate {
    /// Their clock minus ours, in ms.
    pub offset_ms: f64,
    /// At most this far off (half the round trip of the sample).
    pub error_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_error_kinds_read_off_the_texts_the_service_sends() {
        let table = [
            (
                "Failed to negotiate transport protocol(s): [(/ip4/127.0.0.1/tcp/1: : Connection refused (os error 111))]",
                DialErrorKind::Refused,
            ),
            (
                "[(/ip4/1.2.3.4/tcp/1: : Timeout has been reached)]",
                DialErrorKind::TimedOut,
            ),
            (
                "No route to host (os error 113)",
                DialErrorKind::Unreachable,
            ),
            (
                "Unexpected peer ID 12D3KooWX at Dialer",
                DialErrorKind::WrongPeer,
            ),
            ("that is this node's own peer id", DialErrorKind::OwnPeerId),
            (
                "nothing to dial: give a peer id or an address",
                DialErrorKind::NoAddresses,
            ),
            ("the network node is not running", DialErrorKind::NotRunning),
            ("something new", DialErrorKind::Other),
        ];
        for (text, want) in table {
            assert_eq!(DialErrorKind::from_reason(text), want, "{text}");
        }
        assert_eq!(
            serde_json::to_string(&DialErrorKind::TimedOut).expect("json"),
            "\"timed_out\""
        );
        assert_eq!(DialErrorKind::TimedOut.as_str(), "timed_out");
    }

    #[test]
    fn services_list_main_first_and_each_service_its_sessions() {
        let mut state = AppState::initial(1, "12D3KooWmain".into(), "/h".into(), 0);
        state.service.pid = Some(7);
        state.services.push(ServiceEntry {
            name: "p1".into(),
            pid: Some(8),
            peer_id: "12D3KooWiso".into(),
            restarts: 2,
            node: NodeStatus::Running,
            listen_addrs: vec![],
            sessions: vec![],
        });
        let session = |id: &str, service: &str| SessionState {
            id: id.into(),
            role: SessionRole::Owner,
            connected_members: vec![],
            service: service.into(),
            reactions: vec![],
        };
        state.sessions = vec![session("p0", MAIN_SERVICE), session("p1", "p1")];
        assert!(state.derive_services());
        let names: Vec<&str> = state.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["main", "p1"]);
        assert_eq!(state.services[0].pid, Some(7));
        assert_eq!(state.services[0].peer_id, "12D3KooWmain");
        assert_eq!(state.services[0].sessions, ["p0"]);
        assert_eq!(state.services[1].sessions, ["p1"]);
        assert_eq!(
            state.services[1].restarts, 2,
            "an isolated entry keeps its own figures"
        );
        assert!(!state.derive_services(), "nothing changed the second time");
        // A session written before services existed is served by main.
        let old: SessionState =
            serde_json::from_str(r#"{"id":"x","role":"member","connected_members":[]}"#)
                .expect("old session json");
        assert_eq!(old.service, MAIN_SERVICE);
    }

    #[test]
    fn status_json_has_the_contracted_fields() {
        let state = AppState {
            version: 3,
            pid: 10,
            peer_id: "12D3KooW".into(),
            node: NodeStatus::Running,
            listen_addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
            external_addrs: vec![],
            service: ServiceInfo {
                pid: Some(11),
                restarts: 0,
                last_exit: None,
            },
            connections: vec![Connection {
                peer_id: "p".into(),
                addr: "/ip4/127.0.0.1/tcp/2".into(),
                transport: "tcp".into(),
                rtt_ms: None,
                direction: Direction::Dialer,
                relayed: false,
                since_ms: 0,
                connection_id: 1,
                clock: Some(ClockEstimate {
                    offset_ms: -3.5,
                    error_ms: 0.25,
                }),
            }],
            discovered: vec![],
            last_error: None,
            last_error_about: None,
            home: "/tmp/x".into(),
            started_at_ms: 0,
            link_attempts: vec![],
            playlists: vec![],
            sessions: vec![],
            ..AppState::initial(10, "12D3KooW".into(), "/tmp/x".into(), 0)
        };
        let json = serde_json::to_value(&state).expect("serializes");
        for key in [
            "pid",
            "peer_id",
            "node",
            "listen_addrs",
            "service",
            "connections",
            "discovered",
            "version",
            "last_error",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["node"], "running");
        assert_eq!(json["service"]["pid"], 11);
        assert_eq!(json["service"]["restarts"], 0);
        let conn = &json["connections"][0];
        for key in ["peer_id", "addr", "transport", "rtt_ms"] {
            assert!(conn.get(key).is_some(), "connection missing {key}");
        }
    }
}

/// One `whtnxt://` link the controller was asked to open, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct LinkAttempt {
    pub id: u64,
    /// The link as received, with any `key=` secret replaced by `…`.
    pub link: String,
    pub peer_id: Option<String>,
    pub session: Option<String>,
    pub status: LinkStatus,
    /// Why the attempt failed or the link was refused.
    pub error: Option<String>,
    /// The address the connection was made on.
    pub addr: Option<String>,
    /// Time the network service took from dialing to connected, milliseconds.
    #[serde(default)]
    pub dial_ms: Option<f64>,
    /// The link carried no address: the peer has to be found by discovery.
    pub needs_discovery: bool,
    /// Each way tried, in order: the direct addresses, then the relay circuits, then a DHT
    /// lookup of the peer id.
    #[serde(default)]
    pub steps: Vec<DialStep>,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct DialStep {
    pub method: DialMethod,
    /// The addresses tried (for "dht": those the lookup found).
    pub addrs: Vec<String>,
    pub ok: bool,
    pub error: Option<String>,
    pub ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Pending,
    Connected,
    Failed,
    /// The link could not be parsed.
    Invalid,
}

impl LinkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Pending => "pending",
            LinkStatus::Connected => "connected",
            LinkStatus::Failed => "failed",
            LinkStatus::Invalid => "invalid",
        }
    }
}
