//! The bridge to a native window (the `desktop` feature of the CLI): what the controller
//! tells it, and how it is told to stop. The controller stays UI-agnostic: it calls `notify`
//! and the window side turns that into a raised window or a desktop notification.

use std::sync::Arc;

pub use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiEvent {
    /// The controller runs; the window loads `login_url` (a one-time login for the view).
    Ready { login_url: String },
    /// Another launch of the app asked for this one: bring the window forward.
    Show,
    /// A `whtnxt://` link was handed to this controller (e.g. clicked while it ran).
    LinkOpened { link: String },
    /// Opening a link failed.
    LinkFailed { link: String, reason: String },
    /// A friend joined one of our shared playlists.
    PeerJoined { name: String, playlist: String },
}

/// How a window talks with the controller it runs beside.
#[derive(Clone)]
pub struct UiHooks {
    pub notify: Arc<dyn Fn(UiEvent) + Send + Sync>,
    /// Cancelled by the window's Quit; the controller stops its service and exits.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for UiHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiHooks").finish_non_exhaustive()
    }
}
