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
