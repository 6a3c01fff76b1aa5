//! The baseline of the `transfer` figure: the same bytes copied over one plain libp2p stream
//! (TCP, Noise, Yamux on loopback, as between two WhatNext nodes), in one process, with no
//! pipe, no JSON and no verification. What the blob protocol costs beyond the connection.
//! `to_file` also writes what arrives to a file and syncs it, as a fetch must: what the
//! protocol costs beyond the connection and the disk.

use std::time::{Duration, Instant};

use futures::{AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use libp2p::{Multiaddr, StreamProtocol, SwarmBuilder, noise, swarm::SwarmEvent, tcp, yamux};
use serde_json::{Value, json};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/whatnext-bench/copy/1.0.0");

fn swarm() -> anyhow::Result<libp2p::Swarm<libp2p_stream::Behaviour>> {
    Ok(SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| libp2p_stream::Behaviour::new())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

pub fn run(mb: u64) -> anyhow::Result<Value> {
    let memory = copy(mb, false)?;
    let to_file = copy(mb, true)?;
    Ok(json!({
        "mb": mb,
        "seconds": memory["seconds"],
        "mb_per_s": memory["mb_per_s"],
        "to_file_seconds": to_file["seconds"],
        "to_file_mb_per_s": to_file["mb_per_s"],
    }))
}

fn copy(mb: u64, to_file: bool) -> anyhow::Result<Value> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut sender = swarm()?;
        let mut receiver = swarm()?;
        let mut incoming = receiver.behaviour().new_control().accept(PROTOCOL)?;
        let receiver_id = *receiver.local_peer_id();
        receiver.listen_on("/ip4/127.0.0.1/tcp/0".parse::<Multiaddr>()?)?;
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = receiver.select_next_some().await {
                break address;
            }
        };
        let mut control = sender.behaviour().new_control();
        sender.dial(addr)?;
        tokio::spawn(async move {
            loop {
                receiver.select_next_some().await;
            }
        });
        tokio::spawn(async move {
            loop {
                sender.select_next_some().await;
            }
        });
        let size = (mb * 1_000_000) as usize;
        let reader = tokio::spawn(async move {
            let (_, mut stream) = incoming
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("no stream"))?;
            let mut buffer = vec![0u8; 1 << 16];
            let mut total = 0usize;
            let dir = tempfile::tempdir()?;
            let mut file = if to_file {
                Some(std::fs::File::create(dir.path().join("copy"))?)
            } else {
                None
            };
            loop {
                let n = stream.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                if let Some(file) = &mut file {
                    std::io::Write::write_all(file, &buffer[..n])?;
                }
                total += n;
            }
            if let Some(file) = file {
                file.sync_all()?;
            }
            anyhow::Ok(total)
        });
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut stream = loop {
            match control.open_stream(receiver_id, PROTOCOL).await {
                Ok(stream) => break stream,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let t0 = Instant::now();
        stream.write_all(&bytes).await?;
        stream.close().await?;
        let got = reader.await??;
        let seconds = t0.elapsed().as_secs_f64();
        anyhow::ensure!(got == size, "copied {got} of {size} bytes");
        Ok(json!({"mb": mb, "seconds": seconds, "mb_per_s": size as f64 / 1e6 / seconds}))
    })
}
