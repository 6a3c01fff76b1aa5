//! The WhatNext network service (`whatnext p2p`).
//!
//! A child process of the controller that runs one rust-libp2p node. It reads [`Command`]
//! frames on stdin and writes [`Event`] frames on stdout; its logs go to stderr, which the
//! controller re-emits. It holds no durable state and never opens a file — on Linux a
//! Landlock ruleset forbids it — so the controller can kill and restart it at any moment.
//!
//! When stdin reaches EOF (the controller exited, even by `kill -9`) the service exits:
//! no orphans.
//!
//! [`Command`]: whatnext_protocol::ipc::Command
//! [`Event`]: whatnext_protocol::ipc::Event

pub mod bandwidth_cap;
mod candidates;
mod codec;
mod gate;
pub mod guest_tunnel;
mod node;
pub mod relay_node;
mod sandbox;
mod service;

pub use libp2p::{Multiaddr, identity::Keypair};

use anyhow::Context as _;

/// Entry point of the `p2p` role. Blocks until the controller closes the pipe or says
/// `shutdown`.
pub fn run() -> anyhow::Result<()> {
    init_logging();
    // The sandbox goes up before the runtime starts, so no thread ever runs unsandboxed.
    sandbox::deny_filesystem();
    install_tls_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the network service's async runtime")?;
    runtime.block_on(service::serve())
}

/// WebRTC's DTLS asks rustls for the process's crypto provider, which rustls cannot pick
/// when both of its providers are compiled in (QUIC brings one, WebRTC the other): without
/// this, the first WebRTC connection panics its task and hangs.
fn install_tls_provider() {
    // Err only when one is installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn init_logging() {
    // No timestamps: the controller stamps the lines when it re-emits them. Plain text,
    // one event per line, level first, so the controller can re-emit at the same level.
    init_stderr_logging(false);
}

/// Logs to stderr at `RUST_LOG` (default: warnings, and our own info lines); `timestamps`
/// for a process that runs on its own (`whatnext relay`), in colour on a terminal.
pub fn init_stderr_logging(timestamps: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        // Kademlia warns "Failed to trigger bootstrap: No known peers" whenever a node with
        // no DHT peers (no bootstrap nodes: the usual case among friends) gets an address.
        .unwrap_or_else(|_| EnvFilter::new("warn,whatnext_p2p=info,libp2p_kad=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(timestamps && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if timestamps {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
}
