//! The messages of the sessions task: from its handle, and from its own network work. A
//! module of its own so the task (`mod.rs`) and the work (`work.rs`) both depend on it and
//! not on each other.

use tokio::sync::oneshot;
use whatnext_home::identity::Identity;
use whatnext_protocol::state::AppState;

/// What the sessions task is told: by the handle, and by its own network work.
pub(crate) enum Msg {
    Share {
        playlist: String,
        rotate: bool,
        /// Boxed: a keypair is large, and the other messages are small.
        isolated: Option<Box<Identity>>,
        reply: oneshot::Sender<Result<Shared, ShareError>>,
    },
    Revoke {
        playlist: String,
        peer: String,
        reply: oneshot::Sender<anyhow::Result<()>>,
    },
    Join {
        peer: String,
        session: String,
        key: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The peer of a `Join` accepted our key.
    Accepted {
        peer: String,
        session: String,
        key: String,
        display_name: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// After a reconnect, `peer` accepted our keys for `sessions` on `service`.
    Admit {
        service: String,
        peer: String,
        sessions: Vec<String>,
        display_name: String,
    },
    /// `peer` refused our keys for `sessions` on `service` (it left them, or we were
    /// revoked): no more handshakes for them until it connects anew.
    Refused {
        service: String,
        peer: String,
        sessions: Vec<String>,
    },
    /// `peer` has everything of `session` up to `version`.
    Known {
        service: String,
        peer: String,
        session: String,
        version: Vec<u8>,
    },
    /// Members of `session` may be new: dial those we are not connected to.
    Meet(String),
    /// Dial member `peer` through `service`, unless a dial to it is under way.
    Dial {
        service: String,
        peer: String,
        addrs: Vec<String>,
    },
    /// A dial from `Dial` ended (connected or not).
    Dialed { service: String, peer: String },
    /// We applied changes of `session` received from `from` (the playlist's owner or not):
    /// pass them on.
    Forward {
        session: String,
        from: String,
        from_owner: bool,
    },
    /// A clock sample of `peer` through `service`.
    ClockSample {
        service: String,
        peer: String,
        sample: super::clock::Sample,
    },
    /// Which service serves `playlist`, and the members admitted to it there.
    Route {
        playlist: String,
        reply: oneshot::Sender<Option<(crate::services::ServiceHandle, Vec<String>)>>,
    },
    /// Our reaction to what plays in `session`, or (`by`) that of a guest of ours.
    React {
        session: String,
        emoji: String,
        by: Option<String>,
        reply: oneshot::Sender<anyhow::Result<()>>,
    },
    /// A member's guest's reaction, once the playlist said the guest is theirs.
    GuestReaction {
        session: String,
        guest: String,
        emoji: String,
    },
}

/// A playlist made shareable.
pub struct Shared {
    pub key: String,
    /// The state of the service that serves it: the link names its peer id and addresses.
    pub served_by: AppState,
}

/// Why a playlist could not be shared.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// This member may not do that (e.g. move a playlist it joined); the text says why.
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}
