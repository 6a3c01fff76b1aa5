//! `/whatnext/blob/1.0.0`: a member fetches the audio a playlist refers to from a member who
//! has it, by content id (BLAKE3), in verified groups: first the outboard (the groups'
//! BLAKE3 chaining values, checked against the content id), then each group (checked
//! against the outboard as it arrives). A member serves only content referenced by a
//! playlist the asker is an admitted member of.

use serde::{Deserialize, Serialize};

pub const BLOB_PROTOCOL: &str = "/whatnext/blob/1.0.0";

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
    /// Group `index`, base64.
    Group {
        index: u64,
        bytes: String,
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
