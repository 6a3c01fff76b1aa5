//! The node's identity: an Ed25519 keypair created once and kept in the home (0600), so the
//! PeerId survives service restarts and controller restarts alike.

use libp2p_identity::{Keypair, PeerId};

use crate::{
    error::HomeError,
    home::{Home, read_file, write_private_file},
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

pub fn load_or_create(home: &Home) -> Result<Identity, HomeError> {
    load_or_create_at(&home.identity_path())
}

/// Loads the keypair at `path`, creating it (0600) when the file does not exist.
pub fn load_or_create_at(path: &std::path::Path) -> Result<Identity, HomeError> {
    let path = path.to_path_buf();
    let mut created = false;
    let keypair = match read_file(&path)? {
        Some(bytes) => {
            warn_if_readable_by_others(&path);
            Keypair::from_protobuf_encoding(&bytes).map_err(|err| HomeError::BadIdentity {
                path: path.clone(),
                detail: err.to_string(),
            })?
        }
        None => {
            let keypair = Keypair::generate_ed25519();
            let encoded = keypair
                .to_protobuf_encoding()
                .map_err(|err| HomeError::BadIdentity {
                    path: path.clone(),
                    detail: err.to_string(),
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

fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "{} is readable by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
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
