//! The listening session of a shared playlist as the CLI, the API and the view see it: what
//! plays now, what plays next, whose turn it is, who may do what. The field names are the
//! contract of `whatnext session now --json` and `GET /api/playlists/{id}/session` (add
//! fields, never rename).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Who decides what plays next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// Anyone adds anything, in order.
    #[default]
    FreeForAll,
    /// Members take turns: only the member whose turn it is adds, up to `per_turn` tracks.
    TurnTaking,
    /// Up next is ordered by votes.
    Vote,
}

impl SessionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::FreeForAll => "free_for_all",
            SessionMode::TurnTaking => "turn_taking",
            SessionMode::Vote => "vote",
        }
    }

    /// The mode named on the command line (`free`, `turns`, `vote`) or in JSON.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "free" | "free_for_all" => Some(SessionMode::FreeForAll),
            "turns" | "turn_taking" => Some(SessionMode::TurnTaking),
            "vote" | "vote_based" => Some(SessionMode::Vote),
            _ => None,
        }
    }
}

/// A member's role in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Owner,
    CoHost,
    Member,
    /// Joined from the guest page of a member (its host), whose app makes its edits.
    Guest,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Owner => "owner",
            MemberRole::CoHost => "co_host",
            MemberRole::Member => "member",
            MemberRole::Guest => "guest",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct NowPlaying {
    pub track_id: String,
    pub title: String,
    pub artists: Vec<String>,
    pub duration_ms: Option<u64>,
    /// Where playback is now (computed from when it started, unless paused).
    pub position_ms: u64,
    pub paused: bool,
    /// The peer id of whoever started it.
    pub started_by: String,
    /// Its audio, when it was added from a file (`GET /media/<blake3>` plays it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub content: Option<crate::playlist::Content>,
    /// Where to open it when there is no audio here (`spotify:…`, `https://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub uri: Option<String>,
    /// When playback (re)started, in Unix ms on the clock of whoever started it, and where in
    /// the track it was then: players place themselves from these rather than from when they
    /// read `position_ms` (which moves on while the answer travels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub start_position_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UpNext {
    pub track_id: String,
    pub title: String,
    pub artists: Vec<String>,
    /// The peer id of whoever added it.
    pub added_by: String,
    /// Up votes minus down votes.
    pub score: i64,
    /// This member's vote: 1, -1, or 0.
    pub my_vote: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Turn {
    pub peer_id: String,
    pub display_name: String,
    /// How many more tracks this turn's member may add before the turn passes.
    pub tracks_left: u64,
    /// Turns completed so far (the turn number, from 0).
    pub number: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SkipVotes {
    pub votes: u64,
    pub needed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Played {
    pub track_id: String,
    pub title: String,
    /// Unix milliseconds.
    pub played_at: u64,
    /// The peer id of whoever played it.
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Reaction {
    pub peer_id: String,
    pub emoji: String,
    /// Unix milliseconds.
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Comment {
    pub id: String,
    pub peer_id: String,
    pub display_name: String,
    pub text: String,
    /// The track it is about, if any.
    pub track_id: Option<String>,
    /// The comment it answers, if any.
    pub reply_to: Option<String>,
    /// Unix milliseconds.
    pub at: u64,
    /// Removed by its author or the owner: the text is gone, the thread stays.
    pub deleted: bool,
}

/// `whatnext session now ID --json`, `GET /api/playlists/{id}/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SessionView {
    pub playlist_id: String,
    pub mode: SessionMode,
    /// In `turn_taking`: tracks per turn.
    pub per_turn: u64,
    pub now_playing: Option<NowPlaying>,
    pub up_next: Vec<UpNext>,
    pub turn: Option<Turn>,
    /// Members in join order.
    pub turn_order: Vec<String>,
    pub playback_owner: Option<String>,
    pub roles: BTreeMap<String, MemberRole>,
    pub skip: SkipVotes,
    /// Newest last.
    pub history: Vec<Played>,
    /// The last 30 seconds'.
    pub reactions: Vec<Reaction>,
    /// The playlist that plays when up next runs dry.
    pub fallback: Option<String>,
    /// This member's peer id in this session and role.
    pub me: String,
    /// The clock of whoever holds playback minus ours, in ms, when measured (their
    /// `started_at_ms` is on their clock): players add it to theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub clock_offset_ms: Option<i64>,
    pub my_role: MemberRole,
    /// Comments and replies, oldest first; removed ones stay with `deleted` and no text, so
    /// their replies keep their place.
    pub comments: Vec<Comment>,
}

/// `POST /api/playlists/{id}/session`: one thing a member does in the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SessionAction {
    /// Start `track_id`, or the first of up next.
    Play {
        #[serde(default)]
        #[ts(optional)]
        track_id: Option<String>,
    },
    Pause,
    Resume,
    Seek {
        position_ms: u64,
    },
    Next,
    /// Take playback (owner or co-host).
    Take,
    Mode {
        mode: SessionMode,
        #[serde(default)]
        #[ts(optional)]
        per_turn: Option<u64>,
    },
    Role {
        peer_id: String,
        role: MemberRole,
    },
    /// End my turn early.
    Pass,
    /// `vote`: 1 up, -1 down, 0 clears.
    Vote {
        track_id: String,
        vote: i64,
    },
    /// Vote to skip what plays now.
    Skip,
    Comment {
        text: String,
        #[serde(default)]
        #[ts(optional)]
        track_id: Option<String>,
        #[serde(default)]
        #[ts(optional)]
        reply_to: Option<String>,
    },
    Uncomment {
        comment_id: String,
    },
    Fallback {
        #[serde(default)]
        #[ts(optional)]
        playlist_id: Option<String>,
    },
    /// React to what plays (an emoji): shown to everyone online for 30 s, not stored.
    React {
        emoji: String,
    },
}

/// How long a reaction is shown.
pub const REACTION_SHOWN_MS: u64 = 30_000;
/// At most this many reactions per member…
pub const REACTIONS_PER_WINDOW: usize = 5;
/// …within this window.
pub const REACTION_WINDOW_MS: u64 = 10_000;

/// Whether `emoji` is a reaction: one short symbol (up to 8 characters, e.g. a flag or a
/// family emoji), no letters, digits, spaces or control characters.
pub fn is_reaction(emoji: &str) -> bool {
    let count = emoji.chars().count();
    (1..=8).contains(&count)
        && emoji.len() <= 32
        && emoji
            .chars()
            .all(|c| !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_the_names_users_type_and_the_json_names() {
        for (text, mode) in [
            ("free", SessionMode::FreeForAll),
            ("turns", SessionMode::TurnTaking),
            ("vote", SessionMode::Vote),
            ("free_for_all", SessionMode::FreeForAll),
            ("vote_based", SessionMode::Vote),
        ] {
            assert_eq!(SessionMode::parse(text), Some(mode), "{text}");
        }
        assert_eq!(SessionMode::parse("loud"), None);
        assert_eq!(
            serde_json::to_string(&SessionMode::TurnTaking).expect("json"),
            "\"turn_taking\""
        );
        assert_eq!(
            serde_json::to_string(&MemberRole::CoHost).expect("json"),
            "\"co_host\""
        );
    }

    #[test]
    fn reactions_are_short_symbols() {
        for ok in ["🎉", "🔥", "❤️", "👍🏽", "🇫🇷", "👨‍👩‍👧"] {
            assert!(is_reaction(ok), "{ok}");
        }
        for bad in ["", "lol", "🎉 ", "1", "\u{7}", "🎉🎉🎉🎉🎉🎉🎉🎉🎉"] {
            assert!(!is_reaction(bad), "{bad:?}");
        }
    }

    #[test]
    fn actions_are_tagged_by_name() {
        let action: SessionAction =
            serde_json::from_str(r#"{"action":"vote","track_id":"t1","vote":-1}"#).expect("vote");
        assert_eq!(
            action,
            SessionAction::Vote {
                track_id: "t1".into(),
                vote: -1
            }
        );
        let play: SessionAction = serde_json::from_str(r#"{"action":"play"}"#).expect("play");
        assert_eq!(play, SessionAction::Play { track_id: None });
    }
}
