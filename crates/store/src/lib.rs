//! Local-first playlists: each playlist is a Loro CRDT document, persisted crash-safely.
//!
//! The plain types it speaks are in `whatnext_protocol::playlist`; no Loro type leaks out.
//! * [`doc`]: one playlist as a Loro document and the edits on it.
//! * [`log`]: the fsync'ed append-only update log: torn tails cut off, damaged records skipped.
//! * [`store`]: all playlists on disk: snapshots, logs, compaction, format version.
//! * [`markdown`]: the Markdown + YAML mirror and export/import format.
//! * [`session`]: the listening session in the document, and who may do what in it.
//! * [`authority`]: the same rules checked by every receiver, against each signed update's author.
//! * `signed_log`: the signed updates kept byte for byte, for sync.
//! * `followed_tracks`: a playlist's track list as last read, followed through Loro's events.
//! * `kept_track`: a track as the followed list keeps it, in one allocation.
//!
//! Invariant: only the controller process writes the store, and a write returns `Ok` only
//! once it is durable.

pub mod authority;
pub mod doc;
pub mod error;
mod followed_tracks;
pub mod formats;
mod kept_track;
mod listing;
pub mod log;
pub mod markdown;
pub mod session;
mod signed_log;
pub mod store;

pub use error::StoreError;
pub use store::{Applied, LoadReport, Store};
pub use whatnext_protocol::playlist::{
    Author, NewTrack, Playlist, PlaylistSummary, QueueMode, Track,
};

#[cfg(test)]
mod authority_tests;
#[cfg(test)]
mod tests;
