//! Port memory: the listen ports a node got, kept so a restarted service — and, through
//! `<home>/listen.json`, a restarted controller — listens where friends' copies of its
//! addresses point. Port 0 in the configuration is pinned to the port the first node got.

use std::path::{Path, PathBuf};

/// What `listen_memory` holds: the configured listen addresses and the ones pinned for them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ListenMemory {
    configured: Vec<String>,
    pinned: Vec<String>,
}

/// The pinned listen addresses kept in `path`, if they are for the `configured` ones and
/// make sense: one dialable multiaddr per configured address. Anything else (a damaged or
/// hand-edited file) is ignored with a warning, and the configured addresses are used.
pub(super) fn read_listen_memory(path: &Path, configured: &[String]) -> Option<Vec<String>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!(
                "cannot read {} ({err}); listening on the configured addresses",
                path.display()
            );
            return None;
        }
    };
    let memory = match serde_json::from_slice::<ListenMemory>(&bytes) {
        Ok(memory) => memory,
        Err(err) => {
            tracing::warn!(
                "{} is damaged ({err}); listening on the configured addresses",
                path.display()
            );
            return None;
        }
    };
    if memory.configured != configured {
        return None; // the configuration changed: the old ports mean nothing
    }
    let valid = memory.pinned.len() == configured.len()
        && memory
            .pinned
            .iter()
            .all(|a| a.parse::<multiaddr::Multiaddr>().is_ok());
    if !valid {
        tracing::warn!(
            "{} does not hold one address per configured listen address ({:?}); listening on the configured addresses",
            path.display(),
            memory.pinned
        );
        return None;
    }
    Some(memory.pinned)
}

/// Writes `listen.json` on the blocking pool (it fsyncs); the caller goes on meanwhile.
/// Written once per controller run, so writes cannot race.
pub(super) fn write_listen_memory(path: PathBuf, configured: Vec<String>, pinned: Vec<String>) {
    let memory = ListenMemory { configured, pinned };
    tokio::task::spawn_blocking(move || {
        let written = serde_json::to_vec_pretty(&memory)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                whatnext_home::files::write_private_file(&path, &bytes).map_err(|e| e.to_string())
            });
        if let Err(err) = written {
            tracing::warn!(
                "could not remember the listen ports in {} ({err}); the next run may get new ones",
                path.display()
            );
        }
    });
}

/// Replaces port 0 in each configured address by the port the node actually got on a
/// reported address of the same shape (same protocols; same IP unless unspecified).
pub fn pin_ports(configured: &[String], reported: &[String]) -> Vec<String> {
    use multiaddr::{Multiaddr, Protocol};
    fn port(p: &Protocol) -> Option<u16> {
        match p {
            Protocol::Tcp(port) | Protocol::Udp(port) => Some(*port),
            _ => None,
        }
    }
    fn unspecified(p: &Protocol) -> bool {
        match p {
            Protocol::Ip4(ip) => ip.is_unspecified(),
            Protocol::Ip6(ip) => ip.is_unspecified(),
            _ => false,
        }
    }
    let configured_addrs: Vec<Multiaddr> =
        configured.iter().filter_map(|a| a.parse().ok()).collect();
    // A reported address on a port that is configured explicitly belongs to that listener.
    let explicit_ports: Vec<u16> = configured_addrs
        .iter()
        .flat_map(|a| a.iter().filter_map(|p| port(&p)))
        .filter(|p| *p != 0)
        .collect();
    let reported: Vec<Multiaddr> = reported
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .filter(|a| {
            !a.iter()
                .filter_map(|p| port(&p))
                .any(|p| explicit_ports.contains(&p))
        })
        .collect();
    configured
        .iter()
        .map(|text| {
            let Ok(addr) = text.parse::<Multiaddr>() else {
                return text.clone();
            };
            if !addr.iter().any(|p| port(&p) == Some(0)) {
                return text.clone();
            }
            let matches = |candidate: &Multiaddr| {
                // A WebRTC listener reports its certificate's hash after the configured parts.
                let a: Vec<_> = addr.iter().collect();
                let b: Vec<_> = candidate
                    .iter()
                    .filter(|p| !matches!(p, Protocol::Certhash(_)))
                    .collect();
                a.len() == b.len()
                    && a.iter().zip(&b).all(|(want, got)| {
                        std::mem::discriminant(want) == std::mem::discriminant(got)
                            && (want == got || unspecified(want) || port(want) == Some(0))
                    })
            };
            let Some(found) = reported.iter().find(|c| matches(c)) else {
                return text.clone();
            };
            addr.iter()
                .zip(found.iter())
                .map(|(want, got)| if port(&want) == Some(0) { got } else { want })
                .collect::<Multiaddr>()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_pinned_to_the_port_the_node_got() {
        let configured = vec![
            "/ip4/0.0.0.0/tcp/0".to_string(),
            "/ip4/127.0.0.1/udp/0/quic-v1".to_string(),
            "/ip4/127.0.0.1/tcp/4001".to_string(),
        ];
        let reported = vec![
            "/ip4/127.0.0.1/udp/5555/quic-v1".to_string(),
            "/ip4/127.0.0.1/tcp/4001".to_string(),
            "/ip4/192.0.2.7/tcp/6666".to_string(),
            "/ip4/127.0.0.1/tcp/6666".to_string(),
        ];
        assert_eq!(
            pin_ports(&configured, &reported),
            vec![
                "/ip4/0.0.0.0/tcp/6666".to_string(),
                "/ip4/127.0.0.1/udp/5555/quic-v1".to_string(),
                "/ip4/127.0.0.1/tcp/4001".to_string(),
            ]
        );
    }

    #[test]
    fn a_webrtc_listener_is_pinned_without_its_certificate_hash() {
        let configured = vec![
            "/ip4/0.0.0.0/udp/0/quic-v1".to_string(),
            "/ip4/0.0.0.0/udp/0/webrtc-direct".to_string(),
        ];
        let reported = vec![
            "/ip4/127.0.0.1/udp/5555/quic-v1".to_string(),
            "/ip4/127.0.0.1/udp/7777/webrtc-direct/certhash/uEiDOF8okI1yxc-GnaUzwLabIMbxIGrwKOxMMjKJLR_2hrA".to_string(),
        ];
        assert_eq!(
            pin_ports(&configured, &reported),
            vec![
                "/ip4/0.0.0.0/udp/5555/quic-v1".to_string(),
                "/ip4/0.0.0.0/udp/7777/webrtc-direct".to_string(),
            ]
        );
    }
}
