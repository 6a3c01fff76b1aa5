//! The playlist model as the rest of the app sees it: plain serde types, no Loro.
//! Field names are part of the CLI/API JSON contract (add fields, never rename).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum QueueMode {
    #[default]
    FreeForAll,
    TurnTaking,
    VoteBased,
}

impl QueueMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueMode::FreeForAll => "free_for_all",
            QueueMode::TurnTaking => "turn_taking",
            QueueMode::VoteBased => "vote_based",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "free_for_all" => Some(QueueMode::FreeForAll),
            "turn_taking" => Some(QueueMode::TurnTaking),
            "vote_based" => Some(QueueMode::VoteBased),
            _ => None,
        }
    }
}

/// Who made a change: a peer id and the name its user chose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Author {
    pub peer_id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Track {
    pub id: String,
    pub title: String,
    pub artists: Vec<String>,
    pub album: Option<String>,
    pub duration_ms: Option<u64>,
    /// `spotify:…`, `https://…` or `file:…`.
    pub uri: Option<String>,
    pub added_by: Author,
    /// Unix milliseconds.
    pub added_at: u64,
    /// The audio file this track is, when it was added from one: members who have those
    /// bytes play them, the others fetch them from a member who has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub content: Option<Content>,
}

/// An audio file, by what it holds: the same bytes have the same id wherever they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Content {
    /// BLAKE3 of the bytes, 64 hex digits.
    pub blake3: String,
    pub size: u64,
    /// e.g. `audio/mpeg`, `audio/flac`.
    pub mime: String,
}

impl Content {
    /// Whether `id` looks like a BLAKE3 id (64 lowercase hex digits): ids name files and
    /// appear in URLs, so nothing else is accepted.
    pub fn is_valid_id(id: &str) -> bool {
        id.len() == 64
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// A track to add: what the user types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct NewTrack {
    pub title: String,
    #[serde(default)]
    pub artists: Vec<String>,
    #[serde(default)]
    pub album: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub content: Option<Content>,
}

impl From<&Track> for NewTrack {
    /// The same song, to add elsewhere (another playlist, a saved session).
    fn from(track: &Track) -> Self {
        NewTrack {
            title: track.title.clone(),
            artists: track.artists.clone(),
            album: track.album.clone(),
            duration_ms: track.duration_ms,
            uri: track.uri.clone(),
            content: track.content.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Playlist {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner: Author,
    /// Members besides the owner, by peer id (sorted).
    pub collaborators: Vec<Author>,
    pub tags: Vec<String>,
    pub queue_mode: QueueMode,
    /// Unix milliseconds.
    pub created_at: u64,
    pub updated_at: u64,
    pub tracks: Vec<Track>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct PlaylistSummary {
    pub id: String,
    pub name: String,
    pub track_count: usize,
    pub updated_at: u64,
    /// The store found damage in it and is waiting for what repairs it (see `store_problems`
    /// in the state); it is read-only until then.
    #[serde(default)]
    pub damaged: bool,
}

impl Playlist {
    pub fn summary(&self) -> PlaylistSummary {
        PlaylistSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            track_count: self.tracks.len(),
            updated_at: self.updated_at,
            damaged: false,
        }
    }
}
