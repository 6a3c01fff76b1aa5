//! Typed errors of the home crate. Each message names what failed, on which file,
//! and what the user can do about it.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no home directory could be determined for this user; pass --home DIR or set WHATNEXT_HOME"
    )]
    NoDefault,
    #[error("WhatNext is not running for home {home}; start it with `whatnext run`", home = .home.display())]
    NotRunning { home: PathBuf },
    #[error("{path} is damaged ({detail}); move it aside and try again", path = .path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "another WhatNext controller{pid} is already running for home {home}; use `whatnext status` to talk to it, or pass --home to run a second identity",
        pid = .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        home = .home.display()
    )]
    AlreadyRunning { home: PathBuf, pid: Option<u32> },
    #[error("invalid {path}: {detail}", path = .path.display())]
    BadConfig { path: PathBuf, detail: String },
    #[error(
        "the identity key {path} is {detail}; move it aside (e.g. `mv {path} {path}.bad`) and start again to create a new identity. This changes your peer id: friends will need a new invite from you",
        path = .path.display()
    )]
    BadIdentity { path: PathBuf, detail: String },
}

impl HomeError {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        HomeError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
