//! The human-readable form of `whatnext status`.

use std::fmt::Write as _;

use whatnext_protocol::state::AppState;

pub fn render(state: &AppState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "WhatNext: {} (controller pid {})",
        state.node.as_str(),
        state.pid
    );
    let _ = writeln!(out, "Peer id:     {}", state.peer_id);
    let _ = writeln!(out, "Home:        {}", state.home);
    let service_pid = state
        .service
        .pid
        .map_or_else(|| "not running".to_string(), |p| format!("pid {p}"));
    let _ = writeln!(
        out,
        "Service:     {service_pid}, {} restart{}",
        state.service.restarts,
        if state.service.restarts == 1 { "" } else { "s" }
    );
    list(&mut out, "Listening:", &state.listen_addrs);
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
            c.peer_id, c.addr, c.transport, c.direction
        );
    }
    list(&mut out, "Discovered:", &state.discovered);
    if !state.link_attempts.is_empty() {
        let _ = writeln!(out, "Links opened:");
        for a in state.link_attempts.iter().rev().take(5) {
            let peer = a.peer_id.as_deref().unwrap_or("?");
            let detail = match (&a.addr, &a.error) {
                (_, Some(error)) => format!(": {error}"),
                (Some(addr), None) => format!(" via {addr}"),
                (None, None) => String::new(),
            };
            let _ = writeln!(out, "  #{} {} {peer}{detail}", a.id, a.status.as_str());
        }
    }
    let _ = writeln!(
        out,
        "Last error:  {}",
        state.last_error.as_deref().unwrap_or("none")
    );
    out
}

fn list(out: &mut String, label: &str, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "{label:<12} none");
    }
    for (i, item) in items.iter().enumerate() {
        let label = if i == 0 { label } else { "" };
        let _ = writeln!(out, "{label:<12} {item}");
    }
}
