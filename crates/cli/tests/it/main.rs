//! The end-to-end tests: real `whatnext` processes on loopback (and, as root, in network
//! namespaces), driven through the CLI and the HTTP API. One test binary: each module used to
//! be its own, and every one of them linked the same helpers and dependencies again.

mod abuse;
mod chaos;
mod formats;
mod guests;
mod hostile_member;
mod input_bounds;
mod isolated;
mod library;
mod links;
mod nat_lab;
mod playlists;
mod process_model;
mod robustness;
mod service_protocol;
mod session;
mod session_race;
mod sharing;
mod store_recovery;
mod support;
mod view_auth;
