//! A modified client, written by hand: every update beyond its author's rights is rejected
//! whole by the receiving store, leaves nothing behind and is never sent on; its honest
//! updates still apply.

use libp2p_identity::Keypair;
use loro::{LoroDoc, LoroMap};
use whatnext_protocol::{
    listening::{MemberRole, SessionAction, SessionMode},
    playlist::{Author, NewTrack},
    signed::{Envelope, EnvelopeKind, decode_envelopes, encode_envelopes, loro_peer_of},
};

use crate::{doc::PlaylistDoc, store::Store};

fn key(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).expect("key")
}

fn author(seed: u8, name: &str) -> Author {
    Author {
        peer_id: key(seed).public().to_peer_id().to_string(),
        display_name: name.into(),
    }
}

fn track(title: &str) -> NewTrack {
    NewTrack {
        title: title.into(),
        artists: vec!["Artist".into()],
        ..NewTrack::default()
    }
}

/// What a test tries, and what the refusal must say.
type Attempt<'a> = (&'a str, &'a dyn Fn(&LoroDoc));

/// A member whose app writes whatever it likes into its copy and signs it.
struct Modified {
    key: Keypair,
    nonce: u64,
    doc: PlaylistDoc,
}

impl Modified {
    fn join(seed: u8, from: &mut Store, id: &str) -> Modified {
        let doc = PlaylistDoc::empty();
        let all = from.export_since(id, &[]).expect("export");
        for envelope in decode_envelopes(&all).expect("envelopes") {
            doc.import(&envelope.updates).expect("import");
        }
        let key = key(seed);
        let nonce = rand::random();
        doc.set_peer(loro_peer_of(&key.public(), nonce))
            .expect("peer");
        Modified { key, nonce, doc }
    }

    fn me(&self) -> String {
        self.key.public().to_peer_id().to_string()
    }

    /// Makes `edit` in its copy and returns it signed as an envelope, as a message body.
    fn sign(&self, id: &str, edit: impl FnOnce(&LoroDoc)) -> (Envelope, Vec<u8>) {
        let peer = self.doc.peer();
        let from = self.doc.version().get(&peer).copied().unwrap_or(0);
        edit(&self.doc.doc);
        self.doc.commit();
        let to = self.doc.version().get(&peer).copied().unwrap_or(0);
        let updates = self.doc.export_span(peer, from, to).expect("export");
        let envelope = Envelope::sign(&self.key, id, EnvelopeKind::Changes, self.nonce, updates)
            .expect("sign");
        let body = encode_envelopes(std::slice::from_ref(&envelope));
        (envelope, body)
    }

    fn add_track_map(&self, doc: &LoroDoc, id: &str, title: &str) {
        let map = doc
            .get_movable_list("tracks")
            .push_container(LoroMap::new())
            .expect("push");
        map.insert("id", id).expect("id");
        map.insert("title", title).expect("title");
        map.insert("added_by_peer", self.me().as_str()).expect("by");
        map.insert("added_by_name", "Mallory").expect("name");
    }
}

/// The owner's store with a playlist holding one track of the owner's, a second member's
/// store joined to it, and Mallory (seed 3) with a copy.
fn party() -> (tempfile::TempDir, Store, Store, String, Modified) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut owner, _) = Store::open_as(&dir.path().join("a"), 1, key(1)).expect("open");
    let id = owner
        .create("Party", "", &author(1, "Alice"), 1)
        .expect("create");
    owner
        .add_tracks(&id, &[track("alice's")], &author(1, "Alice"), 2)
        .expect("add");
    for seed in [2, 3] {
        owner
            .add_member(&id, &author(seed, &format!("m{seed}")))
            .expect("member");
    }
    let (mut bob, _) = Store::open_as(&dir.path().join("b"), 1, key(2)).expect("open");
    bob.apply_remote(&id, &owner.export_since(&id, &[]).expect("export"), 3)
        .expect("join");
    let mallory = Modified::join(3, &mut owner, &id);
    (dir, owner, bob, id, mallory)
}

/// `body` is rejected by `store` with a reason containing `why`, and changes nothing.
fn rejected(store: &mut Store, id: &str, body: &[u8], why: &str) {
    let before = store.get(id).expect("get");
    let facts = store.session_facts(id).expect("facts");
    let version = store.version(id).expect("version");
    let sent_on = store.export_since(id, &version).expect("export");
    let applied = store.apply_remote(id, body, 10).expect("answered");
    assert!(!applied.changed, "applied: {applied:?}");
    assert_eq!(applied.rejected.len(), 1, "{applied:?}");
    assert!(
        applied.rejected[0].reason.contains(why),
        "{:?} should say {why:?}",
        applied.rejected[0]
    );
    assert_eq!(store.get(id).expect("get"), before, "nothing changed");
    assert_eq!(store.session_facts(id).expect("facts"), facts);
    let decoded = |v: &[u8]| loro::VersionVector::decode(v).expect("version");
    assert_eq!(
        decoded(&store.version(id).expect("version")),
        decoded(&version)
    );
    assert_eq!(
        store.export_since(id, &version).expect("export"),
        sent_on,
        "nothing to send on"
    );
}

/// `body` is applied by `store` whole.
fn accepted(store: &mut Store, id: &str, body: &[u8]) {
    let applied = store.apply_remote(id, body, 8).expect("apply");
    assert!(
        applied.changed && applied.rejected.is_empty(),
        "{applied:?}"
    );
}

/// A removal as an app makes it: the track map at `at` out of the list, its id removed.
fn remove_at(d: &LoroDoc, at: usize, track: &str) {
    d.get_movable_list("tracks").delete(at, 1).expect("delete");
    d.get_map("removed_tracks")
        .insert(track, 9)
        .expect("insert");
}

#[test]
fn a_modified_client_is_refused_everything_beyond_its_rights_by_every_receiver() {
    let (_dir, mut owner, mut bob, id, mallory) = party();
    let me = mallory.me();
    drop(mallory);

    // Roles, the mode, playback: not a member's to change. (Each attempt is made on a
    // fresh copy: one built on a rejected update would only wait for it, forever.)
    let attempts: [Attempt; 4] = [
        ("changes roles", &|d| {
            d.get_map("session_roles")
                .insert(&me, "co_host")
                .expect("insert");
        }),
        ("changes the mode", &|d| {
            d.get_map("meta")
                .insert("queue_mode", "turn_taking")
                .expect("insert");
        }),
        ("gives playback", &|d| {
            d.get_map("session")
                .insert("holder", me.as_str())
                .expect("insert");
        }),
        ("changes what plays", &|d| {
            d.get_map("session")
                .insert("pb_paused", true)
                .expect("insert");
        }),
    ];
    for (why, edit) in attempts {
        let (_, body) = Modified::join(3, &mut owner, &id).sign(&id, edit);
        rejected(&mut owner, &id, &body, why);
        rejected(&mut bob, &id, &body, why);
    }

    // Removing the owner's track.
    let mallory = Modified::join(3, &mut owner, &id);
    let alice_track = owner.get(&id).expect("get").tracks[0].id.clone();
    let (_, removal) = mallory.sign(&id, |d| remove_at(d, 0, &alice_track));
    rejected(&mut owner, &id, &removal, "another member added");
    rejected(&mut bob, &id, &removal, "another member added");
    // Hiding it without saying so.
    let (_, hidden) = Modified::join(3, &mut owner, &id).sign(&id, |d| {
        d.get_movable_list("tracks").delete(0, 1).expect("delete");
    });
    rejected(&mut owner, &id, &hidden, "without removing");

    // Votes and tracks in another member's name.
    let bob_id = author(2, "Bob").peer_id;
    let (_, vote) = Modified::join(3, &mut owner, &id).sign(&id, |d| {
        d.get_map("session_votes")
            .insert(&format!("{alice_track}|{bob_id}"), 1)
            .expect("insert");
    });
    rejected(&mut owner, &id, &vote, "another member's name");
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, framed) = mallory.sign(&id, |d| {
        let map = d
            .get_movable_list("tracks")
            .push_container(LoroMap::new())
            .expect("push");
        map.insert("id", "framed").expect("id");
        map.insert("title", "t").expect("title");
        map.insert("added_by_peer", bob_id.as_str()).expect("by");
    });
    rejected(&mut owner, &id, &framed, "another member's name");

    // Forged: the content altered after signing; unsigned.
    let mallory = Modified::join(3, &mut owner, &id);
    let (mut forged, _) = mallory.sign(&id, |d| mallory.add_track_map(d, "f1", "forged"));
    forged.updates.push(0);
    rejected(
        &mut owner,
        &id,
        &encode_envelopes(&[forged.clone()]),
        "forged",
    );
    forged.signature = vec![0; 64];
    rejected(&mut owner, &id, &encode_envelopes(&[forged]), "forged");

    // Re-signed with someone else's key: Bob's genuine update claimed by Mallory, and
    // Mallory's changes made under Bob's Loro peer id.
    let v = bob.version(&id).expect("version");
    bob.session_act(
        &id,
        &SessionAction::Vote {
            track_id: alice_track.clone(),
            vote: 1,
        },
        &author(2, "Bob"),
        6,
    )
    .expect("bob votes");
    let bobs = decode_envelopes(&bob.export_since(&id, &v).expect("export")).expect("decode");
    let mut claimed = bobs[0].clone();
    let resigned = Envelope::sign(
        &mallory.key,
        &id,
        EnvelopeKind::Changes,
        claimed.nonce,
        std::mem::take(&mut claimed.updates),
    )
    .expect("sign");
    rejected(
        &mut owner,
        &id,
        &encode_envelopes(&[resigned]),
        "another member's name",
    );
    let posing = Modified {
        key: key(3),
        nonce: 5,
        doc: {
            let copy = Modified::join(3, &mut owner, &id).doc;
            copy.set_peer(loro_peer_of(&key(2).public(), 5))
                .expect("peer");
            copy
        },
    };
    let (_, posed) = posing.sign(&id, |d| posing.add_track_map(d, "p1", "posed"));
    rejected(&mut owner, &id, &posed, "another member's name");

    // Bob's genuine vote, sent on by anyone, is accepted: the signature is Bob's.
    let applied = owner
        .apply_remote(&id, &encode_envelopes(&bobs), 7)
        .expect("apply");
    assert!(
        applied.changed && applied.rejected.is_empty(),
        "{applied:?}"
    );

    // And Mallory's honest updates still apply: a track of its own, a vote of its own,
    // then removing its own track.
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, own) = mallory.sign(&id, |d| mallory.add_track_map(d, "m1", "mallory's"));
    let (_, own_vote) = mallory.sign(&id, |d| {
        d.get_map("session_votes")
            .insert(&format!("m1|{me}"), 1)
            .expect("insert");
    });
    for body in [own, own_vote] {
        let applied = owner.apply_remote(&id, &body, 8).expect("apply");
        assert!(
            applied.changed && applied.rejected.is_empty(),
            "{applied:?}"
        );
    }
    let index = owner
        .get(&id)
        .expect("get")
        .tracks
        .iter()
        .position(|t| t.id == "m1")
        .expect("m1");
    let (_, remove_own) = mallory.sign(&id, |d| remove_at(d, index, "m1"));
    accepted(&mut owner, &id, &remove_own);
    assert!(
        owner
            .get(&id)
            .expect("get")
            .tracks
            .iter()
            .all(|t| t.id != "m1")
    );
}

/// A refused update is undone with the playlist read back from its files, and the updates
/// applied before it in the same batch imported again (a fork of the whole document costs
/// several times more): a batch of an honest add and then a refused removal of the owner's
/// track leaves the add and the owner's track, in memory and on disk, and no fork was made.
#[test]
fn a_refusal_in_a_batch_is_undone_from_the_files_keeping_what_came_before_it() {
    let (dir, mut owner, _bob, id, mallory) = party();
    let alices = owner.get(&id).expect("get").tracks[0].id.clone();
    // Part of the playlist in the snapshot, part in the log.
    owner.compact_all().expect("compact");
    owner
        .add_tracks(&id, &[track("alice's second")], &author(1, "Alice"), 4)
        .expect("add");
    let more: Vec<NewTrack> = (0..20).map(|i| track(&format!("more {i:02}"))).collect();
    owner
        .add_tracks(&id, &more, &author(1, "Alice"), 5)
        .expect("add more");
    // Mallory is up to date (judged again in the state it saw, which is this one).
    drop(mallory);
    let mallory = Modified::join(3, &mut owner, &id);
    let (add, _) = mallory.sign(&id, |d| mallory.add_track_map(d, "m-1", "mallory's"));
    let (removal, _) = mallory.sign(&id, |d| remove_at(d, 0, &alices));
    assert_eq!(owner.get(&id).expect("get").tracks.len(), 22);
    let forks = crate::authority::UNDONE_BY_FORK.with(std::cell::Cell::get);
    let applied = owner
        .apply_remote(&id, &encode_envelopes(&[add, removal]), 9)
        .expect("answered");
    assert!(applied.changed, "{applied:?}");
    assert_eq!(applied.rejected.len(), 1, "{applied:?}");
    assert!(
        applied.rejected[0].reason.contains("another member added"),
        "{:?}",
        applied.rejected[0]
    );
    assert_eq!(
        crate::authority::UNDONE_BY_FORK.with(std::cell::Cell::get),
        forks,
        "the refusal was undone with a fork, not from the files"
    );
    // The copy put back keeps what was read of the tracks nothing touched since: the next
    // read reads the track Mallory added and the few that judging checked out and back
    // (each comes back as a new element), not all 23.
    let read_before = crate::doc::TRACKS_READ.with(std::cell::Cell::get);
    assert_eq!(owner.get(&id).expect("get").tracks.len(), 23);
    let read_again = crate::doc::TRACKS_READ.with(std::cell::Cell::get) - read_before;
    assert!(
        read_again <= 3,
        "{read_again} tracks read again after the refusal"
    );
    let titles = |store: &mut Store| -> Vec<String> {
        let playlist = store.get(&id).expect("get");
        let mut titles: Vec<String> = playlist.tracks.into_iter().map(|t| t.title).collect();
        titles.sort();
        titles
    };
    let titles_now = titles(&mut owner);
    assert_eq!(titles_now.len(), 23);
    for title in [
        "alice's",
        "alice's second",
        "mallory's",
        "more 00",
        "more 19",
    ] {
        assert!(
            titles_now.iter().any(|t| t == title),
            "{title} in {titles_now:?}"
        );
    }
    // Our own edits go on (the document undone to carries our Loro peer again).
    owner
        .add_tracks(&id, &[track("alice's third")], &author(1, "Alice"), 10)
        .expect("add after a refusal");
    drop(owner);
    let (mut owner, _) = Store::open_as(&dir.path().join("a"), 11, key(1)).expect("reopen");
    let reopened = titles(&mut owner);
    assert_eq!(reopened.len(), 24);
    assert!(reopened.iter().any(|t| t == "alice's third"));
    assert!(reopened.iter().any(|t| t == "mallory's"));
    assert!(
        reopened.iter().any(|t| t == "alice's"),
        "the owner's track stays"
    );
}

/// Removal goes by id (every track with it is hidden) and takes a track map out of the
/// list: a member may do either only to its own tracks, whatever ids its tracks claim, and
/// may not give a track another id or a comment another author.
#[test]
fn a_member_takes_out_only_its_own_tracks_whatever_ids_they_claim() {
    let (_dir, mut owner, mut bob, id, mallory) = party();
    let alice_track = owner.get(&id).expect("get").tracks[0].id.clone();
    let (_, own) = mallory.sign(&id, |d| mallory.add_track_map(d, "m1", "mallory's"));
    accepted(&mut owner, &id, &own);
    accepted(&mut bob, &id, &own);

    // Alice's track taken out of the list, with Mallory's own id said removed.
    let (_, swapped) = Modified::join(3, &mut owner, &id).sign(&id, |d| remove_at(d, 0, "m1"));
    rejected(&mut owner, &id, &swapped, "it deletes track");
    rejected(&mut bob, &id, &swapped, "which another member added");

    // A track of Mallory's first in the list under Alice's id, then that id removed:
    // Alice's track would be hidden with it.
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, twin) = mallory.sign(&id, |d| {
        let map = d
            .get_movable_list("tracks")
            .insert_container(0, LoroMap::new())
            .expect("insert");
        map.insert("id", alice_track.as_str()).expect("id");
        map.insert("title", "twin").expect("title");
        map.insert("added_by_peer", mallory.me().as_str())
            .expect("by");
    });
    accepted(&mut owner, &id, &twin);
    accepted(&mut bob, &id, &twin);
    let (_, hide) = mallory.sign(&id, |d| remove_at(d, 0, &alice_track));
    rejected(&mut owner, &id, &hide, "another member added");
    rejected(&mut bob, &id, &hide, "another member added");
    // An unmodified app of Mallory's refuses it too: both tracks go, one is Alice's.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut honest, _) = Store::open_as(dir.path(), 1, key(3)).expect("open");
    honest
        .apply_remote(&id, &owner.export_since(&id, &[]).expect("export"), 9)
        .expect("join");
    let refused = honest
        .remove_track(&id, &alice_track, &mallory.me(), 10)
        .expect_err("alice's too");
    assert!(
        refused.to_string().contains("Alice (who added it)"),
        "{refused}"
    );

    // A track given another id; a comment given another author.
    let index = owner
        .get(&id)
        .expect("get")
        .tracks
        .iter()
        .position(|t| t.id == "m1")
        .expect("m1");
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, renamed) = mallory.sign(&id, |d| {
        let list = d.get_movable_list("tracks");
        if let Some(loro::ValueOrContainer::Container(loro::Container::Map(map))) = list.get(index)
        {
            map.insert("id", "someone-else").expect("id");
        }
    });
    rejected(&mut owner, &id, &renamed, "changes a track's id");
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, comment) = mallory.sign(&id, |d| {
        let map = d
            .get_list("session_comments")
            .push_container(LoroMap::new())
            .expect("push");
        map.insert("id", "c1").expect("id");
        map.insert("by", mallory.me().as_str()).expect("by");
        map.insert("text", "mine").expect("text");
    });
    accepted(&mut owner, &id, &comment);
    let bob_id = author(2, "Bob").peer_id;
    let (_, framed) = mallory.sign(&id, |d| {
        if let Some(loro::ValueOrContainer::Container(loro::Container::Map(map))) =
            d.get_list("session_comments").get(0)
        {
            map.insert("by", bob_id.as_str()).expect("by");
        }
    });
    rejected(&mut owner, &id, &framed, "changes who wrote a comment");
}

/// A member's removal of its own track is judged without checking the document out (a
/// checkout is O(the playlist): 0.11 s at 100,000 tracks, for every removal received) —
/// also the first update of a Loro peer new to the document, which Loro imports another
/// way — and a removal that takes out another's track is still refused.
#[test]
fn a_members_own_removal_is_judged_without_a_checkout() {
    let (_dir, mut owner, mut bob, id, mallory) = party();
    let checkouts = || crate::authority::CHECKOUTS.with(std::cell::Cell::get);
    let (_, own) = mallory.sign(&id, |d| {
        mallory.add_track_map(d, "m1", "mallory's");
        mallory.add_track_map(d, "m2", "mallory's too");
    });
    accepted(&mut owner, &id, &own);
    accepted(&mut bob, &id, &own);
    let at = |store: &mut Store, track: &str| {
        store
            .get(&id)
            .expect("get")
            .tracks
            .iter()
            .position(|t| t.id == track)
            .expect("in the list")
    };
    // A later update of the same peer, then the first of a new one (Mallory's app again).
    let index = at(&mut owner, "m1");
    let (_, removal) = mallory.sign(&id, |d| remove_at(d, index, "m1"));
    let index = at(&mut owner, "m2") - 1;
    let (_, from_new_peer) =
        Modified::join(3, &mut owner, &id).sign(&id, |d| remove_at(d, index, "m2"));
    for store in [&mut owner, &mut bob] {
        let before = checkouts();
        accepted(store, &id, &removal);
        accepted(store, &id, &from_new_peer);
        assert_eq!(checkouts(), before, "judged without a checkout");
        let ids: Vec<String> = store
            .get(&id)
            .expect("get")
            .tracks
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert!(!ids.iter().any(|t| t == "m1" || t == "m2"), "{ids:?}");
    }
    // Alice's track taken out, under Mallory's name or her own id: refused all the same.
    let alice_at = 0;
    assert_eq!(
        owner.get(&id).expect("get").tracks[alice_at].title,
        "alice's"
    );
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, own_again) = mallory.sign(&id, |d| mallory.add_track_map(d, "m3", "a third"));
    accepted(&mut owner, &id, &own_again);
    let (_, swapped) = mallory.sign(&id, |d| remove_at(d, alice_at, "m3"));
    rejected(&mut owner, &id, &swapped, "it deletes track");
}

/// What an update writes into the fields that decide who may edit a map is judged as they
/// were before it: a history entry that names Mallory as who played it does not become a
/// comment of hers (which she could edit) by her giving it a text.
#[test]
fn fields_an_update_writes_are_judged_as_they_were_before_it() {
    let (_dir, mut owner, _bob, id, mallory) = party();
    // The owner records Mallory as who played a track (as when she held playback).
    let alice = Modified {
        key: key(1),
        nonce: 77,
        doc: {
            let copy = Modified::join(3, &mut owner, &id).doc;
            copy.set_peer(loro_peer_of(&key(1).public(), 77))
                .expect("peer");
            copy
        },
    };
    let (_, played) = alice.sign(&id, |d| {
        let entry = d
            .get_list("session_history")
            .push_container(LoroMap::new())
            .expect("push");
        entry.insert("track_id", "t1").expect("track");
        entry.insert("by", mallory.me().as_str()).expect("by");
    });
    accepted(&mut owner, &id, &played);
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, rewritten) = mallory.sign(&id, |d| {
        if let Some(loro::ValueOrContainer::Container(loro::Container::Map(entry))) =
            d.get_list("session_history").get(0)
        {
            entry.insert("text", "now a comment").expect("text");
            entry.insert("track_id", "t2").expect("track");
        }
    });
    rejected(
        &mut owner,
        &id,
        &rewritten,
        "only the owner or a co-host may",
    );
}

#[test]
fn out_of_turn_adds_are_refused_and_an_add_concurrent_with_the_switch_to_turns_is_not() {
    let (_dir, mut owner, mut bob, id, _) = party();
    // Mallory's copy is taken while the mode is still free for all.
    let early = Modified::join(3, &mut owner, &id);
    owner
        .session_act(
            &id,
            &SessionAction::Mode {
                mode: SessionMode::TurnTaking,
                per_turn: Some(1),
            },
            &author(1, "Alice"),
            4,
        )
        .expect("turns");
    // Made before Mallory saw the switch: concurrent, so allowed.
    let (_, concurrent) = early.sign(&id, |d| early.add_track_map(d, "c1", "concurrent"));
    let applied = owner.apply_remote(&id, &concurrent, 5).expect("apply");
    assert!(
        applied.changed && applied.rejected.is_empty(),
        "{applied:?}"
    );

    // After it saw the switch, it is the owner's turn (first in the order): refused, on
    // every receiver.
    let late = Modified::join(3, &mut owner, &id);
    bob.apply_remote(&id, &owner.export_since(&id, &[]).expect("export"), 6)
        .expect("sync");
    let (_, out_of_turn) = late.sign(&id, |d| late.add_track_map(d, "o1", "out of turn"));
    rejected(&mut owner, &id, &out_of_turn, "out of turn");
    rejected(&mut bob, &id, &out_of_turn, "out of turn");
    // Claiming the turn is its own does not help.
    let facts = owner.session_facts(&id).expect("facts");
    let turn = facts.turn().expect("turns").number;
    let late = Modified::join(3, &mut owner, &id);
    let (_, claimed) = late.sign(&id, |d| {
        late.add_track_map(d, "o2", "claimed");
        d.get_map("session_turns")
            .insert(&format!("{turn}|o2"), late.me().as_str())
            .expect("insert");
    });
    rejected(&mut owner, &id, &claimed, "wrong member for turn");
    // The owner's own add in its turn is fine, and the turn passes on.
    owner
        .add_tracks(&id, &[track("alice's turn")], &author(1, "Alice"), 7)
        .expect("owner's turn");
    assert_ne!(
        owner
            .session_facts(&id)
            .expect("facts")
            .turn()
            .expect("turn")
            .holder,
        facts.turn().expect("turn").holder
    );
}

/// Bob hosts a guest: its app lets the guest in and makes its edits, signed with the
/// guest's key. The owner's store takes them as the guest's (a guest's track, vote and
/// comment), and refuses a guest what members may not do, and a member letting in a guest
/// in someone else's name or turning a member into a guest.
#[test]
fn a_guests_edits_are_made_by_its_host_signed_by_the_guest_and_checked_by_everyone() {
    let (_dir, mut owner, mut bob, id, mallory) = party();
    let bob_author = author(2, "m2");
    let guest_key = key(9);
    let guest = author(9, "Dee");
    let sync = |from: &mut Store, to: &mut Store| {
        let since = to.version(&id).expect("version");
        let body = from.export_since(&id, &since).expect("export");
        let applied = to.apply_remote(&id, &body, 20).expect("apply");
        assert!(applied.rejected.is_empty(), "{applied:?}");
    };
    assert!(
        bob.add_guest(&id, &guest, &bob_author.peer_id)
            .expect("let in")
    );
    let added = bob
        .add_tracks_for_guest(&id, &[track("dee's")], &guest, &guest_key, 11)
        .expect("guest adds");
    bob.session_act_for_guest(
        &id,
        &SessionAction::Vote {
            track_id: added[0].clone(),
            vote: 1,
        },
        &guest,
        &guest_key,
        12,
    )
    .expect("guest votes");
    bob.session_act_for_guest(
        &id,
        &SessionAction::Comment {
            text: "tune!".into(),
            reply_to: None,
            track_id: None,
        },
        &guest,
        &guest_key,
        13,
    )
    .expect("guest comments");
    sync(&mut bob, &mut owner);
    let playlist = owner.get(&id).expect("get");
    let theirs = playlist
        .tracks
        .iter()
        .find(|t| t.title == "dee's")
        .expect("the guest's track reached the owner");
    assert_eq!(theirs.added_by.peer_id, guest.peer_id);
    assert!(
        playlist
            .collaborators
            .iter()
            .any(|c| c.peer_id == guest.peer_id && c.display_name == "Dee")
    );
    let facts = owner.session_facts(&id).expect("facts");
    assert_eq!(facts.role(&guest.peer_id), MemberRole::Guest);
    assert_eq!(facts.guests.get(&guest.peer_id), Some(&bob_author.peer_id));
    assert_eq!(facts.votes[&added[0]][&guest.peer_id], 1);
    assert_eq!(
        facts.comments.last().map(|c| c.peer_id.as_str()),
        Some(guest.peer_id.as_str())
    );

    // A guest changes no mode and takes no playback: refused by its own host's store…
    for action in [
        SessionAction::Mode {
            mode: SessionMode::Vote,
            per_turn: None,
        },
        SessionAction::Take,
    ] {
        assert!(
            bob.session_act_for_guest(&id, &action, &guest, &guest_key, 14)
                .is_err(),
            "{action:?}"
        );
    }
    // …and by every receiver, when a modified host signs it anyway.
    let dee = Modified::join(9, &mut owner, &id);
    let (_, mode) = dee.sign(&id, |d| {
        d.get_map("meta")
            .insert("queue_mode", "vote")
            .expect("mode");
    });
    rejected(&mut owner, &id, &mode, "changes the mode");
    // Mallory may not vouch for a guest in Bob's name, make Bob her guest, or let a guest
    // let in another.
    let (_, forged) = mallory.sign(&id, |d| {
        d.get_map("session_guests")
            .insert(&author(10, "x").peer_id, bob_author.peer_id.as_str())
            .expect("forge");
    });
    rejected(&mut owner, &id, &forged, "in another member's name");
    // (Each attempt from a fresh copy: a refused one stays in the copy that made it.)
    let mallory = Modified::join(3, &mut owner, &id);
    let (_, demote) = mallory.sign(&id, |d| {
        d.get_map("session_guests")
            .insert(&bob_author.peer_id, mallory.me().as_str())
            .expect("demote");
    });
    rejected(&mut owner, &id, &demote, "makes a member someone's guest");
    let dee = Modified::join(9, &mut owner, &id);
    let (_, sub) = dee.sign(&id, |d| {
        d.get_map("session_guests")
            .insert(&author(11, "y").peer_id, dee.me().as_str())
            .expect("sub-guest");
    });
    rejected(&mut owner, &id, &sub, "only members may");
}

/// Found by the `member_updates` fuzz target: Loro lets a client make a root container whose
/// name holds '\0' or '/', and panics when another document imports it. Such updates are
/// refused like any other bad update: the store keeps answering, nothing changes, and the
/// member's honest updates still apply afterwards.
#[test]
fn updates_that_make_loro_panic_are_refused_and_the_playlist_goes_on() {
    let (_dir, mut owner, mut bob, id, mallory) = party();
    for name in ["bad\0name", "a/b"] {
        let (_, body) = Modified::join(3, &mut owner, &id).sign(&id, |d| {
            // Loro itself may refuse the name locally; then there is nothing to send.
            let _ = d.get_map(name).insert("k", 1);
        });
        for store in [&mut owner, &mut bob] {
            let before = store.get(&id).expect("get");
            match store.apply_remote(&id, &body, 10) {
                Ok(applied) => assert!(!applied.changed, "{name:?} applied: {applied:?}"),
                Err(err) => panic!("{name:?}: the store failed instead of refusing: {err}"),
            }
            assert_eq!(store.get(&id).expect("get"), before, "nothing changed");
        }
    }
    let (_, honest) = mallory.sign(&id, |d| mallory.add_track_map(d, "t-m", "mallory's"));
    for store in [&mut owner, &mut bob] {
        let applied = store.apply_remote(&id, &honest, 11).expect("applied");
        assert!(applied.changed, "{applied:?}");
        assert_eq!(store.get(&id).expect("get").tracks.len(), 2);
    }
}

/// Each refusal of an update its author had no right to make costs the receiver a copy of
/// the whole document (the update is undone). An author refused 16 times within a minute
/// has every update refused unread for the rest of that minute, even an honest one; other
/// members are not affected, and once the minute is over the honest update applies.
#[test]
fn an_author_refused_again_and_again_is_ignored_for_the_rest_of_a_minute() {
    let (_dir, mut owner, _bob, id, mallory) = party();
    for i in 0..16 {
        let (_, body) = Modified::join(3, &mut owner, &id).sign(&id, |d| {
            d.get_map("meta")
                .insert("queue_mode", "turn_taking")
                .expect("insert");
        });
        let applied = owner.apply_remote(&id, &body, 1_000 + i).expect("answered");
        assert!(
            applied.rejected.len() == 1 && applied.rejected[0].reason.contains("changes the mode"),
            "{applied:?}"
        );
    }
    let (_, honest) = mallory.sign(&id, |d| mallory.add_track_map(d, "t-m", "mallory's"));
    let applied = owner.apply_remote(&id, &honest, 30_000).expect("answered");
    assert!(!applied.changed, "{applied:?}");
    assert!(
        applied.rejected.len() == 1
            && applied.rejected[0]
                .reason
                .contains("16 of its author's updates were refused")
            && applied.rejected[0].reason.contains("ignored for 31 s more"),
        "{applied:?}"
    );
    assert_eq!(owner.get(&id).expect("get").tracks.len(), 1);

    let bob = Modified::join(2, &mut owner, &id);
    let (_, bobs) = bob.sign(&id, |d| bob.add_track_map(d, "t-b", "bob's"));
    let applied = owner.apply_remote(&id, &bobs, 30_001).expect("answered");
    assert!(
        applied.changed && applied.rejected.is_empty(),
        "{applied:?}"
    );

    let applied = owner.apply_remote(&id, &honest, 61_000).expect("answered");
    assert!(
        applied.changed && applied.rejected.is_empty(),
        "{applied:?}"
    );
    assert_eq!(owner.get(&id).expect("get").tracks.len(), 3);
}
