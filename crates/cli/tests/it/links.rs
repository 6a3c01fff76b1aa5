//! whtnxt:// links end to end: invites, `open` (with and without a running controller),
//! the single-instance socket, and the OS handler path (`register` + `gio open`).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    process::Command,
    time::Duration,
};

use crate::support::*;
use serde_json::Value;

fn connected_to(state: &Value, peer: &str) -> bool {
    !Node::connections_to(state, peer).is_empty()
}

fn last_attempt(state: &Value) -> Value {
    state["link_attempts"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn invite_lists_dialable_addresses_and_open_wait_connects() {
    let a = Node::start();
    let b = Node::start();
    let link = b.invite();
    let b_id = b.peer_id();
    assert!(
        link.starts_with(&format!("whtnxt://connect/{b_id}?addr=")),
        "{link}"
    );
    assert!(link.contains("/ip4/127.0.0.1/tcp/"), "{link}");
    assert!(
        link.contains("quic-v1"),
        "both transports are offered: {link}"
    );
    assert!(!link.contains("0.0.0.0"), "{link}");

    let out = a.cli(&["open", "--wait", "--timeout", "15", &link]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("connected to {b_id}")), "{text}");

    let state = a.wait_status("A connected to B", PATIENCE, |s| connected_to(s, &b_id));
    let attempt = last_attempt(&state);
    assert_eq!(attempt["status"], "connected", "{attempt}");
    assert_eq!(attempt["peer_id"], b_id.as_str());
    let a_id = a.peer_id();
    b.wait_status("B sees A", PATIENCE, |s| connected_to(s, &a_id));
}

#[test]
fn open_without_a_running_controller_starts_one_and_connects() {
    let b = Node::start();
    let link = b.invite();
    let home = tempfile::tempdir().expect("home");
    write_loopback_config(home.path());

    let out = whatnext(home.path(), &["open", "--wait", &link]);
    // Adopt it before asserting, so a failure still kills the started controller.
    let a = Node::adopt(home.path());
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(home.path().join("logs/autostart.log")).unwrap_or_default()
    );
    let b_id = b.peer_id();
    a.wait_status("the started controller connected to B", PATIENCE, |s| {
        connected_to(s, &b_id)
    });
    // It honoured config.toml: loopback only.
    let state = a.wait_running();
    assert!(
        state["listen_addrs"]
            .as_array()
            .expect("addrs")
            .iter()
            .all(|a| a.as_str().is_some_and(|a| a.starts_with("/ip4/127.0.0.1/")))
    );

    // A second link goes to the same controller: no second one is started.
    let out = whatnext(home.path(), &["open", &link]);
    assert!(out.status.success());
    assert_eq!(a.wait_running()["pid"], a.pid());
}

#[test]
fn bad_links_are_refused_clearly_and_the_controller_stays_up() {
    let a = Node::start();
    let service = a.service_pid();
    let peer = a.peer_id();
    let cases = [
        ("garbage", "whtnxt://"),
        ("https://example.com/x", "whtnxt://"),
        ("whtnxt://connect/notapeer", "not a valid peer id"),
        (
            &*format!("whtnxt://connect/{peer}?addr=/ip4/1.2.3/tcp/1"),
            "addr=",
        ),
    ];
    for (url, expected) in cases {
        let out = a.cli(&["open", "--wait", url]);
        assert!(!out.status.success(), "{url} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{url}: {err}");
    }
    // Opening one's own invite is refused by the controller, and recorded.
    let own = a.invite();
    let out = a.cli(&["open", "--wait", &own]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("your own invite"));
    let state = a.wait_running();
    assert_eq!(last_attempt(&state)["status"], "invalid");
    assert_eq!(
        state["service"]["pid"], service,
        "the service was not disturbed"
    );

    // A bad link in a home with no controller starts nothing.
    let empty = tempfile::tempdir().expect("home");
    let out = whatnext(empty.path(), &["open", "garbage"]);
    assert!(!out.status.success());
    assert!(!empty.path().join("whatnext.sock").exists());
    assert!(!empty.path().join("api.json").exists());
}

#[test]
fn a_link_without_addresses_parses_but_explains_that_it_cannot_be_dialed() {
    let a = Node::start();
    let b = Node::start();
    let b_id = b.peer_id();
    let out = a.cli(&[
        "open",
        "--wait",
        "--timeout",
        "5",
        &format!("whtnxt://connect/{b_id}"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no addresses") && err.contains("whatnext invite"),
        "{err}"
    );
    let state = a.wait_running();
    let attempt = last_attempt(&state);
    assert_eq!(attempt["status"], "failed");
    assert_eq!(attempt["needs_discovery"], true);
}

#[test]
fn garbage_on_the_single_instance_socket_is_answered_and_harmless() {
    let a = Node::start();
    let socket = a.home.join("whatnext.sock");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "socket is private: {mode:o}");
    for garbage in [
        &b"hello\n"[..],
        b"{\"type\":\"format_disk\"}\n",
        &[0xff; 70_000][..],
    ] {
        let mut stream = UnixStream::connect(&socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let _ = stream.write_all(garbage);
        let mut line = String::new();
        BufReader::new(&stream)
            .read_line(&mut line)
            .expect("an answer");
        let answer: Value = serde_json::from_str(&line).expect("JSON answer");
        assert_eq!(answer["ok"], false, "{answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let state = a.wait_running();
    assert_eq!(state["service"]["restarts"], 0);
}

/// The OS path: `register` writes the handler into temp XDG dirs, then `gio open` (what a
/// browser or chat app does for a link) makes the running controller connect.
#[test]
fn a_link_opened_through_the_desktop_reaches_the_running_controller() {
    let gio = Command::new("gio").arg("--version").output().is_ok();
    let xdg_open = Command::new("xdg-mime").arg("--version").output().is_ok();
    assert!(
        gio && xdg_open,
        "this test needs gio (libglib2.0-bin) and xdg-utils; .ci/run installs them"
    );

    let a = Node::start();
    let b = Node::start();
    let desktop = tempfile::tempdir().expect("xdg dirs");
    let env = |c: &mut Command| {
        c.env("HOME", desktop.path())
            .env("XDG_DATA_HOME", desktop.path().join("data"))
            .env("XDG_CONFIG_HOME", desktop.path().join("config"))
            .env("XDG_DATA_DIRS", "/usr/share")
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
    };
    let run = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("--home").arg(&a.home).args(args);
        env(&mut c);
        c.output().expect("runs")
    };

    let out = run(&["register"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entry = std::fs::read_to_string(desktop.path().join("data/applications/whatnext.desktop"))
        .expect("desktop file");
    assert!(
        entry.contains("MimeType=x-scheme-handler/whtnxt;"),
        "{entry}"
    );
    assert!(entry.contains(" open %u"), "{entry}");
    let mut query = Command::new("xdg-mime");
    query.args(["query", "default", "x-scheme-handler/whtnxt"]);
    env(&mut query);
    let default = query.output().expect("xdg-mime");
    assert_eq!(
        String::from_utf8_lossy(&default.stdout).trim(),
        "whatnext.desktop"
    );

    let link = b.invite();
    let mut open = Command::new("gio");
    open.args(["open", &link]);
    env(&mut open);
    let out = open.output().expect("gio open");
    assert!(
        out.status.success(),
        "gio open: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b_id = b.peer_id();
    // The connection shows up a moment before the attempt is settled: wait for both.
    let state = a.wait_status("the desktop's link to reach A", PATIENCE, |s| {
        connected_to(s, &b_id) && last_attempt(s)["status"] != "pending"
    });
    assert_eq!(last_attempt(&state)["status"], "connected");

    let out = run(&["unregister"]);
    assert!(out.status.success());
    assert!(
        !desktop
            .path()
            .join("data/applications/whatnext.desktop")
            .exists()
    );
    let default = query.output().expect("xdg-mime");
    assert_ne!(
        String::from_utf8_lossy(&default.stdout).trim(),
        "whatnext.desktop"
    );
}

/// Names in a link's address and in `connect` are resolved by the controller (the
/// sandboxed service cannot); a name that does not resolve is said so.
#[test]
fn links_and_connect_may_name_hosts() {
    let a = Node::start();
    let b = Node::start();
    let b_id = b.peer_id();
    let named = b
        .tcp_multiaddr()
        .replacen("/ip4/127.0.0.1/", "/dns4/localhost/", 1);
    assert!(named.starts_with("/dns4/localhost/tcp/"), "{named}");
    let link = format!("whtnxt://connect/{b_id}?addr={named}");
    let out = a.cli(&["open", "--wait", "--timeout", "15", &link]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    a.wait_status("A connected to B by name", PATIENCE, |s| {
        connected_to(s, &b_id)
    });

    let c = Node::start();
    let out = c.cli(&["connect", &named, "--timeout", "10"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nowhere = format!("/dns4/nowhere.invalid/tcp/4001/p2p/{b_id}");
    let out = c.cli(&["connect", &nowhere, "--timeout", "10"]);
    assert!(
        !out.status.success(),
        "a name that does not resolve connected"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("nowhere.invalid"), "{said}");
}
