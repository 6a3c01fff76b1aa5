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

    /// The name to show for each person the playlist names (owner and members), by peer id:
    /// the name it records for them now; two people of one name told apart by the end of
    /// their peer ids (every peer id starts alike).
    pub fn people(&self) -> std::collections::HashMap<String, String> {
        let everyone: Vec<&Author> = std::iter::once(&self.owner)
            .chain(&self.collaborators)
            .filter(|a| !a.peer_id.is_empty())
            .collect();
        let mut count: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for author in &everyone {
            *count.entry(author.display_name.as_str()).or_default() += 1;
        }
        everyone
            .iter()
            .map(|a| {
                let name = if a.display_name.is_empty() {
                    short_peer(&a.peer_id)
                } else if count.get(a.display_name.as_str()).copied().unwrap_or(0) > 1 {
                    format!("{} ({})", a.display_name, short_peer(&a.peer_id))
                } else {
                    a.display_name.clone()
                };
                (a.peer_id.clone(), name)
            })
            .collect()
    }

    /// The playlist with everyone under the name [`Playlist::people`] gives them: a rename
    /// shows on everything they did before it (what they added keeps their peer id).
    pub fn with_current_names(mut self) -> Playlist {
        let people = self.people();
        let rename = |author: &mut Author| {
            if let Some(name) = people.get(&author.peer_id) {
                author.display_name.clone_from(name);
            }
        };
        rename(&mut self.owner);
        self.collaborators.iter_mut().for_each(rename);
        for track in &mut self.tracks {
            rename(&mut track.added_by);
        }
        self
    }
}

/// `text` cut to at most `max` bytes, at a character boundary: for text from outside
/// (tags, other apps' playlists) that the store would refuse whole.
pub fn cut_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Most artists one track names (one edit must not bloat every replica).
pub const MAX_ARTISTS: usize = 32;

/// A person's name as others are shown it: without control characters (terminal escapes)
/// and without the invisible characters that reorder or hide text (bidi overrides and
/// isolates, zero-width marks), which would let "\u{202e}nnA" pass for "Ann"; trimmed.
pub fn clean_display_name(name: &str) -> String {
    let invisible = |c: char| {
        matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
    };
    name.chars()
        .filter(|c| !invisible(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The end of a peer id, enough to tell two people apart by eye.
pub fn short_peer(peer_id: &str) -> String {
    let start = peer_id.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
    peer_id[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(peer_id: &str, name: &str) -> Author {
        Author {
            peer_id: peer_id.into(),
            display_name: name.into(),
        }
    }

    #[test]
    fn everyone_shows_under_their_current_name_and_namesakes_differ() {
        let track = |by: Author| Track {
            id: "t".into(),
            title: "T".into(),
            artists: vec![],
            album: None,
            duration_ms: None,
            uri: None,
            added_by: by,
            added_at: 0,
            content: None,
        };
        let playlist = Playlist {
            id: "p".into(),
            name: "P".into(),
            description: String::new(),
            owner: author("12D3KooWaaaa1111", "root"),
            collaborators: vec![
                author("12D3KooWbbbb2222", "root"),
                author("12D3KooWcccc3333", "Alice"),
            ],
            tags: vec![],
            queue_mode: QueueMode::default(),
            created_at: 0,
            updated_at: 0,
            // Added before Alice was called Alice, and by someone no longer a member.
            tracks: vec![
                track(author("12D3KooWcccc3333", "WhatNext user")),
                track(author("12D3KooWdddd4444", "Gone")),
            ],
        }
        .with_current_names();
        assert_eq!(playlist.owner.display_name, "root (1111)");
        assert_eq!(playlist.collaborators[0].display_name, "root (2222)");
        assert_eq!(playlist.tracks[0].added_by.display_name, "Alice");
        assert_eq!(playlist.tracks[0].added_by.peer_id, "12D3KooWcccc3333");
        assert_eq!(playlist.tracks[1].added_by.display_name, "Gone");
    }
}
