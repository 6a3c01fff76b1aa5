//! The loopback HTTP API's request and response bodies, shared by the controller (which
//! serves them), the CLI (which calls them) and the view (whose TypeScript definitions are
//! generated from these types by [`typescript_definitions`]).
//!
//! Changing a field here changes `crates/api/assets/api.d.ts` (a test in the
//! API crate fails until it is regenerated), and `tsc --checkJs` then fails on any view code
//! that still uses the old shape: a changed Rust type breaks the view's build, not a user's
//! session.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{
    playlist::{Author, NewTrack, Playlist, PlaylistSummary, QueueMode, Track},
    state::{
        AppState, Connection, DialErrorKind, DialFailure, DialMethod, DialStep, Direction,
        HelperNode, HelperRole, HolePunchCounts, LibraryStatus, LinkAttempt, LinkStatus, NatStatus,
        NodeStatus, RelayReservation, ServiceEntry, ServiceInfo, SessionRole, SessionState,
        StoreProblem,
    },
};

/// Every error answer: `{"error": "what was wrong and what to do"}` with a 4xx/5xx status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ErrorReply {
    pub error: String,
}

/// The answer of writes that return nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct OkReply {
    pub ok: bool,
}

impl OkReply {
    pub const OK: OkReply = OkReply { ok: true };
}

/// `POST /api/connect`: dial a multiaddr ending in `/p2p/<peer id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ConnectRequest {
    pub addr: String,
    /// How long to wait for the connection, seconds (default 15).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub timeout_secs: Option<f64>,
}

/// The answer of `POST /api/connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ConnectReply {
    pub peer_id: String,
    /// The address the connection was made on.
    pub addr: String,
    /// How long the dial took inside the network service.
    pub dial_ms: Option<f64>,
}

/// `POST /api/disconnect`: close every connection to a peer (it may reconnect: members of
/// shared playlists find each other again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DisconnectRequest {
    pub peer_id: String,
}

/// `GET /api/invite` and `POST /api/playlists/{id}/share`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct LinkReply {
    pub link: String,
}

/// `POST /api/open`: open a `whtnxt://` link. The answer is a [`LinkAttempt`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct OpenRequest {
    pub url: String,
    /// Answer once the connection is up or failed (default: at once, with the attempt pending).
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub wait: bool,
    #[serde(default)]
    #[ts(optional = nullable)]
    pub timeout_secs: Option<f64>,
}

/// `POST /api/login-link`: a fresh one-time login URL for the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct LoginLinkReply {
    pub url: String,
}

/// `POST /api/config`: settings that can change while running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ConfigChange {
    #[serde(default)]
    #[ts(optional = nullable)]
    pub display_name: Option<String>,
    /// The music folders, absolute paths of folders that exist (an empty list: none).
    #[serde(default)]
    #[ts(optional = nullable)]
    pub music_dirs: Option<Vec<String>>,
}

/// `POST /api/playlists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CreatePlaylistRequest {
    pub name: String,
    #[serde(default)]
    #[ts(as = "Option<String>", optional)]
    pub description: String,
}

/// `POST /api/playlists/{id}/session/save`: a new playlist from what played.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SaveHistoryRequest {
    pub name: String,
}

/// The answer of `POST /api/playlists` and `POST /api/playlists/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CreatedReply {
    pub id: String,
}

/// `GET /api/playlists/{id}`: the playlist with who is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct PlaylistView {
    #[serde(flatten)]
    pub playlist: Playlist,
    /// The owner first, then the collaborators.
    pub members: Vec<Member>,
    /// Whether this node shares the playlist (holds its session key).
    pub shared: bool,
}

impl PlaylistView {
    /// `playlist` as `show` gives it: everyone under their current name, the owner first
    /// then the collaborators, each online as `online` says and marked a guest as `guest`
    /// says.
    pub fn of(
        playlist: Playlist,
        shared: bool,
        online: impl Fn(&str) -> bool,
        guest: impl Fn(&str) -> bool,
    ) -> PlaylistView {
        let playlist = playlist.with_current_names();
        let members = std::iter::once(&playlist.owner)
            .chain(
                playlist
                    .collaborators
                    .iter()
                    .filter(|c| c.peer_id != playlist.owner.peer_id),
            )
            .map(|m| Member {
                peer_id: m.peer_id.clone(),
                display_name: m.display_name.clone(),
                online: online(&m.peer_id),
                owner: m.peer_id == playlist.owner.peer_id,
                guest: guest(&m.peer_id),
            })
            .collect();
        PlaylistView {
            playlist,
            members,
            shared,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Member {
    pub peer_id: String,
    pub display_name: String,
    /// Connected now (always true for this node itself, and for the guests of our guest
    /// page who are in).
    pub online: bool,
    pub owner: bool,
    /// A guest, who joined from a member's guest page.
    #[serde(default)]
    pub guest: bool,
}

/// `POST /api/playlists/{id}/share`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ShareRequest {
    /// Replace the key: links given out before stop working for newcomers.
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub rotate: bool,
    /// Serve the playlist from its own network service with its own identity, so its
    /// members cannot tie it to this node's main peer id. On a shared playlist: moves it.
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub isolated: bool,
}

/// `POST /api/playlists/{id}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RevokeRequest {
    pub peer_id: String,
}

/// `POST /api/playlists/{id}/rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RenameRequest {
    pub name: String,
}

/// `POST /api/playlists/{id}/tracks`: one track (`{"title": …}`) or a batch
/// (`{"tracks": [{"title": …}, …]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(untagged)]
pub enum AddTracksRequest {
    Batch { tracks: Vec<NewTrack> },
    One(NewTrack),
}

/// The answer of adding one track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AddedTrack {
    pub track_id: Option<String>,
}

/// The answer of adding a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AddedTracks {
    pub track_ids: Vec<String>,
}

/// `POST /api/playlists/{id}/move`: move a track to index `to` (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct MoveRequest {
    pub track_id: String,
    pub to: usize,
}

/// The largest playlist import accepted, in bytes of Markdown (64 MiB): the file `whatnext
/// playlist import` reads and the `markdown` of `POST /api/playlists/import`. The CLI checks
/// it before reading further or sending anything; the controller answers 413 above it.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

/// The largest request body of the bulk routes (`POST /api/playlists/import` and a batch
/// `POST /api/playlists/{id}/tracks`): an import of [`MAX_IMPORT_BYTES`] as a JSON string,
/// where every newline and quote takes two bytes, plus room for the rest. Other routes keep
/// the server's default (2 MB).
pub const MAX_BULK_BODY_BYTES: usize = 2 * MAX_IMPORT_BYTES + 1024 * 1024;

/// The longest display name, in bytes after trimming: `POST /api/config`, `whatnext config
/// set display-name` and `display_name` in config.toml all refuse longer ones.
pub const MAX_DISPLAY_NAME_BYTES: usize = 200;

/// `POST /api/playlists/import`: a playlist in the Markdown mirror's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ExportQuery {
    /// `md` (the default: every field), `m3u` or `xspf`.
    #[serde(default)]
    #[ts(optional)]
    pub format: Option<String>,
}

/// `POST /api/playlists/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ImportRequest {
    /// The file's text: WhatNext Markdown (from `export`), M3U/M3U8, XSPF or CSV, told
    /// apart by its content. (The field keeps its first name: scripts send it.)
    pub markdown: String,
    /// The name of a playlist from another app's file that does not name itself (M3U
    /// without `#PLAYLIST`, CSV): e.g. the file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
    /// Give it a new id (to import a copy of a playlist that exists here).
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub as_new: bool,
}

/// `GET /api/doctor` (and `whatnext doctor --json`): why connections may fail, in words a
/// non-expert can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DoctorReport {
    /// The worst status among the checks.
    pub status: CheckStatus,
    /// One sentence: the most important finding.
    pub summary: String,
    pub checks: Vec<DoctorCheck>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DoctorCheck {
    /// Stable identifier for scripts: "controller", "service", "network", "listen", "nat",
    /// "relay", "mdns", "bootstrap", "dial".
    pub id: String,
    /// What was checked, for people.
    pub title: String,
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What to do about it (empty when nothing needs doing).
    pub advice: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Info,
    Warn,
    Fail,
}

/// The TypeScript declarations of every API type, as one `.d.ts` module.
///
/// 64-bit integers become `number`: every one the API sends (versions, millisecond
/// timestamps, ids) stays far below 2^53, and `bigint` would not survive `JSON.parse`.
pub fn typescript_definitions() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        AppState::decl(&cfg),
        NodeStatus::decl(&cfg),
        NatStatus::decl(&cfg),
        HelperRole::decl(&cfg),
        SessionRole::decl(&cfg),
        Direction::decl(&cfg),
        DialMethod::decl(&cfg),
        DialErrorKind::decl(&cfg),
        ServiceInfo::decl(&cfg),
        ServiceEntry::decl(&cfg),
        Connection::decl(&cfg),
        LinkAttempt::decl(&cfg),
        LinkStatus::decl(&cfg),
        SessionState::decl(&cfg),
        RelayReservation::decl(&cfg),
        HelperNode::decl(&cfg),
        DialFailure::decl(&cfg),
        HolePunchCounts::decl(&cfg),
        StoreProblem::decl(&cfg),
        DialStep::decl(&cfg),
        PlaylistSummary::decl(&cfg),
        Playlist::decl(&cfg),
        Track::decl(&cfg),
        Author::decl(&cfg),
        NewTrack::decl(&cfg),
        QueueMode::decl(&cfg),
        ErrorReply::decl(&cfg),
        OkReply::decl(&cfg),
        ConnectRequest::decl(&cfg),
        ConnectReply::decl(&cfg),
        DisconnectRequest::decl(&cfg),
        LinkReply::decl(&cfg),
        OpenRequest::decl(&cfg),
        LoginLinkReply::decl(&cfg),
        ConfigChange::decl(&cfg),
        CreatePlaylistRequest::decl(&cfg),
        CreatedReply::decl(&cfg),
        PlaylistView::decl(&cfg),
        crate::playlist::Content::decl(&cfg),
        LibraryStatus::decl(&cfg),
        crate::state::Transfer::decl(&cfg),
        crate::state::MediaWaiting::decl(&cfg),
        crate::state::ClockEstimate::decl(&cfg),
        crate::state::TransferDirection::decl(&cfg),
        crate::media::LibraryEntry::decl(&cfg),
        crate::media::ScanFailure::decl(&cfg),
        crate::media::ScanReport::decl(&cfg),
        crate::media::ScanProgress::decl(&cfg),
        crate::media::LibraryReply::decl(&cfg),
        crate::media::LibraryFileRequest::decl(&cfg),
        Member::decl(&cfg),
        ShareRequest::decl(&cfg),
        RevokeRequest::decl(&cfg),
        RenameRequest::decl(&cfg),
        AddTracksRequest::decl(&cfg),
        AddedTrack::decl(&cfg),
        AddedTracks::decl(&cfg),
        MoveRequest::decl(&cfg),
        ImportRequest::decl(&cfg),
        DoctorReport::decl(&cfg),
        crate::listening::SessionMode::decl(&cfg),
        crate::listening::MemberRole::decl(&cfg),
        crate::listening::NowPlaying::decl(&cfg),
        crate::listening::UpNext::decl(&cfg),
        crate::listening::Turn::decl(&cfg),
        crate::listening::SkipVotes::decl(&cfg),
        crate::listening::Played::decl(&cfg),
        crate::listening::Reaction::decl(&cfg),
        crate::listening::Comment::decl(&cfg),
        crate::listening::SessionView::decl(&cfg),
        crate::listening::SessionAction::decl(&cfg),
        SaveHistoryRequest::decl(&cfg),
        DoctorCheck::decl(&cfg),
        CheckStatus::decl(&cfg),
        crate::guest::GuestsRequest::decl(&cfg),
        crate::guest::GuestInfo::decl(&cfg),
        crate::guest::GuestsReply::decl(&cfg),
        crate::guest::GuestRemovedReply::decl(&cfg),
        crate::guest::GuestPageInfo::decl(&cfg),
        crate::guest::GuestJoinRequest::decl(&cfg),
        crate::guest::GuestJoinReply::decl(&cfg),
        crate::guest::GuestTrackRequest::decl(&cfg),
        crate::guest::GuestLibraryHit::decl(&cfg),
        crate::guest::GuestLibraryReply::decl(&cfg),
        crate::guest::GuestVote::decl(&cfg),
        crate::guest::GuestVoteRequest::decl(&cfg),
        crate::guest::GuestReactRequest::decl(&cfg),
        crate::guest::GuestCommentRequest::decl(&cfg),
        crate::guest::GuestPerson::decl(&cfg),
        crate::guest::GuestState::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from crates/protocol (whatnext_protocol::api::typescript_definitions).\n\
         // Do not edit: run `UPDATE_API_TYPES=1 cargo test -p whatnext-api api_types`.\n\n",
    );
    for decl in decls {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_cover_the_state_with_numbers_not_bigints() {
        let ts = typescript_definitions();
        assert!(ts.contains("export type AppState = {"), "{ts}");
        assert!(ts.contains("version: number"), "{ts}");
        assert!(!ts.contains("bigint"), "{ts}");
        assert!(ts.contains("\"running\""), "{ts}");
    }

    #[test]
    fn a_playlist_view_flattens_the_playlist() {
        let json = serde_json::json!({
            "id": "p", "name": "n", "description": "", "owner": {"peer_id": "a", "display_name": "A"},
            "collaborators": [], "tags": [], "queue_mode": "free_for_all", "created_at": 1,
            "updated_at": 2, "tracks": [], "members": [], "shared": false
        });
        let view: PlaylistView = serde_json::from_value(json.clone()).expect("parses");
        assert_eq!(view.playlist.name, "n");
        assert_eq!(serde_json::to_value(&view).expect("serializes"), json);
    }

    #[test]
    fn add_accepts_one_track_or_a_batch() {
        let one: AddTracksRequest =
            serde_json::from_str(r#"{"title":"x"}"#).expect("one track parses");
        assert!(matches!(one, AddTracksRequest::One(t) if t.title == "x"));
        let batch: AddTracksRequest =
            serde_json::from_str(r#"{"tracks":[{"title":"y"}]}"#).expect("batch parses");
        assert!(matches!(batch, AddTracksRequest::Batch { tracks } if tracks.len() == 1));
    }
}
