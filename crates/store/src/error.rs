use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no playlist with id {0:?}; `whatnext playlist list` shows the ids")]
    UnknownPlaylist(String),
    #[error(
        "playlist {playlist} has no track with id {track:?}; `whatnext playlist show {playlist}` lists them"
    )]
    UnknownTrack { playlist: String, track: String },
    #[error("{0}")]
    Invalid(String),
    #[error("index {index} is out of range: the playlist has {len} tracks (valid: 0..{len})")]
    IndexOutOfRange { index: usize, len: usize },
    #[error(
        "the store in {path} was written by a newer WhatNext (format {found}, this version reads up to {supported}); upgrade WhatNext to open it",
        path = .path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("a playlist with id {0:?} already exists here; to import a copy of it, add --as-new")]
    Exists(String),
    #[error("could not {action} {path}: {source}", path = .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the playlist document is damaged: {0}")]
    Crdt(String),
    #[error("not a playlist file this version reads: {0}")]
    BadMarkdown(String),
    /// The playlist is damaged or unreadable on disk; the message says what to do.
    #[error("{0}")]
    Damaged(String),
    /// The session's rules forbid it to this member (its role, the mode, whose turn it is);
    /// the message says who may.
    #[error("{0}")]
    NotAllowed(String),
    /// A fault of the program, not of the input (e.g. a store call panicked): the caller
    /// can do nothing about it but report it.
    #[error("internal error: {0}; this is a bug, please report it with the log")]
    Internal(String),
}

impl StoreError {
    pub fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

impl From<loro::LoroError> for StoreError {
    fn from(err: loro::LoroError) -> Self {
        StoreError::Crdt(err.to_string())
    }
}
