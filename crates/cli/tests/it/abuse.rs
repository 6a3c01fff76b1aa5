//! The abuse suite, part two (part one: `sharing.rs`'s hostile peer — garbage, wrong keys,
//! unadmitted updates, oversized and malformed messages; `view_auth.rs` and
//! `process_model.rs` — the HTTP API without a token, with a wrong Host, with cross-origin
//! writes; `links.rs` — garbage on the single-instance socket; `service_protocol.rs` —
//! garbage and oversized IPC frames). Here: floods of connections and of streams, and a
//! revoked member replaying its capability. Every case: a clear refusal, the service still
//! up (same pid), the store unchanged, the honest peer still served.

use std::{
    io::Write as _,
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::support::*;
use serde_json::json;

fn tcp_port(node: &Node) -> u16 {
    node.tcp_multiaddr()
        .split('/')
        .nth(4)
        .and_then(|p| p.parse().ok())
        .expect("a TCP port")
}

fn resident_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn titles_of(node: &Node, id: &str) -> Vec<String> {
    titles(&cli_json(node, &["playlist", "show", id]))
}

#[test]
fn a_connection_flood_leaves_the_node_small_and_serving_its_friends() {
    let a = Node::start();
    let service = a.service_pid();
    let port = tcp_port(&a);
    // 600 sockets that never finish a handshake: half silent, half sending garbage.
    let started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..600 {
        if let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) {
            if i % 2 == 0 {
                let _ = socket.write_all(&[0xAB; 4096]);
            }
            flood.push(socket);
        }
    }
    let opened = flood.len();

    // A friend still connects, and pings flow. While the flood's silent sockets fill the 64
    // pending-handshake slots, a dial can be refused; they are dropped at the handshake
    // timeout, so a friend who tries again (as the app's redial and repair tick do) gets in.
    let b = Node::start();
    let target = a.tcp_multiaddr();
    let mut refused = 0;
    wait_until("the honest peer to get in", Duration::from_secs(60), || {
        let out = b.cli(&["connect", &target, "--timeout", "20"]);
        if out.status.success() {
            Some(())
        } else {
            refused += 1;
            std::thread::sleep(Duration::from_millis(500));
            None
        }
    });
    let b_id = b.peer_id();
    a.wait_status("an RTT to the honest peer", PATIENCE, |s| {
        Node::connections_to(s, &b_id)
            .iter()
            .any(|c| c["rtt_ms"].is_f64())
    });
    let rss = resident_mb(service);
    let state = a.status().expect("status");
    assert_eq!(
        state["service"]["pid"].as_u64(),
        Some(service as u64),
        "the service was not restarted: {state}"
    );
    assert!(
        rss < 100.0,
        "the service grew to {rss:.1} MB under the flood"
    );
    println!(
        "abuse: {opened} flood sockets in {:.0} ms; honest peer connected after {refused} refused tries; service RSS {rss:.1} MB",
        started.elapsed().as_secs_f64() * 1e3
    );
    drop(flood);
}

/// A STUN binding request (what opens a WebRTC-direct connection) naming `username`.
fn stun_binding_request(username: &[u8], transaction: u32) -> Vec<u8> {
    let padding = (4 - username.len() % 4) % 4;
    let attribute_len = 4 + username.len() + padding;
    let mut packet = Vec::with_capacity(20 + attribute_len);
    packet.extend_from_slice(&0x0001u16.to_be_bytes()); // binding request
    packet.extend_from_slice(&(attribute_len as u16).to_be_bytes());
    packet.extend_from_slice(&0x2112_A442u32.to_be_bytes()); // magic cookie
    packet.extend_from_slice(&[0; 8]);
    packet.extend_from_slice(&transaction.to_be_bytes());
    packet.extend_from_slice(&0x0006u16.to_be_bytes()); // USERNAME
    packet.extend_from_slice(&(username.len() as u16).to_be_bytes());
    packet.extend_from_slice(username);
    packet.extend(std::iter::repeat_n(0, padding));
    packet
}

/// The WebRTC port takes UDP from anyone: STUN requests whose username (which the node
/// writes into an SDP offer) holds line breaks, control characters and SDP lines, one of
/// 1,200 bytes, garbage datagrams, and 5,000 requests each naming a new connection. The
/// service stays up (same pid), small, and still answers a friend.
#[test]
fn hostile_stun_on_the_webrtc_port_changes_nothing() {
    let mut args = LOOPBACK_RUN_ARGS.to_vec();
    args.extend(["--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct"]);
    let a = Node::start_with_args(&args);
    let service = a.service_pid();
    let state = a.status().expect("status");
    let port: u16 = state["listen_addrs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|addr| addr.as_str())
        .find(|addr| addr.contains("/webrtc-direct/"))
        .and_then(|addr| addr.split('/').nth(4)?.parse().ok())
        .expect("a WebRTC-direct port");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let target = ("127.0.0.1", port);
    let long = "x".repeat(1200);
    let hostile: [&[u8]; 6] = [
        b"evil\r\na=ice-ufrag:other\r\nm=audio 9 RTP 0\r\n:x",
        b"\x00\x01\x07\x1b[2J:",
        "\u{202e}\u{feff}é\r\n\r\n:y".as_bytes(),
        long.as_bytes(),
        b":",
        b"",
    ];
    for (i, username) in hostile.iter().enumerate() {
        let _ = socket.send_to(&stun_binding_request(username, i as u32), target);
    }
    for garbage in [&[0xFFu8; 3][..], &[0u8; 20][..], &[0xAB; 1400][..]] {
        let _ = socket.send_to(garbage, target);
    }
    for i in 0..5_000u32 {
        let username = format!("libp2p+webrtc+v1/{i:032x}:x");
        let _ = socket.send_to(&stun_binding_request(username.as_bytes(), i), target);
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Give the node the time to handle all of it, then look.
    std::thread::sleep(Duration::from_secs(2));
    let b = Node::start();
    connect(&b, &a, 20);
    let state = a.status().expect("status");
    assert_eq!(
        state["service"]["pid"].as_u64(),
        Some(service as u64),
        "the service was not restarted: {state}"
    );
    assert_eq!(state["service"]["restarts"], 0, "{state}");
    let rss = resident_mb(service);
    assert!(rss < 100.0, "the service grew to {rss:.1} MB");
    println!("abuse: 5,009 hostile STUN datagrams on the WebRTC port; service RSS {rss:.1} MB");
}

#[test]
fn a_stream_flood_from_one_peer_is_absorbed_and_changes_nothing() {
    let a = Node::start();
    let service = a.service_pid();
    let created = cli_json(&a, &["playlist", "create", "Guarded"]);
    let id = created["id"].as_str().expect("id").to_string();
    cli_json(&a, &["playlist", "add", &id, "--title", "original"]);
    let link = cli_json(&a, &["playlist", "share", &id])["link"]
        .as_str()
        .expect("link")
        .to_string();

    let mut bad = Service::spawn();
    bad.recv();
    bad.start_node();
    bad.send(&json!({"id": 1, "type": "dial", "payload": {"addrs": [a.tcp_multiaddr()]}}));
    assert_eq!(bad.reply_to(1)["type"], "dialed");
    let a_id = a.peer_id();
    // 1,000 requests at once: wrong keys and unadmitted pushes, on both protocols.
    let started = Instant::now();
    for n in 0..1000u64 {
        let (protocol, body) = if n % 2 == 0 {
            (
                "handshake",
                json!({"app_version": "evil", "display_name": "eve", "sessions": [{"session": id, "key": format!("guess{n}")}]}),
            )
        } else {
            (
                "sync",
                json!({"type": "push", "session": id, "updates": "AAAA"}),
            )
        };
        bad.send(&json!({"id": 100 + n, "type": "request", "payload": {"peer_id": a_id, "protocol": protocol, "body": body}}));
    }
    // The honest member joins meanwhile.
    let b = Node::start();
    let out = b.cli(&["open", "--wait", "--timeout", "30", &link]);
    assert!(
        out.status.success(),
        "the honest member could not join during the flood: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every hostile request got an answer or a failure; none was accepted.
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered < 1000 && Instant::now() < deadline {
        let event = bad.recv();
        if event["id"].as_u64().is_some_and(|id| id >= 100) {
            answered += 1;
            let body = &event["payload"]["body"];
            assert!(
                body["accepted"].as_array().is_none_or(|a| a.is_empty()),
                "a guessed key was accepted: {event}"
            );
            assert_ne!(
                body["type"], "ack",
                "an unadmitted push was applied: {event}"
            );
        }
    }
    assert_eq!(answered, 1000, "every request is answered or fails");
    assert_eq!(titles_of(&a, &id), vec!["original"]);
    let state = a.status().expect("status");
    assert_eq!(state["service"]["pid"].as_u64(), Some(service as u64));
    println!(
        "abuse: 1,000 hostile requests answered in {:.0} ms; the honest member joined meanwhile",
        started.elapsed().as_secs_f64() * 1e3
    );
}

#[test]
fn a_revoked_member_replaying_its_key_is_refused() {
    let a = Node::start();
    let b = Node::start();
    let id = cli_json(&a, &["playlist", "create", "Members only"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    cli_json(&a, &["playlist", "add", &id, "--title", "before"]);
    let link = cli_json(&a, &["playlist", "share", &id])["link"]
        .as_str()
        .expect("link")
        .to_string();
    let out = b.cli(&["open", "--wait", "--timeout", "20", &link]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b_id = b.peer_id();
    cli_json(&a, &["playlist", "revoke", &id, &b_id]);
    cli_json(&a, &["playlist", "add", &id, "--title", "after"]);

    // B drops the connection and replays the link it was given: refused, with the reason.
    a.cli(&["status"]);
    let (url, token) = a.api();
    let host = url.trim_start_matches("http://").to_string();
    let body = json!({"peer_id": b_id}).to_string();
    let auth = format!("Bearer {token}");
    let (status, _) = http(
        &url,
        "POST",
        "/api/disconnect",
        &[
            ("Host", &host),
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &body,
    );
    assert_eq!(status, 200);
    let out = b.cli(&["open", "--wait", "--timeout", "20", &link]);
    assert!(!out.status.success(), "a revoked member was admitted again");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("revoked"), "{err}");
    // Nothing after the revocation reached B.
    std::thread::sleep(Duration::from_millis(500));
    let titles_b = titles_of(&b, &id);
    assert!(!titles_b.iter().any(|t| t == "after"), "{titles_b:?}");
    // Nor does B keep knocking: once refused, its anti-entropy rounds (every 5 s) do not
    // handshake again for that playlist, each refusal a warning and a problem shown on A.
    let refusals = || {
        a.log()
            .matches(&format!("refused {b_id} for playlist"))
            .count()
    };
    let before = refusals();
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(refusals(), before, "B asked again and again:\n{}", a.log());
}
