//! The controller ↔ network-service protocol (DESIGN.md §1).
//!
//! Every frame is an envelope `{"id": u64?, "type": "...", "payload": {...}}`. The controller
//! sends [`Command`]s on the child's stdin; the service sends [`Event`]s on its stdout. A
//! reply to a command carries that command's `id`; unsolicited events carry none.
//!
//! Session: the service's first frame is `ready`; the controller answers `start_node` with
//! the identity key (the service never reads the disk); the service answers `node_started`.
//!
//! Compact frames: the controller numbers every command, and a JSON envelope made each side
//! read every such frame twice (its id, then its body) and write its JSON even when it is
//! only a name. So the controller sends commands in a binary envelope
//! ([`encode_compact`]) and a service that got one answers in kind: the request id as 8
//! bytes, then the message's JSON without the id, or just the code of a message that has no
//! payload (`ping`, `pong`, `ok`, …). Unsolicited events and the answers to a client that
//! writes JSON stay JSON. [`decode_envelope`] reads both, into the same typed enums, and
//! [`readable`] turns either into the JSON envelope for logs and the debug view.

use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::frame::{FrameError, OutFrame, decode_json, split_attachment};

/// A message plus the request id that ties a reply to its command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub body: T,
}

pub type CommandEnvelope = Envelope<Command>;
pub type EventEnvelope = Envelope<Event>;

impl<T> Envelope<T> {
    pub fn request(id: u64, body: T) -> Self {
        Self { id: Some(id), body }
    }
    pub fn unsolicited(body: T) -> Self {
        Self { id: None, body }
    }
}

/// A message that may carry raw bytes beside its JSON (see [`crate::frame`]).
pub trait Attached {
    /// Where the message keeps its raw bytes, if it is of a kind that has some.
    fn data_mut(&mut self) -> Option<&mut Bytes>;
}

impl Attached for Command {
    fn data_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Command::Respond { data, .. } => Some(data),
            _ => None,
        }
    }
}

impl Attached for Event {
    fn data_mut(&mut self) -> Option<&mut Bytes> {
        match self {
            Event::Response { data, .. } => Some(data),
            _ => None,
        }
    }
}

/// A body that starts with this is a compact frame of a message with a payload: the request
/// id (8 bytes, little-endian), then the message's JSON (no `"id"`). No JSON text starts
/// with it, nor does an attachment's header (0).
pub const COMPACT_JSON: u8 = 0x01;
/// A body that starts with this is a compact frame of a message without a payload: the
/// request id (8 bytes, little-endian), then the message's code ([`Message::unit_code`]).
pub const COMPACT_UNIT: u8 = 0x02;
const COMPACT_ID_END: usize = 9;

/// The messages without a payload and their codes in compact frames, commands and events
/// in one table (the codes differ, so a log can name either).
const UNITS: [(u8, &str); 7] = [
    (1, "ping"),
    (2, "stop_node"),
    (3, "get_stats"),
    (4, "shutdown"),
    (65, "pong"),
    (66, "ok"),
    (67, "node_stopped"),
];

/// The request id in a compact frame's head (after its leading byte), if it is all there.
fn compact_id(head: &[u8]) -> Option<u64> {
    head.get(1..COMPACT_ID_END)
        .and_then(|id| <[u8; 8]>::try_from(id).ok())
        .map(u64::from_le_bytes)
}

fn unit_name(code: u8) -> Option<&'static str> {
    UNITS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

fn unit_code_of(name: &str) -> Option<u8> {
    UNITS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(code, _)| *code)
}

/// A message of the pipe protocol: one of the two typed enums.
pub trait Message: Serialize + DeserializeOwned + Attached + Sized {
    /// Its code in a compact frame, if it has no payload.
    fn unit_code(&self) -> Option<u8>;
    /// The message without a payload that `code` stands for, if it is one of this type's.
    fn from_unit_code(code: u8) -> Option<Self>;
}

impl Message for Command {
    fn unit_code(&self) -> Option<u8> {
        unit_code_of(match self {
            Command::Ping => "ping",
            Command::StopNode => "stop_node",
            Command::GetStats => "get_stats",
            Command::Shutdown => "shutdown",
            _ => return None,
        })
    }

    fn from_unit_code(code: u8) -> Option<Self> {
        Some(match unit_name(code)? {
            "ping" => Command::Ping,
            "stop_node" => Command::StopNode,
            "get_stats" => Command::GetStats,
            "shutdown" => Command::Shutdown,
            _ => return None,
        })
    }
}

impl Message for Event {
    fn unit_code(&self) -> Option<u8> {
        unit_code_of(match self {
            Event::Pong => "pong",
            Event::Ok => "ok",
            Event::NodeStopped => "node_stopped",
            _ => return None,
        })
    }

    fn from_unit_code(code: u8) -> Option<Self> {
        Some(match unit_name(code)? {
            "pong" => Event::Pong,
            "ok" => Event::Ok,
            "node_stopped" => Event::NodeStopped,
            _ => return None,
        })
    }
}

/// The compact frame of request `id` carrying `body` (see the module's documentation), its
/// raw bytes as the attachment.
pub fn encode_compact<T: Message>(id: u64, mut body: T) -> Result<OutFrame, FrameError> {
    let mut head = Vec::with_capacity(64);
    if let Some(code) = body.unit_code() {
        head.push(COMPACT_UNIT);
        head.extend_from_slice(&id.to_le_bytes());
        head.push(code);
        return Ok(head.into());
    }
    let data = body.data_mut().map(std::mem::take).unwrap_or_default();
    head.push(COMPACT_JSON);
    head.extend_from_slice(&id.to_le_bytes());
    serde_json::to_writer(&mut head, &body)?;
    Ok(OutFrame::attached(head, data))
}

/// The request id of a frame that could not be decoded, if it can still be read (from a
/// compact frame's header, or a JSON envelope's `"id"`): so its sender is answered.
pub fn request_id_of(body: &[u8]) -> Option<u64> {
    let head = crate::frame::attachment_parts(body).ok()?.0;
    match head.first() {
        Some(&(COMPACT_JSON | COMPACT_UNIT)) => compact_id(head),
        _ => serde_json::from_slice::<serde_json::Value>(head)
            .ok()?
            .get("id")?
            .as_u64(),
    }
}

/// The name of the message without a payload that `body` is a compact frame of, if it is
/// one (read without an allocation: the debug log skips heartbeats by it).
pub fn unit_of(body: &[u8]) -> Option<&'static str> {
    match body {
        [COMPACT_UNIT, _, _, _, _, _, _, _, _, code] => unit_name(*code),
        _ => None,
    }
}

/// Whether `body` is a compact frame (see [`encode_compact`]).
pub fn is_compact(body: &[u8]) -> bool {
    let head = crate::frame::attachment_parts(body).map_or(body, |(head, _)| head);
    matches!(head.first(), Some(&(COMPACT_JSON | COMPACT_UNIT)))
}

/// The JSON envelope a frame's head (its part before any attachment) stands for, for logs
/// and the debug view: a JSON head as it is, a compact one rewritten. Nothing is parsed.
pub fn readable(head: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match (head.first(), compact_id(head)) {
        (Some(&COMPACT_UNIT), Some(id)) => {
            let name = head
                .get(COMPACT_ID_END)
                .and_then(|&code| unit_name(code))
                .unwrap_or("(unknown)");
            format!("{{\"id\":{id},\"type\":\"{name}\"}}")
                .into_bytes()
                .into()
        }
        (Some(&COMPACT_JSON), Some(id)) => with_id(id, &head[COMPACT_ID_END..])
            .unwrap_or_else(|| format!("{{\"id\":{id}}}").into_bytes())
            .into(),
        _ => head.into(),
    }
}

/// The frame for `envelope`: its JSON, and its raw bytes as the attachment.
pub fn encode_envelope<T: Serialize + Attached>(
    mut envelope: Envelope<T>,
) -> Result<OutFrame, FrameError> {
    let data = envelope
        .body
        .data_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let json = envelope_json(&envelope)?;
    Ok(OutFrame::attached(json, data))
}

/// The JSON of `envelope`: exactly what its derived (`flatten`) form writes, without the
/// buffering `flatten` costs on every frame — `"id"` goes first, then the body's fields.
fn envelope_json<T: Serialize>(envelope: &Envelope<T>) -> Result<Vec<u8>, FrameError> {
    let Some(id) = envelope.id else {
        return Ok(serde_json::to_vec(&envelope.body)?);
    };
    match with_id(id, &serde_json::to_vec(&envelope.body)?) {
        Some(json) => Ok(json),
        // Not an object: the derived form says why it cannot be flattened.
        None => Ok(serde_json::to_vec(envelope)?),
    }
}

/// The JSON object `body` with `"id"` first: `{"id":<id>,` then its members (`{"id":<id>}`
/// for `{}`). `None` when `body` is no object.
fn with_id(id: u64, body: &[u8]) -> Option<Vec<u8>> {
    let members = body.strip_prefix(b"{")?;
    let mut json = format!("{{\"id\":{id}").into_bytes();
    if members != b"}" {
        json.push(b',');
    }
    json.extend_from_slice(members);
    Some(json)
}

/// The id of an envelope, read on its own (the body is read by its own type's rules).
#[derive(Deserialize)]
struct EnvelopeId {
    #[serde(default)]
    id: Option<u64>,
}

/// The envelope in a frame body, its raw bytes put back in place. Bytes attached to a
/// message that has no place for them are dropped.
pub fn decode_envelope<T: Message>(body: &Bytes) -> Result<Envelope<T>, FrameError> {
    let (json, data) = split_attachment(body)?;
    let id =
        || compact_id(&json).ok_or_else(|| malformed("a compact frame ends before its request id"));
    let mut envelope = match json.first() {
        Some(&COMPACT_JSON) => Envelope {
            id: Some(id()?),
            body: decode_json::<T>(&json[COMPACT_ID_END..])?,
        },
        Some(&COMPACT_UNIT) => {
            let id = id()?;
            let body = match json.get(COMPACT_ID_END..) {
                Some(&[code]) => T::from_unit_code(code)
                    .ok_or_else(|| malformed("unknown message code in a compact frame"))?,
                _ => return Err(malformed("a compact frame needs exactly one message code")),
            };
            Envelope { id: Some(id), body }
        }
        _ => {
            // Two quick reads rather than the derived `flatten` one, which buffers the
            // whole message into an intermediate tree first: the body's enum skips `id`.
            let EnvelopeId { id } = decode_json(&json)?;
            Envelope {
                id,
                body: decode_json::<T>(&json)?,
            }
        }
    };
    if let Some(slot) = envelope.body.data_mut() {
        *slot = data;
    }
    Ok(envelope)
}

fn malformed(why: &str) -> FrameError {
    FrameError::Malformed(<serde_json::Error as serde::de::Error>::custom(why))
}

/// Controller → service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum Command {
    /// Build the libp2p node and start listening. Answered by `node_started` or `node_error`.
    /// Boxed: the config is the largest payload by far, and every command is moved a few
    /// times on its way to the pipe (a `Command` is 160 bytes with it inline).
    StartNode(Box<NodeConfig>),
    /// Close every connection and drop the node; the process stays up. Answered by `node_stopped`.
    StopNode,
    /// Connect to a peer. Answered by `dialed` once a connection is up, or `dial_failed`.
    Dial {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_id: Option<String>,
        addrs: Vec<String>,
    },
    /// Close all connections to a peer. Answered by `ok`.
    HangUp { peer_id: String },
    /// The bootstrap and relay nodes as they are now (the controller resolves their names
    /// in the background and again when they fail; see `whatnext_core::names`). Addresses
    /// not given before are dialed, and a relay's reservation is asked for at its newest
    /// address. Answered by `ok`.
    SetHelpers {
        #[serde(default)]
        bootstrap: Vec<String>,
        #[serde(default)]
        relays: Vec<String>,
    },
    /// Send an app-protocol request to a connected peer. Answered by `response` or
    /// `request_failed`.
    Request {
        peer_id: String,
        protocol: AppProtocol,
        body: serde_json::Value,
    },
    /// Answer an inbound request (`request_received`). Not answered.
    Respond {
        request_id: u64,
        body: serde_json::Value,
        /// Raw bytes sent after `body` (audio): the frame's attachment, not JSON.
        #[serde(skip)]
        data: Bytes,
    },
    /// Look a peer's addresses up in the DHT (Kademlia, through the bootstrap and relay
    /// nodes). Answered by `peer_found` or `peer_not_found`.
    FindPeer { peer_id: String },
    /// Liveness probe used for heartbeats and latency measurement. Answered by `pong`.
    Ping,
    /// Answered by `stats`.
    GetStats,
    /// Exit the process cleanly. Answered by `ok` just before exiting.
    Shutdown,
}

/// Everything the service needs to run a node; sent over the pipe so the service needs no disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// The identity keypair, libp2p protobuf encoding, base64 (standard alphabet).
    pub keypair: String,
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    #[serde(default)]
    pub bootstrap: Vec<String>,
    #[serde(default)]
    pub relays: Vec<String>,
    /// mDNS discovery on the LAN. Its multicast leaves the machine, so tests turn it off.
    #[serde(default)]
    pub mdns: bool,
    /// Ask the router for a port mapping (UPnP IGD); multicast too, so off in tests.
    #[serde(default)]
    pub upnp: bool,
    /// Agent string announced by identify.
    #[serde(default)]
    pub agent_version: String,
    /// Interval of libp2p ping (RTT measurement), milliseconds.
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// The WebRTC certificate (PEM, with its private key): its hash is part of our
    /// `/webrtc-direct/certhash/…` addresses, so it is kept by the controller and given back
    /// on every start, like the identity key. None: the service makes one and reports it in
    /// [`Event::NodeStarted`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webrtc_certificate: Option<String>,
}

fn default_ping_interval_ms() -> u64 {
    5_000
}

/// Service → controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum Event {
    /// First frame after the process starts.
    Ready {
        protocol_version: u32,
        pid: u32,
    },
    NodeStarted {
        peer_id: String,
        listen_addrs: Vec<String>,
        /// A WebRTC certificate the service made because it was given none (or one it could
        /// not read): the controller keeps it for the next start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_webrtc_certificate: Option<String>,
    },
    NodeStopped,
    NodeError {
        message: String,
    },
    ListenAddrAdded {
        addr: String,
    },
    ListenAddrRemoved {
        addr: String,
    },
    ExternalAddrConfirmed {
        addr: String,
    },
    PeerDiscovered {
        peer_id: String,
        addrs: Vec<String>,
    },
    PeerExpired {
        peer_id: String,
    },
    /// What identify learned about a peer: the addresses it listens on, so it can be re-dialed.
    PeerIdentified {
        peer_id: String,
        listen_addrs: Vec<String>,
        agent_version: String,
    },
    ConnectionEstablished(ConnectionInfo),
    ConnectionClosed {
        peer_id: String,
        connection_id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
    /// Reply to `dial` once a connection to the peer exists.
    Dialed {
        peer_id: String,
        addr: String,
        /// Time from the dial to the connection inside the service; absent when the peer
        /// was already connected.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        micros: Option<u64>,
    },
    /// Reply to `dial`, or unsolicited for a dial the node made by itself.
    DialFailed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_id: Option<String>,
        reason: String,
        /// What kind of failure it is (decided from libp2p's typed error where possible).
        #[serde(default)]
        kind: crate::state::DialErrorKind,
    },
    /// A peer sent an app-protocol request; answer it with `respond`.
    RequestReceived {
        request_id: u64,
        peer_id: String,
        protocol: AppProtocol,
        body: serde_json::Value,
    },
    /// Reply to `request`: the peer's answer.
    Response {
        body: serde_json::Value,
        /// Raw bytes the peer sent after `body`: the frame's attachment, not JSON.
        #[serde(skip)]
        data: Bytes,
    },
    /// Reply to `request`: no answer came (not connected, timeout, refused stream…).
    RequestFailed {
        reason: String,
    },
    Rtt {
        peer_id: String,
        connection_id: u64,
        micros: u64,
    },
    /// What AutoNAT concluded.
    NatStatus {
        status: crate::state::NatStatus,
        /// The address other peers reached us on, when public.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_addr: Option<String>,
    },
    /// A relay accepted a reservation: peers can reach us at `addr` (a `/p2p-circuit` address).
    RelayReserved {
        relay_peer_id: String,
        addr: String,
    },
    /// A reservation ended or could not be made; the service retries with backoff.
    RelayReservationFailed {
        relay_addr: String,
        reason: String,
    },
    /// DCUtR's attempt to turn a relayed connection into a direct one.
    HolePunch {
        peer_id: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Reply to `find_peer`.
    PeerFound {
        peer_id: String,
        addrs: Vec<String>,
    },
    /// Reply to `find_peer`.
    PeerNotFound {
        peer_id: String,
        reason: String,
    },
    Pong,
    Stats(Stats),
    /// Generic success reply.
    Ok,
    /// A command could not be carried out (or could not be read); `message` says why.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub peer_id: String,
    pub connection_id: u64,
    /// The remote address of this connection.
    pub addr: String,
    /// "tcp", "quic", "websocket", "webrtc" or "other".
    pub transport: String,
    /// Whether we opened it or the peer did.
    pub direction: crate::state::Direction,
    pub relayed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub connections: u64,
    pub connected_peers: u64,
    pub listen_addrs: u64,
    pub commands_handled: u64,
}

/// The app's own libp2p protocols, carried by the service without interpretation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppProtocol {
    /// `/whatnext/handshake/1.0.0`: versions, names, session capabilities.
    Handshake,
    /// `/whatnext/sync/2.0.0`: CRDT updates.
    Sync,
    /// `/whatnext/blob/1.0.0`: audio, by content id, in verified groups.
    Blob,
    /// `/whatnext/guest-http/1.0.0`: guests' HTTP through a relay to their host.
    GuestHttp,
}

/// Names the transport a multiaddr uses, as shown to users.
pub fn transport_of(addr: &str) -> &'static str {
    let has = |proto: &str| addr.split('/').any(|p| p == proto);
    if has("webrtc-direct") || has("webrtc") {
        "webrtc"
    } else if has("ws") || has("wss") {
        "websocket"
    } else if has("quic-v1") || has("quic") {
        "quic"
    } else if has("tcp") {
        "tcp"
    } else {
        "other"
    }
}

/// Whether a multiaddr goes through a relay.
pub fn is_relayed(addr: &str) -> bool {
    addr.split('/').any(|p| p == "p2p-circuit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_json;
    use proptest::prelude::*;

    #[test]
    fn wire_shape_matches_the_design() {
        let json = serde_json::to_value(Envelope::request(7, Command::Ping)).expect("serializes");
        assert_eq!(json, serde_json::json!({"id": 7, "type": "ping"}));
        let json = serde_json::to_value(Envelope::unsolicited(Event::Ready {
            protocol_version: 1,
            pid: 42,
        }))
        .expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"type": "ready", "payload": {"protocol_version": 1, "pid": 42}})
        );
    }

    #[test]
    fn unknown_command_type_is_an_error() {
        let err = decode_json::<CommandEnvelope>(br#"{"id":1,"type":"format_disk"}"#);
        assert!(err.is_err());
    }

    fn string() -> impl Strategy<Value = String> {
        "\\PC{0,24}"
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            Just(Command::Ping),
            Just(Command::StopNode),
            Just(Command::GetStats),
            Just(Command::Shutdown),
            string().prop_map(|peer_id| Command::HangUp { peer_id }),
            (
                proptest::collection::vec(string(), 0..3),
                proptest::collection::vec(string(), 0..3)
            )
                .prop_map(|(bootstrap, relays)| Command::SetHelpers { bootstrap, relays }),
            (
                any::<u64>(),
                string(),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(request_id, text, data)| Command::Respond {
                    request_id,
                    body: serde_json::json!({ "text": text }),
                    data: Bytes::from(data),
                }),
            (
                proptest::option::of(string()),
                proptest::collection::vec(string(), 0..4)
            )
                .prop_map(|(peer_id, addrs)| Command::Dial { peer_id, addrs }),
            (
                string(),
                proptest::collection::vec(string(), 0..3),
                any::<bool>(),
                any::<u64>(),
                proptest::option::of(string())
            )
                .prop_map(
                    |(keypair, listen, mdns, ping_interval_ms, webrtc_certificate)| {
                        Command::StartNode(Box::new(NodeConfig {
                            keypair,
                            listen,
                            bootstrap: vec![],
                            relays: vec![],
                            mdns,
                            upnp: false,
                            agent_version: "whatnext/test".into(),
                            ping_interval_ms,
                            webrtc_certificate,
                        }))
                    }
                ),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            Just(Event::Pong),
            Just(Event::Ok),
            Just(Event::NodeStopped),
            (any::<u32>(), any::<u32>()).prop_map(|(protocol_version, pid)| Event::Ready {
                protocol_version,
                pid
            }),
            (
                string(),
                proptest::collection::vec(string(), 0..3),
                proptest::option::of(string())
            )
                .prop_map(|(peer_id, listen_addrs, new_webrtc_certificate)| {
                    Event::NodeStarted {
                        peer_id,
                        listen_addrs,
                        new_webrtc_certificate,
                    }
                }),
            (string(), any::<u64>(), any::<u64>()).prop_map(|(peer_id, connection_id, micros)| {
                Event::Rtt {
                    peer_id,
                    connection_id,
                    micros,
                }
            }),
            (proptest::option::of(string()), string()).prop_map(|(peer_id, reason)| {
                Event::DialFailed {
                    kind: crate::state::DialErrorKind::from_reason(&reason),
                    peer_id,
                    reason,
                }
            }),
            (string(), any::<u64>(), string(), any::<bool>()).prop_map(
                |(peer_id, connection_id, addr, relayed)| {
                    Event::ConnectionEstablished(ConnectionInfo {
                        transport: transport_of(&addr).into(),
                        peer_id,
                        connection_id,
                        addr,
                        direction: crate::state::Direction::Dialer,
                        relayed,
                    })
                }
            ),
            (string(), any::<u64>(), proptest::option::of(string())).prop_map(
                |(peer_id, connection_id, cause)| Event::ConnectionClosed {
                    peer_id,
                    connection_id,
                    cause
                }
            ),
            string().prop_map(|message| Event::Error { message }),
            (string(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(text, data)| {
                Event::Response {
                    body: serde_json::json!({ "text": text }),
                    data: Bytes::from(data),
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn commands_round_trip(id in proptest::option::of(any::<u64>()), body in command()) {
            let env = Envelope { id, body };
            let wire = encode_envelope(env.clone()).expect("encodes");
            let wire = Bytes::from(wire.into_body());
            let back: CommandEnvelope = decode_envelope(&wire).expect("decodes");
            prop_assert_eq!(back, env);
        }

        #[test]
        fn events_round_trip(id in proptest::option::of(any::<u64>()), body in event()) {
            let env = Envelope { id, body };
            let wire = encode_envelope(env.clone()).expect("encodes");
            let wire = Bytes::from(wire.into_body());
            let back: EventEnvelope = decode_envelope(&wire).expect("decodes");
            prop_assert_eq!(back, env);
        }

        /// The quick encoding writes what the derived form writes, and the quick decoding
        /// reads back what the derived form reads, so the wire does not change.
        #[test]
        fn envelopes_are_the_derived_wire_form(id in proptest::option::of(any::<u64>()), command in command(), event in event()) {
            let command = Envelope { id, body: command };
            let derived = serde_json::to_vec(&command).expect("derived");
            prop_assert_eq!(&envelope_json(&command).expect("quick"), &derived);
            let back: CommandEnvelope = decode_envelope(&Bytes::from(derived.clone())).expect("decodes");
            let derived_back: CommandEnvelope = serde_json::from_slice(&derived).expect("derived decodes");
            prop_assert_eq!(back, derived_back);
            let event = Envelope { id, body: event };
            let derived = serde_json::to_vec(&event).expect("derived");
            prop_assert_eq!(&envelope_json(&event).expect("quick"), &derived);
        }

        /// On any input the quick decoding accepts what the derived one accepts, and
        /// reads the same.
        #[test]
        fn quick_and_derived_decoding_agree(id in proptest::option::of(any::<u64>()), fields in proptest::collection::vec(("(id|type|payload|x)", "(ping|dial|7|\\{\\}|null|\"ping\")"), 0..4)) {
            let mut json = String::from("{");
            if let Some(id) = id {
                json.push_str(&format!("\"id\":{id}"));
            }
            for (key, value) in &fields {
                if json.len() > 1 { json.push(','); }
                let value = if value.starts_with('"') || value.starts_with('{') || value.chars().all(|c| c.is_ascii_digit()) || value == "null" { value.clone() } else { format!("\"{value}\"") };
                json.push_str(&format!("\"{key}\":{value}"));
            }
            json.push('}');
            let quick = decode_envelope::<Command>(&Bytes::from(json.clone().into_bytes())).ok();
            let derived = serde_json::from_str::<CommandEnvelope>(&json).ok();
            prop_assert_eq!(quick, derived, "{}", json);
        }

        #[test]
        fn garbage_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = readable(&bytes);
            let bytes = Bytes::from(bytes);
            let _ = decode_envelope::<Command>(&bytes);
            let _ = decode_envelope::<Event>(&bytes);
        }

        /// A compact frame reads back as the message it was made of, and reads in the
        /// debug view as the JSON envelope of that message.
        #[test]
        fn compact_frames_round_trip_and_read_as_their_json(id in any::<u64>(), command in command(), event in event()) {
            let sent = Envelope { id: Some(id), body: command.clone() };
            let wire = Bytes::from(encode_compact(id, command).expect("encodes").into_body());
            prop_assert!(is_compact(&wire));
            let back: CommandEnvelope = decode_envelope(&wire).expect("decodes");
            prop_assert_eq!(&back, &sent);
            let (head, _) = crate::frame::attachment_parts(&wire).expect("parts");
            let shown: serde_json::Value = serde_json::from_slice(&readable(head)).expect("JSON");
            prop_assert_eq!(shown, serde_json::to_value(&sent).expect("derived"));

            let sent = Envelope { id: Some(id), body: event.clone() };
            let wire = Bytes::from(encode_compact(id, event).expect("encodes").into_body());
            let back: EventEnvelope = decode_envelope(&wire).expect("decodes");
            prop_assert_eq!(&back, &sent);
            let (head, _) = crate::frame::attachment_parts(&wire).expect("parts");
            let shown: serde_json::Value = serde_json::from_slice(&readable(head)).expect("JSON");
            prop_assert_eq!(shown, serde_json::to_value(&sent).expect("derived"));
        }
    }

    /// Each code in the table names its message as the JSON does, belongs to one of the two
    /// enums only, and a frame with an unknown or foreign code is an error, not a guess.
    #[test]
    fn unit_codes_name_their_messages() {
        let commands = [
            Command::Ping,
            Command::StopNode,
            Command::GetStats,
            Command::Shutdown,
        ];
        let events = [Event::Pong, Event::Ok, Event::NodeStopped];
        let mut named = Vec::new();
        for command in commands {
            let code = command.unit_code().expect("a code");
            let json = serde_json::to_value(&command).expect("json");
            assert_eq!(json["type"], unit_name(code).expect("named"));
            assert_eq!(Command::from_unit_code(code), Some(command));
            assert_eq!(Event::from_unit_code(code), None);
            named.push(code);
        }
        for event in events {
            let code = event.unit_code().expect("a code");
            let json = serde_json::to_value(&event).expect("json");
            assert_eq!(json["type"], unit_name(code).expect("named"));
            assert_eq!(Event::from_unit_code(code), Some(event));
            assert_eq!(Command::from_unit_code(code), None);
            named.push(code);
        }
        assert_eq!(named.len(), UNITS.len(), "every code in the table is used");
        let frame = |code: u8| {
            let mut body = vec![COMPACT_UNIT];
            body.extend_from_slice(&7u64.to_le_bytes());
            body.push(code);
            Bytes::from(body)
        };
        assert!(
            decode_envelope::<Command>(&frame(65)).is_err(),
            "an event's code"
        );
        assert!(
            decode_envelope::<Command>(&frame(200)).is_err(),
            "no message's code"
        );
        assert!(decode_envelope::<Command>(&Bytes::from_static(&[COMPACT_JSON, 1, 2])).is_err());
        let ping = decode_envelope::<Command>(&frame(1)).expect("ping");
        assert_eq!((ping.id, ping.body), (Some(7), Command::Ping));
    }

    #[test]
    fn transports_are_named() {
        assert_eq!(transport_of("/ip4/127.0.0.1/tcp/4001"), "tcp");
        assert_eq!(transport_of("/ip4/127.0.0.1/udp/4001/quic-v1"), "quic");
        assert_eq!(transport_of("/ip4/127.0.0.1/tcp/4001/ws"), "websocket");
        assert!(is_relayed("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWA/p2p-circuit"));
    }
}
