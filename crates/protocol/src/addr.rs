//! One classifier of multiaddrs by reach: the only place that decides whether an address
//! is unspecified, loopback, on a LAN, public, or a relay circuit. Invites, the address
//! book, the doctor and the view ask it instead of matching substrings.

use std::net::{Ipv4Addr, Ipv6Addr};

use multiaddr::{Multiaddr, Protocol};

/// Who can dial an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrClass {
    /// `0.0.0.0` / `::`: a listener on every interface, not an address anyone can dial.
    Unspecified,
    /// This machine only.
    Loopback,
    /// A private, link-local or shared (carrier-grade NAT) range: the same network only.
    Lan,
    /// Anything else, DNS names included: reachable across the internet if not firewalled.
    Public,
    /// Through a relay (`…/p2p-circuit`): reachable wherever the relay is.
    Circuit,
}

impl AddrClass {
    /// Whether a friend elsewhere could dial it (given open ports).
    pub fn is_dialable(self) -> bool {
        !matches!(self, AddrClass::Unspecified)
    }
}

/// Classifies `addr`. A relay circuit is `Circuit` whatever the relay's own address is.
pub fn classify(addr: &Multiaddr) -> AddrClass {
    if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        return AddrClass::Circuit;
    }
    for protocol in addr.iter() {
        match protocol {
            Protocol::Ip4(ip) => return classify_ip4(ip),
            Protocol::Ip6(ip) => return classify_ip6(ip),
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_) => {
                return AddrClass::Public;
            }
            _ => {}
        }
    }
    // No host part (e.g. `/p2p/<id>` alone): nothing to dial directly.
    AddrClass::Unspecified
}

/// Classifies the text of a multiaddr; `None` when it does not parse.
pub fn classify_str(addr: &str) -> Option<AddrClass> {
    addr.parse::<Multiaddr>().ok().map(|a| classify(&a))
}

fn classify_ip4(ip: Ipv4Addr) -> AddrClass {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if ip.is_loopback() {
        AddrClass::Loopback
    } else if ip.is_private() || ip.is_link_local() || (a == 100 && (64..128).contains(&b)) {
        // 100.64.0.0/10 is carrier-grade NAT space: reachable only inside that network.
        AddrClass::Lan
    } else {
        AddrClass::Public
    }
}

fn classify_ip6(ip: Ipv6Addr) -> AddrClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_ip4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if ip.is_loopback() {
        AddrClass::Loopback
    } else if (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 {
        // Unique local (fc00::/7) and link-local (fe80::/10).
        AddrClass::Lan
    } else {
        AddrClass::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_typical_addresses() {
        let table = [
            ("/ip4/0.0.0.0/tcp/0", AddrClass::Unspecified),
            ("/ip6/::/udp/0/quic-v1", AddrClass::Unspecified),
            ("/ip4/127.0.0.1/tcp/4001", AddrClass::Loopback),
            ("/ip6/::1/tcp/4001", AddrClass::Loopback),
            ("/ip4/192.168.1.20/tcp/4001", AddrClass::Lan),
            ("/ip4/10.0.0.7/udp/4001/quic-v1", AddrClass::Lan),
            ("/ip4/172.16.5.4/tcp/1", AddrClass::Lan),
            ("/ip4/169.254.1.1/tcp/1", AddrClass::Lan),
            ("/ip4/100.64.3.2/tcp/1", AddrClass::Lan),
            ("/ip6/fd00::1/tcp/1", AddrClass::Lan),
            ("/ip6/fe80::1/tcp/1", AddrClass::Lan),
            ("/ip4/203.0.113.5/tcp/4001", AddrClass::Public),
            ("/ip4/198.18.0.1/tcp/4001", AddrClass::Public),
            ("/ip4/100.128.0.1/tcp/1", AddrClass::Public),
            ("/ip6/2001:db8::1/tcp/1", AddrClass::Public),
            ("/dns4/relay.example/tcp/4001", AddrClass::Public),
            (
                "/ip4/198.18.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
                AddrClass::Circuit,
            ),
            (
                "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
                AddrClass::Unspecified,
            ),
        ];
        for (addr, want) in table {
            assert_eq!(classify_str(addr), Some(want), "{addr}");
        }
        assert_eq!(classify_str("not an address"), None);
        assert!(!AddrClass::Unspecified.is_dialable());
        assert!(AddrClass::Circuit.is_dialable());
    }
}
