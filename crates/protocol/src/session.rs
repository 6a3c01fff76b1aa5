//! What peers say to each other on the app protocols. The network service carries these as
//! opaque JSON; the controller, which holds the keys and the store, reads them.
//!
//! * `/whatnext/handshake/1.0.0`: the dialer names itself and proves a capability (`key`)
//!   for each shared playlist (session) it wants; the other side admits or refuses each.
//! * `/whatnext/sync/2.0.0`: `hello` carries a version vector and is answered with the
//!   updates the asker lacks; `push` carries new updates to an admitted member at once.
//!   Updates travel as signed envelopes ([`crate::signed`]), exactly as their authors
//!   signed them (2.0.0: 1.0.0 carried bare Loro updates, so nobody knew who wrote what).

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

pub const HANDSHAKE_PROTOCOL: &str = "/whatnext/handshake/1.0.0";
pub const SYNC_PROTOCOL: &str = "/whatnext/sync/2.0.0";
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
    /// version vector; `updates` fields are base64 of an LZ4 block (size-prefixed) of
    /// encoded signed envelopes ([`crate::signed::encode_envelopes`]).
    ///
    /// `part`: the asker takes what it lacks in parts of [`SYNC_PART_BYTES`], and asks for
    /// this one (0 first; the answer's `parts` says how many there are). Without it the
    /// answer is whole, as peers before parts expect — and past [`MAX_APP_MESSAGE`] it
    /// cannot be sent at all (~45,000 tracks with their files' ids).
    Hello {
        session: String,
        version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        part: Option<u32>,
    },
    /// New updates for `session`. `version` (base64 Loro version vector) is what the sender
    /// has with them: the receiver then knows what not to send back.
    Push {
        session: String,
        updates: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// A reaction to what plays in `session` (an emoji): not stored, shown to the members
    /// online for 30 s. Receivers limit each member to a few per 10 s.
    React {
        session: String,
        emoji: String,
        /// A guest of the sender's whose reaction it is (the sender's own when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// "What time is it?" (NTP-style): `sent_ms` is the asker's clock when it asked.
    Clock { session: String, sent_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SyncResponse {
    Updates {
        session: String,
        updates: String,
        /// When the hello asked for a part: which whole this part is of.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parts: Option<Parts>,
    },
    /// The answer to `clock`: the asker's `sent_ms` back, and our clock when the question
    /// came and when the answer left.
    Clock {
        sent_ms: u64,
        received_ms: u64,
        answered_ms: u64,
    },
    Ack,
    Refused {
        reason: String,
    },
}

/// The whole a part of an answer to `hello` belongs to: the encoded envelopes the asker
/// lacks, cut into `count` parts of [`SYNC_PART_BYTES`] (the last one shorter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parts {
    pub count: u32,
    /// How many bytes the whole holds.
    pub len: u64,
    /// The answerer's version (base64) when it cut them: a part cut from another version
    /// may belong to another whole, so the asker starts again.
    pub of: String,
}

/// The size of a part of an answer to `hello`, before packing (packed, at most about a
/// third more: under [`MAX_APP_MESSAGE`] with room for the message's JSON).
pub const SYNC_PART_BYTES: usize = 4 * 1024 * 1024;

/// Most parts an asker takes (the whole, at most [`MAX_UNPACKED`]): an answerer claiming
/// more is not asked on.
pub const MAX_SYNC_PARTS: u32 = 4096;

/// How many parts of `part_bytes` a whole of `len` bytes has (one when empty).
pub fn part_count(len: usize, part_bytes: usize) -> usize {
    len.div_ceil(part_bytes.max(1)).max(1)
}

/// Part `index` of `whole`, cut in parts of `part_bytes`; None past the last.
pub fn part_of(whole: &[u8], index: usize, part_bytes: usize) -> Option<&[u8]> {
    let part_bytes = part_bytes.max(1);
    if index >= part_count(whole.len(), part_bytes) {
        return None;
    }
    let start = index * part_bytes;
    Some(&whole[start..whole.len().min(start + part_bytes)])
}

/// Updates travel LZ4-compressed: Loro's encoding leaves repeated strings as they are, and
/// LZ4 halves a large join. The text is base64 of an LZ4 block with its size prepended.
pub fn pack(updates: &[u8]) -> String {
    B64.encode(lz4_flex::compress_prepend_size(updates))
}

/// Most a packed update may claim to expand to: a hostile size prefix must not make the
/// receiver allocate gigabytes.
pub const MAX_UNPACKED: usize = 256 * 1024 * 1024;

/// The updates in a `push` or `updates` message, or why they cannot be read.
pub fn unpack(text: &str) -> Result<Vec<u8>, String> {
    let bytes = B64.decode(text).map_err(|e| format!("not base64: {e}"))?;
    let claimed = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("truncated")?;
    if claimed > MAX_UNPACKED {
        return Err(format!("claims {claimed} bytes unpacked"));
    }
    lz4_flex::decompress_size_prepended(&bytes).map_err(|e| format!("not LZ4: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hellos_and_answers_of_peers_before_parts_still_read() {
        let hello: SyncRequest =
            serde_json::from_str(r#"{"type":"hello","session":"s","version":""}"#).expect("hello");
        assert!(matches!(hello, SyncRequest::Hello { part: None, .. }));
        let answer: SyncResponse =
            serde_json::from_str(r#"{"type":"updates","session":"s","updates":""}"#)
                .expect("updates");
        assert!(matches!(answer, SyncResponse::Updates { parts: None, .. }));
        // And a hello without a part is written as those peers write it.
        let written = serde_json::to_string(&SyncRequest::Hello {
            session: "s".into(),
            version: String::new(),
            part: None,
        })
        .expect("json");
        assert_eq!(written, r#"{"type":"hello","session":"s","version":""}"#);
    }

    #[test]
    fn a_part_fits_a_message_and_the_largest_whole_fits_the_parts_limit() {
        // The worst case: bytes LZ4 cannot shorten, then a third more in base64.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let part: Vec<u8> = (0..SYNC_PART_BYTES)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let packed = pack(&part).len() as u64;
        assert!(
            packed + 64 * 1024 < MAX_APP_MESSAGE,
            "a part packs to {packed} bytes"
        );
        assert!(MAX_UNPACKED / SYNC_PART_BYTES <= MAX_SYNC_PARTS as usize);
    }

    #[test]
    fn a_hostile_size_prefix_is_refused_before_allocating() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"tiny");
        let err = unpack(&B64.encode(bytes)).expect_err("refused");
        assert!(err.contains("claims"), "{err}");
        assert!(unpack("***").is_err());
        assert!(unpack("").is_err());
    }

    proptest! {
        #[test]
        fn the_parts_of_a_whole_put_together_are_the_whole(
            whole in proptest::collection::vec(any::<u8>(), 0..2000),
            part_bytes in 1usize..300,
        ) {
            let count = part_count(whole.len(), part_bytes);
            let mut joined = Vec::new();
            for index in 0..count {
                let part = part_of(&whole, index, part_bytes).expect("a part");
                prop_assert!(!part.is_empty() || whole.is_empty());
                prop_assert!(part.len() <= part_bytes);
                joined.extend_from_slice(part);
            }
            prop_assert!(part_of(&whole, count, part_bytes).is_none());
            prop_assert_eq!(joined, whole);
        }

        #[test]
        fn packed_updates_unpack_to_themselves(updates in proptest::collection::vec(any::<u8>(), 0..4096)) {
            prop_assert_eq!(unpack(&pack(&updates)), Ok(updates));
        }

        #[test]
        fn any_text_unpacks_or_fails_without_panicking(text in ".{0,512}") {
            let _ = unpack(&text);
        }
    }
}
