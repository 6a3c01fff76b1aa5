//! The WhatNext controller's front doors: the loopback HTTP API (axum) that the CLI and the
//! view use, its auth (bearer token, the view's session cookie, one-time login links), the
//! view's embedded assets, the bounded HTTP server under it, and the single-instance socket
//! that `whatnext open` and a second `whatnext run` hand over to.
//!
//! Every route calls the core ([`whatnext_core::Core`]); the token, the cookie secret and the
//! login links stay here ([`Access`]).
//!
//! Invariant: this crate never names the `Command`/`Event` types of the pipe to the network
//! service; what needs the service goes through a core method.

pub mod access;
pub mod context;
pub mod error;
pub mod guests;
pub mod http_server;
pub mod local_socket;
pub mod media;
pub mod playlists;
pub mod router;
pub mod routes;
pub mod session;
pub mod view;

pub use access::Access;
pub use context::Api;
pub use router::router;
