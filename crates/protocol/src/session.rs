//! What peers say to each other on the app protocols. The network service carries these as
//! opaque JSON; the controller, which holds the keys and the store, reads them.
//!
//! * `/whatnext/handshake/1.0.0`: the dialer names itself and proves a capability (`key`)
//!   for each shared playlist (session) it wants; the other side admits or refuses each.
//! * `/whatnext/sync/1.0.0`: `hello` carries a version vector and is answered with the
//!   updates the asker lacks; `push` carries new updates to an admitted member at once.

use serde::{Deserialize, Serialize};

pub const HANDSHAKE_PROTOCOL: &str = "/whatnext/handshake/1.0.0";
pub const SYNC_PROTOCOL: &str = "/whatnext/sync/1.0.0";
/// Largest request or response on the app protocols. A 10,000-track join is about 3 MB;
/// the limit stays well under the 16 MiB IPC frame that carries it to the controller.
pub const MAX_APP_MESSAGE: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionProof {
    pub session: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeRequest {
    pub app_version: String,
    pub display_name: String,
    pub sessions: Vec<SessionProof>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub session: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeResponse {
    pub app_version: String,
    pub display_name: String,
    pub accepted: Vec<String>,
    pub refused: Vec<Refusal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncRequest {
    /// "Here is my version of `session`; send me what I lack." `version` is a base64 Loro
    /// version vector; `updates` fields are base64 of an LZ4 block (size-prefixed) of Loro
    /// updates.
    Hello { session: String, version: String },
    /// New updates for `session`.
    Push { session: String, updates: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncResponse {
    Updates { session: String, updates: String },
    Ack,
    Refused { reason: String },
}
