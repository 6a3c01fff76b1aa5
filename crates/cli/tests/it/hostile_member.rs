//! A hostile member: admitted with the share link like anyone, but with a modified client —
//! our own network service driven by hand, its updates written and signed by this test. It
//! forges a signature, gives itself a role, adds out of turn, removes the owner's track and
//! passes off another member's update as its own. Every honest member rejects each of these
//! (the owner, who receives them, and the others, who must never see them), logs the
//! offender, forwards nothing, and the session goes on — including the hostile member's one
//! honest update, which reaches a member it never talked to, signature intact.

use std::str::FromStr as _;

use libp2p_identity::Keypair;
use loro::{LoroDoc, LoroMap};
use serde_json::Value;
use whatnext_protocol::{
    link::InviteLink,
    session::{pack, unpack},
    signed::{Envelope, EnvelopeKind, decode_envelopes, encode_envelopes, loro_peer_of},
};

use crate::support::*;

struct Mallory {
    service: Service,
    key: Keypair,
    peer_id: String,
    /// The members it was admitted by: the owner first.
    admitted_by: Vec<String>,
    id: String,
    secret: String,
    next_request: u64,
}

/// A copy of the playlist in Mallory's hands, and the Loro peer id its edits are made under.
struct Copy {
    doc: LoroDoc,
    nonce: u64,
    /// Every envelope the owner sent.
    received: Vec<Envelope>,
}

impl Mallory {
    /// Dials `owner` and is admitted to playlist `id` with the key in `link`.
    fn join(owner: &Node, id: &str, link: &str) -> Mallory {
        let mut mallory = Mallory::start(id, link);
        mallory.dial(owner);
        mallory
    }

    fn start(id: &str, link: &str) -> Mallory {
        let key = Keypair::generate_ed25519();
        let mut service = Service::spawn();
        service.recv();
        let peer_id = service.start_node_as(&key)["peer_id"]
            .as_str()
            .expect("peer id")
            .to_string();
        let secret = InviteLink::from_str(link).expect("link").key.expect("key");
        Mallory {
            service,
            key,
            peer_id,
            admitted_by: Vec::new(),
            id: id.to_string(),
            secret,
            next_request: 10,
        }
    }

    /// Connects to `member` and is admitted by it with the link's key.
    fn dial(&mut self, member: &Node) {
        self.next_request += 1;
        let request = self.next_request;
        self.service.send(&serde_json::json!({"id": request, "type": "dial", "payload": {"addrs": [member.tcp_multiaddr()]}}));
        assert_eq!(self.service.reply_to(request)["type"], "dialed");
        let peer = member.peer_id();
        let answer = self.request_to(
            &peer,
            "handshake",
            serde_json::json!({"app_version": "modified", "display_name": "Mallory", "sessions": [{"session": self.id, "key": self.secret}]}),
        );
        assert_eq!(answer["accepted"], serde_json::json!([self.id]), "{answer}");
        self.admitted_by.push(peer);
    }

    /// Sends `body` to the owner on `protocol`; the body of the answer.
    fn request(&mut self, protocol: &str, body: Value) -> Value {
        let owner = self.admitted_by[0].clone();
        self.request_to(&owner, protocol, body)
    }

    fn request_to(&mut self, peer: &str, protocol: &str, body: Value) -> Value {
        self.next_request += 1;
        let id = self.next_request;
        self.service.send(&serde_json::json!({"id": id, "type": "request", "payload": {"peer_id": peer, "protocol": protocol, "body": body}}));
        let reply = self.service.reply_to(id);
        assert_eq!(reply["type"], "response", "{reply}");
        reply["payload"]["body"].clone()
    }

    /// Everything the owner has, as a fresh copy to edit.
    fn copy(&mut self) -> Copy {
        let answer = self.request(
            "sync",
            serde_json::json!({"type": "hello", "session": self.id, "version": ""}),
        );
        assert_eq!(answer["type"], "updates", "{answer}");
        let bytes = unpack(answer["updates"].as_str().expect("updates")).expect("unpack");
        let received = decode_envelopes(&bytes).expect("envelopes");
        let doc = LoroDoc::new();
        for envelope in &received {
            doc.import(&envelope.updates).expect("import");
        }
        let nonce = rand::random();
        doc.set_peer_id(loro_peer_of(&self.key.public(), nonce))
            .expect("peer");
        Copy {
            doc,
            nonce,
            received,
        }
    }

    /// `edit` made in `copy` and signed by Mallory.
    fn sign(&self, copy: &Copy, edit: impl FnOnce(&LoroDoc)) -> Envelope {
        let peer = copy.doc.peer_id();
        let from = copy.doc.oplog_vv().get(&peer).copied().unwrap_or(0);
        edit(&copy.doc);
        copy.doc.commit();
        let to = copy.doc.oplog_vv().get(&peer).copied().unwrap_or(0);
        let updates = copy
            .doc
            .export(loro::ExportMode::updates_in_range(vec![loro::IdSpan::new(
                peer, from, to,
            )]))
            .expect("export");
        Envelope::sign(
            &self.key,
            &self.id,
            EnvelopeKind::Changes,
            copy.nonce,
            updates,
        )
        .expect("sign")
    }

    /// Pushes `envelopes` to the owner; the answer.
    fn push(&mut self, envelopes: &[Envelope]) -> Value {
        let owner = self.admitted_by[0].clone();
        self.push_to(&owner, envelopes)
    }

    fn push_to(&mut self, peer: &str, envelopes: &[Envelope]) -> Value {
        let updates = pack(&encode_envelopes(envelopes));
        let body = serde_json::json!({"type": "push", "session": self.id, "updates": updates});
        self.request_to(peer, "sync", body)
    }

    /// Pushes `envelope` to every member that admitted it and expects each to refuse it
    /// saying `why`.
    fn refused(&mut self, what: &str, envelope: Envelope, why: &str) {
        for peer in self.admitted_by.clone() {
            let answer = self.push_to(&peer, std::slice::from_ref(&envelope));
            assert_eq!(answer["type"], "refused", "{what}, to {peer}: {answer}");
            let reason = answer["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains(why),
                "{what}: {reason:?} should say {why:?}"
            );
            eprintln!("{what}: refused by {peer} ({reason})");
        }
    }

    fn add_track(&self, doc: &LoroDoc, track_id: &str, title: &str) {
        let map = doc
            .get_movable_list("tracks")
            .push_container(LoroMap::new())
            .expect("push");
        map.insert("id", track_id).expect("id");
        map.insert("title", title).expect("title");
        map.insert("added_by_peer", self.peer_id.as_str())
            .expect("by");
        map.insert("added_by_name", "Mallory").expect("name");
    }
}

fn titles_on(node: &Node, id: &str) -> Vec<String> {
    show(node, id).map(|p| titles(&p)).unwrap_or_default()
}

#[test]
fn a_hostile_member_is_rejected_by_every_honest_member_and_the_session_goes_on() {
    let (a, b, c) = (Node::start(), Node::start(), Node::start());
    let (id, link) = create_shared(&a, "Guarded party");
    let ann_track = add_track(&a, &id, "ann's song");
    join(&b, &link);
    join(&c, &link);
    add_track(&b, &id, "bea's song");
    let bea = b.peer_id();
    cli_json(&a, &["session", "mode", &id, "turns"]);
    for node in [&a, &b, &c] {
        wait_until(
            "every member in turns mode with both songs",
            PATIENCE,
            || {
                let view = session_now(node, &id)?;
                (view["mode"] == "turn_taking" && titles_on(node, &id).len() == 2).then_some(())
            },
        );
    }

    // Mallory is admitted by Ann and by Bea; Cid never hears from it.
    let mut mallory = Mallory::join(&a, &id, &link);
    mallory.dial(&b);
    let me = mallory.peer_id.clone();

    // 1. Forged: a signature that is not Mallory's (nor anyone's).
    let copy = mallory.copy();
    let mut forged = mallory.sign(&copy, |d| {
        d.get_map("session_votes")
            .insert(&format!("{ann_track}|{me}"), -1)
            .expect("vote");
    });
    forged.signature = vec![7; 64];
    mallory.refused("a forged signature", forged, "forged");

    // 2. A role it was never given.
    let copy = mallory.copy();
    let role = mallory.sign(&copy, |d| {
        d.get_map("session_roles")
            .insert(&me, "co_host")
            .expect("role");
    });
    mallory.refused("giving itself co-host", role, "changes roles");

    // 3. An add out of turn (it is Ann's turn).
    let copy = mallory.copy();
    let add = mallory.sign(&copy, |d| mallory.add_track(d, "m0", "out of turn"));
    mallory.refused("an add out of turn", add, "out of turn");

    // 4. Removing Ann's track.
    let copy = mallory.copy();
    let remove = mallory.sign(&copy, |d| {
        let list = d.get_movable_list("tracks");
        let at = list
            .get_deep_value()
            .as_list()
            .expect("a list")
            .iter()
            .position(|t| {
                t.as_map()
                    .and_then(|m| m.get("id"))
                    .and_then(|v| v.as_string())
                    .is_some_and(|v| v.as_str() == ann_track)
            })
            .expect("ann's track");
        list.delete(at, 1).expect("delete");
        d.get_map("removed_tracks")
            .insert(&ann_track, 1)
            .expect("removed");
    });
    mallory.refused("removing ann's track", remove, "another member added");

    // 5. Bea's genuine update, re-signed as Mallory's.
    let copy = mallory.copy();
    let beas = copy
        .received
        .iter()
        .find(|e| {
            libp2p_identity::PublicKey::try_decode_protobuf(&e.author_key)
                .is_ok_and(|k| k.to_peer_id().to_string() == bea)
        })
        .expect("an update of Bea's")
        .clone();
    let resigned = Envelope::sign(
        &mallory.key,
        &id,
        EnvelopeKind::Changes,
        beas.nonce,
        beas.updates,
    )
    .expect("sign");
    mallory.refused("bea's update re-signed", resigned, "another member's name");

    // Its one honest update: a vote of its own. Accepted, and sent on to Bea and Cid, who
    // never talked to Mallory.
    let copy = mallory.copy();
    let vote = mallory.sign(&copy, |d| {
        d.get_map("session_votes")
            .insert(&format!("{ann_track}|{me}"), 1)
            .expect("vote");
    });
    let answer = mallory.push(&[vote]);
    assert_eq!(answer["type"], "ack", "{answer}");

    // The session goes on: Ann's turn, her add reaches everyone, with Mallory's vote.
    add_track(&a, &id, "after the attack");
    for node in [&a, &b, &c] {
        wait_until("the add and the honest vote everywhere", PATIENCE, || {
            let view = session_now(node, &id)?;
            let score = view["up_next"]
                .as_array()?
                .iter()
                .find(|t| t["track_id"] == ann_track.as_str())?["score"]
                .as_i64()?;
            (titles_on(node, &id).contains(&"after the attack".to_string()) && score == 1)
                .then_some(())
        });
    }
    // Nothing of the attack anywhere.
    for node in [&a, &b, &c] {
        let view = session_now(node, &id).expect("session");
        assert_eq!(view["mode"], "turn_taking");
        assert_ne!(view["roles"][&me], "co_host", "{view}");
        let mut t = titles_on(node, &id);
        t.sort();
        assert_eq!(t, ["after the attack", "ann's song", "bea's song"]);
    }
    // Ann and Bea logged each rejection, naming Mallory; none came from anyone else (nothing
    // was forwarded), and Cid, who only hears from Ann and Bea, never saw one.
    for node in [&a, &b] {
        let log = node.log();
        let rejections: Vec<&str> = log.lines().filter(|l| l.contains("was rejected")).collect();
        assert!(rejections.len() >= 5, "the log names Mallory:\n{log}");
        assert!(
            rejections.iter().all(|l| l.contains(&format!("from {me}"))),
            "only Mallory sent rejected updates:\n{log}"
        );
    }
    assert!(
        !c.log().contains("was rejected"),
        "nothing hostile was forwarded:\n{}",
        c.log()
    );
}
