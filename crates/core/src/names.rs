//! Names in addresses: `/dns4/…`, `/dns6/…`, `/dns/…` and `/dnsaddr/…` in the configured
//! relays and bootstrap nodes, links and `connect`, resolved by the controller. The network
//! service cannot resolve them — its sandbox forbids reading `/etc/resolv.conf` and
//! `/etc/hosts` — so it is given the addresses the names stand for. Host names go to the
//! system resolver (getaddrinfo), so `/etc/hosts` and the machine's DNS settings apply;
//! `/dnsaddr/` names are TXT records, looked up with the DNS servers of `/etc/resolv.conf`.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use multiaddr::{Multiaddr, Protocol};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::state::StateHandle;

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

/// How soon the names of the helpers are resolved again while one does not resolve or its
/// node is not connected — the name may point elsewhere now (a relay moved), or the network
/// was not up yet — at first; the wait doubles up to [`RESOLVE_RETRY`].
pub const RESOLVE_FIRST_RETRY: Duration = Duration::from_secs(5);

/// The longest wait between resolutions while a named helper fails.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(30);

/// How soon they are resolved again while all is well (as a DNS record's life would be).
pub const RESOLVE_REFRESH: Duration = Duration::from_secs(10 * 60);

/// The bootstrap and relay nodes as the network service is given them: names resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HelperAddrs {
    pub bootstrap: Vec<String>,
    pub relays: Vec<String>,
}

impl HelperAddrs {
    /// These addresses without the named ones: what can be given before any name resolves.
    pub fn without_names(&self) -> HelperAddrs {
        let unnamed = |addrs: &[String]| addrs.iter().filter(|a| !is_named(a)).cloned().collect();
        HelperAddrs {
            bootstrap: unnamed(&self.bootstrap),
            relays: unnamed(&self.relays),
        }
    }
}

/// Whether `addr` starts with a name (`/dns…/`), which the controller must resolve.
pub fn is_named(addr: &str) -> bool {
    addr.starts_with("/dns")
}

/// Resolves the names among the `configured` helpers in the background — a slow or dead
/// DNS server never holds the start — and again while a named helper does not resolve or is
/// not connected (after [`RESOLVE_FIRST_RETRY`], doubling up to [`RESOLVE_RETRY`]), else
/// every [`RESOLVE_REFRESH`]. The receiver has the addresses to give the network service (at
/// first those without names); a name that does not resolve is the `error` of its helper
/// in `state` (so `status`, the view and `doctor` say why).
pub fn resolve_helpers(
    configured: HelperAddrs,
    state: StateHandle,
    shutdown: CancellationToken,
) -> watch::Receiver<HelperAddrs> {
    let (tx, rx) = watch::channel(configured.without_names());
    let named = configured
        .bootstrap
        .iter()
        .chain(&configured.relays)
        .any(|a| is_named(a));
    if !named {
        return rx;
    }
    tokio::spawn(async move {
        let mut slots: Vec<Slot> = configured
            .bootstrap
            .iter()
            .map(|addr| (false, addr))
            .chain(configured.relays.iter().map(|addr| (true, addr)))
            .map(|(relay, addr)| Slot {
                relay,
                addr: addr.clone(),
                resolved: if is_named(addr) {
                    Vec::new()
                } else {
                    vec![addr.clone()]
                },
            })
            .collect();
        // The reasons last written into the helpers, to clear them (and only them) once
        // the name resolves, and to log a reason once, not every round.
        let mut reasons: HashMap<String, String> = HashMap::new();
        let mut retry = RESOLVE_FIRST_RETRY;
        loop {
            let mut now: HashMap<String, String> = HashMap::new();
            // Each name on its own, published as it comes: a name a dead DNS server holds
            // for seconds does not hold the others.
            let mut lookups: futures::stream::FuturesUnordered<_> = slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| is_named(&slot.addr))
                .map(|(index, slot)| {
                    let addr = slot.addr.clone();
                    async move { (index, resolve_names(std::slice::from_ref(&addr)).await) }
                })
                .collect();
            while let Some((index, resolved)) = futures::StreamExt::next(&mut lookups).await {
                match resolved.unresolved.into_iter().next() {
                    // Its last addresses stay: the node is likelier still there than gone.
                    Some((addr, why)) => {
                        if reasons.get(&addr) != Some(&why) {
                            tracing::warn!("{addr}: {why}");
                        }
                        now.insert(addr, why);
                    }
                    None => slots[index].resolved = resolved.addrs,
                }
                publish(&tx, &slots);
            }
            state.update(|s| {
                let mut changed = false;
                for helper in s.helpers.iter_mut().filter(|h| is_named(&h.addr)) {
                    let error = match now.get(&helper.addr) {
                        Some(why) => Some(why.clone()),
                        // Resolved: a reason of ours goes; a failed dial's stays.
                        None if helper.error.is_some()
                            && helper.error == reasons.get(&helper.addr).cloned() =>
                        {
                            None
                        }
                        None => continue,
                    };
                    changed |= helper.error != error;
                    helper.error = error;
                }
                changed
            });
            reasons = now;
            let all_well = reasons.is_empty()
                && state
                    .snapshot()
                    .helpers
                    .iter()
                    .filter(|h| is_named(&h.addr))
                    .all(|h| h.connected);
            let wait = if all_well {
                retry = RESOLVE_FIRST_RETRY;
                RESOLVE_REFRESH
            } else {
                let wait = retry;
                retry = (retry * 2).min(RESOLVE_RETRY);
                wait
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => break,
            }
        }
    });
    rx
}

/// A configured helper address and what it stands for, as last resolved.
struct Slot {
    relay: bool,
    addr: String,
    resolved: Vec<String>,
}

/// Gives the service (through the supervisor) what `slots` stand for now, if that changed.
fn publish(tx: &watch::Sender<HelperAddrs>, slots: &[Slot]) {
    let of = |relay: bool| {
        slots
            .iter()
            .filter(|slot| slot.relay == relay)
            .flat_map(|slot| slot.resolved.iter().cloned())
            .collect()
    };
    let resolved = HelperAddrs {
        bootstrap: of(false),
        relays: of(true),
    };
    tx.send_if_modified(|given| {
        let changed = *given != resolved;
        if changed {
            tracing::info!(
                "helper nodes resolved: bootstrap {:?}, relays {:?}",
                resolved.bootstrap,
                resolved.relays
            );
            *given = resolved;
        }
        changed
    });
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
    if !addrs.iter().any(|a| is_named(a)) {
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

/// Most addresses one configured address may stand for: a `/dnsaddr/` tree could name
/// thousands, and each is a dial.
const MAX_ADDRS_PER_NAME: usize = 32;

/// Most `dnsaddr=` records read per name (libp2p's own resolver reads 16).
const MAX_DNSADDR_RECORDS: usize = 16;

/// How many `/dnsaddr/` names a record may lead through: records may point at other
/// names, and a loop of them must end.
const MAX_DNSADDR_DEPTH: usize = 4;

/// The addresses `addr`'s leading name stands for; `None` when it starts with no name. The
/// whole resolution — a `/dnsaddr/` tree included — gets [`RESOLVE_TIMEOUT`].
async fn resolve(addr: &Multiaddr) -> Result<Option<Vec<Multiaddr>>, String> {
    let name = match addr.iter().next() {
        Some(
            Protocol::Dns(name)
            | Protocol::Dns4(name)
            | Protocol::Dns6(name)
            | Protocol::Dnsaddr(name),
        ) => name.to_string(),
        _ => return Ok(None),
    };
    match tokio::time::timeout(RESOLVE_TIMEOUT, expand(addr.clone(), 0)).await {
        Err(_) => Err(format!(
            "{name} does not resolve (no answer within {RESOLVE_TIMEOUT:?}: is a DNS server reachable?)"
        )),
        Ok(outcome) => outcome.map(Some),
    }
}

/// The addresses `addr` stands for: its leading name resolved (`/dnsaddr/` records followed
/// up to [`MAX_DNSADDR_DEPTH`] names deep); `addr` itself when it starts with no name.
fn expand(
    addr: Multiaddr,
    depth: usize,
) -> futures::future::BoxFuture<'static, Result<Vec<Multiaddr>, String>> {
    Box::pin(async move {
        let mut parts = addr.iter();
        match parts.next() {
            Some(Protocol::Dnsaddr(name)) => {
                let rest: Multiaddr = parts.collect();
                expand_dnsaddr(&name, &rest, depth).await
            }
            Some(Protocol::Dns(name)) => lookup_ip(&name, true, true, parts.collect()).await,
            Some(Protocol::Dns4(name)) => lookup_ip(&name, true, false, parts.collect()).await,
            Some(Protocol::Dns6(name)) => lookup_ip(&name, false, true, parts.collect()).await,
            _ => Ok(vec![addr]),
        }
    })
}

/// `/dnsaddr/<name><rest>`: the addresses in the `dnsaddr=` TXT records at
/// `_dnsaddr.<name>` (the libp2p convention), each expanded in turn. When `rest` names a
/// peer (`/p2p/<id>`, perhaps followed by more, e.g. `/p2p-circuit`), only records ending
/// in that peer are kept, and what follows the peer is appended.
async fn expand_dnsaddr(
    name: &str,
    rest: &Multiaddr,
    depth: usize,
) -> Result<Vec<Multiaddr>, String> {
    if depth >= MAX_DNSADDR_DEPTH {
        return Err(format!(
            "/dnsaddr/{name}: its records lead through more than {MAX_DNSADDR_DEPTH} /dnsaddr/ names (a loop?)"
        ));
    }
    let peer_at = rest.iter().position(|p| matches!(p, Protocol::P2p(_)));
    let (wanted_end, tail): (Multiaddr, Multiaddr) = match peer_at {
        Some(at) => (
            rest.iter().take(at + 1).collect(),
            rest.iter().skip(at + 1).collect(),
        ),
        None => (Multiaddr::empty(), rest.clone()),
    };
    let mut found = Vec::new();
    let mut why_not = None;
    for record in dnsaddr_records(name).await? {
        if !record.ends_with(&wanted_end) {
            continue;
        }
        let full: Multiaddr = record.iter().chain(tail.iter()).collect();
        match expand(full, depth + 1).await {
            Ok(addrs) => {
                for addr in addrs {
                    if found.len() < MAX_ADDRS_PER_NAME && !found.contains(&addr) {
                        found.push(addr);
                    }
                }
            }
            Err(why) => why_not = Some(why),
        }
    }
    if found.is_empty() {
        return Err(why_not.unwrap_or_else(|| {
            let whose = if wanted_end.is_empty() {
                String::new()
            } else {
                format!(" for {wanted_end}")
            };
            format!("/dnsaddr/{name} has no dnsaddr= record{whose} at _dnsaddr.{name}")
        }));
    }
    Ok(found)
}

/// The addresses in the `dnsaddr=<multiaddr>` TXT records at `_dnsaddr.<name>`, looked up
/// with the system's DNS settings (`/etc/resolv.conf`); records that are not such are
/// skipped, as libp2p does.
async fn dnsaddr_records(name: &str) -> Result<Vec<Multiaddr>, String> {
    use hickory_resolver::{TokioResolver, proto::rr::RData};
    let resolver = TokioResolver::builder_tokio()
        .and_then(|builder| builder.build())
        .map_err(|err| {
            format!(
                "cannot look up /dnsaddr/{name}: the system's DNS settings cannot be read ({err})"
            )
        })?;
    // Fully qualified: the search domains of resolv.conf do not apply to a record name.
    let record_name = format!("_dnsaddr.{}.", name.trim_end_matches('.'));
    let lookup = resolver
        .txt_lookup(record_name.as_str())
        .await
        .map_err(|err| format!("/dnsaddr/{name} does not resolve: {err}"))?;
    let records = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => {
                // A TXT record is one or more strings of up to 255 bytes: one text.
                let text: Vec<u8> = txt
                    .txt_data
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                String::from_utf8(text)
                    .ok()?
                    .strip_prefix("dnsaddr=")?
                    .parse::<Multiaddr>()
                    .ok()
            }
            _ => None,
        })
        .take(MAX_DNSADDR_RECORDS)
        .collect();
    Ok(records)
}

/// `name` looked up with the system resolver (getaddrinfo: `/etc/hosts` and the machine's
/// DNS settings apply), each address of the wanted families followed by `rest`.
async fn lookup_ip(
    name: &str,
    want_v4: bool,
    want_v6: bool,
    rest: Multiaddr,
) -> Result<Vec<Multiaddr>, String> {
    let port = match rest.iter().next() {
        Some(Protocol::Tcp(port) | Protocol::Udp(port)) => port,
        _ => 0,
    };
    let found = tokio::net::lookup_host((name, port))
        .await
        .map_err(|err| format!("{name} does not resolve: {err}"))?;
    let mut addrs: Vec<Multiaddr> = Vec::new();
    for ip in found.map(|socket| socket.ip()) {
        let head = match ip {
            IpAddr::V4(ip) if want_v4 => Protocol::Ip4(ip),
            IpAddr::V6(ip) if want_v6 => Protocol::Ip6(ip),
            _ => continue,
        };
        let resolved: Multiaddr = std::iter::once(head).chain(rest.iter()).collect();
        if !addrs.contains(&resolved) {
            addrs.push(resolved);
        }
    }
    if addrs.is_empty() {
        let family = if want_v4 { "IPv4" } else { "IPv6" };
        return Err(format!("{name} has no {family} address"));
    }
    Ok(addrs)
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
            // No DNS server answers in the build sandbox or the lab's namespaces.
            format!("/dnsaddr/bootstrap.invalid/p2p/{PEER}"),
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
        assert!(
            resolved.unresolved[0]
                .1
                .contains("/dnsaddr/bootstrap.invalid"),
            "{resolved:?}"
        );
        assert!(
            resolved.unresolved[1].1.contains("nowhere.invalid"),
            "{resolved:?}"
        );
    }
}
