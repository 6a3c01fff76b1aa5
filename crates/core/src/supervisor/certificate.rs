//! The WebRTC certificate, kept across runs. Its hash is part of every
//! `/webrtc-direct/certhash/…` address we give out, so a browser that holds an old invite
//! can still dial us only if the certificate stays the same. The service (which has no
//! disk) makes one when it is given none and reports it; the controller keeps it here and
//! gives it back on every start, as it does the identity key.

use std::path::{Path, PathBuf};

/// The kept certificate (PEM), if there is one. An unreadable file is reported and treated
/// as absent: the service then makes a new one, which replaces it.
pub(super) fn read_kept(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(pem) => Some(pem),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            tracing::warn!(
                "cannot read the WebRTC certificate {} ({err}); a new one will be made, so WebRTC addresses given out before stop working",
                path.display()
            );
            None
        }
    }
}

/// Writes the certificate (private: it holds its key) on the blocking pool; the supervisor
/// goes on meanwhile. At most once per run and service, so writes cannot race.
pub(super) fn keep(path: PathBuf, pem: String) {
    tokio::task::spawn_blocking(move || {
        if let Err(err) = whatnext_home::files::write_private_file(&path, pem.as_bytes()) {
            tracing::warn!(
                "could not keep the WebRTC certificate in {} ({err}); the next run makes a new one",
                path.display()
            );
        }
    });
}
