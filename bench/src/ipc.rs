//! IPC round trips: the raw blocking-pipe floor, the service alone, and the full controller
//! path (API-side client → supervisor task → pipe → service → pipe → supervisor → client).

use std::{
    io::{Read, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use whatnext_core::{
    state::StateHandle,
    supervisor::{self, RestartPolicy, ServiceClient, ServiceSpec},
};
use whatnext_protocol::{
    frame::encode_json,
    ipc::{Command as Cmd, Envelope, Event, NodeConfig},
    state::{AppState, NodeStatus},
};

use crate::stats::summary;

const WARMUP: usize = 1_000;

/// Where the two ends of a round trip run: `(this process, the child)`. Pinning each end
/// to a CPU makes "across cores" and "one core" mean exactly that, instead of whatever the
/// scheduler's wake-affinity heuristics choose run by run.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub this: usize,
    pub child: usize,
}

impl Placement {
    pub fn pin_self(&self) -> anyhow::Result<()> {
        pin(0, self.this)
    }
    pub fn pin_child(&self, pid: u32) -> anyhow::Result<()> {
        pin(pid, self.child)
    }
}

fn pin(pid: u32, cpu: usize) -> anyhow::Result<()> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(cpu)?;
    // Every thread of a process inherits the mask when it is set before they start; for a
    // running child, its main thread is the one that does the work here.
    sched_setaffinity(nix::unistd::Pid::from_raw(pid as i32), &set)?;
    Ok(())
}

fn ping_frame(id: u64) -> Vec<u8> {
    encode_json(&Envelope::request(id, Cmd::Ping)).unwrap_or_default()
}
fn pong_frame(id: u64) -> Vec<u8> {
    encode_json(&Envelope::request(id, Event::Pong)).unwrap_or_default()
}

fn read_frame(reader: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header)?;
    buf.resize(u32::from_be_bytes(header) as usize, 0);
    reader.read_exact(buf)
}

/// [`read_frame`] for the event-loop floor's tokio pipes.
async fn read_frame_async(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt as _;
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await?;
    buf.resize(u32::from_be_bytes(header) as usize, 0);
    reader.read_exact(buf).await?;
    Ok(())
}

/// Child side of the floor: echo a pong frame of the same size for every frame.
pub fn echo_child() -> anyhow::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let pong = pong_frame(1);
    let mut buf = Vec::new();
    while read_frame(&mut stdin, &mut buf).is_ok() {
        stdout.write_all(&pong)?;
        stdout.flush()?;
    }
    Ok(())
}

fn ping_pong(child: &mut Child, iters: usize) -> anyhow::Result<Vec<f64>> {
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut buf = Vec::new();
    let mut samples = Vec::with_capacity(iters);
    for i in 0..(iters + WARMUP) {
        let frame = ping_frame(i as u64 + 1_000_000);
        let t = Instant::now();
        stdin.write_all(&frame)?;
        read_frame(&mut stdout, &mut buf)?;
        if i >= WARMUP {
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(samples)
}

pub fn floor(iters: usize, placement: Placement) -> anyhow::Result<Value> {
    placement.pin_self()?;
    let me = std::env::current_exe()?;
    let mut child = Command::new(me)
        .arg("echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    placement.pin_child(child.id())?;
    let samples = ping_pong(&mut child, iters)?;
    let _ = child.kill();
    let _ = child.wait();
    Ok(summary(samples))
}

/// Blocking frames straight to `whatnext p2p`: the service's side of the round trip alone.
pub fn direct(whatnext: &Path, iters: usize, placement: Placement) -> anyhow::Result<Value> {
    placement.pin_self()?;
    let mut child = Command::new(whatnext)
        .arg("p2p")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} p2p", whatnext.display()))?;
    {
        let stdout = child.stdout.as_mut().context("stdout")?;
        let mut buf = Vec::new();
        read_frame(stdout, &mut buf)?; // ready: its runtime thread exists now
    }
    pin_all_threads(child.id(), placement.child)?;
    let samples = ping_pong(&mut child, iters)?;
    let _ = child.kill();
    let _ = child.wait();
    Ok(summary(samples))
}

fn initial_state() -> AppState {
    AppState::initial(std::process::id(), String::new(), String::new(), 0)
}

/// Starts the real supervisor (as `whatnext run` does) around a real service.
/// Pins every thread of a running process.
fn pin_all_threads(pid: u32, cpu: usize) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        if let Some(tid) = entry?.file_name().to_str().and_then(|t| t.parse().ok()) {
            pin(tid, cpu)?;
        }
    }
    Ok(())
}

async fn start_supervised(
    whatnext: &Path,
    placement: Placement,
) -> anyhow::Result<(ServiceClient, CancellationToken)> {
    let key = libp2p_identity::Keypair::generate_ed25519().to_protobuf_encoding()?;
    let spec = ServiceSpec {
        name: "main".into(),
        program: whatnext.to_path_buf(),
        node: NodeConfig {
            keypair: supervisor::encode_keypair(&key),
            listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
            bootstrap: vec![],
            relays: vec![],
            mdns: false,
            upnp: false,
            agent_version: "whatnext-bench".into(),
            ping_interval_ms: 5_000,
            webrtc_certificate: None,
        },
        policy: RestartPolicy::default(),
        listen_memory: None,
        webrtc_certificate: None,
        helpers: None,
    };
    let state = StateHandle::new(initial_state());
    let shutdown = CancellationToken::new();
    let (sup, client) = supervisor::supervisor(spec, state.clone(), shutdown.clone());
    tokio::spawn(sup.run());
    let mut rx = state.subscribe();
    let running = tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|s| s.node == NodeStatus::Running),
    )
    .await
    .context("service did not start")??
    .clone();
    pin_all_threads(running.service.pid.context("service pid")?, placement.child)?;
    Ok((client, shutdown))
}

fn controller_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // The same runtime as `whatnext run`.
    Ok(whatnext_controller::runtime()?)
}

pub fn through_controller(
    whatnext: &Path,
    iters: usize,
    placement: Placement,
) -> anyhow::Result<Value> {
    placement.pin_self()?;
    controller_runtime()?.block_on(async {
        let (client, shutdown) = start_supervised(whatnext, placement).await?;
        // A task of the runtime, as the API's handlers are (not the `block_on` future, which
        // the runtime polls only after a look at the driver).
        let samples = tokio::spawn(async move {
            let mut samples = Vec::with_capacity(iters);
            for i in 0..(iters + WARMUP) {
                let t = Instant::now();
                match client.request(Cmd::Ping, Duration::from_secs(5)).await? {
                    Event::Pong => {}
                    other => bail!("unexpected reply {other:?}"),
                }
                if i >= WARMUP {
                    samples.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            anyhow::Ok(samples)
        })
        .await??;
        shutdown.cancel();
        Ok(summary(samples))
    })
}

/// The hop audio takes between controller and service: `groups` answers of one 256 KiB
/// group each (`respond`, the raw bytes attached) written through the real supervisor to a
/// real service, which reads and decodes each (and drops it: no request waits for it),
/// then a ping whose pong says all were read. One way, one pipe, both processes.
pub fn pipe_hop(whatnext: &Path, groups: usize, placement: Placement) -> anyhow::Result<Value> {
    const GROUP: usize = 256 * 1024;
    placement.pin_self()?;
    controller_runtime()?.block_on(async {
        let (client, shutdown) = start_supervised(whatnext, placement).await?;
        let data = bytes::Bytes::from(vec![0x5a; GROUP]);
        let t = Instant::now();
        for request_id in 0..groups as u64 {
            let body = json!({"type": "group", "index": request_id});
            let data = data.clone();
            client
                .notify(Cmd::Respond {
                    request_id: u64::MAX - request_id,
                    body,
                    data,
                })
                .await;
        }
        match client.request(Cmd::Ping, Duration::from_secs(60)).await? {
            Event::Pong => {}
            other => bail!("unexpected reply {other:?}"),
        }
        let secs = t.elapsed().as_secs_f64();
        shutdown.cancel();
        let mb = (groups * GROUP) as f64 / 1e6;
        Ok(json!({
            "groups": groups,
            "seconds": secs,
            "mb_per_s": mb / secs,
            "us_per_group": secs * 1e6 / groups as f64,
        }))
    })
}

/// Many requests in flight at once through the controller path.
pub fn pipelined(whatnext: &Path, total: usize, placement: Placement) -> anyhow::Result<Value> {
    const IN_FLIGHT: usize = 64;
    placement.pin_self()?;
    controller_runtime()?.block_on(async {
        let (client, shutdown) = start_supervised(whatnext, placement).await?;
        let t = Instant::now();
        let per_task = total / IN_FLIGHT;
        let tasks: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        client.request(Cmd::Ping, Duration::from_secs(10)).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let secs = t.elapsed().as_secs_f64();
        shutdown.cancel();
        Ok(json!({"messages": per_task * IN_FLIGHT, "seconds": secs, "msgs_per_sec": (per_task * IN_FLIGHT) as f64 / secs}))
    })
}

/// Child side of the event-loop floor: the echo as a minimal tokio loop on async pipes.
pub fn echo_loop_child() -> anyhow::Result<()> {
    use std::os::fd::AsFd as _;
    use tokio::io::AsyncWriteExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
        let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
        let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(stdin)?;
        let mut writer = tokio::net::unix::pipe::Sender::from_owned_fd(stdout)?;
        let pong = pong_frame(1);
        let mut buf = Vec::new();
        while read_frame_async(&mut reader, &mut buf).await.is_ok() {
            writer.write_all(&pong).await?;
        }
        Ok(())
    })
}

/// The event-loop floor: the same frames, both ends a minimal tokio loop (epoll) on the
/// same pipes — what any event-driven design pays before doing any work of its own. On one
/// core each end makes three system calls a round trip (`epoll_wait`, `read`, `write`)
/// where the blocking floor makes two.
pub fn loop_floor(iters: usize, placement: Placement) -> anyhow::Result<Value> {
    use tokio::io::AsyncWriteExt as _;
    placement.pin_self()?;
    let me = std::env::current_exe()?;
    let samples = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut child = tokio::process::Command::new(me)
                .arg("echo-loop")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let pid = child.id().context("child pid")?;
            let mut stdin = child.stdin.take().context("stdin")?;
            let mut stdout = child.stdout.take().context("stdout")?;
            // One round trip first: the child's runtime is up and can be pinned whole.
            stdin.write_all(&ping_frame(1)).await?;
            let mut buf = Vec::new();
            read_frame_async(&mut stdout, &mut buf).await?;
            pin_all_threads(pid, placement.child)?;
            let samples = tokio::spawn(async move {
                let mut samples = Vec::with_capacity(iters);
                for i in 0..(iters + WARMUP) {
                    let frame = ping_frame(i as u64 + 1_000_000);
                    let t = Instant::now();
                    stdin.write_all(&frame).await?;
                    read_frame_async(&mut stdout, &mut buf).await?;
                    if i >= WARMUP {
                        samples.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }
                anyhow::Ok(samples)
            })
            .await??;
            let _ = child.start_kill();
            anyhow::Ok(samples)
        })?;
    Ok(summary(samples))
}
