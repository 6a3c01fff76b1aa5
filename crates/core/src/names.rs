//! Names in addresses: `/dns4/…`, `/dns6/…` and `/dns/…` in the configured relays and
//! bootstrap nodes, resolved by the controller. The network service cannot resolve them —
//! its sandbox forbids reading `/etc/resolv.conf` and `/etc/hosts` — so it is given the
//! addresses the names stand for. The system resolver (getaddrinfo) is used, so `/etc/hosts`
//! and the machine's DNS settings apply.

use std::{net::IpAddr, time::Duration};

use multiaddr::{Multiaddr, Protocol};

/// How long a name may take to resolve: a dead DNS server must not hold the start.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Configured addresses with their names resolved.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resolved {
    /// Every address, each name replaced by the addresses it stands for (addresses without
    /// a name as they were; unreadable ones too, for the service to report).
    pub addrs: Vec<String>,
    /// The configured addresses whose name did not resolve, with why.
    pub unresolved: Vec<(String, String)>,
}

/// Resolves the names in `addrs` (see the module's documentation), all at once: a dead
/// DNS server costs [`RESOLVE_TIMEOUT`] once, not once per name.
pub async fn resolve_names(addrs: &[String]) -> Resolved {
    let lookups = addrs.iter().map(|text| async move {
        match text.parse::<Multiaddr>() {
            Ok(addr) => resolve(&addr).await,
            Err(_) => Ok(None),
        }
    });
    let outcomes = futures::future::join_all(lookups).await;
    let mut resolved = Resolved::default();
    for (text, outcome) in addrs.iter().zip(outcomes) {
        match outcome {
            Ok(None) => resolved.addrs.push(text.clone()),
            Ok(Some(found)) => resolved.addrs.extend(found.iter().map(ToString::to_string)),
            Err(why) => resolved.unresolved.push((text.clone(), why)),
        }
    }
    resolved
}

/// The addresses to dial for `addrs` (of a link or `connect`): names resolved; an error
/// naming why only when no address is left to dial.
pub async fn resolve_for_dial(addrs: Vec<String>) -> Result<Vec<String>, String> {
    if !addrs.iter().any(|a| a.starts_with("/dns")) {
        return Ok(addrs);
    }
    let resolved = resolve_names(&addrs).await;
    if resolved.addrs.is_empty() && !resolved.unresolved.is_empty() {
        let reasons: Vec<&str> = resolved
            .unresolved
            .iter()
            .map(|(_, why)| why.as_str())
            .collect();
        return Err(reasons.join("; "));
    }
    Ok(resolved.addrs)
}

/// The addresses `addr`'s leading name stands for; `None` when it starts with no name.
async fn resolve(addr: &Multiaddr) -> Result<Option<Vec<Multiaddr>>, String> {
    let mut parts = addr.iter();
    let (name, want_v4, want_v6) = match parts.next() {
        Some(Protocol::Dns(name)) => (name, true, true),
        Some(Protocol::Dns4(name)) => (name, true, false),
        Some(Protocol::Dns6(name)) => (name, false, true),
        Some(Protocol::Dnsaddr(name)) => {
            return Err(format!(
                "/dnsaddr/{name} needs TXT records, which WhatNext does not look up; use /dns4/ or /dns6/ with the port"
            ));
        }
        _ => return Ok(None),
    };
    let rest: Vec<Protocol<'_>> = parts.collect();
    let port = match rest.first() {
        Some(Protocol::Tcp(port) | Protocol::Udp(port)) => *port,
        _ => 0,
    };
    let lookup = tokio::net::lookup_host((name.as_ref(), port));
    let found = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => {
            return Err(format!(
                "{name} does not resolve (no answer within {RESOLVE_TIMEOUT:?}: is a DNS server reachable?)"
            ));
        }
        Ok(Err(err)) => return Err(format!("{name} does not resolve: {err}")),
        Ok(Ok(found)) => found,
    };
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for ip in found.map(|socket| socket.ip()) {
        let head = match ip {
            IpAddr::V4(ip) if want_v4 => Protocol::Ip4(ip),
            IpAddr::V6(ip) if want_v6 => Protocol::Ip6(ip),
            _ => continue,
        };
        let resolved: Multiaddr = std::iter::once(head).chain(rest.iter().cloned()).collect();
        if !addrs.contains(&resolved) {
            addrs.push(resolved);
        }
    }
    if addrs.is_empty() {
        let family = if want_v4 { "IPv4" } else { "IPv6" };
        return Err(format!("{name} has no {family} address"));
    }
    Ok(Some(addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    #[tokio::test]
    async fn a_dial_gets_addresses_or_why_there_are_none() {
        let named = format!("/dns4/localhost/tcp/4001/p2p/{PEER}/p2p-circuit");
        assert_eq!(
            resolve_for_dial(vec![named]).await,
            Ok(vec![format!(
                "/ip4/127.0.0.1/tcp/4001/p2p/{PEER}/p2p-circuit"
            )])
        );
        let plain = vec!["/ip4/10.0.0.1/tcp/1".to_string()];
        assert_eq!(resolve_for_dial(plain.clone()).await, Ok(plain));
        let nowhere = resolve_for_dial(vec!["/dns4/nowhere.invalid/tcp/1".into()]).await;
        assert!(
            nowhere
                .as_ref()
                .is_err_and(|why| why.contains("nowhere.invalid")),
            "{nowhere:?}"
        );
    }

    #[tokio::test]
    async fn names_become_addresses_and_the_rest_stays() {
        let addrs = vec![
            format!("/dns4/localhost/tcp/4001/p2p/{PEER}"),
            format!("/ip4/198.18.0.1/udp/4001/quic-v1/p2p/{PEER}"),
            "not an address".to_string(),
            format!("/dnsaddr/bootstrap.example/p2p/{PEER}"),
            // RFC 6761: `.invalid` never resolves.
            format!("/dns4/nowhere.invalid/tcp/4001/p2p/{PEER}"),
        ];
        let resolved = resolve_names(&addrs).await;
        assert_eq!(
            resolved.addrs,
            vec![
                format!("/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"),
                format!("/ip4/198.18.0.1/udp/4001/quic-v1/p2p/{PEER}"),
                "not an address".to_string(),
            ]
        );
        let unresolved: Vec<&str> = resolved
            .unresolved
            .iter()
            .map(|(a, _)| a.as_str())
            .collect();
        assert_eq!(unresolved, vec![addrs[3].as_str(), addrs[4].as_str()]);
        assert!(resolved.unresolved[0].1.contains("TXT"), "{resolved:?}");
        assert!(
            resolved.unresolved[1].1.contains("nowhere.invalid"),
            "{resolved:?}"
        );
    }
}
