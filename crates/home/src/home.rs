//! The home directory: where one WhatNext identity lives, and what is in it.
//!
//! ```text
//! <home>/identity.key   Ed25519 keypair, libp2p protobuf encoding, mode 0600
//! <home>/config.toml    optional settings for `run` (flags win)
//! <home>/api.json       {url, token, pid} of the running controller, mode 0600
//! <home>/whatnext.lock  single-instance lock (holds the controller's pid)
//! <home>/whatnext.sock  single-instance socket: `open URL` hands links over here
//! <home>/sessions.json  keys of shared playlists (0600)
//! <home>/store/         the playlists (Loro snapshots + fsync'ed update logs)
//! <home>/playlists/     a Markdown copy of each playlist, for people and version control
//! <home>/logs/          the controller's logs, the service's included
//! ```

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

use crate::{error::HomeError, files::make_private};

#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
    /// What [`Home::create`] fixed, to be logged once logging is up ([`Home::take_notes`]).
    notes: Arc<Mutex<Vec<String>>>,
}

impl Home {
    /// `explicit` (from `--home` or `WHATNEXT_HOME`), else the platform data directory.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self, HomeError> {
        let dir = match explicit {
            Some(dir) => dir,
            None => directories::ProjectDirs::from("org", "WhatNext", "WhatNext")
                .map(|dirs| dirs.data_dir().to_path_buf())
                .ok_or(HomeError::NoDefault)?,
        };
        Ok(Self {
            dir,
            notes: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn identity_path(&self) -> PathBuf {
        self.dir.join("identity.key")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn api_path(&self) -> PathBuf {
        self.dir.join("api.json")
    }
    /// The view's origin port and session-cookie secret, kept across restarts so an open
    /// tab reconnects to a restarted controller without logging in again.
    pub fn view_path(&self) -> PathBuf {
        self.dir.join("view.json")
    }
    /// The ports the node listened on last time, reused so our addresses survive restarts.
    pub fn listen_memory_path(&self) -> PathBuf {
        self.dir.join("listen.json")
    }
    /// The WebRTC certificate (PEM, 0600): its hash is in our WebRTC addresses.
    pub fn webrtc_certificate_path(&self) -> PathBuf {
        self.dir.join("webrtc.pem")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("whatnext.lock")
    }
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("whatnext.sock")
    }
    pub fn sessions_path(&self) -> PathBuf {
        self.dir.join("sessions.json")
    }
    /// Where the isolated shares' services keep their identities (`<playlist>.key`, 0600),
    /// listen ports (`<playlist>.listen.json`) and WebRTC certificates (`<playlist>.webrtc.pem`,
    /// 0600: a shared certificate would link the identities); see `whatnext_core::services`.
    pub fn isolated_dir(&self) -> PathBuf {
        self.dir.join("identities")
    }
    /// Audio fetched from members, by content id (`media/<blake3>`; `.partial` while it
    /// arrives).
    pub fn media_dir(&self) -> PathBuf {
        self.dir.join("media")
    }

    /// The music library's index (`library.json`).
    pub fn library_index_path(&self) -> PathBuf {
        self.dir.join("library.json")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }
    /// The human-readable Markdown copies of the playlists.
    pub fn mirror_dir(&self) -> PathBuf {
        self.dir.join("playlists")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// Creates the directory (owner-only) if it does not exist yet, and makes an existing
    /// one owner-only (0700): the store, the Markdown copies and the logs are nobody else's
    /// business. What was changed is kept for [`Home::take_notes`].
    pub fn create(&self) -> Result<(), HomeError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.dir)
            .map_err(|source| HomeError::io("create the home directory", &self.dir, source))?;
        if let Some(note) = make_private(&self.dir, 0o700) {
            self.note(note);
        }
        Ok(())
    }

    fn note(&self, note: String) {
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(note);
        }
    }

    /// What was fixed in the home since the last call (for the log, which starts after the
    /// home exists).
    pub fn take_notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .map(|mut notes| std::mem::take(&mut *notes))
            .unwrap_or_default()
    }

    /// Reads `api.json`, written by the running controller.
    /// The view settings of the last run, if any (a missing or unreadable file means a
    /// fresh port and secret: the worst case is one more login).
    pub fn read_view_info(&self) -> Option<ViewInfo> {
        let text = fs::read_to_string(self.view_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn read_api_info(&self) -> Result<ApiInfo, HomeError> {
        let path = self.api_path();
        let text = fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                HomeError::NotRunning {
                    home: self.dir.clone(),
                }
            } else {
                HomeError::io("read", &path, source)
            }
        })?;
        serde_json::from_str(&text).map_err(|source| HomeError::Corrupt {
            path,
            detail: source.to_string(),
        })
    }
}

/// The view's stable origin and cookie secret. Written to `view.json` (0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewInfo {
    /// The API port of the last run (0: none yet).
    pub port: u16,
    /// The value of the view's session cookie.
    pub secret: String,
}

/// What a client needs to reach the running controller. Written to `api.json` (0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiInfo {
    pub url: String,
    pub token: String,
    pub pid: u32,
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("exists").permissions().mode() & 0o777
    }

    #[test]
    fn an_existing_home_open_to_others_is_made_private_and_said_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home_dir = dir.path().join("home");
        fs::create_dir(&home_dir).expect("mkdir");
        fs::set_permissions(&home_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let home = Home::resolve(Some(home_dir.clone())).expect("home");
        home.create().expect("created");
        assert_eq!(mode(&home_dir), 0o700);
        let notes = home.take_notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("0755") && notes[0].contains("0700"),
            "{notes:?}"
        );
        // Already private: nothing to say.
        home.create().expect("again");
        assert!(home.take_notes().is_empty());
    }
}
