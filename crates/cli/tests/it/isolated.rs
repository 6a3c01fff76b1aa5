//! Several network services at once: a playlist shared `--isolated` is served by a `whatnext
//! p2p` child of its own with its own identity, supervised on its own.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::*;

/// Waits until `node`'s playlist `id` lists `title`.
fn wait_title(node: &Node, id: &str, title: &str) {
    wait_until(
        &format!("{title} on {}", node.home.display()),
        PATIENCE * 3,
        || {
            show(node, id)
                .filter(|p| titles(p).iter().any(|t| t == title))
                .map(|_| ())
        },
    );
}

/// The service named `name` in `status --json`.
fn service<'a>(state: &'a Value, name: &str) -> Option<&'a Value> {
    state["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// The ids of `node`'s connections to `peer`.
fn connection_ids(state: &Value, peer: &str) -> Vec<u64> {
    Node::connections_to(state, peer)
        .iter()
        .filter_map(|c| c["connection_id"].as_u64())
        .collect()
}

#[test]
fn an_isolated_share_has_its_own_identity_and_survives_its_own_crash_alone() {
    let a = Node::start();
    let b = Node::start();
    let c = Node::start();
    let main_peer = a.peer_id();

    // C is connected to A's main service throughout.
    connect(&c, &a, 20);
    let before = a.wait_status("C's connection to A", PATIENCE, |s| {
        !Node::connections_to(s, &c.peer_id()).is_empty()
    });
    let c_connection = connection_ids(&before, &c.peer_id());

    let id = cli_json(&a, &["playlist", "create", "Secret party"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    add_track(&a, &id, "Before");
    let link = cli_json(&a, &["playlist", "share", &id, "--isolated"])["link"]
        .as_str()
        .expect("link")
        .to_string();

    // Two services, with different peer ids; the link names the isolated one.
    let state = a.wait_status("two services running", PATIENCE, |s| {
        service(s, &id).is_some_and(|i| i["node"] == "running" && i["pid"].is_u64())
    });
    let services = state["services"].as_array().expect("services");
    assert_eq!(services[0]["name"], "main", "{services:?}");
    assert_eq!(services[0]["peer_id"], main_peer.as_str());
    let isolated = service(&state, &id).expect("isolated service");
    let isolated_peer = isolated["peer_id"].as_str().expect("peer id").to_string();
    assert_ne!(isolated_peer, main_peer);
    assert_eq!(isolated["sessions"], serde_json::json!([id]));
    assert_ne!(isolated["pid"], services[0]["pid"]);
    assert!(
        link.starts_with(&format!("whtnxt://connect/{isolated_peer}?")),
        "the link names the isolated identity: {link}"
    );
    assert!(!link.contains(&main_peer), "{link}");

    // B joins and syncs, and sees only the isolated identity.
    join(&b, &link);
    wait_title(&b, &id, "Before");
    let seen = show(&b, &id).expect("B's copy");
    assert_eq!(seen["owner"]["peer_id"], isolated_peer.as_str());
    assert!(
        !seen.to_string().contains(&main_peer),
        "B's copy names A's main peer id: {seen}"
    );
    let b_state = b.status().expect("B's status");
    assert!(!Node::connections_to(&b_state, &isolated_peer).is_empty());
    assert!(
        Node::connections_to(&b_state, &main_peer).is_empty(),
        "B never met A's main identity"
    );

    // B, made co-host, takes playback: A's player follows B's clock, measured over the
    // isolated service's connection (one machine here, so an offset near zero — but one).
    cli_json(&a, &["session", "role", &id, &b.peer_id(), "co-host"]);
    wait_until("B to be a co-host", PATIENCE, || {
        b.cli(&["session", "take", &id])
            .status
            .success()
            .then_some(())
    });
    let offset = wait_until("A's view of B's playback clock", PATIENCE, || {
        let now = session_now(&a, &id)?;
        (now["playback_owner"] == b.peer_id().as_str()).then_some(())?;
        now["clock_offset_ms"].as_i64()
    });
    assert!(offset.abs() < 100, "offset {offset} ms on one machine");

    // Kill -9 of the isolated service: it comes back as itself, B's session resumes.
    let isolated_pid = isolated["pid"].as_u64().expect("pid") as u32;
    assert!(signal(isolated_pid, Signal::SIGKILL));
    let after = a.wait_status("the isolated service restarted", PATIENCE * 2, |s| {
        service(s, &id).is_some_and(|i| {
            i["restarts"].as_u64() >= Some(1)
                && i["node"] == "running"
                && i["pid"]
                    .as_u64()
                    .is_some_and(|p| p != u64::from(isolated_pid))
        })
    });
    let restarted = service(&after, &id).expect("isolated service");
    assert_eq!(
        restarted["peer_id"],
        isolated_peer.as_str(),
        "same identity"
    );
    assert_eq!(
        after["service"]["restarts"], 0,
        "the main service was not touched"
    );
    b.wait_status(
        "B reconnected to the isolated identity",
        PATIENCE * 3,
        |s| !Node::connections_to(s, &isolated_peer).is_empty(),
    );
    add_track(&a, &id, "After");
    wait_title(&b, &id, "After");
    add_track(&b, &id, "From B");
    wait_title(&a, &id, "From B");
    let tracks = show(&b, &id).expect("B's copy")["tracks"].clone();
    let after_track = tracks
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["title"] == "After")
        .expect("the track A added");
    assert_eq!(after_track["added_by"]["peer_id"], isolated_peer.as_str());

    // C stayed connected to A's main service on the same connection throughout.
    let now = a.status().expect("A's status");
    assert_eq!(
        connection_ids(&now, &c.peer_id()),
        c_connection,
        "C's connection is the same one"
    );
    assert_eq!(now["services"].as_array().map(Vec::len), Some(2));

    // Its key is kept in the home, private.
    let isolated_key = a.home.join("identities").join(format!("{id}.key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&isolated_key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A playlist moved to an isolated identity: the old link (naming the main identity) no
/// longer admits anyone, and a member who joined before follows it to the new identity.
#[test]
fn moving_a_shared_playlist_to_an_isolated_identity_retires_the_old_link() {
    let a = Node::start();
    let b = Node::start();
    let c = Node::start();
    let (id, old_link) = create_shared(&a, "Moved");
    // C joined before the move: it follows the playlist to its new identity.
    join(&c, &old_link);
    wait_until("C has the playlist", PATIENCE, || show(&c, &id).map(|_| ()));
    let new_link = cli_json(&a, &["playlist", "share", &id, "--isolated"])["link"]
        .as_str()
        .expect("link")
        .to_string();
    assert_ne!(old_link, new_link);
    let out = b.cli(&["open", "--wait", "--timeout", "20", &old_link]);
    assert!(!out.status.success(), "the old link still admitted B");
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("no longer shared through this peer"),
        "{said}"
    );
    join(&b, &new_link);
    wait_until("B has the playlist", PATIENCE, || show(&b, &id).map(|_| ()));
    // A member cannot move a playlist it joined.
    let out = b.cli(&["playlist", "share", &id, "--isolated"]);
    assert!(!out.status.success(), "B moved A's playlist");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("only its owner can move it"), "{said}");
    add_track(&a, &id, "After the move");
    wait_title(&b, &id, "After the move");
    wait_title(&c, &id, "After the move");
    let isolated_peer = new_link
        .strip_prefix("whtnxt://connect/")
        .and_then(|rest| rest.split('?').next())
        .expect("peer id in the link")
        .to_string();
    c.wait_status("C connected to the new identity", PATIENCE, |s| {
        !Node::connections_to(s, &isolated_peer).is_empty()
    });
}

/// An isolated share comes back as itself after the app restarts; a damaged key of an
/// isolated share does not keep the app (or its other playlists) from starting, and sharing
/// it again says which file is damaged.
#[test]
fn an_isolated_share_survives_a_restart_and_a_damaged_key_is_named_not_fatal() {
    let home = tempfile::tempdir().expect("home");
    let mut a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let id = cli_json(&a, &["playlist", "create", "Kept apart"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    cli_json(&a, &["playlist", "share", &id, "--isolated"]);
    let isolated_peer = a.wait_status("the isolated service", PATIENCE, |s| {
        service(s, &id).is_some_and(|i| i["node"] == "running")
    });
    let isolated_peer = service(&isolated_peer, &id).expect("service")["peer_id"].clone();
    assert!(a.stop_with(Signal::SIGTERM).success());

    let mut again = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let state = again.wait_status("the isolated service after a restart", PATIENCE, |s| {
        service(s, &id).is_some_and(|i| i["node"] == "running")
    });
    assert_eq!(
        service(&state, &id).expect("service")["peer_id"],
        isolated_peer
    );
    assert!(again.stop_with(Signal::SIGTERM).success());

    // The key file emptied (an interrupted write, a bad disk): the app still starts.
    let key = home.path().join("identities").join(format!("{id}.key"));
    std::fs::write(&key, b"").expect("damage the key");
    let third = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let state = third.wait_running();
    assert!(
        service(&state, &id).is_none(),
        "no service runs on a damaged key"
    );
    assert_eq!(
        state["sessions"][0]["id"],
        id.as_str(),
        "the share is still listed"
    );
    let out = third.cli(&["playlist", "share", &id, "--isolated"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("{id}.key")) && said.contains("empty"),
        "{said}"
    );
    // The rest of the app works.
    cli_json(&third, &["playlist", "create", "Unrelated"]);
}
