//! Whole-process figures with the real binary: cold start, `kill -9` of the service to
//! reconnected, idle RSS. State changes are observed with the long-poll API, so the
//! figures are not quantised by a polling interval.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::{Value, json};

struct Controller {
    child: Child,
    home: tempfile::TempDir,
    url: String,
    token: String,
}

struct Observer {
    url: String,
    token: String,
}

impl Observer {
    fn state(&self, since: Option<u64>) -> anyhow::Result<Value> {
        get_state(&self.url, &self.token, since)
    }
}

/// `GET /api/state`, a long poll with `since`.
fn get_state(url: &str, token: &str, since: Option<u64>) -> anyhow::Result<Value> {
    let path = match since {
        Some(v) => format!("{url}/api/state?since={v}"),
        None => format!("{url}/api/state"),
    };
    let mut response = Controller::agent()
        .get(&path)
        .header("Authorization", &format!("Bearer {token}"))
        .call()?;
    Ok(response.body_mut().read_json()?)
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // WHATNEXT_BENCH_LOGS=DIR keeps every controller's logs (`RUST_LOG` sets what).
        if let Some(keep) = std::env::var_os("WHATNEXT_BENCH_LOGS") {
            let into =
                std::path::PathBuf::from(keep).join(format!("controller-{}", self.child.id()));
            let _ = Command::new("cp")
                .arg("-a")
                .arg(self.home.path().join("logs"))
                .arg(into)
                .status();
        }
    }
}

impl Controller {
    /// Starts `whatnext run` and returns it with the time to `node: "running"`.
    fn start(whatnext: &Path) -> anyhow::Result<(Controller, Duration)> {
        Controller::start_with_music(whatnext, None)
    }

    /// [`Controller::start`] with `music` as its music folder (none by default: not the
    /// user's own).
    fn start_with_music(
        whatnext: &Path,
        music: Option<&Path>,
    ) -> anyhow::Result<(Controller, Duration)> {
        Controller::start_in(whatnext, tempfile::tempdir()?, music)
    }

    /// [`Controller::start_with_music`] in `home`, which may hold a store already.
    fn start_in(
        whatnext: &Path,
        home: tempfile::TempDir,
        music: Option<&Path>,
    ) -> anyhow::Result<(Controller, Duration)> {
        let dirs = music
            .map(|m| format!("{:?}", m.display().to_string()))
            .unwrap_or_default();
        std::fs::write(
            home.path().join("config.toml"),
            format!("music_dirs = [{dirs}]\n"),
        )?;
        let t0 = Instant::now();
        let child = Command::new(whatnext)
            .arg("--home")
            .arg(home.path())
            .args([
                "run",
                "--no-mdns",
                "--no-upnp",
                "--no-browser",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // WHATNEXT_BENCH_LOGS=1 shows the controllers' logs (what they did, e.g. in how
            // many parts a join went); quiet otherwise, as the figures are the output.
            .stderr(if std::env::var_os("WHATNEXT_BENCH_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()?;
        let api = home.path().join("api.json");
        let info: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&api)
                && let Ok(info) = serde_json::from_str(&text)
            {
                break info;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("controller did not write api.json");
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let mut ctl = Controller {
            child,
            home,
            url: info["url"].as_str().context("url")?.to_string(),
            token: info["token"].as_str().context("token")?.to_string(),
        };
        ctl.wait_for(|s| s["node"] == "running")?;
        let elapsed = t0.elapsed();
        Ok((ctl, elapsed))
    }

    /// A second client of a running controller's API (for observer threads).
    fn observer(url: String, token: String) -> Observer {
        Observer { url, token }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    fn state(&self, since: Option<u64>) -> anyhow::Result<Value> {
        get_state(&self.url, &self.token, since)
    }

    /// Long-polls until `check` holds; bounded to 30 s.
    fn wait_for(&mut self, check: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut state = self.state(None)?;
        while !check(&state) {
            if Instant::now() > deadline {
                bail!("condition not reached; last state {state}");
            }
            let version = state["version"].as_u64().unwrap_or(0);
            state = self.state(Some(version))?;
        }
        Ok(state)
    }

    fn invite(&self) -> anyhow::Result<String> {
        let mut response = Self::agent()
            .get(&format!("{}/api/invite", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()?;
        let reply: Value = response.body_mut().read_json()?;
        Ok(reply["link"].as_str().context("link")?.to_string())
    }

    fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let mut response = Self::agent()
            .post(&format!("{}{path}", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(body)?;
        Ok(response.body_mut().read_json()?)
    }

    fn connect(&self, addr: &str) -> anyhow::Result<()> {
        Self::agent()
            .post(&format!("{}/api/connect", self.url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(json!({"addr": addr}))?;
        Ok(())
    }
}

pub(crate) fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(whatnext: &Path) -> anyhow::Result<Value> {
    let mut cold = Vec::new();
    for _ in 0..crate::sized(10, 2) {
        let (_ctl, took) = Controller::start(whatnext)?;
        cold.push(took.as_secs_f64() * 1e3);
    }

    // A first crash restarts at once; later ones back off (100 ms doubling), so each sample
    // is the first crash of a fresh pair: the case a user meets.
    let mut restarts = Vec::new();
    let mut rss = (0, 0);
    for _ in 0..crate::sized(8, 1) {
        let (mut a, _) = Controller::start(whatnext)?;
        let (b, _) = Controller::start(whatnext)?;
        let b_state = b.state(None)?;
        let b_id = b_state["peer_id"].as_str().context("peer id")?.to_string();
        let b_addr = format!(
            "{}/p2p/{b_id}",
            b_state["listen_addrs"][0].as_str().context("addr")?
        );
        a.connect(&b_addr)?;
        let connected = |s: &Value| {
            s["node"] == "running"
                && s["connections"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["peer_id"] == b_id.as_str()))
        };
        a.wait_for(connected)?;
        std::thread::sleep(Duration::from_secs(1));
        let before = a.state(None)?;
        let old = before["service"]["pid"].as_u64().context("service pid")?;
        rss = (rss_kb(a.child.id()), rss_kb(old as u32));
        let t0 = Instant::now();
        nix::sys::signal::kill(Pid::from_raw(old as i32), Signal::SIGKILL)?;
        a.wait_for(|s| s["service"]["pid"].as_u64().is_some_and(|p| p != old) && connected(s))?;
        restarts.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    // A link click: a fresh `whatnext open --wait` process against a running controller, to a
    // fresh peer each time (an already connected peer would answer at once).
    let mut clicks = Vec::new();
    let mut dials = Vec::new();
    let (mut a, _) = Controller::start(whatnext)?;
    for _ in 0..crate::sized(20, 2) {
        let (b, _) = Controller::start(whatnext)?;
        let link = b.invite()?;
        let t0 = Instant::now();
        let status = Command::new(whatnext)
            .arg("--home")
            .arg(a.home.path())
            .args(["open", "--wait", &link])
            .stdout(Stdio::null())
            .status()?;
        let took = t0.elapsed();
        if !status.success() {
            bail!("open --wait failed");
        }
        clicks.push(took.as_secs_f64() * 1e3);
        let state = a.wait_for(|s| s["link_attempts"].as_array().is_some_and(|l| !l.is_empty()))?;
        if let Some(ms) = state["link_attempts"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(|l| l["dial_ms"].as_f64())
        {
            dials.push(ms);
        }
    }

    let max = restarts.iter().copied().fold(0.0, f64::max);
    Ok(json!({
        "cold_start_ms": cold,
        "cold_start_p50_ms": median(cold.clone()),
        "restart_reconnect_ms": restarts,
        "restart_reconnect_p50_ms": median(restarts.clone()),
        "restart_reconnect_max_ms": max,
        "idle_rss_controller_kb": rss.0,
        "idle_rss_service_kb": rss.1,
        "idle_rss_mb": (rss.0 + rss.1) as f64 / 1024.0,
        "link_click_ms": clicks,
        "link_click_p50_ms": median(clicks.clone()),
        "dial_ms": dials,
        "dial_p50_ms": median(dials.clone()),
    }))
}

/// A home of `playlists` playlists of 100 tracks (written by the store itself, stopped
/// cleanly) under the real controller: `run` → node running, the playlists listed over the
/// API, and the memory of controller + service once it has settled (the Markdown mirror
/// of every playlist written).
pub fn home(whatnext: &Path, playlists: usize, runs: usize) -> anyhow::Result<Value> {
    let mut starts = Vec::new();
    let mut lists = Vec::new();
    let mut rss = Vec::new();
    let mut disk = 0;
    for _ in 0..runs {
        let home = tempfile::tempdir()?;
        disk = crate::store_growth::write_home(&home.path().join("store"), playlists, 100)?.1;
        if let Some(keep) = std::env::var_os("WHATNEXT_BENCH_KEEP") {
            let copy = Command::new("cp")
                .arg("-a")
                .arg(home.path().join("store"))
                .arg(std::path::PathBuf::from(keep).join(format!("home-{playlists}")))
                .status()?;
            anyhow::ensure!(copy.success(), "could not keep the home");
        }
        let (mut ctl, took) = Controller::start_in(whatnext, home, None)?;
        starts.push(took.as_secs_f64() * 1e3);
        let t = Instant::now();
        let mut response = Controller::agent()
            .get(&format!("{}/api/playlists", ctl.url))
            .header("Authorization", &format!("Bearer {}", ctl.token))
            .call()?;
        let listed: Value = response.body_mut().read_json()?;
        lists.push(t.elapsed().as_secs_f64() * 1e3);
        let count = listed
            .as_array()
            .or_else(|| listed["playlists"].as_array())
            .map_or(0, Vec::len);
        if count != playlists {
            bail!("listed {count} playlists of {playlists}: {listed}");
        }
        // Settled: every playlist's Markdown mirror written (they are, at start).
        let mirrors = ctl.home.path().join("playlists");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_dir(&mirrors).map_or(0, |d| d.count()) < playlists {
            if Instant::now() > deadline {
                bail!("the mirrors were not written");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(1));
        let state = ctl.wait_for(|s| s["service"]["pid"].as_u64().is_some())?;
        let service = state["service"]["pid"].as_u64().context("service pid")? as u32;
        rss.push((rss_kb(ctl.child.id()) + rss_kb(service)) as f64 / 1024.0);
    }
    Ok(json!({
        "playlists": playlists,
        "tracks_each": 100,
        "disk_bytes": disk,
        "start_to_running_ms": median(starts),
        "list_ms": median(lists),
        "settled_rss_mb": median(rss),
    }))
}

/// The store: a 10,000-track playlist added in one batch, single acknowledged adds, then
/// the size on disk and the time and memory to load it after a restart.
pub fn store(whatnext: &Path) -> anyhow::Result<Value> {
    let (mut ctl, _) = Controller::start(whatnext)?;
    let id = ctl.post("/api/playlists", json!({"name": "big"}))?["id"]
        .as_str()
        .context("id")?
        .to_string();
    let big_count = crate::sized(10_000, 500);
    let tracks: Vec<Value> = (0..big_count)
        .map(|i| {
            json!({"title": format!("Track number {i}"), "artists": [format!("Artist {}", i % 500)],
                   "album": format!("Album {}", i % 1000), "duration_ms": 180_000 + i, "uri": format!("spotify:track:{i:022}")})
        })
        .collect();
    let t0 = Instant::now();
    let reply = ctl.post(
        &format!("/api/playlists/{id}/tracks"),
        json!({"tracks": tracks}),
    )?;
    let batch_ms = t0.elapsed().as_secs_f64() * 1e3;
    if reply["track_ids"].as_array().map(Vec::len) != Some(big_count) {
        bail!("batch add failed: {reply}");
    }

    let small = ctl.post("/api/playlists", json!({"name": "small"}))?["id"]
        .as_str()
        .context("id")?
        .to_string();
    let mut acks = Vec::new();
    let small_count = crate::sized(300, 30);
    for i in 0..small_count {
        let t = Instant::now();
        ctl.post(
            &format!("/api/playlists/{small}/tracks"),
            json!({"title": format!("t{i}"), "artists": ["a"]}),
        )?;
        acks.push(t.elapsed().as_secs_f64() * 1e3);
    }
    acks.drain(..crate::sized(20, 5)); // warm-up
    let controller_rss_kb = rss_kb(ctl.child.id());

    // A clean stop folds the logs into snapshots.
    nix::sys::signal::kill(Pid::from_raw(ctl.child.id() as i32), Signal::SIGTERM)?;
    let _ = ctl.child.wait();
    let store_dir = ctl.home.path().join("store");
    let big_dir = store_dir.join(&id);
    let disk: u64 = std::fs::read_dir(&big_dir)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();

    let mut loads = Vec::new();
    let mut full_loads = Vec::new();
    let rss_before = rss_kb(std::process::id());
    let mut kept = None;
    for _ in 0..crate::sized(5, 1) {
        let t = Instant::now();
        let (mut store, report) = whatnext_store::Store::open(&store_dir, 0)?;
        let total: usize = store.list().iter().map(|p| p.track_count).sum();
        loads.push(t.elapsed().as_secs_f64() * 1e3);
        // Loro decodes lazily: reading every track of the big one is "fully loaded".
        let tracks = store.get(&id)?.tracks.len();
        full_loads.push(t.elapsed().as_secs_f64() * 1e3);
        if report.playlists != 2 || total != big_count + small_count || tracks != big_count {
            bail!(
                "loaded {} playlists, {total} tracks, {tracks} in the big one",
                report.playlists
            );
        }
        kept = Some(store);
    }
    let rss_loaded = rss_kb(std::process::id());
    drop(kept);
    let mut sorted = acks.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Ok(json!({
        "batch_add_10k_ms": batch_ms,
        "snapshot_bytes_10k": disk,
        "load_ms": loads,
        "load_p50_ms": median(loads.clone()),
        "full_load_ms": full_loads,
        "full_load_p50_ms": median(full_loads.clone()),
        "store_memory_mb": (rss_loaded.saturating_sub(rss_before)) as f64 / 1024.0,
        "controller_rss_after_10k_mb": controller_rss_kb as f64 / 1024.0,
        "ack_add_p50_ms": crate::stats::percentile(&sorted, 0.5),
        "ack_add_p99_ms": crate::stats::percentile(&sorted, 0.99),
    }))
}

/// Bytes sent on the loopback interface so far (all processes; the bench keeps other
/// traffic small while it measures).
fn loopback_tx_bytes() -> u64 {
    std::fs::read_to_string("/sys/class/net/lo/statistics/tx_bytes")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Collaboration: edit propagation A → B, and joining a 10,000-track playlist.
pub fn sync(whatnext: &Path) -> anyhow::Result<Value> {
    let (a, _) = Controller::start(whatnext)?;
    let (mut b, _) = Controller::start(whatnext)?;
    let id = share_and_join(&a, &b, "live")?;
    b.wait_for(|s| track_count(s, &id).is_some())?;
    let mut samples = Vec::new();
    for i in 0..crate::sized(200u64, 10) {
        let t = Instant::now();
        a.post(
            &format!("/api/playlists/{id}/tracks"),
            json!({"title": format!("edit {i}"), "artists": ["a"]}),
        )?;
        b.wait_for(|s| track_count(s, &id) == Some(i + 1))?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(|x, y| x.total_cmp(y));

    // Joining a big playlist: C opens A's link to a 10,000-track playlist.
    let (_c, _big, join_s, sent) = big_join(whatnext, &a, crate::sized(10_000, 500))?;
    Ok(json!({
        "propagation_p50_ms": crate::stats::percentile(&samples, 0.5),
        "propagation_p99_ms": crate::stats::percentile(&samples, 0.99),
        "join_10k_seconds": join_s,
        "join_10k_loopback_bytes": sent,
    }))
}

/// A playlist of `tracks` tracks on `a`, shared, and a fresh controller that opens its link:
/// the joiner, the playlist's id, the seconds until every track is in the joiner's state and
/// the bytes sent on loopback meanwhile.
fn big_join(
    whatnext: &Path,
    a: &Controller,
    tracks: usize,
) -> anyhow::Result<(Controller, String, f64, u64)> {
    let big = a.post("/api/playlists", json!({"name": "big"}))?["id"]
        .as_str()
        .context("id")?
        .to_string();
    let all: Vec<Value> = (0..tracks)
        .map(|i| json!({"title": format!("Track number {i}"), "artists": [format!("Artist {}", i % 500)], "album": format!("Album {}", i % 1000), "duration_ms": 180_000 + i}))
        .collect();
    for batch in all.chunks(10_000) {
        a.post(
            &format!("/api/playlists/{big}/tracks"),
            json!({"tracks": batch}),
        )?;
    }
    let link = a.post(&format!("/api/playlists/{big}/share"), json!({}))?["link"]
        .as_str()
        .context("link")?
        .to_string();
    let (mut c, _) = Controller::start(whatnext)?;
    let sent_before = loopback_tx_bytes();
    let t = Instant::now();
    let joined = c.post("/api/open", json!({"url": link, "wait": true}))?;
    if joined["status"] != "connected" {
        bail!("join failed: {joined}");
    }
    c.wait_for(|s| track_count(s, &big) == Some(tracks as u64))?;
    let join_s = t.elapsed().as_secs_f64();
    let sent = loopback_tx_bytes().saturating_sub(sent_before);
    Ok((c, big, join_s, sent))
}

/// The track count of playlist `id` in a state, if it is listed.
fn track_count(state: &Value, id: &str) -> Option<u64> {
    state["playlists"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["id"] == id))
        .and_then(|p| p["track_count"].as_u64())
}

/// Joining a playlist of `tracks` tracks: C opens A's link (open → every track in C's
/// state, bytes on loopback), then edits in it reach C (p50 of 20).
pub fn join(whatnext: &Path, tracks: usize) -> anyhow::Result<Value> {
    let (a, _) = Controller::start(whatnext)?;
    let (mut c, big, join_s, sent) = big_join(whatnext, &a, tracks)?;
    let mut samples = Vec::new();
    for i in 0..crate::sized(20u64, 3) {
        let t = Instant::now();
        a.post(
            &format!("/api/playlists/{big}/tracks"),
            json!({"title": format!("edit {i}"), "artists": ["a"]}),
        )?;
        c.wait_for(|s| track_count(s, &big) == Some(tracks as u64 + i + 1))?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(json!({
        "tracks": tracks,
        "join_s": join_s,
        "join_loopback_bytes": sent,
        "edit_propagation_p50_ms": median(samples),
    }))
}

/// State freshness: a change in the controller → a client sees it. Our view's long poll
/// against the seed design's 1 s poll, both watching the same 20 changes made at random
/// moments.
pub fn freshness(whatnext: &Path) -> anyhow::Result<Value> {
    use std::sync::{Arc, Mutex, atomic::AtomicBool, atomic::Ordering};
    let (ctl, _) = Controller::start(whatnext)?;
    let created = ctl.post("/api/playlists", json!({"name": "freshness"}))?;
    let id = created["id"].as_str().context("playlist id")?.to_string();
    let playlist = id.clone();
    let track_count = move |s: &Value| {
        s["playlists"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == playlist.as_str()))
            .and_then(|p| p["track_count"].as_u64())
            .unwrap_or(0)
    };
    let done = Arc::new(AtomicBool::new(false));
    // When each observer first saw n tracks: a thread per observer, one the view's long
    // poll, the other the seed design's 1 s poll.
    let observe = |long_poll: bool| {
        let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let (url, token, record, done) = (
            ctl.url.clone(),
            ctl.token.clone(),
            seen.clone(),
            done.clone(),
        );
        let track_count = track_count.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let observer = Controller::observer(url, token);
            let mut since = None;
            while !done.load(Ordering::Relaxed) {
                let state = observer.state(since.filter(|_| long_poll))?;
                since = state["version"].as_u64();
                record
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push((track_count(&state), Instant::now()));
                if !long_poll {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            Ok(())
        });
        (seen, thread)
    };
    let (seen_long, long_poller) = observe(true);
    let (seen_poll, poller) = observe(false);
    let mut changes = Vec::new();
    for n in 1..=crate::sized(20u64, 3) {
        std::thread::sleep(Duration::from_millis(rand::random_range(300..1300)));
        let t0 = Instant::now();
        ctl.post(
            &format!("/api/playlists/{id}/tracks"),
            json!({"title": format!("t{n}")}),
        )?;
        changes.push((n, t0));
    }
    std::thread::sleep(Duration::from_millis(1500));
    done.store(true, Ordering::Relaxed);
    // Wake the long poller with one more change.
    ctl.post(
        &format!("/api/playlists/{id}/tracks"),
        json!({"title": "last"}),
    )?;
    long_poller
        .join()
        .map_err(|_| anyhow::anyhow!("long poller panicked"))??;
    poller
        .join()
        .map_err(|_| anyhow::anyhow!("poller panicked"))??;
    let delays = |seen: &Arc<Mutex<Vec<(u64, Instant)>>>| -> Vec<f64> {
        let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
        changes
            .iter()
            .filter_map(|(n, t0)| {
                seen.iter()
                    .find(|(count, _)| count >= n)
                    .map(|(_, at)| at.saturating_duration_since(*t0).as_secs_f64() * 1e3)
            })
            .collect()
    };
    let long = delays(&seen_long);
    let poll = delays(&seen_poll);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(json!({
        "long_poll_ms": long,
        "long_poll_p50_ms": median(long.clone()),
        "long_poll_mean_ms": mean(&long),
        "poll_1s_ms": poll,
        "poll_1s_p50_ms": median(poll.clone()),
        "poll_1s_mean_ms": mean(&poll),
    }))
}

/// `updated_at` of playlist `id` in a state, if it is listed.
fn updated_at(state: &Value, id: &str) -> Option<u64> {
    state["playlists"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)?["updated_at"]
        .as_u64()
}

/// Starts `count` controllers; the first shares playlist "party", the others join it. Returns
/// them (the owner first) and the playlist id.
fn party(whatnext: &Path, count: usize) -> anyhow::Result<(Vec<Controller>, String)> {
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(Controller::start(whatnext)?.0);
    }
    let id = members[0].post("/api/playlists", json!({"name": "party"}))?["id"]
        .as_str()
        .context("id")?
        .to_string();
    let link = members[0].post(&format!("/api/playlists/{id}/share"), json!({}))?["link"]
        .as_str()
        .context("link")?
        .to_string();
    for member in &mut members[1..] {
        let joined = member.post("/api/open", json!({"url": link, "wait": true}))?;
        if joined["status"] != "connected" {
            bail!("join failed: {joined}");
        }
        member.wait_for(|s| updated_at(s, &id).is_some())?;
    }
    Ok((members, id))
}

/// Waits on every observer (in parallel, long polls) until `check` accepts its state;
/// returns each one's delay from `t0`, in ms.
fn all_see(
    observers: &[Observer],
    t0: Instant,
    check: impl Fn(&Value) -> bool + Sync,
) -> anyhow::Result<Vec<f64>> {
    std::thread::scope(|scope| {
        let waits: Vec<_> = observers
            .iter()
            .map(|o| {
                let check = &check;
                scope.spawn(move || -> anyhow::Result<f64> {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let mut state = o.state(None)?;
                    while !check(&state) {
                        if Instant::now() > deadline {
                            bail!("a member never saw the change");
                        }
                        let version = state["version"].as_u64().unwrap_or(0);
                        state = o.state(Some(version))?;
                    }
                    Ok(t0.elapsed().as_secs_f64() * 1e3)
                })
            })
            .collect();
        waits
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("a waiter panicked"))?)
            .collect()
    })
}

/// The listening session: a vote on A → visible in the state of every member (5 members),
/// and one edit in a session of `crowd` members → all the others, with memory per member.
pub fn session(whatnext: &Path, crowd: usize) -> anyhow::Result<Value> {
    // Votes, 5 members.
    let (members, id) = party(whatnext, 5)?;
    let owner = &members[0];
    let added = owner.post(
        &format!("/api/playlists/{id}/tracks"),
        json!({"title": "vote on me", "artists": ["x"]}),
    )?;
    let track = added["track_id"].as_str().context("track id")?.to_string();
    owner.post(
        &format!("/api/playlists/{id}/session"),
        json!({"action": "mode", "mode": "vote"}),
    )?;
    let observers: Vec<Observer> = members[1..]
        .iter()
        .map(|m| Controller::observer(m.url.clone(), m.token.clone()))
        .collect();
    let mut each = Vec::new();
    let mut last = Vec::new();
    for i in 0..crate::sized(100, 5) {
        // Distinct update times: a vote moves the playlist's `updated_at` (ms).
        std::thread::sleep(Duration::from_millis(3));
        let t0 = Instant::now();
        owner.post(
            &format!("/api/playlists/{id}/session"),
            json!({"action": "vote", "track_id": track, "vote": if i % 2 == 0 { 1 } else { 0 }}),
        )?;
        let target = updated_at(&owner.state(None)?, &id).context("updated_at")?;
        let delays = all_see(&observers, t0, |s| updated_at(s, &id) >= Some(target))?;
        last.push(delays.iter().copied().fold(0.0, f64::max));
        each.extend(delays);
    }
    each.sort_by(|a, b| a.total_cmp(b));
    last.sort_by(|a, b| a.total_cmp(b));
    drop(members);

    // One edit → all the others, in a session of `crowd` members.
    let started = Instant::now();
    let (members, id) = party(whatnext, crowd)?;
    let setup_s = started.elapsed().as_secs_f64();
    let owner = &members[0];
    let observers: Vec<Observer> = members[1..]
        .iter()
        .map(|m| Controller::observer(m.url.clone(), m.token.clone()))
        .collect();
    let count_on = |s: &Value| {
        s["playlists"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == id))
            .and_then(|p| p["track_count"].as_u64())
    };
    let mut to_all = Vec::new();
    for i in 0..crate::sized(30u64, 3) {
        let t0 = Instant::now();
        owner.post(
            &format!("/api/playlists/{id}/tracks"),
            json!({"title": format!("edit {i}"), "artists": ["a"]}),
        )?;
        let delays = all_see(&observers, t0, |s| count_on(s) >= Some(i + 1))?;
        to_all.push(delays.iter().copied().fold(0.0, f64::max));
    }
    to_all.sort_by(|a, b| a.total_cmp(b));
    let mut rss = Vec::new();
    for member in &members {
        let state = member.state(None)?;
        let service = state["service"]["pid"].as_u64().unwrap_or(0) as u32;
        rss.push((rss_kb(member.child.id()) + rss_kb(service)) as f64 / 1024.0);
    }
    let connections: Vec<f64> = members
        .iter()
        .map(|m| {
            m.state(None)
                .map(|s| s["connections"].as_array().map_or(0, Vec::len) as f64)
                .unwrap_or(0.0)
        })
        .collect();
    Ok(json!({
        "vote_each_p50_ms": crate::stats::percentile(&each, 0.5),
        "vote_each_p99_ms": crate::stats::percentile(&each, 0.99),
        "vote_all_p50_ms": crate::stats::percentile(&last, 0.5),
        "vote_all_p99_ms": crate::stats::percentile(&last, 0.99),
        "crowd": crowd,
        "crowd_setup_s": setup_s,
        "crowd_edit_all_p50_ms": crate::stats::percentile(&to_all, 0.5),
        "crowd_edit_all_p99_ms": crate::stats::percentile(&to_all, 0.99),
        "crowd_rss_per_member_mb": median(rss),
        "crowd_connections_per_member": median(connections),
    }))
}

/// Audio from a member: A has a `mb` MB file in its library and adds it to a playlist B
/// shares; B fetches it (verified groups through both services' pipes). Time to B's first
/// verified group and to the whole file.
pub fn transfer(whatnext: &Path, mb: u64) -> anyhow::Result<Value> {
    let music = tempfile::tempdir()?;
    // 8 kHz 16-bit mono: 16,000 bytes a second.
    let ms = u32::try_from(mb * 1_000_000 / 16).unwrap_or(u32::MAX);
    whatnext_media::tone::write_tagged_tone(
        &music.path().join("big.wav"),
        ms,
        "Big",
        "Bench",
        "Bench",
    )?;
    let (a, _) = Controller::start_with_music(whatnext, Some(music.path()))?;
    let (b, _) = Controller::start(whatnext)?;
    a.post("/api/library/scan", json!({}))?;
    let entry = get_json(&a.url, &a.token, "/api/library?q=big")?["entries"][0].clone();
    let blake3 = entry["content"]["blake3"]
        .as_str()
        .context("blake3")?
        .to_string();
    let size = entry["content"]["size"].as_u64().context("size")?;
    let id = share_and_join(&a, &b, "audio")?;
    let media = b.home.path().join("media");
    let (partial, whole) = (media.join(format!("{blake3}.partial")), media.join(&blake3));
    let track = json!({"title": entry["title"], "artists": entry["artists"], "duration_ms": entry["duration_ms"], "content": entry["content"]});
    let t0 = Instant::now();
    a.post(&format!("/api/playlists/{id}/tracks"), track)?;
    let (mut first_ms, mut started) = (None, None);
    while !whole.exists() {
        let on_disk = std::fs::metadata(&partial).map(|m| m.len()).ok();
        // The transfer starts when B opens the partial file (the outboard checked).
        if started.is_none() && on_disk.is_some() {
            started = Some(t0.elapsed());
        }
        if first_ms.is_none() && on_disk.is_some_and(|len| len >= 256 * 1024) {
            first_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
        }
        if t0.elapsed() > Duration::from_secs(600) {
            bail!("B did not fetch the file in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = t0.elapsed().as_secs_f64();
    let moving = seconds - started.map_or(0.0, |s| s.as_secs_f64());
    Ok(json!({
        "mb": size as f64 / 1e6,
        "first_group_ms": first_ms,
        "whole_s": seconds,
        "transfer_s": moving,
        // Over the transfer itself (what the stream copy is compared with); the time
        // before it (noticing the track, the outboard) is in `first_group_ms`.
        "mb_per_s": size as f64 / 1e6 / moving,
        "mb_per_s_from_add": size as f64 / 1e6 / seconds,
    }))
}

/// A creates playlist `name` and shares it; B joins through the link. The playlist's id.
fn share_and_join(a: &Controller, b: &Controller, name: &str) -> anyhow::Result<String> {
    let id = a.post("/api/playlists", json!({"name": name}))?["id"]
        .as_str()
        .context("id")?
        .to_string();
    let link = a.post(&format!("/api/playlists/{id}/share"), json!({}))?["link"]
        .as_str()
        .context("link")?
        .to_string();
    let joined = b.post("/api/open", json!({"url": link, "wait": true}))?;
    if joined["status"] != "connected" {
        bail!("join failed: {joined}");
    }
    Ok(id)
}

fn get_json(url: &str, token: &str, path: &str) -> anyhow::Result<Value> {
    Ok(Controller::agent()
        .get(&format!("{url}{path}"))
        .header("Authorization", &format!("Bearer {token}"))
        .call()?
        .body_mut()
        .read_json()?)
}
