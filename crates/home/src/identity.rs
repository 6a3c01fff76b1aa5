//! The node's identity: an Ed25519 keypair created once and kept in the home (0600), so the
//! PeerId survives service restarts and controller restarts alike.

pub use libp2p_identity::Keypair;
use libp2p_identity::PeerId;

use crate::{
    error::HomeError,
    files::{make_private, read_file, write_private_file},
    home::Home,
};

pub struct Identity {
    pub keypair: Keypair,
    pub peer_id: PeerId,
    /// Created by this call: the home is new.
    pub created: bool,
}

impl Identity {
    /// The keypair in libp2p's protobuf encoding, for the service's `start_node`.
    pub fn encoded(&self) -> Vec<u8> {
        // Encoding an Ed25519 key cannot fail; the Result covers other key types.
        self.keypair.to_protobuf_encoding().unwrap_or_default()
    }
}

/// Loads or creates the identity of `home`. Runs once logging is up, so it also reports what
/// [`Home::create`] fixed (a home open to other users).
pub fn load_or_create(home: &Home) -> Result<Identity, HomeError> {
    for note in home.take_notes() {
        tracing::warn!("{note}");
    }
    load_or_create_at(&home.identity_path())
}

/// Loads the keypair at `path`, creating it (0600) when the file does not exist.
pub fn load_or_create_at(path: &std::path::Path) -> Result<Identity, HomeError> {
    let path = path.to_path_buf();
    let mut created = false;
    let keypair = match read_file(&path)? {
        Some(bytes) => {
            // The secret of the peer id: only its owner may read it.
            if let Some(note) = make_private(&path, 0o600) {
                tracing::warn!("{note}");
            }
            decode(&path, &bytes)?
        }
        None => {
            let keypair = Keypair::generate_ed25519();
            let encoded = keypair
                .to_protobuf_encoding()
                .map_err(|err| HomeError::BadIdentity {
                    path: path.clone(),
                    detail: format!("could not be encoded ({err})"),
                })?;
            write_private_file(&path, &encoded)?;
            tracing::info!("created a new identity in {}", path.display());
            created = true;
            keypair
        }
    };
    let peer_id = keypair.public().to_peer_id();
    Ok(Identity {
        keypair,
        peer_id,
        created,
    })
}

/// The keypair in `bytes`, or an error that says the file is empty or damaged. (libp2p's own
/// error for an empty or foreign file talks about a cargo feature, which helps no one.)
fn decode(path: &std::path::Path, bytes: &[u8]) -> Result<Keypair, HomeError> {
    if bytes.is_empty() {
        return Err(HomeError::BadIdentity {
            path: path.to_path_buf(),
            detail: "empty (0 bytes): its write was probably interrupted".into(),
        });
    }
    Keypair::from_protobuf_encoding(bytes).map_err(|err| {
        tracing::debug!("decoding {}: {err}", path.display());
        HomeError::BadIdentity {
            path: path.to_path_buf(),
            detail: format!(
                "damaged: its {} bytes are not an Ed25519 key in libp2p's encoding",
                bytes.len()
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
        let first = load_or_create(&home).expect("created");
        let second = load_or_create(&home).expect("loaded");
        assert_eq!(first.peer_id, second.peer_id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(home.identity_path())
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_others_is_made_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
        let first = load_or_create(&home).expect("created");
        let path = home.identity_path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let again = load_or_create(&home).expect("loaded");
        assert_eq!(first.peer_id, again.peer_id);
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_empty_key_is_called_empty_not_a_missing_cargo_feature() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
        std::fs::write(home.identity_path(), b"").expect("write");
        let err = load_or_create(&home).err().expect("refused").to_string();
        assert!(err.contains("is empty"), "{err}");
        assert!(
            err.contains(&home.identity_path().display().to_string()),
            "{err}"
        );
        assert!(err.contains("move it aside"), "{err}");
        assert!(err.contains("peer id"), "{err}");
        assert!(!err.contains("cargo"), "{err}");
    }

    #[test]
    fn a_damaged_key_is_an_error_and_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::resolve(Some(dir.path().to_path_buf())).expect("home");
        std::fs::write(home.identity_path(), b"not a key").expect("write");
        let err = load_or_create(&home).err().expect("refused");
        assert!(err.to_string().contains("move it aside"), "{err}");
        assert_eq!(
            std::fs::read(home.identity_path()).expect("still there"),
            b"not a key"
        );
    }
}
