//! WhatNext benchmarks. `bench/run` builds in release mode and runs `whatnext-bench all`,
//! which prints a table and writes `target/bench/results.json`. Sub-commands measure one
//! thing each and print JSON, so `all` can run them under `taskset` pinnings.

mod ipc;
mod library;
mod lifecycle;
mod signing;
mod stats;
mod store_growth;
mod stream_copy;

/// Counts live heap bytes, for the store's memory figures.
#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

fn usage() -> ! {
    eprintln!(
        "usage: whatnext-bench all --whatnext BIN [--out FILE]\n       whatnext-bench ipc-floor|ipc-loop-floor|ipc-direct|ipc-controller|pipelined --whatnext BIN [--iters N]\n       whatnext-bench lifecycle|store|sync|freshness --whatnext BIN\n       whatnext-bench session --whatnext BIN [--iters MEMBERS]\n       whatnext-bench signing [--iters N]\n       whatnext-bench library [--iters FILES]\n       whatnext-bench transfer --whatnext BIN [--iters MB]\n       whatnext-bench stream-copy [--iters MB]\n       whatnext-bench pipe-hop --whatnext BIN [--iters GROUPS]\n       whatnext-bench playback --whatnext BIN\n       whatnext-bench big-playlist --whatnext BIN [--iters TRACKS]\n       whatnext-bench store-growth [--quick] [--iters TRACKS]\n       whatnext-bench home --whatnext BIN --iters PLAYLISTS [--quick]\n       whatnext-bench join --whatnext BIN --iters TRACKS\n       whatnext-bench growth --whatnext BIN [--quick]\n       whatnext-bench store-open STORE_DIR PLAYLIST_ID"
    );
    std::process::exit(2)
}

struct Args {
    command: String,
    whatnext: PathBuf,
    out: PathBuf,
    iters: usize,
    placement: ipc::Placement,
    /// A few iterations of each figure, small sizes: proves the bench runs, not how fast.
    quick: bool,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_else(|| usage());
    let mut parsed = Args {
        command,
        whatnext: PathBuf::from("target/release/whatnext"),
        out: PathBuf::from("target/bench/results.json"),
        iters: 20_000,
        placement: ipc::Placement { this: 0, child: 1 },
        quick: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--quick" {
            parsed.quick = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--whatnext" => parsed.whatnext = value.into(),
            "--out" => parsed.out = value.into(),
            "--iters" => parsed.iters = value.parse().unwrap_or_else(|_| usage()),
            "--this-cpu" => parsed.placement.this = value.parse().unwrap_or_else(|_| usage()),
            "--child-cpu" => parsed.placement.child = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    parsed
}

/// `--quick` (or WHATNEXT_BENCH_QUICK=1, which sub-processes inherit): every figure at its
/// smallest size and a few iterations — `./scripts/test` runs it so a broken benchmark
/// fails the tests. No figure of a quick run means anything.
static QUICK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub(crate) fn quick() -> bool {
    QUICK.get().copied().unwrap_or(false)
}

/// `full`, or `small` in a quick run.
pub(crate) fn sized<T>(full: T, small: T) -> T {
    if quick() { small } else { full }
}

fn main() -> anyhow::Result<()> {
    let mut raw = std::env::args().skip(1);
    let first = raw.next();
    if first.as_deref() == Some("store-open") {
        let (Some(dir), Some(id)) = (raw.next(), raw.next()) else {
            usage()
        };
        println!("{}", store_growth::open(std::path::Path::new(&dir), &id)?);
        return Ok(());
    }
    let mut args = parse_args();
    args.quick |= std::env::var_os("WHATNEXT_BENCH_QUICK").is_some();
    let _ = QUICK.set(args.quick);
    if args.quick && args.iters == 20_000 {
        args.iters = 200;
    }
    let result = match args.command.as_str() {
        "echo" => return ipc::echo_child(),
        "echo-loop" => return ipc::echo_loop_child(),
        "ipc-loop-floor" => ipc::loop_floor(args.iters, args.placement)?,
        "ipc-floor" => ipc::floor(args.iters, args.placement)?,
        "ipc-direct" => ipc::direct(&args.whatnext, args.iters, args.placement)?,
        "ipc-controller" => ipc::through_controller(&args.whatnext, args.iters, args.placement)?,
        "pipelined" => ipc::pipelined(&args.whatnext, args.iters * 5, args.placement)?,
        "lifecycle" => lifecycle::run(&args.whatnext)?,
        "store" => lifecycle::store(&args.whatnext)?,
        "sync" => lifecycle::sync(&args.whatnext)?,
        "freshness" => lifecycle::freshness(&args.whatnext)?,
        "session" => {
            let members = if args.iters == 20_000 {
                32
            } else {
                args.iters.clamp(2, 64)
            };
            lifecycle::session(&args.whatnext, members)?
        }
        "signing" => signing::run(args.iters.min(2_000))?,
        "library" => library::run(args.iters.min(10_000))?,
        "transfer" => lifecycle::transfer(&args.whatnext, args.iters.min(1_000) as u64)?,
        "stream-copy" => stream_copy::run(args.iters.min(1_000) as u64)?,
        "playback" => playback(&args.whatnext).context("the playback benchmark did not run")?,
        "big-playlist" => big_playlist(
            &args.whatnext,
            if args.iters == 20_000 {
                10_000
            } else {
                args.iters
            },
        )
        .context("the big playlist benchmark did not run")?,
        "pipe-hop" => ipc::pipe_hop(&args.whatnext, args.iters.min(10_000), args.placement)?,
        "home" => lifecycle::home(
            &args.whatnext,
            args.iters.min(10_000),
            if args.quick { 1 } else { 3 },
        )?,
        "join" => lifecycle::join(&args.whatnext, args.iters.min(1_000_000))?,
        "growth" => {
            let grown = growth(&args)?;
            let (tables, text) = growth_tables(&grown);
            eprintln!("{text}");
            json!({"growth": tables, "raw": grown})
        }
        "store-growth" => {
            store_growth::run(args.quick, (args.iters != 20_000).then_some(args.iters))?
        }
        "all" => return all(&args),
        _ => usage(),
    };
    println!("{result}");
    Ok(())
}

/// Runs `self SUBCOMMAND` in a fresh process and parses its JSON.
fn sub(args: &[&str]) -> anyhow::Result<Value> {
    let me = std::env::current_exe()?;
    let mut command = Command::new(&me);
    if quick() {
        command.env("WHATNEXT_BENCH_QUICK", "1");
    }
    let out = command
        .args(args)
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Node's fork IPC, the mechanism under Electron's utilityProcess, with the same messages
/// and the same placement of the two processes.
fn node_fork(placement: ipc::Placement, mode: &str, iters: usize) -> Option<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/node/fork-ipc.mjs");
    let out = Command::new("node")
        .env("WHATNEXT_BENCH_QUICK", if quick() { "1" } else { "" })
        .args([script, mode, &iters.to_string()])
        .args([placement.this.to_string(), placement.child.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "node baseline skipped: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The JSON a Node script printed, or None with a note saying why it is `skipped`
/// (`hint`: what to do when the program did not start).
fn script_json(
    what: &str,
    out: std::io::Result<std::process::Output>,
    hint: &str,
) -> Option<Value> {
    match out {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).ok(),
        Ok(out) => {
            eprintln!("{what} skipped: {}", String::from_utf8_lossy(&out.stderr));
            None
        }
        Err(err) => {
            eprintln!("{what} skipped ({err}); {hint}");
            None
        }
    }
}

/// Runs `script` (a Node script in ui-tests/, with its Playwright and Debian's Chromium)
/// against `whatnext` with `env`; its JSON line, or None with a note when it cannot run.
fn ui_script(
    script: &str,
    whatnext: &std::path::Path,
    env: &[(&str, String)],
    what: &str,
) -> Option<Value> {
    let ui = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui-tests");
    let whatnext = std::fs::canonicalize(whatnext).unwrap_or_else(|_| whatnext.to_path_buf());
    let out = Command::new("node")
        .arg(script)
        .env("WHATNEXT_BIN", whatnext)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .current_dir(ui)
        .output();
    script_json(what, out, "install node, and run `npm ci` in ui-tests/")
}

/// Two members' players in Chromium (ui-tests/bench-playback.mjs): skew over a minute,
/// play → sound. None, with a note, when it cannot run.
fn playback(whatnext: &std::path::Path) -> Option<Value> {
    let phase = if quick() {
        vec![("PHASE_MS", "1500".to_string())]
    } else {
        Vec::new()
    };
    ui_script("bench-playback.mjs", whatnext, &phase, "playback benchmark")
}

/// The view with a long playlist in Chromium (ui-tests/bench-big-playlist.mjs): open, add
/// and remove, each until the page shows it. None, with a note, when it cannot run.
fn big_playlist(whatnext: &std::path::Path, tracks: usize) -> Option<Value> {
    let tracks = vec![("TRACKS", tracks.to_string())];
    ui_script(
        "bench-big-playlist.mjs",
        whatnext,
        &tracks,
        "big playlist benchmark",
    )
}

/// js-libp2p baselines (interop/bench-js.mjs on Node 22 from interop/node_modules): idle
/// RSS, in-process dial, fresh-process dial. None, with a note, when they cannot run.
fn js_libp2p() -> Option<Value> {
    let interop = concat!(env!("CARGO_MANIFEST_DIR"), "/../interop");
    let mut command = Command::new(format!("{interop}/node_modules/.bin/node"));
    if quick() {
        command.env("WHATNEXT_BENCH_QUICK", "1");
    }
    let out = command
        .arg(format!("{interop}/bench-js.mjs"))
        .arg("all")
        .current_dir(interop)
        .output();
    script_json("js-libp2p baselines", out, "run `npm ci` in interop/")
}

struct Row {
    figure: String,
    ours: f64,
    baseline: Option<f64>,
    baseline_name: &'static str,
    unit: &'static str,
}

/// One row per `(key, figure, unit)`: the figure `key` of a sub-command's answer, with no
/// baseline.
fn figures(rows: &mut Vec<Row>, answer: &Value, list: &[(&str, &str, &'static str)]) {
    for (key, figure, unit) in list {
        rows.push(Row {
            figure: figure.to_string(),
            ours: answer[*key].as_f64().unwrap_or(f64::NAN),
            baseline: None,
            baseline_name: "",
            unit,
        });
    }
}

fn placed(base: &[&str], placement: ipc::Placement) -> anyhow::Result<Value> {
    let (this, child) = (placement.this.to_string(), placement.child.to_string());
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--this-cpu", &this, "--child-cpu", &child]);
    sub(&args)
}

/// How cost grows with the work: the store in-process (tracks per playlist, playlists per
/// home), the real controller (a home of many playlists; joining a big playlist) and
/// sessions of more members. `--quick`: the smallest size of each, to prove it runs.
fn growth(args: &Args) -> anyhow::Result<Value> {
    let bin = args.whatnext.to_str().context("path")?;
    let quick = args.quick;
    eprintln!("growth: the store …");
    let store = if quick {
        sub(&["store-growth", "--quick"])?
    } else {
        sub(&["store-growth"])?
    };
    let sizes = |full: &[usize], small: usize| -> Vec<usize> {
        if quick { vec![small] } else { full.to_vec() }
    };
    let mut homes = Vec::new();
    for playlists in sizes(&[10, 100, 1_000], 10) {
        eprintln!("growth: a home of {playlists} playlists under the controller …");
        let n = playlists.to_string();
        let mut call = vec!["home", "--whatnext", bin, "--iters", &n];
        if quick {
            call.push("--quick");
        }
        homes.push(sub(&call)?);
    }
    let mut joins = Vec::new();
    for tracks in sizes(&[1_000, 10_000, 100_000], 100) {
        eprintln!("growth: joining a playlist of {tracks} tracks …");
        joins.push(sub(&[
            "join",
            "--whatnext",
            bin,
            "--iters",
            &tracks.to_string(),
        ])?);
    }
    let mut sessions = Vec::new();
    for members in sizes(&[2, 8, 32], 2) {
        eprintln!("growth: a session of {members} members …");
        let mut answer = sub(&[
            "session",
            "--whatnext",
            bin,
            "--iters",
            &members.to_string(),
        ])?;
        answer["members"] = json!(members);
        sessions.push(answer);
    }
    Ok(json!({"store": store, "homes": homes, "joins": joins, "sessions": sessions}))
}

/// One growth table: its title, the key of the size in each row, the rows (one per size),
/// and the figures shown (key, label).
type GrowthTable<'a> = (&'a str, &'a str, Vec<&'a Value>, Vec<(&'a str, &'a str)>);

/// The growth tables, as text and as JSON — one row per figure, one column per size — with how each
/// grows: the exponent k of cost ∝ size^k between the two largest sizes (1 linear, 0 flat,
/// above 1 worse than linear). Returns them as JSON for the report.
fn growth_tables(grown: &Value) -> (Value, String) {
    use std::fmt::Write as _;
    let mut text = String::new();
    let store = &grown["store"];
    let tables: [GrowthTable; 5] = [
        (
            "tracks per playlist (the store, a fresh process per open)",
            "tracks_each",
            rows_of(&store["by_tracks"]),
            vec![
                ("open_list_ms", "open + list, ms"),
                ("open_read_ms", "open + read all, ms"),
                ("heap_loaded_mb", "heap held once read, MB"),
                ("rss_loaded_mb", "RSS once read, MB"),
                ("first_edit_ms", "first edit, ms"),
                ("read_after_edit_ms", "read all after an edit, ms"),
                ("heap_in_use_mb", "heap held in use (edited + read), MB"),
                (
                    "member_add_received_ms",
                    "a member's first add, received, ms",
                ),
                (
                    "member_removal_received_ms",
                    "a member's removal, received, ms",
                ),
                (
                    "member_later_removal_received_ms",
                    "a member's later removal, received, ms",
                ),
                ("edit_after_removal_ms", "an edit after a removal, ms"),
                (
                    "read_after_later_edit_ms",
                    "read all after a later edit, ms",
                ),
                (
                    "member_refusal_received_ms",
                    "a member's edit refused (applied, judged, undone), ms",
                ),
                ("read_after_refusal_ms", "read all after a refusal, ms"),
                ("disk_bytes", "bytes on disk"),
            ],
        ),
        (
            "tracks per playlist (two controllers: a friend joins, then edits)",
            "tracks",
            rows_of(&grown["joins"]),
            vec![
                ("join_s", "join → every track here, s"),
                ("join_loopback_bytes", "join, bytes on loopback"),
                (
                    "edit_propagation_p50_ms",
                    "edit → the friend sees it, p50 ms",
                ),
            ],
        ),
        (
            "playlists per home, 100 tracks each (the store)",
            "playlists",
            rows_of(&store["by_playlists"]),
            vec![
                ("open_list_ms", "open + list, ms"),
                ("heap_listed_mb", "heap held once listed, MB"),
                ("first_edit_ms", "first edit, ms"),
                ("disk_bytes", "bytes on disk"),
            ],
        ),
        (
            "playlists per home, 100 tracks each (the controller)",
            "playlists",
            rows_of(&grown["homes"]),
            vec![
                ("start_to_running_ms", "run → node running, ms"),
                ("list_ms", "GET /api/playlists, ms"),
                ("settled_rss_mb", "RSS settled, controller + service, MB"),
            ],
        ),
        (
            "members per session (one controller each)",
            "members",
            rows_of(&grown["sessions"]),
            vec![
                ("crowd_setup_s", "everyone joined, s"),
                ("crowd_edit_all_p50_ms", "edit → all others, p50 ms"),
                ("crowd_edit_all_p99_ms", "edit → all others, p99 ms"),
                ("crowd_rss_per_member_mb", "RSS per member, MB"),
                ("crowd_connections_per_member", "connections per member"),
            ],
        ),
    ];
    let mut out = Vec::new();
    for (title, size_key, rows, figures) in tables {
        let sizes: Vec<f64> = rows.iter().filter_map(|r| r[size_key].as_f64()).collect();
        let _ = writeln!(text, "\ngrowth: {title}");
        let header: Vec<String> = sizes.iter().map(|n| format!("{n}")).collect();
        let _ = writeln!(
            text,
            "{:<44} {:>12} {:>12} {:>12}  grows as size^k",
            "figure",
            header.first().map_or("", |h| h),
            header.get(1).map_or("", |h| h),
            header.get(2).map_or("", |h| h)
        );
        let mut table_rows = Vec::new();
        for (key, figure) in figures {
            let values: Vec<Option<f64>> = rows.iter().map(|r| r[key].as_f64()).collect();
            let k = match (sizes.len(), values.as_slice()) {
                (n @ 2.., [.., Some(a), Some(b)]) if *a > 0.0 && *b > 0.0 => {
                    Some((b / a).ln() / (sizes[n - 1] / sizes[n - 2]).ln())
                }
                _ => None,
            };
            let shown: Vec<String> = values
                .iter()
                .map(|v| v.map_or("-".into(), figure_text))
                .collect();
            let _ = writeln!(
                text,
                "{:<44} {:>12} {:>12} {:>12}  {}",
                figure,
                shown.first().map_or("", |s| s),
                shown.get(1).map_or("", |s| s),
                shown.get(2).map_or("", |s| s),
                k.map_or("-".into(), |k| format!("k = {k:.2}{}", growth_word(k)))
            );
            table_rows.push(json!({"figure": figure, "values": values, "k": k}));
        }
        out.push(json!({"table": title, "sizes": sizes, "rows": table_rows}));
    }
    (json!(out), text)
}

/// A figure with the digits that matter: 41437395, 74.4, 0.61.
fn figure_text(v: f64) -> String {
    if v.abs() >= 1_000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn rows_of(list: &Value) -> Vec<&Value> {
    list.as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Words for a growth exponent (noise makes small figures wander: ±0.2 is "about").
fn growth_word(k: f64) -> &'static str {
    if k < 0.2 {
        " (flat)"
    } else if k < 0.8 {
        " (sublinear)"
    } else if k <= 1.2 {
        " (linear)"
    } else {
        " (worse than linear)"
    }
}

fn all(args: &Args) -> anyhow::Result<()> {
    let bin = args.whatnext.to_str().context("path")?;
    let iters = args.iters.to_string();
    let mut rows = Vec::new();
    let mut raw = serde_json::Map::new();
    let cross = ipc::Placement { this: 0, child: 1 };
    let same = ipc::Placement { this: 0, child: 0 };
    for (label, placement) in [("across 2 cores", cross), ("on 1 core", same)] {
        eprintln!("measuring IPC round trips {label} …");
        let floor = placed(&["ipc-floor", "--iters", &iters], placement)?;
        let loop_floor = placed(&["ipc-loop-floor", "--iters", &iters], placement)?;
        let direct = placed(
            &["ipc-direct", "--whatnext", bin, "--iters", &iters],
            placement,
        )?;
        let ctrl = placed(
            &["ipc-controller", "--whatnext", bin, "--iters", &iters],
            placement,
        )?;
        let node = node_fork(placement, "rtt", args.iters);
        for q in ["p50_us", "p99_us"] {
            let quantile = &q[..3];
            let floor_q = floor[q].as_f64();
            rows.push(Row {
                figure: format!("IPC round trip {quantile}, controller path, {label}"),
                ours: ctrl[q].as_f64().unwrap_or(f64::NAN),
                baseline: floor_q,
                baseline_name: "raw pipe floor",
                unit: "µs",
            });
            rows.push(Row {
                figure: format!("IPC round trip {quantile}, controller path, {label}"),
                ours: ctrl[q].as_f64().unwrap_or(f64::NAN),
                baseline: loop_floor[q].as_f64(),
                baseline_name: "event-loop floor (tokio both ends)",
                unit: "µs",
            });
            rows.push(Row {
                figure: format!("IPC round trip {quantile}, service only, {label}"),
                ours: direct[q].as_f64().unwrap_or(f64::NAN),
                baseline: floor_q,
                baseline_name: "raw pipe floor",
                unit: "µs",
            });
            rows.push(Row {
                figure: format!("IPC round trip {quantile}, controller path, {label}"),
                ours: ctrl[q].as_f64().unwrap_or(f64::NAN),
                baseline: node.as_ref().and_then(|n| n[q].as_f64()),
                baseline_name: "node fork IPC",
                unit: "µs",
            });
        }
        raw.insert(
            format!("ipc {label}"),
            json!({"floor": floor, "loop_floor": loop_floor, "direct": direct, "controller": ctrl, "node_fork": node}),
        );
    }
    eprintln!("measuring pipelined throughput …");
    let piped = placed(&["pipelined", "--whatnext", bin, "--iters", &iters], cross)?;
    let node_piped = node_fork(cross, "pipelined", args.iters * 5);
    rows.push(Row {
        figure: "pipelined commands, controller path, across 2 cores".into(),
        ours: piped["msgs_per_sec"].as_f64().unwrap_or(f64::NAN),
        baseline: node_piped.as_ref().and_then(|n| n["msgs_per_sec"].as_f64()),
        baseline_name: "node fork IPC",
        unit: "msg/s",
    });
    raw.insert(
        "pipelined".into(),
        json!({"ours": piped, "node_fork": node_piped}),
    );

    eprintln!("measuring cold start, kill -9 → reconnected, idle RSS …");
    let life = sub(&["lifecycle", "--whatnext", bin])?;
    eprintln!("measuring the js-libp2p baselines …");
    let js = js_libp2p();
    let js_figure = |key: &str| js.as_ref().and_then(|j| j[key].as_f64());
    for (key, figure, unit, baseline, baseline_name) in [
        (
            "cold_start_p50_ms",
            "cold start: run → node running (p50)",
            "ms",
            None,
            "",
        ),
        (
            "restart_reconnect_p50_ms",
            "kill -9 of service → reconnected (p50)",
            "ms",
            None,
            "",
        ),
        (
            "restart_reconnect_max_ms",
            "kill -9 of service → reconnected (max)",
            "ms",
            None,
            "",
        ),
        (
            "idle_rss_mb",
            "idle RSS, controller + service",
            "MB",
            js_figure("idle_rss_mb"),
            "js-libp2p node process, 1 connection",
        ),
        (
            "link_click_p50_ms",
            "link click: `open --wait` process → connected (p50)",
            "ms",
            js_figure("link_p50_ms"),
            "fresh js-libp2p process → connected",
        ),
        (
            "dial_p50_ms",
            "dial → connected inside the service (p50)",
            "ms",
            js_figure("dial_p50_ms"),
            "js-libp2p in-process dial",
        ),
    ] {
        rows.push(Row {
            figure: figure.into(),
            ours: life[key].as_f64().unwrap_or(f64::NAN),
            baseline,
            baseline_name,
            unit,
        });
    }
    raw.insert("js_libp2p".into(), js.clone().unwrap_or(Value::Null));

    eprintln!("measuring state freshness (20 changes, ~25 s) …");
    let fresh = sub(&["freshness", "--whatnext", bin])?;
    for (ours, base, figure) in [
        (
            "long_poll_p50_ms",
            "poll_1s_p50_ms",
            "state freshness: change → client sees it (p50)",
        ),
        (
            "long_poll_mean_ms",
            "poll_1s_mean_ms",
            "state freshness: change → client sees it (mean)",
        ),
    ] {
        rows.push(Row {
            figure: figure.into(),
            ours: fresh[ours].as_f64().unwrap_or(f64::NAN),
            baseline: fresh[base].as_f64(),
            baseline_name: "1 s poll (seed design)",
            unit: "ms",
        });
    }
    raw.insert("freshness".into(), fresh);
    raw.insert("lifecycle".into(), life);

    eprintln!("measuring the store: 10,000 tracks, acknowledged writes, load …");
    let store = sub(&["store", "--whatnext", bin])?;
    figures(
        &mut rows,
        &store,
        &[
            (
                "batch_add_10k_ms",
                "store: add 10,000 tracks in one batch",
                "ms",
            ),
            (
                "load_p50_ms",
                "store: open + list after restart, 10,000 tracks (p50)",
                "ms",
            ),
            (
                "full_load_p50_ms",
                "store: open + read all 10,000 tracks (p50)",
                "ms",
            ),
            (
                "snapshot_bytes_10k",
                "store: 10,000-track playlist on disk",
                "bytes",
            ),
            (
                "store_memory_mb",
                "store: memory of the loaded 10,000 tracks",
                "MB",
            ),
            (
                "ack_add_p50_ms",
                "store: acknowledged add via API, fsync incl. (p50)",
                "ms",
            ),
            (
                "ack_add_p99_ms",
                "store: acknowledged add via API, fsync incl. (p99)",
                "ms",
            ),
        ],
    );
    raw.insert("store".into(), store);

    eprintln!("measuring collaboration: edit propagation, 10,000-track join …");
    let sync = sub(&["sync", "--whatnext", bin])?;
    figures(
        &mut rows,
        &sync,
        &[
            (
                "propagation_p50_ms",
                "edit A → visible in B's state (p50, 200 edits)",
                "ms",
            ),
            (
                "propagation_p99_ms",
                "edit A → visible in B's state (p99, 200 edits)",
                "ms",
            ),
            (
                "join_10k_seconds",
                "join a 10,000-track playlist: open → all tracks",
                "s",
            ),
            (
                "join_10k_loopback_bytes",
                "join a 10,000-track playlist: bytes on loopback",
                "bytes",
            ),
        ],
    );
    raw.insert("sync".into(), sync);

    eprintln!("measuring the listening session: votes on 5 members, one edit among 32 …");
    let session = sub(&["session", "--whatnext", bin, "--iters", sized("32", "3")])?;
    figures(
        &mut rows,
        &session,
        &[
            (
                "vote_each_p50_ms",
                "vote on A → in each member's state (p50, 5 members)",
                "ms",
            ),
            (
                "vote_each_p99_ms",
                "vote on A → in each member's state (p99, 5 members)",
                "ms",
            ),
            (
                "vote_all_p50_ms",
                "vote on A → in all 4 others' state (p50)",
                "ms",
            ),
            (
                "vote_all_p99_ms",
                "vote on A → in all 4 others' state (p99)",
                "ms",
            ),
            (
                "crowd_edit_all_p50_ms",
                "edit → all 31 others, 32 members (p50)",
                "ms",
            ),
            (
                "crowd_edit_all_p99_ms",
                "edit → all 31 others, 32 members (p99)",
                "ms",
            ),
            (
                "crowd_rss_per_member_mb",
                "memory per member, 32 members (controller + service)",
                "MB",
            ),
            (
                "crowd_connections_per_member",
                "connections per member, 32 members",
                "conns",
            ),
            ("crowd_setup_s", "32 members start and join", "s"),
        ],
    );
    raw.insert("session".into(), session);

    eprintln!("measuring signed updates: sign, verify, receive …");
    let signing = sub(&["signing", "--iters", sized("1000", "20")])?;
    figures(
        &mut rows,
        &signing,
        &[
            ("sign_us_p50", "sign one update (vote, p50)", "us"),
            ("verify_us_p50", "verify one update's signature (p50)", "us"),
            (
                "receive_us_p50",
                "receive one signed vote: verify, rules, apply, fsync (p50)",
                "us",
            ),
            ("vote_update_bytes", "one vote's Loro update", "bytes"),
            (
                "envelope_overhead_bytes",
                "bytes an envelope adds to it",
                "bytes",
            ),
        ],
    );
    raw.insert("signing".into(), signing);

    eprintln!("measuring the music library: a scan of 10,000 files, cold and unchanged …");
    let library = sub(&["library", "--iters", sized("10000", "20")])?;
    figures(
        &mut rows,
        &library,
        &[
            (
                "cold_files_per_s",
                "library scan, cold (tags + BLAKE3), 10,000 files",
                "files/s",
            ),
            (
                "incremental_files_per_s",
                "library rescan, nothing changed",
                "files/s",
            ),
            ("search_ms", "library search among 10,000 files", "ms"),
        ],
    );
    raw.insert("library".into(), library);

    eprintln!("measuring audio from a member: a 50 MB file …");
    let transfer = sub(&["transfer", "--whatnext", bin, "--iters", sized("50", "1")])?;
    let copy = sub(&["stream-copy", "--iters", sized("50", "1")])?;
    rows.push(Row {
        figure: "audio from a member (50 MB, verified)".into(),
        ours: transfer["mb_per_s"].as_f64().unwrap_or(f64::NAN),
        baseline: copy["mb_per_s"].as_f64(),
        baseline_name: "one plain libp2p stream (TCP+Noise+Yamux)",
        unit: "MB/s",
    });
    rows.push(Row {
        figure: "audio from a member, vs a copy to disk".into(),
        ours: transfer["mb_per_s"].as_f64().unwrap_or(f64::NAN),
        baseline: copy["to_file_mb_per_s"].as_f64(),
        baseline_name: "the same stream, written to a file and synced",
        unit: "MB/s",
    });
    let hop = sub(&["pipe-hop", "--whatnext", bin, "--iters", sized("400", "4")])?;
    figures(
        &mut rows,
        &hop,
        &[(
            "mb_per_s",
            "audio across one controller → service pipe",
            "MB/s",
        )],
    );
    raw.insert("pipe_hop".into(), hop);
    figures(
        &mut rows,
        &transfer,
        &[(
            "first_group_ms",
            "add → first verified 256 KiB at the member",
            "ms",
        )],
    );
    raw.insert("stream_copy".into(), copy);

    eprintln!("measuring playback in two Chromium pages (a minute) …");
    if let Some(play) = playback(&args.whatnext) {
        figures(
            &mut rows,
            &play["skew_ms"],
            &[
                ("p50", "playback skew between two members, p50", "ms"),
                ("p95", "playback skew between two members, p95", "ms"),
                ("max", "playback skew between two members, max", "ms"),
            ],
        );
        figures(
            &mut rows,
            &play,
            &[(
                "add_play_to_sound_member_ms",
                "add + play → sound on a member without the file",
                "ms",
            )],
        );
        raw.insert("playback".into(), play);
    }
    let tracks = if quick() { 500 } else { 10_000 };
    eprintln!("measuring the view with a {tracks}-track playlist in Chromium …");
    if let Some(big) = big_playlist(&args.whatnext, tracks) {
        figures(
            &mut rows,
            &big,
            &[
                (
                    "open_ms",
                    "the view: open a playlist of 10,000 tracks (500 when quick)",
                    "ms",
                ),
                ("add_ms", "the view: an add shown in that playlist", "ms"),
                (
                    "remove_ms",
                    "the view: a removal shown in that playlist",
                    "ms",
                ),
            ],
        );
        raw.insert("big_playlist".into(), big);
    }
    raw.insert("transfer".into(), transfer);

    eprintln!("measuring how cost grows: tracks, playlists, members (a few minutes) …");
    let grown = growth(args)?;
    raw.insert("growth".into(), grown.clone());

    let machine = stats::machine();
    println!("machine: {machine}");
    println!(
        "{:<54} {:>15} {:>15} {:>8}  baseline is",
        "figure", "ours", "baseline", "ratio"
    );
    let mut table = Vec::new();
    for row in &rows {
        let ratio = row.baseline.map(|b| row.ours / b);
        println!(
            "{:<54} {:>15} {:>15} {:>8}  {}",
            row.figure,
            format!("{:.1} {}", row.ours, row.unit),
            row.baseline
                .map_or("-".into(), |b| format!("{b:.1} {}", row.unit)),
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            row.baseline_name
        );
        table.push(json!({
            "figure": row.figure, "ours": row.ours, "baseline": row.baseline,
            "baseline_name": row.baseline_name, "ratio": ratio, "unit": row.unit,
        }));
    }
    let (growth_tables, text) = growth_tables(&grown);
    println!("{text}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let doc = json!({"machine": machine, "results": table, "growth": growth_tables, "raw": raw});
    std::fs::write(&args.out, serde_json::to_vec_pretty(&doc)?)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}
