//! `whatnext`: one binary for every role. `run` is the controller, `p2p` the network service
//! it spawns, and the other commands are clients of the running controller's API.

mod client;
mod status;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use whatnext_controller::{Home, RunFlags};

use crate::client::Client;

#[derive(Parser)]
#[command(
    name = "whatnext",
    version,
    about = "Collaborative playlists, peer to peer."
)]
struct Cli {
    /// The WhatNext home directory (identity, store, logs). Default: the platform data dir.
    #[arg(long, global = true, env = "WHATNEXT_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the controller (and its network service) in the foreground.
    Run(RunArgs),
    /// Show the running node: peer id, addresses, service, connections.
    Status {
        /// Print the full state as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a peer by multiaddr (ending in /p2p/<peer id>) and wait until connected.
    Connect {
        /// e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW…
        addr: String,
        /// Seconds to wait for the connection.
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        timeout: f64,
        #[arg(long)]
        json: bool,
    },
    /// Internal: the network service started by `run`; speaks frames on stdin/stdout.
    #[command(hide = true)]
    P2p,
}

#[derive(Args)]
struct RunArgs {
    /// Multiaddr to listen on (repeatable). Default: TCP and QUIC on all interfaces, port 0.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Do not open the view in a browser.
    #[arg(long)]
    no_browser: bool,
    /// Turn off mDNS discovery on the local network.
    #[arg(long)]
    no_mdns: bool,
    /// Port of the loopback API and view (default: any free port).
    #[arg(long, value_name = "PORT")]
    api_port: Option<u16>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Commands::P2p = cli.command {
        whatnext_p2p::run()?;
        return Ok(ExitCode::SUCCESS);
    }
    let home = Home::resolve(cli.home)?;
    match cli.command {
        Commands::P2p => unreachable!("handled above"),
        Commands::Run(args) => {
            let flags = RunFlags {
                listen: args.listen,
                no_mdns: args.no_mdns,
                no_browser: args.no_browser,
                api_port: args.api_port,
            };
            whatnext_controller::run(home, flags)?;
        }
        Commands::Status { json } => {
            let client = Client::for_home(&home)?;
            let state: serde_json::Value = client.get("/api/state", Duration::from_secs(10))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&state)?);
            } else {
                let state = serde_json::from_value(state)?;
                print!("{}", status::render(&state));
            }
        }
        Commands::Connect {
            addr,
            timeout,
            json,
        } => {
            let client = Client::for_home(&home)?;
            let body = serde_json::json!({ "addr": addr, "timeout_secs": timeout });
            // The HTTP wait is a little longer than the dial's, so the dial's own error wins.
            let wait = Duration::from_secs_f64(timeout.max(0.0) + 5.0);
            let reply: serde_json::Value = client.post("/api/connect", &body, wait)?;
            if json {
                println!("{reply}");
            } else {
                let peer = reply["peer_id"].as_str().unwrap_or("?");
                let via = reply["addr"].as_str().unwrap_or("?");
                println!("connected to {peer} via {via}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
