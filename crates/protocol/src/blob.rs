//! `/whatnext/blob/1.0.0`: a member fetches the audio a playlist refers to from a member who
//! has it, by content id (BLAKE3), in verified groups: first the outboard (the groups'
//! BLAKE3 chaining values, checked against the content id), then each group (checked
//! against the outboard as it arrives). A member serves only content referenced by a
//! playlist the asker is an admitted member of.
//!
//! A group's bytes are not in the JSON: they follow it, raw, in the same message (see
//! `whatnext_protocol::frame::with_attachment`), on the wire and on both services' pipes.

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

pub const BLOB_PROTOCOL: &str = "/whatnext/blob/1.0.0";

/// The bytes of one group (the last may be shorter): the unit asked for, verified and
/// written.
pub const GROUP_LEN: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlobRequest {
    /// "What is the size and outboard of `blake3`, which playlist `session` refers to?"
    Outboard { session: String, blake3: String },
    /// "Send group `index` of `blake3`."
    Group {
        session: String,
        blake3: String,
        index: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlobResponse {
    /// The content's size, and its outboard: base64 of the groups' 32-byte chaining values
    /// in order (empty for content of one group).
    Outboard {
        size: u64,
        outboard: String,
    },
    /// Group `index`; its bytes are the message's attachment.
    Group {
        index: u64,
    },
    Refused {
        reason: String,
    },
}

impl BlobRequest {
    pub fn session(&self) -> &str {
        match self {
            BlobRequest::Outboard { session, .. } | BlobRequest::Group { session, .. } => session,
        }
    }

    pub fn blake3(&self) -> &str {
        match self {
            BlobRequest::Outboard { blake3, .. } | BlobRequest::Group { blake3, .. } => blake3,
        }
    }
}

/// An outboard as [`BlobResponse::Outboard`] carries it: base64 of the chaining values.
pub fn encode_outboard(cvs: &[[u8; 32]]) -> String {
    B64.encode(cvs.concat())
}

/// The chaining values of an outboard a member sent ([`BlobResponse::Outboard`]); an error
/// for text that is not base64 of whole 32-byte values. (Whether they are the right ones
/// is checked against the content id afterwards.)
pub fn decode_outboard(text: &str) -> Result<Vec<[u8; 32]>, String> {
    let bytes = B64.decode(text).map_err(|e| e.to_string())?;
    if bytes.len() % 32 != 0 {
        return Err("an outboard of partial hashes".into());
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut cv = [0u8; 32];
            cv.copy_from_slice(c);
            cv
        })
        .collect())
}
