//! What a member (or anyone) sends into a shared playlist: Loro updates in a signed
//! envelope, checked by the store's authority rules and applied. The input is either the
//! updates' bytes as they come, or a script of raw Loro edits — of any key, any value, any
//! container — a modified client could make to its copy, exported and signed by the owner,
//! a member or a stranger. Whatever is accepted must leave a document that reads.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use libp2p_identity::Keypair;
use loro::{LoroDoc, LoroValue};
use whatnext_protocol::{
    playlist::{Author, NewTrack},
    signed::{Envelope, EnvelopeKind, loro_peer_of},
};
use whatnext_store::{
    authority::{Received, receive_unless_barred},
    doc::PlaylistDoc,
};

const ID: &str = "0123456789abcdef0123456789abcdef";

struct Base {
    snapshot: Vec<u8>,
    version: loro::VersionVector,
    keys: [Keypair; 3],
}

fn key(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).expect("a fixed key")
}

fn author(key: &Keypair, name: &str) -> Author {
    Author {
        peer_id: key.public().to_peer_id().to_string(),
        display_name: name.into(),
    }
}

/// A playlist of the owner (key 1) with a member (key 2) and three tracks; key 3 is a
/// stranger.
fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let keys = [key(1), key(2), key(3)];
        let owner = author(&keys[0], "Owner");
        let doc = PlaylistDoc::create_as(
            Some(loro_peer_of(&keys[0].public(), 1)),
            ID,
            "Fuzz",
            "",
            &owner,
            1,
        )
        .expect("create");
        doc.add_member(&author(&keys[1], "Member")).expect("member");
        let tracks: Vec<NewTrack> = ["a", "b", "c"]
            .iter()
            .map(|t| NewTrack {
                title: t.to_string(),
                artists: vec!["x".into()],
                ..NewTrack::default()
            })
            .collect();
        doc.add_tracks(&tracks, &owner, 2).expect("tracks");
        let snapshot = doc.export_snapshot().expect("snapshot");
        Base {
            snapshot,
            version: doc.version(),
            keys,
        }
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Applies edits read from `script` to `doc`: each op is a byte, then a length byte and
/// that many bytes of argument.
fn edit(doc: &LoroDoc, script: &[u8]) {
    const KEYS: [&str; 10] = [
        "id", "name", "owner_peer", "queue_mode", "title", "added_by_peer", "content_blake3",
        "duration_ms", "removed", "x",
    ];
    let mut rest = script;
    for _ in 0..32 {
        let [op, len, tail @ ..] = rest else {
            return;
        };
        let len = (*len as usize).min(tail.len());
        let (arg, next) = tail.split_at(len);
        rest = next;
        let pick = arg.first().copied().unwrap_or(0) as usize;
        let key = KEYS[pick % KEYS.len()];
        let value: LoroValue = if pick % 3 == 0 {
            LoroValue::from(i64::from(pick as u8) - 100)
        } else {
            LoroValue::from(text(arg.get(1..).unwrap_or_default()))
        };
        let tracks = doc.get_movable_list("tracks");
        let at = if tracks.is_empty() { 0 } else { pick % tracks.len() };
        let _ = match op % 9 {
            0 => doc.get_map("meta").insert(key, value).map(|_| ()),
            1 => tracks
                .insert_container(at, loro::LoroMap::new())
                .and_then(|m| m.insert(key, value)),
            2 => tracks.delete(at, 1),
            3 => tracks.mov(at, tracks.len().saturating_sub(1)),
            4 => doc.get_map("removed_tracks").insert(&text(arg), true),
            5 => match tracks.get(at) {
                Some(loro::ValueOrContainer::Container(loro::Container::Map(m))) => {
                    m.insert(key, value)
                }
                _ => Ok(()),
            },
            6 => doc.get_map("collaborators").insert(&text(arg), value),
            7 => doc.get_map(text(arg).as_str()).insert(key, value),
            _ => tracks.insert(at, value),
        };
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, who, rest @ ..] = data else {
        return;
    };
    let base = base();
    let signer = &base.keys[*who as usize % 3];
    let kind = if who & 0x80 == 0 {
        EnvelopeKind::Changes
    } else {
        EnvelopeKind::Baseline
    };
    let nonce = u64::from(*who);
    let updates = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let theirs = LoroDoc::new();
        if theirs.import(&base.snapshot).is_err() {
            return;
        }
        let peer = loro_peer_of(&signer.public(), nonce);
        if theirs.set_peer_id(peer).is_err() {
            return;
        }
        let before = theirs.oplog_vv();
        edit(&theirs, rest);
        theirs.commit();
        match theirs.export(loro::ExportMode::updates(&before)) {
            Ok(updates) => updates,
            Err(_) => return,
        }
    };
    let Ok(envelope) = Envelope::sign(signer, ID, kind, nonce, updates) else {
        return;
    };
    // The receiver's copy of the base playlist. Whatever `receive` does not apply leaves it
    // as it was (a refusal undoes its changes), so that copy serves the next run; one that
    // changed it is read through, then dropped. (Half the time went into loading the base.)
    let Some(mut doc) = RECEIVER.take().or_else(|| {
        let doc = PlaylistDoc::empty();
        doc.import(&base.snapshot).ok()?;
        Some(doc)
    }) else {
        return;
    };
    // Read before the update, so the read after it follows the update's changes (reads
    // keep the tracks not changed since the last read): it must read as the document does
    // when loaded afresh.
    let _ = doc.read();
    // A refusal is undone from a copy of the document before the update when the receiver
    // has one (the store reads it back from disk; here, the base loaded again), or else by
    // a fork: half the inputs take each way.
    let copy_before = || {
        (who & 0x40 != 0).then(|| {
            let copy = PlaylistDoc::empty();
            copy.import(&base.snapshot).ok().map(|()| copy)
        })?
    };
    match receive_unless_barred(&mut doc, ID, &envelope, |_| None, copy_before) {
        Ok(Received::Applied(_)) => {
            let read = doc.read();
            let afresh = PlaylistDoc::empty();
            if let Ok(snapshot) = doc.export_snapshot()
                && afresh.import(&snapshot).is_ok()
            {
                assert_eq!(read, afresh.read(), "a followed read differs from a fresh one");
            }
            let _ = doc.summary();
            let _ = doc.people();
            let _ = doc.session_facts();
        }
        Ok(Received::AlreadyHere | Received::Waiting) | Err(_) => {
            assert_eq!(
                doc.version(),
                base.version,
                "an update not applied changed the document"
            );
            RECEIVER.set(Some(doc));
        }
    }
});

thread_local! {
    static RECEIVER: std::cell::Cell<Option<PlaylistDoc>> = const { std::cell::Cell::new(None) };
}
