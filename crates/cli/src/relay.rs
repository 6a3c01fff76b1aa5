//! `whatnext relay`: run the public helper node in the foreground.

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Args;
use whatnext_home::{Home, identity};
use whatnext_p2p::{
    guest_tunnel::TunnelLimits,
    relay_node::{GuestHttp, RelayLimits, RelayOptions, run_relay},
};

#[derive(Args)]
pub struct RelayArgs {
    /// Multiaddr to listen on (repeatable). Default: TCP 4001, QUIC 4001 and WebSocket 4002
    /// on all interfaces.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// The relay's key (created when missing, mode 0600); keeps its peer id, and so the
    /// addresses in everyone's config, stable. Default: <home>/relay.key
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Peers that may hold a reservation at once.
    #[arg(long, default_value_t = RelayLimits::default().max_reservations)]
    max_reservations: usize,
    /// Circuits relayed at once.
    #[arg(long, default_value_t = RelayLimits::default().max_circuits)]
    max_circuits: usize,
    /// Circuits relayed at once to or from one peer: a host whose friends all join its
    /// session through the relay holds one per friend.
    #[arg(long, default_value_t = RelayLimits::default().max_circuits_per_peer)]
    max_circuits_per_peer: usize,
    /// Longest life of one relayed circuit, seconds.
    #[arg(long, default_value_t = RelayLimits::default().max_circuit_duration.as_secs())]
    max_circuit_secs: u64,
    /// Most bytes relayed per circuit.
    #[arg(long, default_value_t = RelayLimits::default().max_circuit_bytes)]
    max_circuit_bytes: u64,
    /// Most bytes a second relayed to and from one peer, each way, over all its circuits
    /// together (a stream over it waits; it is not cut). 0: no cap.
    #[arg(long, default_value_t = RelayLimits::default().max_peer_bytes_per_sec)]
    max_peer_bytes_per_sec: u64,
    /// Also answer AutoNAT probes for private addresses (a LAN or a test lab).
    #[arg(long)]
    allow_private: bool,
    /// Serve hosts' guest pages on this TCP port, for guests off their LAN (`session guests
    /// ID on --relay` on the host). 0 picks a free port.
    #[arg(long, value_name = "PORT")]
    guest_http: Option<u16>,
    /// How guests reach that port, e.g. `http://relay.example.org:8080` (default: the first
    /// --listen address's IP and the port).
    #[arg(long, value_name = "URL", requires = "guest_http")]
    guest_url: Option<String>,
}

const DEFAULT_LISTEN: [&str; 3] = [
    "/ip4/0.0.0.0/tcp/4001",
    "/ip4/0.0.0.0/udp/4001/quic-v1",
    "/ip4/0.0.0.0/tcp/4002/ws",
];

pub fn run(home: &Home, args: RelayArgs) -> anyhow::Result<()> {
    let listen_text: Vec<String> = if args.listen.is_empty() {
        DEFAULT_LISTEN.iter().map(|s| s.to_string()).collect()
    } else {
        args.listen
    };
    let listen = listen_text
        .iter()
        .map(|a| {
            a.parse().with_context(|| {
                format!("--listen {a:?} is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/4001)")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key_path = args
        .identity
        .unwrap_or_else(|| home.dir().join("relay.key"));
    if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let identity = identity::load_or_create_at(&key_path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the relay's async runtime")?;
    let guest_http = match args.guest_http {
        Some(port) => {
            // The first listen address's IP, or every interface.
            let ip = listen_text
                .first()
                .and_then(|addr| {
                    let parts: Vec<&str> = addr.split('/').collect();
                    match parts.get(1..3) {
                        Some(["ip4" | "ip6", ip]) => ip.parse().ok(),
                        _ => None,
                    }
                })
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            let bind = std::net::SocketAddr::new(ip, port);
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(bind))
                .with_context(|| format!("cannot listen for guests on {bind}"))?;
            let bound = listener.local_addr().context("the guest port")?;
            let shown = if ip.is_unspecified() {
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
            } else {
                bound
            };
            let base = args
                .guest_url
                .map(|u| u.trim_end_matches('/').to_string())
                .unwrap_or_else(|| format!("http://{shown}"));
            println!("Guest pages at {base}/g/…");
            Some(GuestHttp {
                listener,
                base,
                limits: TunnelLimits::default(),
            })
        }
        None => None,
    };
    let options = RelayOptions {
        keypair: identity.keypair,
        listen,
        limits: RelayLimits {
            max_reservations: args.max_reservations,
            max_circuits: args.max_circuits,
            max_circuits_per_peer: args.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(args.max_circuit_secs),
            max_circuit_bytes: args.max_circuit_bytes,
            max_peer_bytes_per_sec: args.max_peer_bytes_per_sec,
        },
        allow_private: args.allow_private,
        guest_http,
    };
    whatnext_p2p::init_stderr_logging(true);
    println!(
        "WhatNext relay {} (key {}). Give peers one of these addresses (config.toml `relays`/`bootstrap`):",
        identity.peer_id,
        key_path.display()
    );
    runtime.block_on(run_relay(
        options,
        |addr| {
            println!("{addr}");
            let _ = std::io::stdout().flush();
        },
        stop_signal(),
    ))
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
