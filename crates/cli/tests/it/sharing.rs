//! Shared playlists between real controllers on loopback: share → open → live edits both
//! ways, three members with forwarding, refusals, offline merge, and a service crash in the
//! middle of a burst of edits.

use std::time::Duration;

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Waits until `node` has playlist `id` with exactly `expected` titles (in any order).
fn wait_titles(node: &Node, id: &str, expected: &[&str]) -> Value {
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    let mut last = None;
    let found = (0..800).find_map(|_| {
        let playlist = show(node, id);
        if let Some(p) = &playlist {
            let mut have = titles(p);
            have.sort();
            if have == want {
                return playlist;
            }
        }
        last = playlist;
        std::thread::sleep(Duration::from_millis(25));
        None
    });
    found.unwrap_or_else(|| {
        panic!(
            "{} never had {want:?}; last: {:?}\n{}",
            node.home.display(),
            last.map(|p| titles(&p)),
            node.log()
        )
    })
}

#[test]
fn two_members_edit_one_playlist_live_and_converge() {
    let a = Node::start();
    let b = Node::start();
    let out = b.cli(&["config", "set", "display-name", "Bea"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (id, link) = create_shared(&a, "Road trip");
    add_track(&a, &id, "A1");
    join(&b, &link);
    wait_titles(&b, &id, &["A1"]);
    let listed = cli_json(&b, &["playlist", "list"]);
    assert_eq!(listed[0]["id"], id.as_str());

    add_track(&b, &id, "B1");
    wait_titles(&a, &id, &["A1", "B1"]);
    add_track(&a, &id, "A2");
    let on_b = wait_titles(&b, &id, &["A1", "B1", "A2"]);
    // Attribution: who added what.
    let b1 = on_b["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .find(|t| t["title"] == "B1")
        .expect("B1")
        .clone();
    assert_eq!(b1["added_by"]["peer_id"], b.peer_id().as_str());
    assert_eq!(b1["added_by"]["display_name"], "Bea");

    // Concurrent moves and adds on both sides converge to one order.
    let tracks: Vec<String> = on_b["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect();
    cli_json(&a, &["playlist", "move", &id, &tracks[0], "--to", "3"]);
    cli_json(&b, &["playlist", "move", &id, &tracks[0], "--to", "2"]);
    add_track(&a, &id, "A3");
    add_track(&b, &id, "B2");
    let all = ["A1", "A2", "A3", "B1", "B2"];
    wait_titles(&a, &id, &all);
    wait_titles(&b, &id, &all);
    wait_until("the same order on both", PATIENCE, || {
        let (pa, pb) = (show(&a, &id)?, show(&b, &id)?);
        (pa["tracks"] == pb["tracks"]).then_some(())
    });

    // Members and presence.
    let shown = show(&a, &id).expect("show");
    let members = shown["members"].as_array().expect("members");
    let b_id = b.peer_id();
    assert!(
        members
            .iter()
            .any(|m| m["peer_id"] == b_id.as_str() && m["online"] == true),
        "{members:?}"
    );
    let state = a.status().expect("status");
    assert!(
        state["sessions"][0]["connected_members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m == b_id.as_str())
    );
}

#[test]
fn three_members_reach_each_other_through_the_owner() {
    let a = Node::start();
    let b = Node::start();
    let c = Node::start();
    let (id, link) = create_shared(&a, "Party");
    join(&b, &link);
    join(&c, &link);
    // B and C are connected only to A: A forwards what it receives.
    add_track(&b, &id, "from B");
    add_track(&c, &id, "from C");
    add_track(&a, &id, "from A");
    for node in [&a, &b, &c] {
        wait_titles(node, &id, &["from A", "from B", "from C"]);
    }
    // Members learn each other's addresses from the playlist and connect directly.
    let c_id = c.peer_id();
    b.wait_status("B connected to C directly", PATIENCE, |s| {
        s["connections"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["peer_id"] == c_id.as_str()))
    });
    wait_until("C admitted on B", PATIENCE, || {
        let state = b.status()?;
        let members = state["sessions"][0]["connected_members"]
            .as_array()?
            .clone();
        members.iter().any(|m| m == c_id.as_str()).then_some(())
    });
    add_track(&c, &id, "after meeting");
    wait_titles(&b, &id, &["from A", "from B", "from C", "after meeting"]);
    wait_until("one order on all three", PATIENCE, || {
        let (pa, pb, pc) = (show(&a, &id)?, show(&b, &id)?, show(&c, &id)?);
        (pa["tracks"] == pb["tracks"] && pb["tracks"] == pc["tracks"]).then_some(())
    });
}

#[test]
fn a_wrong_or_missing_key_is_refused_and_receives_nothing() {
    let a = Node::start();
    let b = Node::start();
    let (id, link) = create_shared(&a, "Private");
    add_track(&a, &id, "secret track");
    let key_at = link.find("key=").expect("key") + 4;
    let wrong = format!("{}{}", &link[..key_at], "0".repeat(32));
    let out = b.cli(&["open", "--wait", &wrong]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong key"), "{err}");
    let without = link[..key_at - 5].to_string();
    let out = b.cli(&["open", "--wait", &without]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no key"));
    // Nothing arrived, and the owner says why it refused.
    assert_eq!(cli_json(&b, &["playlist", "list"]), serde_json::json!([]));
    assert!(show(&b, &id).is_none());
    let state = a.status().expect("status");
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("wrong key")),
        "{state}"
    );

    // A rotated key locks out the old link; the new one works.
    let rotated = cli_json(&a, &["playlist", "share", &id, "--rotate"])["link"]
        .as_str()
        .expect("link")
        .to_string();
    assert_ne!(rotated, link);
    let out = b.cli(&["open", "--wait", &link]);
    assert!(!out.status.success(), "the old key still works");
    join(&b, &rotated);
    wait_titles(&b, &id, &["secret track"]);

    // A revoked member's updates are refused from then on.
    cli_json(&a, &["playlist", "revoke", &id, &b.peer_id()]);
    add_track(&b, &id, "after revocation");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(titles(&show(&a, &id).expect("show")), vec!["secret track"]);
}

#[test]
fn offline_edits_on_both_sides_merge_on_reconnect() {
    let home_a = tempfile::tempdir().expect("home");
    let mut a = Node::start_in(home_a.path(), &LOOPBACK_RUN_ARGS);
    let home_b = tempfile::tempdir().expect("home");
    let mut b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    let (id, link) = create_shared(&a, "Offline");
    add_track(&a, &id, "before");
    join(&b, &link);
    wait_titles(&b, &id, &["before"]);

    assert!(b.stop_with(Signal::SIGTERM).success());
    add_track(&a, &id, "A while B is away");
    add_track(&a, &id, "A again");
    // A goes offline too (members reconnect by themselves as soon as both run), and B comes
    // back and edits its own copy.
    assert!(a.stop_with(Signal::SIGTERM).success());
    let b = Node::start_in(home_b.path(), &LOOPBACK_RUN_ARGS);
    add_track(&b, &id, "B offline");
    assert_eq!(
        titles(&show(&b, &id).expect("show")).len(),
        2,
        "B saw nothing of A's edits yet"
    );
    let a = Node::start_in(home_a.path(), &LOOPBACK_RUN_ARGS);

    // Reconnect: both sides re-admit each other and exchange what the other lacks.
    connect(&b, &a, 10);
    let all = ["before", "A while B is away", "A again", "B offline"];
    wait_titles(&a, &id, &all);
    wait_titles(&b, &id, &all);
}

#[test]
fn a_service_crash_during_a_burst_of_edits_loses_none() {
    let a = Node::start();
    let b = Node::start();
    let (id, link) = create_shared(&a, "Burst");
    join(&b, &link);
    let writer = {
        let (home, id) = (b.home.clone(), id.clone());
        std::thread::spawn(move || {
            for i in 0..50 {
                let out = whatnext(
                    &home,
                    &[
                        "playlist",
                        "add",
                        &id,
                        "--title",
                        &format!("b{i}"),
                        "--artist",
                        "x",
                    ],
                );
                assert!(
                    out.status.success(),
                    "B's own adds never fail: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        })
    };
    // Kill A's network service while B is adding.
    wait_until("B to have added a few", PATIENCE, || {
        (titles(&show(&b, &id)?).len() >= 10).then_some(())
    });
    let service = a.service_pid();
    assert!(signal(service, Signal::SIGKILL));
    writer.join().expect("writer");
    let want: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    wait_titles(&a, &id, &want);
    assert!(a.status().expect("status")["service"]["restarts"].as_u64() >= Some(1));
}

/// A hostile peer — our own network service driven by hand — speaks the app protocols with
/// garbage, an oversized message and updates for a playlist it was never admitted to. The
/// owner refuses each, stays up, and its playlist is unchanged.
#[test]
fn a_hostile_peer_cannot_crash_or_change_anything() {
    let a = Node::start();
    let (id, _link) = create_shared(&a, "Guarded");
    add_track(&a, &id, "original");
    let before = show(&a, &id).expect("show");

    let mut bad = Service::spawn();
    bad.recv();
    let bad_id = bad.start_node()["peer_id"]
        .as_str()
        .expect("peer id")
        .to_string();
    let target = a.tcp_multiaddr();
    bad.send(&serde_json::json!({"id": 1, "type": "dial", "payload": {"addrs": [target]}}));
    assert_eq!(bad.reply_to(1)["type"], "dialed");
    let a_id = a.peer_id();
    let request = |bad: &mut Service, id: u64, protocol: &str, body: Value| {
        bad.send(&serde_json::json!({"id": id, "type": "request", "payload": {"peer_id": a_id, "protocol": protocol, "body": body}}));
        bad.reply_to(id)
    };

    // Updates for a playlist it was never admitted to.
    let garbage = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"not a loro update",
    );
    let reply = request(
        &mut bad,
        2,
        "sync",
        serde_json::json!({"type": "push", "session": id, "updates": garbage}),
    );
    assert_eq!(reply["payload"]["body"]["type"], "refused", "{reply}");
    let reply = request(
        &mut bad,
        3,
        "sync",
        serde_json::json!({"type": "hello", "session": id, "version": ""}),
    );
    assert_eq!(
        reply["payload"]["body"]["type"], "refused",
        "nothing is sent to it: {reply}"
    );

    // A wrong key in a well-formed handshake.
    let reply = request(
        &mut bad,
        4,
        "handshake",
        serde_json::json!({"app_version": "evil", "display_name": "eve", "sessions": [{"session": id, "key": "guess"}]}),
    );
    assert_eq!(
        reply["payload"]["body"]["accepted"],
        serde_json::json!([]),
        "{reply}"
    );

    // A malformed handshake gets it disconnected.
    let _ = request(
        &mut bad,
        5,
        "handshake",
        serde_json::json!({"nonsense": [1, 2, 3]}),
    );
    let cut_off = |a: &Node| {
        let state = a.status()?;
        (!state["connections"]
            .as_array()?
            .iter()
            .any(|c| c["peer_id"] == bad_id.as_str()))
        .then_some(())
    };
    wait_until("the hostile peer to be cut off", PATIENCE, || cut_off(&a));

    // An oversized message (over the 8 MiB limit): refused by the codec, the peer cut off.
    bad.send(
        &serde_json::json!({"id": 6, "type": "dial", "payload": {"addrs": [a.tcp_multiaddr()]}}),
    );
    assert_eq!(bad.reply_to(6)["type"], "dialed");
    let huge = "x".repeat(9 * 1024 * 1024);
    let reply = request(
        &mut bad,
        7,
        "sync",
        serde_json::json!({"type": "push", "session": id, "updates": huge}),
    );
    assert_eq!(reply["type"], "request_failed", "{}", reply["type"]);
    wait_until("the oversized sender to be cut off", PATIENCE, || {
        cut_off(&a)
    });

    // The owner is unharmed: same service, same playlist.
    let state = a.wait_running();
    assert_eq!(state["service"]["restarts"], 0);
    assert_eq!(show(&a, &id).expect("show")["tracks"], before["tracks"]);
}

/// A rename shows on everything the member did before it, on both members; two members of
/// one name never look the same.
#[test]
fn a_rename_shows_on_past_attributions_and_namesakes_differ() {
    let a = Node::start();
    let b = Node::start();
    for node in [&a, &b] {
        let out = node.cli(&["config", "set", "display-name", "Sam"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (id, link) = create_shared(&a, "Names");
    join(&b, &link);
    add_track(&b, &id, "By B");
    let b_id = b.peer_id();
    let name_on = |node: &Node| -> Option<(String, Vec<String>)> {
        let shown = show(node, &id)?;
        let track = shown["tracks"]
            .as_array()?
            .iter()
            .find(|t| t["title"] == "By B")?
            .clone();
        (track["added_by"]["peer_id"] == b_id.as_str()).then_some(())?;
        let members = shown["members"]
            .as_array()?
            .iter()
            .filter_map(|m| m["display_name"].as_str().map(str::to_string))
            .collect();
        Some((
            track["added_by"]["display_name"].as_str()?.to_string(),
            members,
        ))
    };
    // Two "Sam"s: each shown with the end of their peer id.
    let (by, members) = wait_until("A to see B's track", PATIENCE, || name_on(&a));
    assert!(
        by.starts_with("Sam (") && b_id.ends_with(&by[5..by.len() - 1]),
        "{by}"
    );
    assert_eq!(members.len(), 2, "{members:?}");
    assert_ne!(
        members[0], members[1],
        "two members look the same: {members:?}"
    );

    // B renames: its past track and its member entry say the new name, on both sides.
    let out = b.cli(&["config", "set", "display-name", "Bea"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for node in [&a, &b] {
        wait_until("the new name on B's past track", PATIENCE, || {
            let (by, members) = name_on(node)?;
            (by == "Bea"
                && members.iter().any(|m| m == "Bea")
                && members.iter().any(|m| m == "Sam"))
            .then_some(())
        });
    }
    // The CLI's human output says it too.
    let out = a.cli(&["playlist", "show", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("added by Bea"), "{text}");
    // So do the peers in the state (`status --json` keeps the ids) and in `status`.
    let state = wait_until("A's state to name B", PATIENCE, || {
        let state = a.status()?;
        (state["people"][b_id.as_str()] == "Bea").then_some(state)
    });
    assert_eq!(state["connections"][0]["peer_id"], b_id.as_str());
    let out = a.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  Bea via "), "{text}");
}

/// A playlist whose updates are more than one message may carry (~45,000 tracks with their
/// files' ids) reaches a friend who joins: the answer comes in parts, put together, then
/// applied. Here the parts are made small (32 kB), so 2,000 tracks take about ten;
/// the edits after the join still reach the friend.
#[test]
fn a_playlist_longer_than_a_message_reaches_a_joining_friend_in_parts() {
    let a = Node::start_with_env(&[("WHATNEXT_SYNC_PART_BYTES", "32768")]);
    let b = Node::start();
    let (id, link) = create_shared(&a, "Everything");
    let tracks = |range: std::ops::Range<usize>| range.map(|i| format!("Track {i}"));
    add_batch(&a, &id, tracks(0..2000));
    let on_a = titles(&show(&a, &id).expect("a shows it"));
    assert_eq!(on_a.len(), 2000);
    join(&b, &link);
    let on_b = wait_until("every track on the friend", Duration::from_secs(60), || {
        let shown = titles(&show(&b, &id)?);
        (shown.len() == on_a.len()).then_some(shown)
    });
    assert_eq!(on_b, on_a, "the same tracks in the same order");
    let log = a.log();
    let parts = log
        .lines()
        .find_map(|line| {
            let (_, rest) = line.split_once(&format!("sent playlist {id} to "))?;
            let (_, rest) = rest.split_once(" in ")?;
            rest.split_whitespace().next()?.parse::<u32>().ok()
        })
        .unwrap_or(0);
    assert!(parts > 1, "the join came in {parts} parts:\n{log}");
    // A batch after the join, one envelope larger than a part, is pushed alone; a small
    // edit as before.
    add_batch(&a, &id, tracks(2000..3000));
    wait_until(
        "the later batch on the friend",
        Duration::from_secs(60),
        || (titles(&show(&b, &id)?).len() == 3000).then_some(()),
    );
    add_track(&a, &id, "After the join");
    wait_until("the later edit on the friend", PATIENCE, || {
        titles(&show(&b, &id)?)
            .iter()
            .any(|t| t == "After the join")
            .then_some(())
    });
}
