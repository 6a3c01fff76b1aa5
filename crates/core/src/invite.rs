//! Invites: this node's link, with its addresses in the order a friend should try them.
//! Pure functions of the state.

use multiaddr::{Multiaddr, Protocol};
use whatnext_protocol::{
    addr::{AddrClass, classify},
    link::{InviteLink, MAX_LINK_ADDRS, MAX_LINK_RELAYS},
    state::AppState,
};

/// An invite link for the node whose state is `state`, with every address a friend might
/// dial; to a shared playlist when `session` is `(playlist id, key)`.
pub fn invite_link(
    state: &AppState,
    session: Option<(String, String)>,
) -> Result<InviteLink, String> {
    let peer_id = state
        .peer_id
        .parse()
        .map_err(|err| format!("this node's peer id is unreadable: {err}"))?;
    let mut link = InviteLink::new(peer_id);
    // The best addresses first, and no more than a link may carry (the parser refuses
    // more), so the invite of a machine with many interfaces still opens.
    link.addrs = invite_addrs(&state.external_addrs, &state.listen_addrs);
    link.addrs.truncate(MAX_LINK_ADDRS);
    link.relays = state
        .relay_reservations
        .iter()
        .filter_map(|r| relay_of_circuit(&r.addr))
        .take(MAX_LINK_RELAYS)
        .collect();
    if link.addrs.is_empty() && link.relays.is_empty() {
        return Err("the node has no listen address yet; wait until it is running".into());
    }
    if let Some((session, key)) = session {
        link.session = Some(session);
        link.key = Some(key);
    }
    Ok(link)
}

/// The addresses this node records in a shared playlist for the other members to dial it
/// at: the invite's direct addresses, then a circuit through each relay that holds a
/// reservation for it — the only way in through a NAT that defeats hole punching, and the
/// way back in when a relay ends a circuit at its limits.
pub fn member_addrs(state: &AppState) -> Vec<String> {
    let mut addrs = invite_addrs(&state.external_addrs, &state.listen_addrs);
    // The playlist keeps 16 addresses a member: room for the circuits after these.
    addrs.truncate(MAX_LINK_ADDRS - MAX_LINK_RELAYS);
    let circuits = state
        .relay_reservations
        .iter()
        .filter_map(|r| relay_of_circuit(&r.addr))
        .take(MAX_LINK_RELAYS)
        .map(|relay| relay.with(Protocol::P2pCircuit));
    addrs
        .into_iter()
        .chain(circuits)
        .map(|a| a.to_string())
        .collect()
}

/// Orders addresses for an invite: confirmed external ones first, then other reachable
/// ones, loopback last (useful only on the same machine). Unspecified and circuit
/// addresses are left out, as are duplicates.
pub fn invite_addrs(external: &[String], listen: &[String]) -> Vec<Multiaddr> {
    fn rank(addr: &Multiaddr, external: bool) -> Option<u8> {
        match (classify(addr), external) {
            (AddrClass::Unspecified | AddrClass::Circuit, _) => None,
            (AddrClass::Loopback, _) => Some(2),
            (_, true) => Some(0),
            (_, false) => Some(1),
        }
    }
    let mut ranked: Vec<(u8, Multiaddr)> = Vec::new();
    let candidates = external
        .iter()
        .map(|a| (a, true))
        .chain(listen.iter().map(|a| (a, false)));
    for (text, is_external) in candidates {
        let Ok(mut addr) = text.parse::<Multiaddr>() else {
            continue;
        };
        if let Some(Protocol::P2p(_)) = addr.iter().last() {
            addr.pop();
        }
        if let Some(rank) = rank(&addr, is_external)
            && !ranked.iter().any(|(_, a)| *a == addr)
        {
            ranked.push((rank, addr));
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, addr)| addr).collect()
}

/// The peer id an address ends with (`…/p2p/<peer id>`), if it does.
pub fn peer_id_of(addr: &Multiaddr) -> Option<String> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer.to_string()),
        _ => None,
    }
}

/// The relay part of a circuit address: `/ip4/…/p2p/<relay>` of `/ip4/…/p2p/<relay>/p2p-circuit/…`.
fn relay_of_circuit(circuit: &str) -> Option<Multiaddr> {
    let circuit: Multiaddr = circuit.parse().ok()?;
    let relay: Multiaddr = circuit
        .iter()
        .take_while(|p| !matches!(p, Protocol::P2pCircuit))
        .collect();
    (relay != circuit && matches!(relay.iter().last(), Some(Protocol::P2p(_)))).then_some(relay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_record_their_direct_addresses_then_a_circuit_per_relay() {
        let relay =
            "/ip4/198.18.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let me = "12D3KooWHdiAxVd8uMQR1hGWXccidmfCwLqcMpGwR6QcTP6QRMuD";
        let mut state = AppState::initial(1, String::new(), String::new(), 0);
        state.peer_id = me.into();
        state.listen_addrs = (0..20)
            .map(|port| format!("/ip4/10.0.2.2/tcp/{}", 4000 + port))
            .collect();
        state.relay_reservations = vec![whatnext_protocol::state::RelayReservation {
            relay_peer_id: String::new(),
            addr: format!("{relay}/p2p-circuit/p2p/{me}"),
            since_ms: 0,
        }];
        let addrs = member_addrs(&state);
        // The playlist keeps 16: many interfaces must not push the circuit out.
        assert!(addrs.len() <= 16, "{addrs:?}");
        assert_eq!(
            addrs.first().map(String::as_str),
            Some("/ip4/10.0.2.2/tcp/4000")
        );
        assert_eq!(addrs.last(), Some(&format!("{relay}/p2p-circuit")));
    }

    #[test]
    fn the_relay_of_a_circuit_address_is_the_part_before_p2p_circuit() {
        let relay =
            "/ip4/198.18.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let me = "12D3KooWHdiAxVd8uMQR1hGWXccidmfCwLqcMpGwR6QcTP6QRMuD";
        assert_eq!(
            relay_of_circuit(&format!("{relay}/p2p-circuit/p2p/{me}")).map(|a| a.to_string()),
            Some(relay.to_string())
        );
        assert_eq!(
            relay_of_circuit(&format!("{relay}/p2p-circuit")).map(|a| a.to_string()),
            Some(relay.to_string())
        );
        assert_eq!(relay_of_circuit("/ip4/198.18.0.1/tcp/4001"), None);
        assert_eq!(
            relay_of_circuit("/ip4/198.18.0.1/tcp/4001/p2p-circuit"),
            None
        );
        assert_eq!(relay_of_circuit("garbage"), None);
    }

    #[test]
    fn invite_addresses_are_ordered_external_first_loopback_last() {
        let external = vec!["/ip4/198.51.100.7/tcp/4001".to_string()];
        let listen = vec![
            "/ip4/127.0.0.1/tcp/4001".to_string(),
            "/ip4/0.0.0.0/tcp/4001".to_string(),
            "/ip4/192.168.1.20/tcp/4001".to_string(),
            "/ip4/192.168.1.20/udp/4001/quic-v1".to_string(),
            "/ip4/198.51.100.7/tcp/4001".to_string(),
        ];
        let got: Vec<String> = invite_addrs(&external, &listen)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                "/ip4/198.51.100.7/tcp/4001",
                "/ip4/192.168.1.20/tcp/4001",
                "/ip4/192.168.1.20/udp/4001/quic-v1",
                "/ip4/127.0.0.1/tcp/4001",
            ]
        );
    }
}
