//! Signed updates: who wrote a change, provable to every member however it reached them.
//!
//! Members forward each other's updates (the owner to everyone, others to a few), so the
//! peer that sent an update is often not the one that wrote it. Every update therefore
//! travels in an [`Envelope`]: the Loro updates exactly as their author exported them, the
//! author's public key, and the author's Ed25519 signature over both (bound to the playlist).
//! Envelopes are stored and forwarded byte for byte, so the signature survives any number
//! of hops; a receiver checks it, then checks the changes against the session's rules as
//! the author.
//!
//! The changes inside say which Loro peer made them. An author's Loro peer id is derived
//! from its public key and a random `nonce` ([`loro_peer_of`]), fresh each time a document
//! is loaded (so a store rebuilt from scratch never reuses counters). A receiver recomputes
//! it from the envelope, so nobody can sign changes made under another member's Loro peer
//! id: that would take a 64-bit preimage of SHA-256.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What an envelope may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnvelopeKind {
    /// Changes its author made, all under the author's Loro peer id for `nonce`.
    Changes,
    /// History from before updates were signed, vouched for by the playlist's owner (the
    /// only author a baseline is accepted from): it may hold anyone's changes.
    Baseline,
}

/// Signed Loro updates of one playlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub kind: EnvelopeKind,
    /// The author's public key, protobuf-encoded (libp2p's encoding; its peer id follows).
    #[serde(with = "serde_bytes")]
    pub author_key: Vec<u8>,
    pub nonce: u64,
    /// Loro updates, as the author exported them.
    #[serde(with = "serde_bytes")]
    pub updates: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why an envelope is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("its author key is not a public key ({0})")]
    BadKey(String),
    #[error("its signature does not match its author and content (forged or altered)")]
    BadSignature,
    #[error("it could not be signed ({0})")]
    Signing(String),
}

/// Domain separation: a signature over an envelope is never a valid signature of anything
/// else our keys sign (libp2p's own records use other prefixes).
const CONTEXT: &[u8] = b"whatnext/envelope/1\0";

fn signed_bytes(session: &str, kind: EnvelopeKind, nonce: u64, updates: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + session.len() + 10 + updates.len());
    message.extend_from_slice(CONTEXT);
    message.extend_from_slice(session.as_bytes());
    message.push(0);
    message.push(match kind {
        EnvelopeKind::Changes => 0,
        EnvelopeKind::Baseline => 1,
    });
    message.extend_from_slice(&nonce.to_le_bytes());
    message.extend_from_slice(updates);
    message
}

/// The Loro peer id of the author with `key` for `nonce`. Never `u64::MAX` (Loro reserves it).
pub fn loro_peer_of(key: &PublicKey, nonce: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"whatnext/loro-peer/1\0")
        .chain_update(key.encode_protobuf())
        .chain_update(nonce.to_le_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) >> 1
}

impl Envelope {
    /// `updates` of playlist `session`, signed by `key`.
    pub fn sign(
        key: &Keypair,
        session: &str,
        kind: EnvelopeKind,
        nonce: u64,
        updates: Vec<u8>,
    ) -> Result<Envelope, EnvelopeError> {
        let signature = key
            .sign(&signed_bytes(session, kind, nonce, &updates))
            .map_err(|e| EnvelopeError::Signing(e.to_string()))?;
        Ok(Envelope {
            kind,
            author_key: key.public().encode_protobuf(),
            nonce,
            updates,
            signature,
        })
    }

    /// The author's public key, if it is one.
    pub fn author_key(&self) -> Result<PublicKey, EnvelopeError> {
        PublicKey::try_decode_protobuf(&self.author_key)
            .map_err(|e| EnvelopeError::BadKey(e.to_string()))
    }

    /// Checks the signature for playlist `session`; the author's peer id and key when it holds.
    pub fn verify(&self, session: &str) -> Result<(PeerId, PublicKey), EnvelopeError> {
        let key = self.author_key()?;
        let message = signed_bytes(session, self.kind, self.nonce, &self.updates);
        if !key.verify(&message, &self.signature) {
            return Err(EnvelopeError::BadSignature);
        }
        Ok((key.to_peer_id(), key))
    }

    /// The Loro peer id the author's changes must carry.
    pub fn loro_peer(&self) -> Result<u64, EnvelopeError> {
        Ok(loro_peer_of(&self.author_key()?, self.nonce))
    }

    /// One envelope as bytes (for the store's log).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("not a signed update: {e}"))
    }
}

/// Envelopes as one message body (before [`crate::session::pack`]).
pub fn encode_envelopes(envelopes: &[Envelope]) -> Vec<u8> {
    postcard::to_allocvec(envelopes).unwrap_or_default()
}

/// The envelopes in a message body, or why it is not a list of them.
pub fn decode_envelopes(bytes: &[u8]) -> Result<Vec<Envelope>, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("not a list of signed updates: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> Keypair {
        Keypair::ed25519_from_bytes([seed; 32]).expect("key")
    }

    #[test]
    fn a_signed_envelope_names_its_author_and_nothing_else_verifies() {
        let alice = key(1);
        let envelope =
            Envelope::sign(&alice, "p1", EnvelopeKind::Changes, 7, b"loro".to_vec()).expect("sign");
        let (author, _) = envelope.verify("p1").expect("verifies");
        assert_eq!(author, alice.public().to_peer_id());
        assert_eq!(envelope.loro_peer(), Ok(loro_peer_of(&alice.public(), 7)));
        // Another playlist, altered content, another kind or nonce, another author's key:
        // each breaks the signature.
        assert_eq!(envelope.verify("p2"), Err(EnvelopeError::BadSignature));
        let mut altered = envelope.clone();
        altered.updates.push(0);
        assert_eq!(altered.verify("p1"), Err(EnvelopeError::BadSignature));
        let mut baseline = envelope.clone();
        baseline.kind = EnvelopeKind::Baseline;
        assert_eq!(baseline.verify("p1"), Err(EnvelopeError::BadSignature));
        let mut renonced = envelope.clone();
        renonced.nonce = 8;
        assert_eq!(renonced.verify("p1"), Err(EnvelopeError::BadSignature));
        let mut claimed = envelope.clone();
        claimed.author_key = key(2).public().encode_protobuf();
        assert_eq!(claimed.verify("p1"), Err(EnvelopeError::BadSignature));
        let mut garbage = envelope;
        garbage.author_key = b"junk".to_vec();
        assert!(matches!(
            garbage.verify("p1"),
            Err(EnvelopeError::BadKey(_))
        ));
    }

    #[test]
    fn loro_peers_differ_by_author_and_nonce() {
        let a = loro_peer_of(&key(1).public(), 1);
        assert_ne!(a, loro_peer_of(&key(1).public(), 2));
        assert_ne!(a, loro_peer_of(&key(2).public(), 1));
        assert!(a < u64::MAX);
    }

    #[test]
    fn envelopes_round_trip() {
        let list = vec![
            Envelope::sign(&key(1), "p", EnvelopeKind::Changes, 1, vec![1, 2, 3]).expect("sign"),
            Envelope::sign(&key(2), "p", EnvelopeKind::Baseline, 2, vec![]).expect("sign"),
        ];
        assert_eq!(decode_envelopes(&encode_envelopes(&list)), Ok(list.clone()));
        assert_eq!(Envelope::decode(&list[0].encode()), Ok(list[0].clone()));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_envelopes(&bytes);
            let _ = Envelope::decode(&bytes);
        }
    }
}
