//! Types shared by every WhatNext process.
//!
//! * [`addr`]: the one classifier of addresses by reach (loopback, LAN, public, circuit).
//! * [`blob`]: fetching audio from a member, by content id, in verified groups.
//! * [`api`]: the loopback HTTP API's bodies, and the view's TypeScript definitions of them.
//! * [`frame`]: the length-prefixed framing of the controller ↔ network-service pipe.
//! * [`guest`]: guests of a session: the host's controls and the guest page's API.
//! * [`ipc`]: the commands the controller sends and the events the service answers with.
//! * [`link`]: the `whtnxt://` invite link grammar.
//! * [`listening`]: the listening session (now playing, up next, turns, votes) and its actions.
//! * [`local`]: the single-instance socket's messages.
//! * [`media`]: the music library (audio files, their tags and content ids).
//! * [`playlist`]: playlists and tracks as the CLI, the API and the view see them.
//! * [`session`]: the handshake and sync messages peers exchange.
//! * [`signed`]: signed updates (envelopes): who wrote a change, provable after any hop.
//! * [`state`]: the versioned `AppState` the controller publishes to the CLI and the view.
//!
//! Invariant: this crate does no I/O. It turns bytes into values and back, so both ends of
//! every channel agree by construction and everything here is testable without processes.

pub mod addr;
pub mod api;
pub mod blob;
pub mod frame;
pub mod guest;
pub mod ipc;
pub mod link;
pub mod listening;
pub mod local;
pub mod media;
pub mod playlist;
pub mod session;
pub mod signed;
pub mod state;

/// Version of the controller ↔ service protocol. The service announces it in `ready`; the
/// controller refuses to drive a service that speaks another version (e.g. a stale binary).
pub const PROTOCOL_VERSION: u32 = 1;
