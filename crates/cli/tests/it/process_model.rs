//! The process model end to end: controllers, their supervised network services, identity,
//! single instance, supervision and the status API — real processes on loopback.

use std::time::{Duration, Instant};

use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::Value;

fn has_connection_with_rtt(state: &Value, peer: &str) -> bool {
    Node::connections_to(state, peer)
        .iter()
        .any(|c| c["rtt_ms"].is_number() && c["transport"] == "tcp")
}

#[test]
fn two_controllers_connect_and_both_report_rtt() {
    let a = Node::start();
    let b = Node::start();
    let (a_id, b_id) = (a.peer_id(), b.peer_id());
    connect(&a, &b, 15);
    let state = a.wait_status(
        "A's connection to B with an RTT",
        Duration::from_secs(10),
        |s| has_connection_with_rtt(s, &b_id),
    );
    let conn = &Node::connections_to(&state, &b_id)[0];
    assert_eq!(conn["direction"], "dialer");
    assert!(
        conn["addr"]
            .as_str()
            .expect("addr")
            .starts_with("/ip4/127.0.0.1/tcp/")
    );
    b.wait_status(
        "B's connection to A with an RTT",
        Duration::from_secs(10),
        |s| has_connection_with_rtt(s, &a_id),
    );

    // The plain form is a readable summary naming the peer.
    let out = a.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("running") && text.contains(&b_id), "{text}");
}

#[test]
fn killed_service_comes_back_with_the_same_identity_and_reconnects() {
    // With WebRTC too: its address holds the certificate's hash, which must survive.
    let mut args = LOOPBACK_RUN_ARGS.to_vec();
    args.extend(["--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct"]);
    let a = Node::start_with_args(&args);
    let b = Node::start();
    let b_id = b.peer_id();
    connect(&a, &b, 15);
    let before = a.wait_status("connected", PATIENCE, |s| {
        !Node::connections_to(s, &b_id).is_empty()
    });
    let old_pid = before["service"]["pid"].as_u64().expect("service pid") as u32;
    let peer_id = before["peer_id"].clone();

    assert!(signal(old_pid, Signal::SIGKILL));
    let after = a.wait_status(
        "restarted service reconnected to B",
        Duration::from_secs(5),
        |s| {
            s["service"]["pid"]
                .as_u64()
                .is_some_and(|p| p as u32 != old_pid)
                && s["node"] == "running"
                && !Node::connections_to(s, &b_id).is_empty()
        },
    );
    assert_eq!(after["service"]["restarts"], 1);
    assert_eq!(after["peer_id"], peer_id);
    // Why it restarted stays in the state; the problem itself is over.
    assert!(
        after["service"]["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("signal 9")),
        "{after}"
    );
    assert_eq!(after["last_error"], serde_json::Value::Null, "{after}");
    // The restarted node listens on the same ports, with the same WebRTC certificate, so
    // addresses peers hold stay valid.
    assert!(
        before["listen_addrs"]
            .to_string()
            .contains("/webrtc-direct/certhash/"),
        "{before}"
    );
    assert_eq!(after["listen_addrs"], before["listen_addrs"]);
}

#[test]
fn controller_restart_keeps_the_peer_id_and_sigterm_stops_the_service() {
    let home = tempfile::tempdir().expect("temp home");
    let mut first = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let peer_id = first.peer_id();
    let service = first.service_pid();
    let status = first.stop_with(Signal::SIGTERM);
    assert!(
        status.success(),
        "clean shutdown exits 0: {status:?}\n{}",
        first.log()
    );
    wait_until("the service to exit with its controller", PATIENCE, || {
        (!alive(service)).then_some(())
    });
    assert!(
        !home.path().join("api.json").exists(),
        "api.json is removed on clean exit"
    );

    let second = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    assert_eq!(second.peer_id(), peer_id);
}

/// `whatnext stop` ends the controller and its service, and returns once they are done;
/// with nothing running it says so and succeeds (a script may stop twice).
#[test]
fn stop_ends_the_controller_and_its_service_and_says_so() {
    let home = tempfile::tempdir().expect("temp home");
    let a = Node::start_in(home.path(), &LOOPBACK_RUN_ARGS);
    let (controller, service) = (a.pid(), a.service_pid());
    let out = a.cli(&["stop"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    assert!(
        text.contains(&format!("stopped WhatNext (pid {controller})")),
        "{text}"
    );
    // Returned once the controller had finished: its api.json is gone already.
    assert!(!home.path().join("api.json").exists(), "api.json is left");
    wait_until("the controller and service to exit", PATIENCE, || {
        (!alive(controller) && !alive(service)).then_some(())
    });
    assert!(a.log().contains("stopped"), "an orderly stop: {}", a.log());

    let out = a.cli(&["stop"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not running"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A timeout a `Duration` cannot hold is refused when parsed, not a panic.
    for bad in ["1e300", "-1", "0", "NaN", "soon"] {
        let out = a.cli(&["stop", &format!("--timeout={bad}")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("number of seconds"), "{bad}: {err}");
        assert!(!err.contains("panicked"), "{bad}: {err}");
    }
}

#[test]
fn a_second_run_on_a_busy_home_hands_over_and_starts_nothing() {
    let a = Node::start();
    let service = a.service_pid();
    let out = a.cli(&LOOPBACK_RUN_ARGS);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("already running"), "{text}");
    assert!(
        text.contains(&a.pid().to_string()),
        "names the running pid: {text}"
    );
    // A fresh login link, not the bare address that would ask for one.
    assert!(text.contains("Open the view: http://127.0.0.1:"), "{text}");
    assert!(text.contains("/login?t="), "{text}");
    // The first one is unharmed and still the only one: same controller, same service.
    let state = a.wait_running();
    assert_eq!(state["pid"], a.pid());
    assert_eq!(state["service"]["pid"], service);
    assert_eq!(state["service"]["restarts"], 0);
}

#[test]
fn kill_9_of_the_controller_leaves_no_service_behind() {
    let mut a = Node::start();
    let service = a.service_pid();
    assert!(is_whatnext_service(service));
    a.stop_with(Signal::SIGKILL);
    // The service sees EOF on its stdin and exits; allow generous time on a loaded machine.
    wait_until(
        "the orphaned service to exit",
        Duration::from_secs(5),
        || (!alive(service)).then_some(()),
    );
    // The stale api.json is recognised: status says "not running" instead of hanging.
    let out = a.cli(&["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));
}

#[test]
fn status_without_a_controller_says_not_running() {
    let home = tempfile::tempdir().expect("temp home");
    let out = whatnext(home.path(), &["status", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not running") && err.contains("whatnext run"),
        "{err}"
    );
}

#[test]
fn a_hung_service_is_detected_by_heartbeat_and_replaced() {
    let a = Node::start();
    let hung = a.service_pid();
    assert!(signal(hung, Signal::SIGSTOP));
    let after = a.wait_status("a replacement for the hung service", PATIENCE, |s| {
        s["service"]["pid"]
            .as_u64()
            .is_some_and(|p| p as u32 != hung)
            && s["node"] == "running"
    });
    assert_eq!(after["service"]["restarts"], 1);
    assert!(
        after["service"]["last_exit"]
            .as_str()
            .is_some_and(|e| e.contains("heartbeat")),
        "{after}"
    );
    wait_until("the hung service to be killed", PATIENCE, || {
        (!alive(hung)).then_some(())
    });
}

#[test]
fn a_crash_loop_stops_restarting_and_reports_failed() {
    let a = Node::start();
    let mut killed = Vec::new();
    let started = Instant::now();
    let state = loop {
        let state = a.wait_status("a service to kill, or failure", PATIENCE, |s| {
            s["node"] == "failed"
                || s["service"]["pid"]
                    .as_u64()
                    .is_some_and(|p| !killed.contains(&(p as u32)))
        });
        if state["node"] == "failed" {
            break state;
        }
        let pid = state["service"]["pid"].as_u64().expect("pid") as u32;
        signal(pid, Signal::SIGKILL);
        killed.push(pid);
        assert!(
            killed.len() <= 5,
            "still restarting after {} crashes: {state}",
            killed.len()
        );
    };
    assert_eq!(killed.len(), 5, "gives up at the fifth crash within 60 s");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(state["service"]["pid"].is_null());
    let error = state["last_error"].as_str().expect("a reason");
    assert!(error.contains("crashed 5 times"), "{error}");
    // The controller itself stays up and explains itself.
    let out = a.cli(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed"));
}

#[test]
fn connect_errors_are_clear_and_nonzero() {
    let a = Node::start();
    let out = a.cli(&["connect", "not-a-multiaddr"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a multiaddr"));

    let out = a.cli(&["connect", "/ip4/127.0.0.1/tcp/1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/p2p/"));

    // A real peer id at a closed port: the dial error comes back.
    let b = Node::start();
    let addr = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", b.peer_id());
    let out = a.cli(&["connect", &addr, "--timeout", "10"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not connect"), "{err}");
    // The failure is kept as a kind, decided from libp2p's typed error (the OS said
    // "connection refused"), which is what the doctor explains.
    let state = a.wait_status("the failed dial", PATIENCE, |s| {
        s["dial_failures"].as_array().is_some_and(|f| !f.is_empty())
    });
    let last = &state["dial_failures"][state["dial_failures"].as_array().map_or(0, Vec::len) - 1];
    assert_eq!(last["kind"], "refused", "{last}");
    a.wait_running();
}

#[test]
fn api_requires_token_and_loopback_host_and_long_polls() {
    let a = Node::start();
    let (url, token) = a.api();
    let host = url.trim_start_matches("http://").to_string();
    let bearer = format!("Bearer {token}");

    let (status, _) = http(&url, "GET", "/api/state", &[("Host", &host)], "");
    assert_eq!(status, 401, "no token");
    let (status, _) = http(
        &url,
        "GET",
        "/api/state",
        &[("Host", &host), ("Authorization", "Bearer nope")],
        "",
    );
    assert_eq!(status, 401, "wrong token");
    let (status, _) = http(
        &url,
        "GET",
        "/api/state",
        &[("Host", "evil.example:80"), ("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 403, "DNS-rebinding Host");
    let (status, body) = http(
        &url,
        "GET",
        "/api/state",
        &[("Host", &host), ("Authorization", &bearer)],
        "",
    );
    assert_eq!(status, 200);
    let state: Value = serde_json::from_str(&body).expect("state JSON");
    let version = state["version"].as_u64().expect("version");

    // A stale cursor answers at once.
    let t = Instant::now();
    let (_, body) = http(
        &url,
        "GET",
        &format!("/api/state?since={}", version - 1),
        &[("Host", &host), ("Authorization", &bearer)],
        "",
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        serde_json::from_str::<Value>(&body).expect("json")["version"].as_u64() >= Some(version)
    );

    // A current cursor waits for the next change: B connecting to A is one.
    let b = Node::start();
    let poll = {
        let (url, host, bearer) = (url.clone(), host.clone(), bearer.clone());
        std::thread::spawn(move || {
            let path = format!("/api/state?since={version}");
            http(
                &url,
                "GET",
                &path,
                &[("Host", &host), ("Authorization", &bearer)],
                "",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !poll.is_finished(),
        "the long poll waits while nothing changes"
    );
    connect(&b, &a, 15);
    let (status, body) = poll.join().expect("poll thread");
    assert_eq!(status, 200);
    assert!(
        serde_json::from_str::<Value>(&body).expect("json")["version"].as_u64() > Some(version)
    );

    // With nothing changing, a poll ends after its timeout with the same version.
    let now = a.status().expect("status")["version"]
        .as_u64()
        .expect("version");
    let (_, body) = http(
        &url,
        "GET",
        &format!("/api/state?since={}&timeout_ms=300", now + 1000),
        &[("Host", &host), ("Authorization", &bearer)],
        "",
    );
    assert!(
        serde_json::from_str::<Value>(&body).expect("json")["version"].as_u64() <= Some(now + 1000)
    );
}

#[test]
fn settings_come_from_config_toml_when_no_flags_are_given() {
    let home = tempfile::tempdir().expect("temp home");
    std::fs::write(
        home.path().join("config.toml"),
        "listen = [\"/ip4/127.0.0.1/tcp/0\"]\nmdns = false\nupnp = false\nbrowser = false\nregister = false\n",
    )
    .expect("config");
    let a = Node::start_in(home.path(), &["run"]);
    let state = a.wait_running();
    let addrs: Vec<&str> = state["listen_addrs"]
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(addrs[0].starts_with("/ip4/127.0.0.1/tcp/"), "{addrs:?}");

    // A typo in the file is refused with the key named.
    let bad = tempfile::tempdir().expect("temp home");
    std::fs::write(bad.path().join("config.toml"), "mdsn = false\n").expect("config");
    let out = whatnext(bad.path(), &["run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mdsn"));
}

#[test]
fn identity_and_api_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let a = Node::start();
    for file in ["identity.key", "api.json"] {
        let mode = std::fs::metadata(a.home.join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // Logs are written under the home, the service's lines included.
    wait_until("the service's log lines in the log file", PATIENCE, || {
        let dir = std::fs::read_dir(a.home.join("logs")).ok()?;
        let text: String = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        text.contains(" p2p: ").then_some(())
    });
}

/// The terminal of a user who runs `whatnext run` (no `RUST_LOG`): during 50 edits of a
/// shared playlist and a Ctrl-C, only WhatNext's own lines at info, nothing of another
/// crate's below a warning (Loro's encoder once dumped hundreds of lines), and no error.
#[test]
fn a_default_run_logs_only_its_own_info_and_no_error() {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join("config.toml"), "music_dirs = []\n").expect("config");
    let mut a = Node::start_with_default_logs(home.path(), &LOOPBACK_RUN_ARGS);
    let b = Node::start();
    let (id, link) = create_shared(&a, "Quiet");
    join(&b, &link);
    for i in 0..50 {
        add_track(&a, &id, &format!("Edit {i}"));
    }
    wait_until("B to have all 50 edits", PATIENCE, || {
        (show(&b, &id)?["tracks"].as_array()?.len() == 50).then_some(())
    });
    assert!(a.stop_with(Signal::SIGINT).success());
    let log = a.log();
    let mut own = 0;
    for line in log.lines() {
        // `<time>  LEVEL target: message`; spans, when any, come before the target.
        let mut words = line.split_whitespace().skip(1);
        let (Some(level), Some(rest)) = (words.next(), words.next()) else {
            continue;
        };
        assert_ne!(level, "ERROR", "an error line on a normal run:\n{log}");
        if matches!(level, "INFO" | "DEBUG" | "TRACE") {
            assert!(
                rest.starts_with("whatnext") || rest.starts_with("p2p:"),
                "another crate's {level} line: {line}\n{log}"
            );
            own += 1;
        }
    }
    assert!(own > 0, "WhatNext's own info is shown:\n{log}");
    assert!(!log.contains("Broken pipe"), "{log}");
    assert!(!log.contains("Failed to trigger bootstrap"), "{log}");
}
