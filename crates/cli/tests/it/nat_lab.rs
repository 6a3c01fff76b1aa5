//! The NAT lab: peers behind two different NATs meet through a relay, then hole-punch to a
//! direct connection; a third peer finds one of them by peer id alone through the DHT.
//!
//! Everything runs in network namespaces this test creates and deletes itself (a guard
//! deletes them even when the test fails): a "public" segment 198.18.0.0/24 (a bridge) with
//! the relay (198.18.0.1), two NAT routers (198.18.0.11, .12) and C (198.18.0.21); behind
//! each router one peer (A at 10.0.1.2, B at 10.0.2.2). The routers MASQUERADE outgoing
//! traffic and drop unsolicited incoming packets, as home routers do. Needs root; skipped
//! with a message when the kernel or the user may not create namespaces.
//!
//! `WHATNEXT_LAB_TRIES=N` sets how many fresh peers try hole punching per transport for the
//! success rate (default 20, as CI runs it; the report's figure is from 50), and
//! `WHATNEXT_LAB_DEBUG=1` prints B's invite and log there.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{Node, wait_until};
use serde_json::Value;

const PUBLIC_PREFIX: &str = "198.18.0";
const RELAY_IP: &str = "198.18.0.1";

/// Labs made so far by this process.
static LABS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Network namespaces, deleted on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Namespaces `names` with only loopback up, or why they cannot be made here.
    fn namespaces(tag: &str, names: &[&str]) -> Result<Lab, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root: network namespaces need CAP_SYS_ADMIN".into());
        }
        let mut lab = Lab {
            // Tests run in parallel in one process: each lab its own names.
            prefix: format!(
                "wn{tag}{}-{}",
                std::process::id(),
                LABS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            namespaces: vec![],
        };
        for name in names {
            let ns = lab.ns(name);
            run("ip", &["netns", "add", &ns])
                .map_err(|e| format!("the kernel refused a network namespace: {e}"))?;
            lab.namespaces.push(ns.clone());
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// Builds the lab, or says why it cannot be built here.
    fn up() -> Result<Lab, String> {
        if which("nft").is_none() {
            return Err("nft is missing (apt install nftables)".into());
        }
        let lab = Lab::namespaces("lab", &["inet", "relay", "nata", "a", "natb", "b", "c"])?;
        let inet = lab.ns("inet");
        run("ip", &["-n", &inet, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &inet, "link", "set", "br0", "up"])?;
        for (port, host, ifname, addr) in [
            ("vrelay", "relay", "eth0", format!("{RELAY_IP}/24")),
            ("vnata", "nata", "wan0", format!("{PUBLIC_PREFIX}.11/24")),
            ("vnatb", "natb", "wan0", format!("{PUBLIC_PREFIX}.12/24")),
            ("vc", "c", "eth0", format!("{PUBLIC_PREFIX}.21/24")),
        ] {
            let host_ns = lab.ns(host);
            run(
                "ip",
                &[
                    "-n", &inet, "link", "add", port, "type", "veth", "peer", "name", ifname,
                    "netns", &host_ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &inet, "link", "set", port, "master", "br0", "up"],
            )?;
            run("ip", &["-n", &host_ns, "addr", "add", &addr, "dev", ifname])?;
            run("ip", &["-n", &host_ns, "link", "set", ifname, "up"])?;
        }
        for (router, host, subnet) in [("nata", "a", 1), ("natb", "b", 2)] {
            let router_ns = lab.ns(router);
            let host_ns = lab.ns(host);
            run(
                "ip",
                &[
                    "-n", &router_ns, "link", "add", "lan0", "type", "veth", "peer", "name",
                    "eth0", "netns", &host_ns,
                ],
            )?;
            let gateway = format!("10.0.{subnet}.1");
            run(
                "ip",
                &[
                    "-n",
                    &router_ns,
                    "addr",
                    "add",
                    &format!("{gateway}/24"),
                    "dev",
                    "lan0",
                ],
            )?;
            run("ip", &["-n", &router_ns, "link", "set", "lan0", "up"])?;
            run(
                "ip",
                &[
                    "-n",
                    &host_ns,
                    "addr",
                    "add",
                    &format!("10.0.{subnet}.2/24"),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", &host_ns, "link", "set", "eth0", "up"])?;
            run(
                "ip",
                &["-n", &host_ns, "route", "add", "default", "via", &gateway],
            )?;
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &router_ns,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ],
            )?;
            lab.set_nat(router, "")?;
        }
        Ok(lab)
    }

    /// (Re)writes a router's rules: MASQUERADE out of wan0 (with `masquerade_options`, e.g.
    /// "fully-random" for a symmetric NAT), and nothing unsolicited in.
    fn set_nat(&self, router: &str, masquerade_options: &str) -> Result<(), String> {
        let rules = format!(
            "flush ruleset\n\
             table ip nat {{ chain postrouting {{ type nat hook postrouting priority 100; policy accept; oifname \"wan0\" masquerade {masquerade_options}; }}; }}\n\
             table ip filter {{ chain input {{ type filter hook input priority 0; policy accept; iifname \"wan0\" ct state new drop; }}; \
             chain forward {{ type filter hook forward priority 0; policy accept; iifname \"wan0\" ct state new drop; }}; }}\n"
        );
        run_with_stdin(
            "ip",
            &["netns", "exec", &self.ns(router), "nft", "-f", "-"],
            &rules,
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_with_stdin(program, args, "")
}

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `whatnext relay`, killed on drop.
struct Relay {
    child: Child,
    out: PathBuf,
}

impl Relay {
    fn start(netns: &str, dir: &Path) -> Relay {
        Relay::start_with(netns, dir, &[])
    }

    /// With more options for `whatnext relay` (e.g. its limits).
    fn start_with(netns: &str, dir: &Path, options: &[&str]) -> Relay {
        let out = dir.join("relay.out");
        let child = crate::support::command_in(Some(netns))
            .arg("--home")
            .arg(dir.join("relay-home"))
            .args([
                "relay",
                "--listen",
                &format!("/ip4/{RELAY_IP}/tcp/4001"),
                "--listen",
                &format!("/ip4/{RELAY_IP}/udp/4001/quic-v1"),
                "--allow-private",
                "--guest-http",
                "8080",
            ])
            .args(options)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("relay.out"))
            .stderr(std::fs::File::create(dir.join("relay.err")).expect("relay.err"))
            .spawn()
            .expect("whatnext relay starts");
        Relay { child, out }
    }

    /// The relay's TCP address with its peer id, as it printed it.
    fn tcp_addr(&self) -> String {
        self.addr("tcp/4001")
    }

    /// The relay's address on `transport` (e.g. "udp/4001/quic-v1") with its peer id.
    fn addr(&self, transport: &str) -> String {
        wait_until("the relay's addresses", crate::support::PATIENCE, || {
            std::fs::read_to_string(&self.out)
                .ok()?
                .lines()
                .find(|l| l.starts_with(&format!("/ip4/{RELAY_IP}/{transport}/p2p/")))
                .map(str::to_string)
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `run` on all interfaces, quiet on the LAN, with `helper` flags (e.g. `--relay ADDR`).
fn run_args<'a>(helper: &[&'a str]) -> Vec<&'a str> {
    let mut args = run_args_on(
        "/ip4/0.0.0.0/tcp/0",
        &["--listen", "/ip4/0.0.0.0/udp/0/quic-v1"],
    );
    args.extend_from_slice(helper);
    args
}

/// `run`, quiet on the LAN, listening on `listen` only, with `helper` flags.
fn run_args_on<'a>(listen: &'a str, helper: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--no-browser",
        "--no-mdns",
        "--no-upnp",
        "--no-register",
        "--listen",
        listen,
    ];
    args.extend_from_slice(helper);
    args
}

fn direct_connection_to(state: &Value, peer: &str) -> bool {
    Node::connections_to(state, peer)
        .iter()
        .any(|c| c["relayed"] == false)
}

/// Waits until `node` holds a reservation on its relay.
fn wait_for_reservation(node: &Node, what: &str) {
    node.wait_status(what, Duration::from_secs(30), |s| {
        s["relay_reservations"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
}

/// The connections to `peer` that go through a relay.
fn relayed_connections_to(state: &Value, peer: &str) -> Vec<Value> {
    Node::connections_to(state, peer)
        .into_iter()
        .filter(|c| c["relayed"] == true)
        .collect()
}

/// Opens `link` from `node`; returns the attempt (asserting it connected) and its wall time.
fn open(node: &Node, link: &str) -> (Value, Duration) {
    let started = Instant::now();
    let out = node.cli(&["open", "--wait", "--json", "--timeout", "30", link]);
    let took = started.elapsed();
    let attempt: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success() && attempt["status"] == "connected",
        "open {link} failed: {attempt}\n{}\n--- log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    (attempt, took)
}

/// The lab with a relay, and B behind its NAT with the relay's TCP address configured;
/// `None` where no lab can be made. Bound in this order, they are dropped in reverse: B,
/// the relay, the temp dir, then the lab's namespaces.
fn lab_with_b_on_the_relay() -> Option<(Lab, tempfile::TempDir, Relay, String, Node)> {
    let (lab, dir, relay) = with_relay(lab_or_skip()?, &[]);
    let relay_addr = relay.tcp_addr();
    let b = Node::spawn_in(
        Some(&lab.ns("b")),
        &dir.path().join("b"),
        &run_args(&["--relay", &relay_addr]),
    );
    Some((lab, dir, relay, relay_addr, b))
}

#[test]
fn peers_behind_two_nats_meet_through_the_relay_then_go_direct() {
    let Some((lab, dir, _relay, relay_addr, b)) = lab_with_b_on_the_relay() else {
        return;
    };
    // A needs no relay of its own: B's invite names B's relay. (Nor a DHT: it would connect
    // A to B before the test looks.)
    let ns_a = lab.ns("a");
    let a = Node::spawn_in(Some(&ns_a), &dir.path().join("a"), &run_args(&[]));
    let b_id = b.peer_id();
    a.wait_running();

    // B holds a reservation, and its invite carries the relay.
    wait_for_reservation(&b, "a relay reservation");
    let invite = b.invite();
    assert!(invite.contains("relay="), "{invite}");

    // A cannot reach B directly: B's private address is not routed, and B's router drops
    // what B did not ask for.
    let private_port = b.wait_running()["listen_addrs"]
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("/ip4/10.0.2.2/tcp/"))
        .expect("B listens on its LAN address")
        .to_string();
    for target in ["10.0.2.2", "198.18.0.12"] {
        let addr = format!("/ip4/{target}/tcp/{private_port}/p2p/{b_id}");
        let out = a.cli(&["connect", &addr, "--timeout", "3"]);
        assert!(!out.status.success(), "A reached B directly at {addr}");
    }

    // A opens B's invite: the direct step fails, the relay connects; then DCUtR punches a
    // hole and a direct connection appears.
    let (attempt, relayed_after) = open(&a, &invite);
    let steps = attempt["steps"].as_array().expect("steps");
    let relay_step = steps
        .iter()
        .find(|s| s["method"] == "relay")
        .unwrap_or_else(|| panic!("no relay step: {attempt}"));
    assert_eq!(relay_step["ok"], true, "{attempt}");
    assert!(
        attempt["addr"]
            .as_str()
            .is_some_and(|a| a.contains("/p2p-circuit")),
        "{attempt}"
    );
    let since_open = Instant::now();
    a.wait_status(
        "a direct (hole-punched) connection to B",
        Duration::from_secs(30),
        |s| direct_connection_to(s, &b_id),
    );
    let direct_after = relayed_after + since_open.elapsed();
    // B, the side that received the relayed connection, drove the punch and reports it.
    b.wait_status(
        "DCUtR's report of the punch",
        crate::support::PATIENCE,
        |s| s["hole_punches"]["succeeded"].as_u64() >= Some(1),
    );
    // AutoNAT: the relay tried to dial B back at its observed address; B's router dropped
    // it, so B knows it is private — and the doctor finds that fine, since B has a relay.
    b.wait_status("AutoNAT's verdict", Duration::from_secs(60), |s| {
        s["nat"] == "private"
    });
    let out = b.cli(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    let check = |id: &str| {
        report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id).cloned())
            .unwrap_or_else(|| panic!("no {id} check: {report}"))
    };
    assert_eq!(check("nat")["status"], "ok", "{report}");
    assert_eq!(check("relay")["status"], "ok", "{report}");
    // The traffic moves to the direct path: the relayed connection is closed on both sides
    // (after a grace for requests under way on it), the direct one stays.
    let a_id = a.peer_id();
    for (node, peer) in [(&a, &b_id), (&b, &a_id)] {
        node.wait_status(
            "the relayed connection closed beside the direct one",
            Duration::from_secs(30),
            |s| {
                let connections = Node::connections_to(s, peer);
                !connections.is_empty() && connections.iter().all(|c| c["relayed"] == false)
            },
        );
    }
    println!(
        "NAT lab: link → connected through the relay in {:.0} ms, → direct after {:.0} ms",
        relayed_after.as_secs_f64() * 1000.0,
        direct_after.as_secs_f64() * 1000.0
    );

    // C, on the public segment, knows only B's peer id: the DHT (served by the relay) has
    // B's addresses.
    let ns_c = lab.ns("c");
    let c = Node::spawn_in(
        Some(&ns_c),
        &dir.path().join("c"),
        &run_args(&["--bootstrap", &relay_addr]),
    );
    c.wait_running();
    let (attempt, _) = open(&c, &format!("whtnxt://connect/{b_id}"));
    let first = &attempt["steps"][0];
    assert_eq!(first["method"], "dht", "{attempt}");
    assert_eq!(first["ok"], true, "{attempt}");
    assert!(
        first["addrs"].as_array().is_some_and(|a| !a.is_empty()),
        "{attempt}"
    );

    // A symmetric NAT in front of B (a new port per destination): hole punching cannot work,
    // the relayed connection still does.
    lab.set_nat("natb", "fully-random")
        .expect("symmetric NAT rules");
    let late = Node::spawn_in(Some(&ns_a), &dir.path().join("late"), &run_args(&[]));
    late.wait_running();
    let (attempt, _) = open(&late, &invite);
    assert!(
        attempt["addr"]
            .as_str()
            .is_some_and(|a| a.contains("/p2p-circuit")),
        "{attempt}"
    );
    late.wait_status(
        "the relayed connection to B",
        crate::support::PATIENCE,
        |s| !relayed_connections_to(s, &b_id).is_empty(),
    );
    // B, the listener's side of the circuit, says so too (it once showed `relayed: false`
    // and transport "other": a circuit's remote address is only `/p2p/<peer>`).
    let late_id = late.peer_id();
    b.wait_status(
        "B's side of the relayed connection",
        crate::support::PATIENCE,
        |s| {
            relayed_connections_to(s, &late_id)
                .iter()
                .any(|c| c["transport"] == "tcp")
        },
    );
    // Not asserted: whether a punch fails depends on the kernel's port choice.
    std::thread::sleep(Duration::from_secs(5));
    let went_direct = late
        .status()
        .is_some_and(|s| direct_connection_to(&s, &b_id));
    println!("NAT lab, symmetric NAT at B: relayed connection up; direct after 5 s: {went_direct}");
    // The guards end every process, then the lab's namespaces go.
}

/// How many fresh peers punch at once (each a controller and a service: a few at a time
/// keep two cores from timing the punches out).
const PUNCH_BATCH: usize = 4;

/// Hole punching, per transport: fresh peers behind A's NAT — each a new node, so new NAT
/// mappings — open the invite of a B that has a reservation on the relay, connect through
/// the relay and must end with a direct connection. Each run uses one transport end to
/// end: B and the fresh peers listen only on it, and reach the relay (which listens on TCP
/// and QUIC) over it, so each side learns its public address on that transport. Both NATs
/// are port-preserving and drop what was not asked for. Prints the rate and the median
/// time from opening the link to the direct connection.
#[test]
fn hole_punching_ends_direct_over_tcp_and_over_quic() {
    let Some(lab) = lab_or_skip() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let tries: usize = std::env::var("WHATNEXT_LAB_TRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let ns_a = lab.ns("a");
    let mut failed = Vec::new();
    for (transport, listen, relay_transport) in [
        ("tcp", "/ip4/0.0.0.0/tcp/0", "tcp/4001"),
        ("quic", "/ip4/0.0.0.0/udp/0/quic-v1", "udp/4001/quic-v1"),
    ] {
        // A relay per transport: a relay takes at most 60 circuits a minute from one IP (all
        // of A's peers share their NAT's), and a run of 50 per transport would reach that.
        let relay_dir = dir.path().join(format!("relay-{transport}"));
        std::fs::create_dir_all(&relay_dir).expect("the relay's directory");
        let relay = Relay::start(&lab.ns("relay"), &relay_dir);
        let relay_addr = relay.addr(relay_transport);
        let b = Node::spawn_in(
            Some(&lab.ns("b")),
            &dir.path().join(format!("b-{transport}")),
            &run_args_on(listen, &["--relay", &relay_addr]),
        );
        let b_id = b.peer_id();
        wait_for_reservation(&b, "a relay reservation");
        let invite = b.invite();
        if std::env::var_os("WHATNEXT_LAB_DEBUG").is_some() {
            eprintln!("B's invite: {invite}");
        }
        let mut upgrade_ms = Vec::new();
        let all: Vec<usize> = (0..tries).collect();
        for batch in all.chunks(PUNCH_BATCH) {
            let outcomes: Vec<Result<f64, String>> = std::thread::scope(|scope| {
                let punches: Vec<_> = batch
                    .iter()
                    .map(|i| {
                        let home = dir.path().join(format!("{transport}-{i}"));
                        let (ns_a, invite, b_id) = (&ns_a, &invite, &b_id);
                        scope
                            .spawn(move || punch_once(ns_a, &home, listen, invite, b_id, transport))
                    })
                    .collect();
                punches
                    .into_iter()
                    .map(|p| p.join().unwrap_or_else(|_| Err("the try panicked".into())))
                    .collect()
            });
            for outcome in outcomes {
                match outcome {
                    Ok(ms) => upgrade_ms.push(ms),
                    Err(why) => failed.push(format!("{transport}: {why}")),
                }
            }
        }
        if std::env::var_os("WHATNEXT_LAB_DEBUG").is_some() {
            eprintln!("--- B's log ---\n{}", b.log());
        }
        upgrade_ms.sort_by(f64::total_cmp);
        println!(
            "NAT lab: hole punching over {transport}: {}/{tries} direct (port-preserving NATs, unsolicited packets dropped); median link → direct {:.0} ms, slowest {:.0} ms",
            upgrade_ms.len(),
            upgrade_ms
                .get(upgrade_ms.len() / 2)
                .copied()
                .unwrap_or(f64::NAN),
            upgrade_ms.last().copied().unwrap_or(f64::NAN),
        );
        // The goal is 95%: at most one failure in 20.
        assert!(
            upgrade_ms.len() * 100 >= tries * 95,
            "hole punching over {transport}: {}/{tries} direct; failures: {failed:#?}",
            upgrade_ms.len()
        );
    }
}

/// A fresh node in `ns` listening only on `listen` opens `invite` (connected through the
/// relay) and waits up to 15 s for a direct `transport` connection to `peer`: the time from
/// opening the link, in ms, or what went wrong.
fn punch_once(
    ns: &str,
    home: &Path,
    listen: &str,
    invite: &str,
    peer: &str,
    transport: &str,
) -> Result<f64, String> {
    let node = Node::spawn_in(Some(ns), home, &run_args_on(listen, &[]));
    node.wait_running();
    let (attempt, relayed_after) = open(&node, invite);
    if !attempt["addr"]
        .as_str()
        .is_some_and(|a| a.contains("/p2p-circuit"))
    {
        return Err(format!("connected without the relay: {attempt}"));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let direct = node.status().is_some_and(|s| {
            Node::connections_to(&s, peer)
                .iter()
                .any(|c| c["relayed"] == false && c["transport"] == transport)
        });
        if direct {
            return Ok((relayed_after + started.elapsed()).as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let connections = node
        .status()
        .map(|s| Value::from(Node::connections_to(&s, peer)))
        .unwrap_or_default();
    Err(format!(
        "no direct connection in 15 s; connections: {connections}"
    ))
}

#[test]
fn doctor_names_a_missing_network_as_the_cause() {
    let lab = match Lab::namespaces("off", &["offline"]) {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("SKIPPED: the offline check needs a network namespace: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ns = lab.ns("offline");
    // Default listen addresses (all interfaces): in a namespace with only loopback up.
    let node = Node::spawn_in(
        Some(&ns),
        &dir.path().join("home"),
        &[
            "run",
            "--no-browser",
            "--no-mdns",
            "--no-upnp",
            "--no-register",
        ],
    );
    node.wait_running();
    let out = node.cli(&["doctor", "--json"]);
    assert!(!out.status.success(), "doctor exits 1 when something fails");
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor --json is JSON");
    assert_eq!(report["status"], "fail", "{report}");
    let network = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == "network")
        .unwrap_or_else(|| panic!("no network check: {report}"));
    assert_eq!(network["status"], "fail", "{report}");
    assert!(
        report["summary"]
            .as_str()
            .is_some_and(|s| s.contains("no network connection")),
        "{report}"
    );
    assert!(network["advice"].as_str().is_some_and(|a| !a.is_empty()));

    // The same machine with the controller stopped: still a diagnosis, not an error.
    drop(node);
    let out =
        crate::support::whatnext_in(Some(&ns), &dir.path().join("home"), &["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor --json is JSON");
    assert_eq!(report["checks"][0]["id"], "controller", "{report}");
    assert!(
        report["checks"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["id"] == "network" && c["status"] == "fail")),
        "{report}"
    );
}

/// The lab, or `None` with a message where network namespaces cannot be made.
fn lab_or_skip() -> Option<Lab> {
    Lab::up()
        .map_err(|why| eprintln!("SKIPPED: the NAT lab needs network namespaces: {why}"))
        .ok()
}

/// Runs `work` on a thread inside network namespace `ns` (its sockets are that
/// namespace's), as a program there would.
fn in_netns<T: Send + 'static>(ns: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace's file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        work()
    })
    .join()
    .expect("the thread in the namespace")
}

/// A guest on the public segment, with no route into the host's LAN, opens the host's
/// guest page on the relay and joins: the relay forwards over the host's connection to it.
#[test]
fn a_guest_on_the_public_segment_joins_a_host_behind_nat_through_the_relay() {
    let Some(lab) = lab_or_skip() else { return };
    let (lab, dir, relay) = with_relay(lab, &[]);
    let relay_addr = relay.tcp_addr();
    let ns_a = lab.ns("a");
    let a = Node::spawn_in(
        Some(&ns_a),
        &dir.path().join("a"),
        &run_args(&["--relay", &relay_addr]),
    );
    a.wait_status("A connected to its relay", Duration::from_secs(30), |s| {
        s["helpers"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["connected"] == true))
    });
    let (id, _) = crate::support::create_shared(&a, "Behind the NAT");
    let reply = crate::support::cli_json(&a, &["session", "guests", &id, "on", "--relay"]);
    let mut page = crate::guests::Page::opened(&reply);
    page.signed = true;
    assert_eq!(page.base, format!("http://{RELAY_IP}:8080"), "{reply}");
    // From C's namespace (the public segment): join, add, read the session back.
    let started = Instant::now();
    let state = in_netns(&lab.ns("c"), move || {
        let (cookie, _) = page.join("Dee");
        let (status, body, _) = page.post(
            "tracks",
            Some(&cookie),
            &serde_json::json!({"title": "Across the NAT", "artists": []}),
        );
        assert_eq!(status, 200, "{body}");
        page.state(&cookie)
    });
    let took = started.elapsed();
    assert_eq!(state["up_next"][0]["title"], "Across the NAT", "{state}");
    let shown = crate::support::show(&a, &id).expect("show");
    assert_eq!(shown["tracks"][0]["added_by"]["display_name"], "Dee");
    println!(
        "NAT lab: a guest on the public segment joined, added and read the session through the relay in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
}

/// The lab with a symmetric NAT in front of B (a new port per destination, so no hole can
/// be punched to it) and a relay run with `relay_options`; `None` where no lab can be made.
/// The relay is dropped (killed) before the lab and the temp dir, as declared here.
fn symmetric_lab_with_relay(relay_options: &[&str]) -> Option<(Lab, tempfile::TempDir, Relay)> {
    let lab = lab_or_skip()?;
    lab.set_nat("natb", "fully-random")
        .expect("symmetric NAT rules");
    Some(with_relay(lab, relay_options))
}

/// `lab` with a temp dir and a relay (run with `relay_options`) in its public namespace;
/// dropped in the order [`symmetric_lab_with_relay`] says.
fn with_relay(lab: Lab, relay_options: &[&str]) -> (Lab, tempfile::TempDir, Relay) {
    let dir = tempfile::tempdir().expect("temp dir");
    let relay = Relay::start_with(&lab.ns("relay"), dir.path(), relay_options);
    (lab, dir, relay)
}

/// [`symmetric_lab_with_relay`] with B (behind the symmetric NAT) holding a reservation on
/// the relay and A (behind its own NAT) running: `(lab, dir, relay, b, a)`, the nodes last
/// so they are dropped (killed) first.
fn symmetric_pair(relay_options: &[&str]) -> Option<(Lab, tempfile::TempDir, Relay, Node, Node)> {
    let (lab, dir, relay) = symmetric_lab_with_relay(relay_options)?;
    let b = Node::spawn_in(
        Some(&lab.ns("b")),
        &dir.path().join("b"),
        &run_args(&["--relay", &relay.tcp_addr()]),
    );
    let a = Node::spawn_in(Some(&lab.ns("a")), &dir.path().join("a"), &run_args(&[]));
    a.wait_running();
    wait_for_reservation(&b, "a relay reservation");
    Some((lab, dir, relay, b, a))
}

/// Waits until `node` shows playlist `id` with `expected` among its titles; how long it took.
fn wait_for_title(node: &Node, id: &str, expected: &str) -> Duration {
    let started = Instant::now();
    wait_until(
        &format!("{expected:?} on {}", node.home.display()),
        crate::support::PATIENCE,
        || {
            let playlist = crate::support::show(node, id)?;
            crate::support::titles(&playlist)
                .iter()
                .any(|t| t == expected)
                .then_some(())
        },
    );
    started.elapsed()
}

/// Two friends whose NATs defeat hole punching (a symmetric NAT at B) still share a
/// playlist: the invite's relay circuit carries the handshake and live sync both ways, and
/// when the relay ends the circuit at its time limit a new one replaces it and an edit made
/// meanwhile arrives.
#[test]
fn a_playlist_syncs_both_ways_through_the_relay_when_no_hole_can_be_punched() {
    const CIRCUIT_SECS: u64 = 10;
    let Some((_lab, _dir, _relay, b, a)) =
        symmetric_pair(&["--max-circuit-secs", &CIRCUIT_SECS.to_string()])
    else {
        return;
    };
    let (id, link) = crate::support::create_shared(&b, "Through the relay");
    assert!(link.contains("relay="), "{link}");
    crate::support::add_track(&b, &id, "From B");
    crate::support::join(&a, &link);
    let b_id = b.peer_id();
    let state = a.status().expect("A's state");
    assert!(
        !direct_connection_to(&state, &b_id),
        "A reached B directly through a symmetric NAT: {state}"
    );
    wait_for_title(&a, &id, "From B");
    crate::support::add_track(&a, &id, "From A");
    let a_to_b = wait_for_title(&b, &id, "From A");
    crate::support::add_track(&b, &id, "Again from B");
    let b_to_a = wait_for_title(&a, &id, "Again from B");
    println!(
        "NAT lab, symmetric NAT at B: edit propagation through the relay A → B {:.0} ms, B → A {:.0} ms (CLI polling included)",
        a_to_b.as_secs_f64() * 1000.0,
        b_to_a.as_secs_f64() * 1000.0
    );

    // The relay ends the circuit at its time limit; an edit made right then still arrives,
    // over a new circuit.
    let connection_ids = |node: &Node, peer: &str| -> Vec<u64> {
        node.status()
            .map(|s| {
                Node::connections_to(&s, peer)
                    .iter()
                    .filter_map(|c| c["connection_id"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    };
    let first = connection_ids(&a, &b_id);
    assert!(!first.is_empty(), "A is connected to B");
    let ended = wait_until(
        "the relay to end the first circuit",
        Duration::from_secs(CIRCUIT_SECS * 3),
        || {
            let now = connection_ids(&a, &b_id);
            (!now.iter().any(|c| first.contains(c))).then_some(Instant::now())
        },
    );
    crate::support::add_track(&a, &id, "After the circuit ended");
    wait_for_title(&b, &id, "After the circuit ended");
    let state = a.status().expect("A's state");
    assert!(
        relayed_connections_to(&state, &b_id)
            .iter()
            .any(|c| !first.contains(&c["connection_id"].as_u64().unwrap_or(0))),
        "a new relayed connection replaced the first: {state}"
    );
    println!(
        "NAT lab: a circuit ended by the relay's time limit was replaced; an edit made then reached B in {:.1} s",
        ended.elapsed().as_secs_f64()
    );
}

/// Issue 20's report: an edit's propagation through the relay and over a direct connection,
/// side by side in one run. B (behind a symmetric NAT) shares two playlists: A (behind its
/// own NAT) reaches B only through the relay; C, on the public segment, directly (B dials
/// out to it). Each round B edits one playlist, then the other (in turn first), and the
/// test times each edit until it shows where it goes.
#[test]
fn an_edit_through_the_relay_and_one_direct_side_by_side() {
    const ROUNDS: usize = 10;
    let Some((lab, dir, _relay, b, a)) = symmetric_pair(&[]) else {
        return;
    };
    let c = Node::spawn_in(Some(&lab.ns("c")), &dir.path().join("c"), &run_args(&[]));
    c.wait_running();
    let (relayed_id, relayed_link) = crate::support::create_shared(&b, "Through the relay");
    let (direct_id, direct_link) = crate::support::create_shared(&b, "Direct");
    crate::support::join(&a, &relayed_link);
    crate::support::join(&c, &direct_link);
    let b_id = b.peer_id();
    c.wait_status(
        "C connected to B directly, and only so",
        Duration::from_secs(60),
        |s| direct_connection_to(s, &b_id) && relayed_connections_to(s, &b_id).is_empty(),
    );
    let (mut through_relay, mut direct) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let title = format!("Edit {round}");
        let mut relayed_edit = || {
            crate::support::add_track(&b, &relayed_id, &title);
            through_relay.push(wait_for_title(&a, &relayed_id, &title).as_secs_f64() * 1000.0);
        };
        let mut direct_edit = || {
            crate::support::add_track(&b, &direct_id, &title);
            direct.push(wait_for_title(&c, &direct_id, &title).as_secs_f64() * 1000.0);
        };
        if round % 2 == 0 {
            relayed_edit();
            direct_edit();
        } else {
            direct_edit();
            relayed_edit();
        }
    }
    let state = a.status().expect("A's state");
    assert!(
        !direct_connection_to(&state, &b_id) && !relayed_connections_to(&state, &b_id).is_empty(),
        "A reached B other than through the relay: {state}"
    );
    let median = |ms: &mut Vec<f64>| {
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    };
    let (relayed_ms, direct_ms) = (median(&mut through_relay), median(&mut direct));
    println!(
        "NAT lab, same run: an edit B → A through the relay {relayed_ms:.0} ms, B → C direct {direct_ms:.0} ms (p50 of {ROUNDS}, CLI polling included; ratio {:.2})",
        relayed_ms / direct_ms
    );
}

/// Issue 20, item 1: a relay caps each peer's bandwidth, over all its circuits. Behind a
/// symmetric NAT only the relay leads to B; a friend joining B's playlist of wide, random
/// titles gets all of it, no faster than the cap lets the relay carry it (a stream over its
/// budget waits; nothing is cut, and the connection's pings still pass).
#[test]
fn a_relay_caps_each_peers_bandwidth_and_a_join_through_it_still_completes() {
    use rand::{Rng as _, distr::Alphanumeric};
    const CAP: u64 = 64 * 1024;
    const TRACKS: usize = 200;
    const TITLE_CHARS: usize = 2000;
    let Some((_lab, dir, _relay, b, a)) =
        symmetric_pair(&["--max-peer-bytes-per-sec", &CAP.to_string()])
    else {
        return;
    };
    // Random titles, so no compression shrinks what the relay must carry below their
    // information: log2(62) bits a character.
    let mut rng = rand::rng();
    let titles: Vec<String> = (0..TRACKS)
        .map(|_| {
            (&mut rng)
                .sample_iter(Alphanumeric)
                .take(TITLE_CHARS)
                .map(char::from)
                .collect()
        })
        .collect();
    let m3u = dir.path().join("wide.m3u8");
    let text: String = std::iter::once("#EXTM3U\n".to_string())
        .chain(
            titles
                .iter()
                .enumerate()
                .map(|(i, t)| format!("#EXTINF:-1,{t}\nhttps://example.com/{i}\n")),
        )
        .collect();
    std::fs::write(&m3u, text).expect("the M3U");
    let id =
        crate::support::cli_json(&b, &["playlist", "import", &m3u.display().to_string()])["id"]
            .as_str()
            .expect("id")
            .to_string();
    let link = crate::support::cli_json(&b, &["playlist", "share", &id])["link"]
        .as_str()
        .expect("link")
        .to_string();
    let started = Instant::now();
    crate::support::join(&a, &link);
    assert!(
        !direct_connection_to(&a.status().expect("A's state"), &b.peer_id()),
        "A reached B directly through a symmetric NAT"
    );
    wait_until("every track at A", Duration::from_secs(120), || {
        let playlist = crate::support::show(&a, &id)?;
        (crate::support::titles(&playlist).len() == TRACKS).then_some(())
    });
    let took = started.elapsed().as_secs_f64();
    let information = (TRACKS * TITLE_CHARS) as f64 * 62f64.log2() / 8.0;
    // The relay may let a second's worth through at once (its bucket starts full).
    let fastest = (information - CAP as f64) / CAP as f64;
    println!(
        "NAT lab: a join of {:.0} kB of titles through a relay capped at {} kB/s took {took:.1} s ({:.0} kB/s; at least {fastest:.1} s under the cap)",
        information / 1000.0,
        CAP / 1000,
        information / took / 1000.0
    );
    assert!(
        took >= fastest,
        "{:.0} kB crossed the relay in {took:.1} s: faster than its cap of {CAP} B/s allows",
        information / 1000.0
    );
    assert_eq!(
        crate::support::titles(&crate::support::show(&a, &id).expect("A's copy")),
        titles
    );
}

/// `/etc/netns/<ns>/hosts`, which `ip netns exec` puts in place of `/etc/hosts` for what
/// runs in that namespace; removed on drop.
struct NamespaceEtc(PathBuf);

impl NamespaceEtc {
    /// `files`: (name under /etc, its text), e.g. `hosts` or `resolv.conf`.
    fn write(ns: &str, files: &[(&str, &str)]) -> NamespaceEtc {
        let dir = PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("/etc/netns/<ns>");
        let etc = NamespaceEtc(dir);
        for (name, text) in files {
            std::fs::write(etc.0.join(name), text).expect("a file of the namespace's /etc");
        }
        etc
    }
}

impl Drop for NamespaceEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A relay configured by name resolves (here through the namespace's hosts file) — the
/// controller resolves it, as the sandboxed service cannot — and a name that does not
/// resolve is reported by `doctor`.
#[test]
fn relays_and_bootstrap_nodes_may_be_named() {
    let Some(lab) = lab_or_skip() else { return };
    let (lab, dir, relay) = with_relay(lab, &[]);
    let relay_addr = relay.tcp_addr();
    let named = relay_addr.replacen(&format!("/ip4/{RELAY_IP}/"), "/dns4/relay.test/", 1);
    // Another peer id than the relay's: a helper counts as connected by its peer id.
    let nowhere =
        "/dns4/nowhere.invalid/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let ns_b = lab.ns("b");
    let hosts = format!("127.0.0.1 localhost\n{RELAY_IP} relay.test\n");
    let _etc = NamespaceEtc::write(&ns_b, &[("hosts", &hosts)]);
    let b = Node::spawn_in(
        Some(&ns_b),
        &dir.path().join("b"),
        &run_args(&["--relay", &named, "--bootstrap", nowhere]),
    );
    let started = Instant::now();
    wait_for_reservation(&b, "a reservation on the named relay");
    // Each name is resolved on its own: the relay's does not wait the 3 s that the name
    // nobody answers for takes.
    println!(
        "NAT lab: a reservation on the relay named /dns4/relay.test {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    wait_for_doctor_check(&b, "bootstrap", "nowhere.invalid does not resolve");
}

/// Waits until `doctor --json`'s check `id` mentions `text`.
fn wait_for_doctor_check(node: &Node, id: &str, text: &str) {
    let mut last = Value::Null;
    let found = (0..100).any(|_| {
        let out = node.cli(&["doctor", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        last = report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id).cloned())
            .unwrap_or_default();
        let found = last.to_string().contains(text);
        if !found {
            std::thread::sleep(Duration::from_millis(200));
        }
        found
    });
    assert!(found, "doctor's {id} check does not say {text:?}: {last}");
}

/// A DNS server on port 53 of `ip` in namespace `ns`, for the lab: it answers TXT queries
/// for the names in `txt` (lowercase, fully qualified) with their texts, and any other
/// query with NXDOMAIN; [`DnsServer::set`] changes a name's records. Stops on drop.
struct DnsServer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    records: TxtRecords,
}

/// Names (lowercase, fully qualified) and their TXT texts.
type TxtRecords = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<String>)>>>;

impl DnsServer {
    fn start(ns: &str, ip: &'static str, txt: Vec<(String, Vec<String>)>) -> DnsServer {
        use hickory_proto::{
            op::{Message, ResponseCode},
            rr::{RData, Record, RecordType, rdata::TXT},
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let records: TxtRecords = std::sync::Arc::new(std::sync::Mutex::new(txt));
        let table = records.clone();
        let path = format!("/var/run/netns/{ns}");
        let (ready, bound) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("the namespace's file");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let socket = std::net::UdpSocket::bind((ip, 53)).expect("port 53 in the lab");
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .expect("a read timeout");
            let _ = ready.send(());
            let mut buf = [0u8; 1500];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut response = Message::response(query.metadata.id, query.metadata.op_code);
                response.metadata.authoritative = true;
                response.metadata.recursion_desired = query.metadata.recursion_desired;
                response.metadata.recursion_available = true;
                for question in &query.queries {
                    response.add_query(question.clone());
                    let name = question.name().to_string().to_lowercase();
                    let txt = table.lock().map(|t| t.clone()).unwrap_or_default();
                    let texts = txt.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
                    match texts {
                        Some(texts) if question.query_type() == RecordType::TXT => {
                            for text in texts {
                                response.add_answer(Record::from_rdata(
                                    question.name().clone(),
                                    60,
                                    RData::TXT(TXT::new(vec![text.clone()])),
                                ));
                            }
                        }
                        Some(_) => {}
                        None => response.metadata.response_code = ResponseCode::NXDomain,
                    }
                }
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, from);
                }
            }
        });
        bound
            .recv_timeout(crate::support::PATIENCE)
            .expect("the lab's DNS server is up");
        DnsServer {
            stop,
            thread: Some(thread),
            records,
        }
    }

    /// From now on, `name` has the TXT records `texts`.
    fn set(&self, name: &str, texts: Vec<String>) {
        let mut table = self.records.lock().expect("the lab's DNS records");
        table.retain(|(n, _)| n != name);
        table.push((name.to_string(), texts));
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A relay configured as `/dnsaddr/<name>/p2p/<id>` is found through the TXT records of
/// the lab's DNS server (one record pointing at another `/dnsaddr/` name, one for another
/// peer, which is left out), and B holds a reservation on it — after the name, first
/// pointing where no relay is, is changed to the relay's address: the controller resolves
/// it again while the relay fails. A `/dnsaddr/` name with no records is reported by
/// `doctor`, and `connect` dials a `/dnsaddr/` name.
#[test]
fn a_relay_may_be_named_by_dnsaddr() {
    let Some(lab) = lab_or_skip() else { return };
    let (lab, dir, relay) = with_relay(lab, &[]);
    let relay_addr = relay.tcp_addr();
    let relay_id = relay_addr
        .rsplit("/p2p/")
        .next()
        .expect("the relay's peer id")
        .to_string();
    let other = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let dns = DnsServer::start(
        &lab.ns("relay"),
        RELAY_IP,
        vec![
            (
                "_dnsaddr.relays.test.".into(),
                vec![
                    format!("dnsaddr=/ip4/198.18.0.99/tcp/4001/p2p/{other}"),
                    format!("dnsaddr=/dnsaddr/tcp.relays.test/p2p/{relay_id}"),
                    "not a dnsaddr record".into(),
                ],
            ),
            // A record that names itself: followed 4 names deep, then given up with a reason.
            (
                "_dnsaddr.loop.test.".into(),
                vec![format!("dnsaddr=/dnsaddr/loop.test/p2p/{other}")],
            ),
            (
                "_dnsaddr.tcp.relays.test.".into(),
                vec![format!("dnsaddr=/ip4/198.18.0.77/tcp/4001/p2p/{relay_id}")],
            ),
        ],
    );
    let ns_b = lab.ns("b");
    let _etc = NamespaceEtc::write(
        &ns_b,
        &[("resolv.conf", &format!("nameserver {RELAY_IP}\n"))],
    );
    let named = format!("/dnsaddr/relays.test/p2p/{relay_id}");
    let missing = format!("/dnsaddr/missing.test/p2p/{other}");
    let looping = format!("/dnsaddr/loop.test/p2p/{other}");
    let b = Node::spawn_in(
        Some(&ns_b),
        &dir.path().join("b"),
        &run_args(&[
            "--relay",
            &named,
            "--bootstrap",
            &missing,
            "--bootstrap",
            &looping,
        ]),
    );
    // Nothing answers at .77: the relay is not connected, and its name is resolved again.
    b.wait_running();
    std::thread::sleep(Duration::from_secs(1));
    let state = b.status().expect("status");
    assert!(
        state["relay_reservations"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{state}"
    );
    dns.set(
        "_dnsaddr.tcp.relays.test.",
        vec![format!("dnsaddr={relay_addr}")],
    );
    let moved = Instant::now();
    wait_for_reservation(
        &b,
        "a reservation on the relay named by /dnsaddr/, at its new address",
    );
    println!(
        "NAT lab: a relay's /dnsaddr/ name moved; reservation at the new address {:.1} s later",
        moved.elapsed().as_secs_f64()
    );
    wait_for_doctor_check(&b, "bootstrap", "/dnsaddr/missing.test");
    wait_for_doctor_check(&b, "bootstrap", "a loop?");
    // The record for another peer was left out: never given to the service, never dialed.
    assert!(!b.log().contains("198.18.0.99"), "{}", b.log());
    // `connect` to a peer named by /dnsaddr/: the relay itself, by its name.
    let out = b.cli(&["connect", &named, "--timeout", "10"]);
    assert!(
        out.status.success(),
        "connect {named}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces on one segment (a bridge in a third): `a` at .1, `b` at .2 of the public
/// prefix, no NAT. For what happens when an address changes.
fn segment() -> Result<Lab, String> {
    let lab = Lab::namespaces("net", &["sw", "a", "b"])?;
    let sw = lab.ns("sw");
    run("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
    run("ip", &["-n", &sw, "link", "set", "br0", "up"])?;
    for (port, host, last) in [("va", "a", 1), ("vb", "b", 2)] {
        let host_ns = lab.ns(host);
        run(
            "ip",
            &[
                "-n", &sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
                &host_ns,
            ],
        )?;
        run(
            "ip",
            &["-n", &sw, "link", "set", port, "master", "br0", "up"],
        )?;
        let addr = format!("{PUBLIC_PREFIX}.{last}/24");
        run("ip", &["-n", &host_ns, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &host_ns, "link", "set", "eth0", "up"])?;
    }
    Ok(lab)
}

/// Issue 20, item 5: B's machine changes networks (its address .2 goes, .3 comes). Its
/// node's listen addresses and invite follow, and the shared playlist goes on syncing both
/// ways with A over new connections.
#[test]
fn when_an_address_changes_the_node_its_invite_and_sessions_follow() {
    let lab = match segment() {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("SKIPPED: needs network namespaces: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let a = Node::spawn_in(Some(&lab.ns("a")), &dir.path().join("a"), &run_args(&[]));
    let b = Node::spawn_in(Some(&lab.ns("b")), &dir.path().join("b"), &run_args(&[]));
    a.wait_running();
    b.wait_running();
    let (id, link) = crate::support::create_shared(&b, "Moving house");
    crate::support::add_track(&b, &id, "Before the move");
    crate::support::join(&a, &link);
    wait_for_title(&a, &id, "Before the move");
    // The session is up both ways before the move: B has A's addresses (A records them in
    // the playlist when it joins, before its first edit), which are how B finds A again.
    // Moved a few ms after the join, B would know A only by the connection it loses.
    crate::support::add_track(&a, &id, "Before the move, from A");
    wait_for_title(&b, &id, "Before the move, from A");

    let (old, new) = (
        format!("/ip4/{PUBLIC_PREFIX}.2/"),
        format!("/ip4/{PUBLIC_PREFIX}.3/"),
    );
    let b_ns = lab.ns("b");
    let moved = Instant::now();
    // As when a laptop leaves one Wi-Fi for another: the old address goes, then a new one
    // comes. (Added first, the new one would be a secondary address of the same subnet,
    // which Linux deletes with the primary.)
    run(
        "ip",
        &[
            "-n",
            &b_ns,
            "addr",
            "del",
            &format!("{PUBLIC_PREFIX}.2/24"),
            "dev",
            "eth0",
        ],
    )
    .expect("remove the old address");
    std::thread::sleep(Duration::from_millis(500));
    run(
        "ip",
        &[
            "-n",
            &b_ns,
            "addr",
            "add",
            &format!("{PUBLIC_PREFIX}.3/24"),
            "dev",
            "eth0",
        ],
    )
    .expect("add the new address");

    b.wait_status(
        "B to listen on its new address and not the old",
        Duration::from_secs(30),
        |s| {
            let addrs = s["listen_addrs"].to_string();
            addrs.contains(&new) && !addrs.contains(&old)
        },
    );
    let listening = moved.elapsed();
    let invite = b.cli(&["invite", "--json"]);
    let invite = String::from_utf8_lossy(&invite.stdout);
    assert!(
        invite.contains(&new) && !invite.contains(&old),
        "B's invite follows its address: {invite}"
    );

    crate::support::add_track(&b, &id, "After the move, from B");
    let b_to_a = wait_for_title(&a, &id, "After the move, from B");
    // A's connection to B's old address carries nothing now; A notices (its pings go
    // unanswered) and closes it, so no request of A's waits on it.
    let b_id = b.peer_id();
    let at_old = |s: &Value| {
        Node::connections_to(s, &b_id)
            .iter()
            .any(|c| c["addr"].as_str().is_some_and(|addr| addr.contains(&old)))
    };
    a.wait_status(
        "A to close its connection to B's old address",
        Duration::from_secs(40),
        |s| !at_old(s),
    );
    let dead_closed = moved.elapsed();
    // (An edit A made before that could go out on the dead connection and wait for it to
    // close: up to ~15 s after the change.)
    crate::support::add_track(&a, &id, "After the move, from A");
    let a_to_b = wait_for_title(&b, &id, "After the move, from A");
    println!(
        "network change at B: new listen address in {:.1} s; edits after it B → A {:.1} s, A → B {:.1} s; A closed its dead connection {:.1} s after the change",
        listening.as_secs_f64(),
        b_to_a.as_secs_f64(),
        a_to_b.as_secs_f64(),
        dead_closed.as_secs_f64()
    );
}

/// Issue 20, item 1: audio that a relay's limits will not carry. B (behind a symmetric NAT,
/// so only the relay leads to it) plays a song A lacks; the relay's circuits carry the
/// playlist but not one group of audio. A says the audio waits for a direct connection
/// (status `media_waiting`, which the view shows under now playing) instead of failing in
/// silence, and does not spend the relay's budget asking again and again.
#[test]
fn audio_a_relay_will_not_carry_is_said_to_wait_for_a_direct_connection() {
    // 128 KiB a circuit: the playlist fits, a group of audio (256 KiB) does not.
    let Some((lab, dir, relay)) = symmetric_lab_with_relay(&["--max-circuit-bytes", "131072"])
    else {
        return;
    };
    let relay_addr = relay.tcp_addr();
    let music = dir.path().join("music");
    std::fs::create_dir_all(&music).expect("music dir");
    whatnext_media::tone::write_tagged_tone(
        &music.join("far.wav"),
        30_000,
        "Far Song",
        "Ann Artist",
        "Tones",
    )
    .expect("a song");
    let b_home = dir.path().join("b");
    std::fs::create_dir_all(&b_home).expect("B's home");
    std::fs::write(
        b_home.join("config.toml"),
        format!("music_dirs = [{:?}]\n", music.display().to_string()),
    )
    .expect("B's config");
    let b = Node::spawn_in(
        Some(&lab.ns("b")),
        &b_home,
        &run_args(&["--relay", &relay_addr]),
    );
    let a = Node::spawn_in(Some(&lab.ns("a")), &dir.path().join("a"), &run_args(&[]));
    a.wait_running();
    wait_for_reservation(&b, "a relay reservation");
    crate::support::cli_json(&b, &["library", "scan"]);
    let (id, link) = crate::support::create_shared(&b, "Far away");
    let added =
        crate::support::cli_json(&b, &["playlist", "add", &id, "--from-library", "Far Song"]);
    let blake3 = added["file"]["content"]["blake3"]
        .as_str()
        .expect("the song's content id")
        .to_string();
    crate::support::join(&a, &link);
    wait_for_title(&a, &id, "Far Song");
    crate::support::cli_json(&b, &["session", "play", &id]);

    let waiting = |s: &Value| {
        s["media_waiting"]
            .as_array()
            .and_then(|w| w.iter().find(|m| m["blake3"] == blake3.as_str()).cloned())
    };
    let state = a.wait_status(
        "A to say the audio waits for a direct connection",
        Duration::from_secs(60),
        |s| waiting(s).is_some(),
    );
    let reason = waiting(&state)
        .map(|m| m["reason"].to_string())
        .unwrap_or_default();
    assert!(reason.contains("relay"), "{reason}");
    // A keeps saying so, and is not fetching it through the relay meanwhile.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let state = a.status().expect("A's state");
        assert!(waiting(&state).is_some(), "the notice went away: {state}");
        assert!(
            !state["transfers"].to_string().contains(&blake3),
            "A fetches through the relay again: {state}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// B, behind its NAT with a reservation on the relay, changes networks (its LAN address
/// goes, another comes, the default route with it, as on a new Wi-Fi): the connection to
/// the relay that used the old address is closed, and B reserves again over the new one —
/// its invite's relay path works again, and AutoNAT still says private.
#[test]
fn a_relay_reservation_follows_a_network_change() {
    let Some((lab, dir, _relay, _, b)) = lab_with_b_on_the_relay() else {
        return;
    };
    let ns_b = lab.ns("b");
    wait_for_reservation(&b, "a reservation before the move");
    let before = b.status().expect("status")["relay_reservations"][0]["since_ms"]
        .as_u64()
        .expect("since_ms");
    let moved = Instant::now();
    for args in [
        ["addr", "del", "10.0.2.2/24", "dev", "eth0"].as_slice(),
        &["addr", "add", "10.0.2.3/24", "dev", "eth0"],
        &["route", "replace", "default", "via", "10.0.2.1"],
    ] {
        let mut full = vec!["-n", ns_b.as_str()];
        full.extend_from_slice(args);
        run("ip", &full).expect("the move");
    }
    let state = b.wait_status(
        "a reservation made after the move",
        Duration::from_secs(60),
        |s| {
            s["relay_reservations"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["since_ms"].as_u64() > Some(before)))
        },
    );
    println!(
        "NAT lab: B changed networks; a new relay reservation {:.1} s later",
        moved.elapsed().as_secs_f64()
    );
    assert!(
        state["listen_addrs"].as_array().is_some_and(|a| a
            .iter()
            .all(|a| !a.as_str().unwrap_or("").contains("10.0.2.2"))),
        "{state}"
    );
    // The relay path of B's invite works again: A, behind its own NAT, connects through it
    // at once. The relay still holds B's connection from the old address (dead, but a
    // failed ping would take up to ~15 s to tell) and libp2p's relay may send a circuit
    // down either connection; B's new reservation made the relay close the old one.
    let a = Node::spawn_in(Some(&lab.ns("a")), &dir.path().join("a"), &run_args(&[]));
    a.wait_running();
    let invite = b.invite();
    let out = a.cli(&["open", "--wait", "--json", "--timeout", "15", &invite]);
    let attempt: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        attempt["status"],
        "connected",
        "B's invite did not open at once after the move: {attempt}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "NAT lab: B's invite opened through the relay {:.1} s after the move",
        moved.elapsed().as_secs_f64()
    );
    b.wait_status(
        "AutoNAT's verdict after the move",
        Duration::from_secs(60),
        |s| s["nat"] == "private",
    );
}
