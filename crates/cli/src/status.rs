//! The human-readable form of `whatnext status`. Every text in the state may come from the
//! network (peer ids, addresses, errors), so each goes through [`safe`].

use std::fmt::Write as _;

use whatnext_protocol::state::AppState;

use crate::text::safe;

pub fn render(state: &AppState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "WhatNext: {} (controller pid {})",
        state.node.as_str(),
        state.pid
    );
    let _ = writeln!(out, "Peer id:     {}", safe(&state.peer_id));
    let _ = writeln!(out, "Home:        {}", safe(&state.home));
    let service_pid = state
        .service
        .pid
        .map_or_else(|| "not running".to_string(), |p| format!("pid {p}"));
    let last_exit = state
        .service
        .last_exit
        .as_deref()
        .map(|why| format!(" (the last: {})", safe(why)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Service:     {service_pid}, {} restart{}{last_exit}",
        state.service.restarts,
        if state.service.restarts == 1 { "" } else { "s" }
    );
    list(&mut out, "Listening:", &state.listen_addrs);
    // Isolated shares: each its own service and peer id (the main one is described above).
    for service in state.services.iter().skip(1) {
        let pid = service
            .pid
            .map_or_else(|| "not running".to_string(), |p| format!("pid {p}"));
        let _ = writeln!(
            out,
            "Isolated:    playlist {} as {} ({}, {pid}, {} restarts)",
            safe(&service.name),
            safe(&service.peer_id),
            service.node.as_str(),
            service.restarts
        );
    }
    if !state.external_addrs.is_empty() {
        list(&mut out, "External:", &state.external_addrs);
    }
    let _ = writeln!(out, "Connections: {}", state.connections.len());
    for c in &state.connections {
        let rtt = c
            .rtt_ms
            .map_or_else(|| "rtt pending".to_string(), |ms| format!("rtt {ms:.2} ms"));
        let relayed = if c.relayed { ", relayed" } else { "" };
        let _ = writeln!(
            out,
            "  {} via {} ({}, {}{relayed}, {rtt})",
            safe(person(state, &c.peer_id)),
            safe(&c.addr),
            safe(&c.transport),
            c.direction
        );
    }
    list(&mut out, "Discovered:", &state.discovered);
    if !state.link_attempts.is_empty() {
        let _ = writeln!(out, "Links opened:");
        for a in state.link_attempts.iter().rev().take(5) {
            let peer = safe(a.peer_id.as_deref().map_or("?", |p| person(state, p)));
            let detail = match (&a.addr, &a.error) {
                (_, Some(error)) => format!(": {}", safe(error)),
                (Some(addr), None) => format!(" via {}", safe(addr)),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "  #{} {} {peer}{detail}", a.id, a.status.as_str());
        }
    }
    let _ = writeln!(
        out,
        "Last error:  {}",
        safe(state.last_error.as_deref().unwrap_or("none"))
    );
    if !state.store_problems.is_empty() {
        let _ = writeln!(
            out,
            "Store:       {} problem(s) found (damaged playlists, failed writes); nothing was deleted. `whatnext doctor` says what and where the pieces are kept",
            state.store_problems.len()
        );
    }
    out
}

/// A peer as people know it: the name our playlists give it, else its id (`--json` has
/// the ids).
fn person<'a>(state: &'a AppState, peer_id: &'a str) -> &'a str {
    state.people.get(peer_id).map_or(peer_id, String::as_str)
}

fn list(out: &mut String, label: &str, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "{label:<12} none");
    }
    for (i, item) in items.iter().enumerate() {
        let label = if i == 0 { label } else { "" };
        let _ = writeln!(out, "{label:<12} {}", safe(item));
    }
}

#[cfg(test)]
mod tests {
    use whatnext_protocol::state::{Connection, LinkAttempt, LinkStatus};

    use super::*;

    #[test]
    fn texts_from_the_network_are_escaped() {
        let mut state = AppState::initial(1, "12D3KooW\u{1b}]0;pwned\u{7}".into(), "/h".into(), 0);
        state.connections.push(Connection {
            peer_id: "p\u{202e}".into(),
            addr: "/ip4/1.2.3.4/tcp/1".into(),
            transport: "tcp".into(),
            rtt_ms: None,
            direction: whatnext_protocol::state::Direction::Dialer,
            relayed: false,
            since_ms: 0,
            connection_id: 1,
            clock: None,
        });
        state.discovered.push("d\u{9b}".into());
        state.link_attempts.push(LinkAttempt {
            id: 1,
            link: "whtnxt://…".into(),
            peer_id: Some("x".into()),
            session: None,
            status: LinkStatus::Failed,
            error: Some("dial failed\u{1b}[2J".into()),
            addr: None,
            dial_ms: None,
            needs_discovery: false,
            steps: vec![],
            started_at_ms: 0,
            finished_at_ms: Some(0),
        });
        state.last_error = Some("bad\u{0}".into());
        let out = render(&state);
        for c in ['\u{1b}', '\u{7}', '\u{202e}', '\u{9b}', '\u{0}'] {
            assert!(!out.contains(c), "{c:?} printed raw: {out:?}");
        }
        assert!(out.contains("12D3KooW\\u{1b}]0;pwned\\u{7}"), "{out}");
        assert!(out.contains("dial failed\\u{1b}[2J"), "{out}");
    }

    #[test]
    fn peers_are_shown_by_the_names_our_playlists_give_them() {
        let mut state = AppState::initial(1, "12D3KooWme".into(), "/h".into(), 0);
        for (peer, id) in [("12D3KooWbea", 1), ("12D3KooWstranger", 2)] {
            state.connections.push(Connection {
                peer_id: peer.into(),
                addr: "/ip4/127.0.0.1/tcp/1".into(),
                transport: "tcp".into(),
                rtt_ms: Some(1.0),
                direction: whatnext_protocol::state::Direction::Dialer,
                relayed: false,
                since_ms: 0,
                connection_id: id,
                clock: None,
            });
        }
        state.people.insert("12D3KooWbea".into(), "Bea".into());
        let out = render(&state);
        assert!(out.contains("  Bea via /ip4/127.0.0.1/tcp/1"), "{out}");
        assert!(!out.contains("12D3KooWbea"), "{out}");
        assert!(
            out.contains("  12D3KooWstranger via"),
            "an unknown peer by its id: {out}"
        );
    }
}
