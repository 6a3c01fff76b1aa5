//! Our public address on each transport, guessed from the one we were told.
//!
//! Hole punching (DCUtR) offers the other side our *external address candidates*, and those
//! come from identify: a peer we reached over TCP tells us our public TCP address, nothing
//! about QUIC. A peer that met the relay over TCP therefore offers no QUIC address, and a
//! QUIC hole is never punched. Behind a port-preserving NAT — the kind a hole can be punched
//! through at all — our QUIC socket shows at the same public IP with its own port, just as
//! identify's own address translation assumes for a TCP listener. So each TCP or QUIC
//! candidate yields one for each of our listeners of the other transport. A wrong guess
//! costs one failed dial in a punch; it is never announced as confirmed.

use std::{
    collections::{HashSet, VecDeque},
    convert::Infallible,
    task::{Context, Poll},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    multiaddr::Protocol,
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm, dummy,
    },
};

/// Most candidates derived in a node's life: observed addresses are few; this bounds a peer
/// that reports a new one with every connection.
const MAX_DERIVED: usize = 64;

#[derive(Default)]
pub struct Behaviour {
    /// Our TCP and QUIC listen addresses (not loopback).
    listeners: Vec<Multiaddr>,
    /// Every candidate made here, so none is made twice (nor derived again from itself).
    derived: HashSet<Multiaddr>,
    queued: VecDeque<Multiaddr>,
}

/// The transport part of a TCP or QUIC address: what follows the IP.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Tcp(u16),
    Quic(u16),
}

/// `addr`'s IP and transport, for `/ip4|ip6/…/tcp/…` and `/ip4|ip6/…/udp/…/quic-v1` (a
/// trailing `/p2p/…` allowed); None for anything else (circuits, WebSocket, WebRTC).
fn split(addr: &Multiaddr) -> Option<(Protocol<'static>, Transport)> {
    let parts: Vec<Protocol<'_>> = addr.iter().collect();
    let parts = match parts.as_slice() {
        [rest @ .., Protocol::P2p(_)] => rest,
        all => all,
    };
    let (ip, transport) = match parts {
        [ip, Protocol::Tcp(port)] => (ip, Transport::Tcp(*port)),
        [ip, Protocol::Udp(port), Protocol::QuicV1] => (ip, Transport::Quic(*port)),
        _ => return None,
    };
    match ip {
        Protocol::Ip4(_) | Protocol::Ip6(_) => Some((ip.clone().acquire(), transport)),
        _ => None,
    }
}

fn is_loopback(ip: &Protocol<'_>) -> bool {
    match ip {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    }
}

/// The candidate for `listener` behind the public IP of `observed`, when they are of
/// different transports and the same IP family.
fn mirror(observed: &Multiaddr, listener: &Multiaddr) -> Option<Multiaddr> {
    let (public_ip, seen) = split(observed)?;
    let (local_ip, ours) = split(listener)?;
    let same_family = matches!(
        (&public_ip, &local_ip),
        (Protocol::Ip4(_), Protocol::Ip4(_)) | (Protocol::Ip6(_), Protocol::Ip6(_))
    );
    let other_transport = matches!(
        (seen, ours),
        (Transport::Tcp(_), Transport::Quic(_)) | (Transport::Quic(_), Transport::Tcp(_))
    );
    if !same_family || !other_transport || is_loopback(&public_ip) {
        return None;
    }
    let candidate = Multiaddr::empty().with(public_ip);
    Some(match ours {
        Transport::Tcp(port) => candidate.with(Protocol::Tcp(port)),
        Transport::Quic(port) => candidate.with(Protocol::Udp(port)).with(Protocol::QuicV1),
    })
}

impl Behaviour {
    fn observed(&mut self, addr: &Multiaddr) {
        if self.derived.contains(addr) {
            return;
        }
        for listener in &self.listeners {
            if self.derived.len() >= MAX_DERIVED {
                return;
            }
            if let Some(candidate) = mirror(addr, listener)
                && self.derived.insert(candidate.clone())
            {
                tracing::debug!("address candidate {candidate}, mirrored from {addr}");
                self.queued.push_back(candidate);
            }
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::NewListenAddr(new) => {
                let local = split(new.addr).is_some_and(|(ip, _)| !is_loopback(&ip));
                if local && !self.listeners.contains(new.addr) {
                    self.listeners.push(new.addr.clone());
                }
            }
            FromSwarm::ExpiredListenAddr(gone) => self.listeners.retain(|a| a != gone.addr),
            FromSwarm::NewExternalAddrCandidate(candidate) => self.observed(candidate.addr),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.queued.pop_front() {
            Some(candidate) => Poll::Ready(ToSwarm::NewExternalAddrCandidate(candidate)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("a test address")
    }

    #[test]
    fn a_public_address_on_one_transport_names_our_listener_of_the_other() {
        let quic = addr("/ip4/10.0.1.2/udp/4242/quic-v1");
        let tcp = addr("/ip4/10.0.1.2/tcp/4343");
        let seen_tcp = addr("/ip4/198.18.0.11/tcp/51000");
        let seen_quic = addr(
            "/ip4/198.18.0.11/udp/4242/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
        );
        assert_eq!(
            mirror(&seen_tcp, &quic),
            Some(addr("/ip4/198.18.0.11/udp/4242/quic-v1"))
        );
        assert_eq!(
            mirror(&seen_quic, &tcp),
            Some(addr("/ip4/198.18.0.11/tcp/4343"))
        );
        // Same transport: identify's own translation covers it.
        assert_eq!(mirror(&seen_tcp, &tcp), None);
        // Other families, loopback, circuits and other transports: nothing.
        assert_eq!(mirror(&addr("/ip6/2001:db8::1/tcp/1"), &quic), None);
        assert_eq!(mirror(&addr("/ip4/127.0.0.1/tcp/1"), &quic), None);
        assert_eq!(
            mirror(&addr("/ip4/198.18.0.1/tcp/4001/p2p-circuit"), &quic),
            None
        );
        // A relay's circuit is not a listener of ours on that transport.
        let circuit = addr(
            "/ip4/198.18.0.1/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        );
        assert_eq!(mirror(&seen_tcp, &circuit), None);
        assert_eq!(mirror(&addr("/ip4/198.18.0.11/tcp/1/ws"), &quic), None);
        assert_eq!(
            mirror(&seen_tcp, &addr("/ip4/10.0.1.2/udp/1/webrtc-direct")),
            None
        );
    }

    #[test]
    fn each_candidate_is_made_once_and_never_from_its_own_kind() {
        let mut behaviour = Behaviour {
            listeners: vec![
                addr("/ip4/10.0.1.2/udp/4242/quic-v1"),
                addr("/ip4/10.0.1.2/tcp/4343"),
            ],
            ..Behaviour::default()
        };
        behaviour.observed(&addr("/ip4/198.18.0.11/tcp/51000"));
        behaviour.observed(&addr("/ip4/198.18.0.11/tcp/51001"));
        assert_eq!(
            behaviour.queued,
            vec![addr("/ip4/198.18.0.11/udp/4242/quic-v1")]
        );
        // The QUIC candidate made here, seen again, makes no TCP one.
        behaviour.observed(&addr("/ip4/198.18.0.11/udp/4242/quic-v1"));
        assert_eq!(behaviour.queued.len(), 1);
        for i in 0..200u16 {
            behaviour.observed(&addr(&format!("/ip4/198.18.1.{}/tcp/1", i % 250)));
        }
        assert!(behaviour.derived.len() <= MAX_DERIVED);
    }
}
