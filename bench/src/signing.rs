//! What signed updates cost: signing and verifying one update, the bytes an envelope adds,
//! and receiving it whole (signature, rules, import, fsync) into a 1,000-track playlist.
//! In-process: this measures the store and the envelope, not the network.

use std::time::Instant;

use anyhow::Context as _;
use libp2p_identity::Keypair;
use serde_json::{Value, json};
use whatnext_protocol::{
    listening::SessionAction,
    playlist::{Author, NewTrack},
    signed::{Envelope, decode_envelopes},
};
use whatnext_store::Store;

use crate::stats::summary;

fn author(key: &Keypair, name: &str) -> Author {
    Author {
        peer_id: key.public().to_peer_id().to_string(),
        display_name: name.into(),
    }
}

pub fn run(iters: usize) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (ann, bea) = (author(&key_a, "Ann"), author(&key_b, "Bea"));
    let (mut a, _) = Store::open_as(&dir.path().join("a"), 1, key_a)?;
    let id = a.create("signed", "", &ann, 1)?;
    let tracks: Vec<NewTrack> = (0..1_000)
        .map(|i| NewTrack {
            title: format!("Track {i}"),
            artists: vec![format!("Artist {}", i % 50)],
            duration_ms: Some(180_000),
            ..NewTrack::default()
        })
        .collect();
    let track_ids = a.add_tracks(&id, &tracks, &ann, 2)?;
    let (mut b, _) = Store::open_as(&dir.path().join("b"), 1, key_b.clone())?;
    b.apply_remote(&id, &a.export_since(&id, &[])?, 3)?;

    let (mut sign, mut verify, mut receive) = (Vec::new(), Vec::new(), Vec::new());
    let (mut update_bytes, mut overhead_bytes) = (0usize, 0usize);
    for i in 0..iters {
        let before = b.version(&id)?;
        let vote = SessionAction::Vote {
            track_id: track_ids[i % track_ids.len()].clone(),
            vote: if i % 2 == 0 { 1 } else { -1 },
        };
        b.session_act(&id, &vote, &bea, 4 + i as u64)?;
        let body = b.export_since(&id, &before)?;
        let envelope = decode_envelopes(&body)
            .map_err(anyhow::Error::msg)?
            .pop()
            .context("an envelope")?;
        let t = Instant::now();
        let again = Envelope::sign(
            &key_b,
            &id,
            envelope.kind,
            envelope.nonce,
            envelope.updates.clone(),
        )?;
        sign.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        again.verify(&id)?;
        verify.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        let applied = a.apply_remote(&id, &body, 5)?;
        receive.push(t.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(
            applied.changed && applied.rejected.is_empty(),
            "a vote was not applied: {applied:?}"
        );
        update_bytes = envelope.updates.len();
        overhead_bytes = envelope.encode().len() - envelope.updates.len();
    }
    let (sign, verify, receive) = (summary(sign), summary(verify), summary(receive));
    Ok(json!({
        "sign_us_p50": sign["p50_us"], "verify_us_p50": verify["p50_us"],
        "receive_us_p50": receive["p50_us"], "receive_us_p99": receive["p99_us"],
        "vote_update_bytes": update_bytes, "envelope_overhead_bytes": overhead_bytes,
        "sign_us": sign, "verify_us": verify, "receive_us": receive,
    }))
}
