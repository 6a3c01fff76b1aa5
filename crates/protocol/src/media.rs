//! The music library: audio files found in the music folders, as the CLI, the API and the
//! view see them. Field names are part of the JSON contract (add fields, never rename).

use serde::{Deserialize, Serialize};

use crate::playlist::{Content, NewTrack};

/// One audio file of the library, with what its tags say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LibraryEntry {
    pub path: String,
    pub title: String,
    pub artists: Vec<String>,
    pub album: Option<String>,
    pub duration_ms: Option<u64>,
    pub content: Content,
}

impl LibraryEntry {
    /// The track this file is, to add to a playlist.
    pub fn to_track(&self) -> NewTrack {
        NewTrack {
            title: self.title.clone(),
            artists: self.artists.clone(),
            album: self.album.clone(),
            duration_ms: self.duration_ms,
            uri: None,
            content: Some(self.content.clone()),
        }
    }
}

/// A file a scan could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ScanFailure {
    pub path: String,
    pub reason: String,
}

/// What `whatnext library scan` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ScanReport {
    /// Audio files found (read or not).
    pub files: usize,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub failed: Vec<ScanFailure>,
    /// The folders scanned.
    #[serde(default)]
    pub dirs: Vec<String>,
}

/// A scan under way: `done` of `total` files looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct ScanProgress {
    pub done: usize,
    pub total: usize,
}

/// `GET /api/library[?q=…]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LibraryReply {
    pub entries: Vec<LibraryEntry>,
    /// Files in the library in all (the reply may hold fewer).
    pub total: usize,
    /// Files that match the query (all of them without one): `entries` holds the first.
    #[serde(default)]
    pub found: usize,
}

/// `POST /api/library/file`: scan one file (anywhere) into the library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LibraryFileRequest {
    pub path: String,
}
