//! The listening session between three real controllers on loopback, through `whatnext
//! session …`: turns, votes, who holds playback (and two members taking it at once), skip
//! votes, comments, the fallback playlist and saving what played. Every member must end up
//! computing the same session; every refusal exits non-zero with the reason on stderr.

use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::Value;

/// Sync between three members can take a few anti-entropy rounds on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(60);

/// Three members of one shared playlist: Ann (the owner), Bea and Cid, who joined in that
/// order through the share link.
struct Party {
    a: Node,
    b: Node,
    c: Node,
    id: String,
    /// Peer ids of Ann, Bea, Cid.
    peers: [String; 3],
}

impl Party {
    fn start(name: &str) -> Party {
        let (a, b, c) = (Node::start(), Node::start(), Node::start());
        for (node, display) in [(&a, "Ann"), (&b, "Bea"), (&c, "Cid")] {
            let out = node.cli(&["config", "set", "display-name", display]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let peers = [a.peer_id(), b.peer_id(), c.peer_id()];
        let (id, link) = create_shared(&a, name);
        join(&b, &link);
        // Bea is recorded before Cid joins, so the join order is known.
        wait_views("Bea in the turn order", &[&a], &id, |views| {
            turn_order(&views[0]).contains(&peers[1])
        });
        join(&c, &link);
        let party = Party { a, b, c, id, peers };
        let want = party.peers.to_vec();
        party.wait(
            "every member to have the session and the join order",
            |views| views.iter().all(|v| turn_order(v) == want),
        );
        party
    }

    fn nodes(&self) -> [&Node; 3] {
        [&self.a, &self.b, &self.c]
    }

    /// Polls `session now --json` on all three until `check` holds for the three views.
    fn wait(&self, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        wait_views(what, &self.nodes(), &self.id, check)
    }

    /// `session ARGS… --json` on `node` (the playlist id goes after the subcommand).
    fn act(&self, node: &Node, command: &str, rest: &[&str]) -> Value {
        let mut args = vec!["session", command, self.id.as_str()];
        args.extend_from_slice(rest);
        cli_json(node, &args)
    }

    /// `session ARGS…` on `node`, which must be refused; its stderr.
    fn refused(&self, node: &Node, command: &str, rest: &[&str]) -> String {
        let mut args = vec!["session", command, self.id.as_str()];
        args.extend_from_slice(rest);
        refused(node, &args)
    }
}

/// Polls the sessions of `nodes` until `check` accepts all of them; panics with what each
/// showed last.
fn wait_views(
    what: &str,
    nodes: &[&Node],
    id: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let last: Vec<Option<Value>> = nodes.iter().map(|node| session_now(node, id)).collect();
        if last.iter().all(Option::is_some) {
            let views: Vec<Value> = last.iter().flatten().cloned().collect();
            if check(&views) {
                return views;
            }
        }
        if Instant::now() >= deadline {
            let shown: Vec<String> = last
                .iter()
                .map(|v| v.as_ref().map_or("none".into(), Value::to_string))
                .collect();
            panic!(
                "timed out after {CONVERGE:?} waiting for {what}; last sessions:\n{}\n--- first node's log ---\n{}",
                shown.join("\n"),
                nodes[0].log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `whatnext ARGS` on `node`, which must fail; returns its stderr.
fn refused(node: &Node, args: &[&str]) -> String {
    let out = node.cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{args:?} was accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn turn_order(view: &Value) -> Vec<String> {
    strings(&view["turn_order"])
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Up next as (track id, score), in order.
fn up_next(view: &Value) -> Vec<(String, i64)> {
    view["up_next"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| {
                    (
                        u["track_id"].as_str().unwrap_or_default().to_string(),
                        u["score"].as_i64().unwrap_or(i64::MIN),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn playing(view: &Value) -> Option<&str> {
    view["now_playing"]["track_id"].as_str()
}

fn history(view: &Value) -> Vec<String> {
    view["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| h["track_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every view in turns mode, at turn `number`, which is `holder`'s.
fn turn_of(holder: &str, number: u64) -> impl Fn(&[Value]) -> bool + '_ {
    move |views: &[Value]| {
        views.iter().all(|v| {
            v["mode"] == "turn_taking"
                && v["turn"]["peer_id"] == holder
                && v["turn"]["number"] == number
        })
    }
}

fn all_equal<T: PartialEq>(items: impl IntoIterator<Item = T>) -> bool {
    let items: Vec<T> = items.into_iter().collect();
    items.windows(2).all(|w| w[0] == w[1])
}

/// Turns: only the owner or a co-host sets the mode; every member sees the same turn; an
/// add out of turn is refused; an add or a pass moves the turn on by exactly one.
#[test]
fn turns_pass_in_join_order_and_out_of_turn_adds_are_refused() {
    let p = Party::start("Turns");
    let [ann, bea, cid] = p.peers.clone();

    let err = p.refused(&p.b, "mode", &["turns", "--per-turn", "1"]);
    assert!(
        err.contains("only the owner (Ann)") && err.contains("mode"),
        "{err}"
    );
    let set = p.act(&p.a, "mode", &["turns", "--per-turn", "1"]);
    assert_eq!(set["mode"], "turn_taking", "{set}");
    let views = p.wait("turns mode and Ann's turn everywhere", turn_of(&ann, 0));
    for view in &views {
        assert_eq!(turn_order(view), [ann.clone(), bea.clone(), cid.clone()]);
        assert_eq!(view["turn"]["tracks_left"], 1, "{view}");
        assert_eq!(view["turn"]["display_name"], "Ann", "{view}");
    }

    // Cid adds out of turn: refused, with whose turn it is.
    let err = refused(&p.c, &["playlist", "add", &p.id, "--title", "too early"]);
    assert!(err.contains("Ann's turn") && err.contains("turn"), "{err}");

    let anns = add_track(&p.a, &p.id, "Ann's pick");
    p.wait("Bea's turn everywhere", turn_of(&bea, 1));
    // The turn is over for Ann: her second add is refused too.
    let err = refused(&p.a, &["playlist", "add", &p.id, "--title", "again"]);
    assert!(err.contains("Bea's turn"), "{err}");

    let passed = p.act(&p.b, "pass", &[]);
    assert_eq!(passed["turn"]["peer_id"], cid.as_str(), "{passed}");
    p.wait("Cid's turn everywhere", turn_of(&cid, 2));
    add_track(&p.c, &p.id, "Cid's pick");
    p.wait("Ann's turn again everywhere", turn_of(&ann, 3));

    // A pass out of turn is refused; so is removing someone else's track as a member.
    let err = p.refused(&p.b, "pass", &[]);
    assert!(err.contains("it is Ann's turn"), "{err}");
    let err = refused(&p.c, &["playlist", "remove", &p.id, &anns]);
    assert!(err.contains("only Ann (who added it)"), "{err}");

    // The text form names the member whose turn it is.
    let out = p.b.cli(&["session", "now", &p.id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Turn: Ann's, 1 track left"), "{text}");
    assert!(text.contains("order: Ann → Bea (you) → Cid"), "{text}");
}

/// Votes are each member's own: votes cast on three members all count, and every member
/// orders up next by the same scores.
#[test]
fn votes_from_three_members_order_up_next_the_same_everywhere() {
    let p = Party::start("Votes");
    p.act(&p.a, "mode", &["vote"]);
    let t1 = add_track(&p.a, &p.id, "first");
    let t2 = add_track(&p.b, &p.id, "second");
    let t3 = add_track(&p.c, &p.id, "third");
    p.wait("vote mode and all three tracks everywhere", |views| {
        views
            .iter()
            .all(|v| v["mode"] == "vote" && up_next(v).len() == 3)
    });

    p.act(&p.a, "vote", &[&t3, "up"]);
    p.act(&p.b, "vote", &[&t3, "up"]);
    p.act(&p.b, "vote", &[&t2, "up"]);
    p.act(&p.c, "vote", &[&t1, "down"]);
    // Cid changes his mind about one vote: a vote replaces the member's earlier one.
    p.act(&p.c, "vote", &[&t2, "down"]);
    p.act(&p.c, "vote", &[&t2, "clear"]);

    let want = vec![(t3.clone(), 2), (t2.clone(), 1), (t1.clone(), -1)];
    let views = p.wait("one order by score everywhere", |views| {
        views.iter().all(|v| up_next(v) == want)
    });
    let mine = |view: &Value, track: &str| {
        view["up_next"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["track_id"] == track))
            .map(|u| u["my_vote"].clone())
    };
    assert_eq!(mine(&views[0], &t3), Some(1.into()));
    assert_eq!(mine(&views[1], &t2), Some(1.into()));
    assert_eq!(mine(&views[2], &t1), Some((-1).into()));
    assert_eq!(mine(&views[2], &t2), Some(0.into()));

    let out = p.c.cli(&["session", "now", &p.id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1. third — someone  [score +2]"), "{text}");
    assert!(
        text.contains("3. first — someone  [score -1, you: down]"),
        "{text}"
    );

    let err = refused(&p.a, &["session", "vote", &p.id, &t1, "sideways"]);
    assert!(err.contains("up") && err.contains("down"), "{err}");
}

/// Only the member holding playback plays, pauses and moves on; the owner makes Bea a
/// co-host, she takes playback, and from then on the owner's pause is refused.
#[test]
fn only_the_holder_controls_playback_until_a_co_host_takes_it() {
    let p = Party::start("Playback");
    let [ann, bea, _] = p.peers.clone();
    let first = add_track(&p.a, &p.id, "opener");
    add_track(&p.a, &p.id, "closer");
    p.wait("the tracks everywhere", |views| {
        views.iter().all(|v| up_next(v).len() == 2)
    });

    let err = p.refused(&p.b, "pause", &[]);
    assert!(err.contains("Ann holds playback"), "{err}");
    let err = p.refused(&p.b, "take", &[]);
    assert!(err.contains("only the owner (Ann) or a co-host"), "{err}");

    let started = p.act(&p.a, "play", &[]);
    assert_eq!(playing(&started), Some(first.as_str()), "{started}");
    p.wait("the opener playing everywhere", |views| {
        views.iter().all(|v| {
            playing(v) == Some(first.as_str())
                && v["now_playing"]["title"] == "opener"
                && v["now_playing"]["paused"] == false
                && v["playback_owner"] == ann.as_str()
        })
    });

    let err = p.refused(&p.a, "role", &[&bea, "owner"]);
    assert!(err.contains("co-host"), "clap lists the roles: {err}");
    p.act(&p.a, "role", &[&bea, "co-host"]);
    wait_views("Bea a co-host on her node", &[&p.b], &p.id, |views| {
        views[0]["my_role"] == "co_host"
    });
    let taken = p.act(&p.b, "take", &[]);
    assert_eq!(taken["playback_owner"], bea.as_str(), "{taken}");
    let paused = p.act(&p.b, "pause", &[]);
    assert_eq!(paused["now_playing"]["paused"], true, "{paused}");
    p.wait("Bea holding playback, paused, everywhere", |views| {
        views
            .iter()
            .all(|v| v["playback_owner"] == bea.as_str() && v["now_playing"]["paused"] == true)
    });
    let err = p.refused(&p.a, "pause", &[]);
    assert!(err.contains("Bea holds playback"), "{err}");
    let err = p.refused(&p.c, "next", &[]);
    assert!(err.contains("Bea holds playback"), "{err}");

    let sought = p.act(&p.b, "seek", &["1:30"]);
    assert_eq!(sought["now_playing"]["position_ms"], 90_000, "{sought}");
    let out = p.b.cli(&["session", "resume", &p.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("playing: opener — someone  1:3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Two hosts take playback at the same moment: every member ends up with the same one.
#[test]
fn two_simultaneous_takes_converge_to_one_holder() {
    let p = Party::start("Race");
    let [ann, bea, _] = p.peers.clone();
    p.act(&p.a, "role", &[&bea, "co-host"]);
    wait_views("Bea a co-host on her node", &[&p.b], &p.id, |views| {
        views[0]["my_role"] == "co_host"
    });
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        for home in [&p.a.home, &p.b.home] {
            let (barrier, id) = (&barrier, &p.id);
            scope.spawn(move || {
                barrier.wait();
                let out = whatnext(home, &["session", "take", id, "--json"]);
                assert!(
                    out.status.success(),
                    "take: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            });
        }
    });
    let views = p.wait("one playback owner everywhere", |views| {
        all_equal(views.iter().map(|v| v["playback_owner"].clone()))
    });
    let owner = views[0]["playback_owner"].as_str().unwrap_or_default();
    assert!(owner == ann || owner == bea, "{owner}");
    // The winner holds playback: the other's play is refused on every node once it agrees.
    add_track(&p.a, &p.id, "the one");
    let (winner, loser) = if owner == ann {
        (&p.a, &p.b)
    } else {
        (&p.b, &p.a)
    };
    p.wait("the track everywhere", |views| {
        views.iter().all(|v| up_next(v).len() == 1)
    });
    let err = p.refused(loser, "play", &[]);
    assert!(err.contains("holds playback"), "{err}");
    p.act(winner, "play", &[]);
}

/// Two of three members vote to skip: the holder moves on; the skipped track is history.
#[test]
fn a_majority_of_skip_votes_moves_playback_on() {
    let p = Party::start("Skips");
    let first = add_track(&p.a, &p.id, "dull");
    let second = add_track(&p.a, &p.id, "better");
    p.wait("the tracks everywhere", |views| {
        views.iter().all(|v| up_next(v).len() == 2)
    });
    p.act(&p.a, "play", &[]);
    p.wait("the first track playing everywhere", |views| {
        views.iter().all(|v| playing(v) == Some(first.as_str()))
    });
    let one = p.act(&p.b, "skip", &[]);
    assert_eq!(one["skip"]["votes"], 1, "{one}");
    // One vote of three is not enough.
    p.wait("Bea's skip vote on the holder", |views| {
        views[0]["skip"]["votes"] == 1
    });
    let still = session_now(&p.a, &p.id).expect("session");
    assert_eq!(playing(&still), Some(first.as_str()), "{still}");
    assert_eq!(still["skip"]["needed"], 2, "{still}");
    p.act(&p.c, "skip", &[]);
    let views = p.wait("the second track playing everywhere", |views| {
        views
            .iter()
            .all(|v| playing(v) == Some(second.as_str()) && history(v) == [first.clone()])
    });
    for view in &views {
        assert_eq!(view["skip"]["votes"], 0, "votes count per track: {view}");
    }
}

/// A comment, a reply to it, the parent removed by its author: the others see it removed,
/// the reply kept; a member who is neither the author nor the owner cannot remove it.
#[test]
fn comments_thread_and_a_removed_comment_keeps_its_replies() {
    let p = Party::start("Comments");
    let [_, bea, cid] = p.peers.clone();
    let after = p.act(&p.b, "comment", &["what a start"]);
    let parent = after["comments"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["text"] == "what a start"))
        .and_then(|c| c["id"].as_str())
        .expect("Bea's comment")
        .to_string();
    wait_views("the comment on Cid's node", &[&p.c], &p.id, |views| {
        views[0]["comments"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["id"] == parent.as_str()))
    });
    p.act(&p.c, "comment", &["agreed", "--reply", &parent]);

    let err = p.refused(&p.c, "uncomment", &[&parent]);
    assert!(err.contains("only its author or the owner"), "{err}");
    let err = p.refused(&p.c, "comment", &["to nothing", "--reply", "nope"]);
    assert!(err.contains("no comment"), "{err}");

    p.wait("the reply everywhere", |views| {
        views.iter().all(|v| {
            v["comments"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["reply_to"] == parent.as_str()))
        })
    });
    p.act(&p.b, "uncomment", &[&parent]);
    let views = p.wait("the comment removed everywhere", |views| {
        views.iter().all(|v| {
            v["comments"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["id"] == parent.as_str() && c["deleted"] == true)
            })
        })
    });
    for view in &views {
        let comments = view["comments"].as_array().expect("comments");
        assert_eq!(comments.len(), 2, "{view}");
        let removed = &comments[0];
        assert_eq!(removed["text"], "", "{view}");
        assert_eq!(removed["peer_id"], bea.as_str(), "{view}");
        let reply = &comments[1];
        assert_eq!(reply["text"], "agreed", "{view}");
        assert_eq!(reply["deleted"], false, "{view}");
        assert_eq!(reply["peer_id"], cid.as_str(), "{view}");
        assert_eq!(reply["display_name"], "Cid", "{view}");
    }

    let out = p.a.cli(&["session", "comments", &p.id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("(removed)"), "{text}");
    assert!(lines[1].starts_with("    ↳ Cid, "), "{text}");
    assert!(lines[1].contains(": agreed"), "{text}");
}

/// The fallback playlist is one host's setting every member sees; saving the session makes
/// a playlist of what played, in the order it played.
#[test]
fn the_fallback_is_shared_and_saving_keeps_the_play_order() {
    let p = Party::start("Saved");
    let other = cli_json(&p.a, &["playlist", "create", "Plan B"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    let err = p.refused(&p.c, "fallback", &[&other]);
    assert!(err.contains("only the owner (Ann) or a co-host"), "{err}");
    let set = p.act(&p.a, "fallback", &[&other]);
    assert_eq!(set["fallback"], other.as_str(), "{set}");
    p.wait("the fallback everywhere", |views| {
        views.iter().all(|v| v["fallback"] == other.as_str())
    });

    let err = refused(&p.a, &["session", "save", &p.id, "Too soon"]);
    assert!(err.contains("nothing has played"), "{err}");
    let first = add_track(&p.a, &p.id, "first");
    let second = add_track(&p.b, &p.id, "second");
    add_track(&p.c, &p.id, "third");
    wait_views("the tracks on Ann's node", &[&p.a], &p.id, |views| {
        up_next(&views[0]).len() == 3
    });
    // Played out of list order: the second, then the first.
    p.act(&p.a, "play", &[&second]);
    let next = p.act(&p.a, "next", &[]);
    assert_eq!(playing(&next), Some(first.as_str()), "{next}");
    assert_eq!(history(&next), [second.as_str()], "{next}");

    let saved = cli_json(&p.a, &["session", "save", &p.id, "Tonight"]);
    let saved_id = saved["id"].as_str().expect("id").to_string();
    let playlist = show(&p.a, &saved_id).expect("the saved playlist");
    assert_eq!(playlist["name"], "Tonight");
    assert_eq!(
        titles(&playlist),
        ["second", "first"],
        "what played, in play order"
    );

    let cleared = p.act(&p.a, "fallback", &["--clear"]);
    assert_eq!(cleared["fallback"], Value::Null, "{cleared}");
    p.wait("the fallback cleared everywhere", |views| {
        views.iter().all(|v| v["fallback"].is_null())
    });
}

/// A reaction reaches every member online, with who sent it; a sixth within 10 s is refused
/// on the sender's own app.
#[test]
fn reactions_reach_everyone_online_and_are_rate_limited() {
    let p = Party::start("Reactions");
    let reacted = p.act(&p.b, "react", &["🎉"]);
    assert_eq!(reacted["reactions"][0]["emoji"], "🎉", "{reacted}");
    let views = p.wait("Bea's reaction on every member", |views| {
        views.iter().all(|v| {
            v["reactions"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["emoji"] == "🎉"))
        })
    });
    for view in &views {
        assert_eq!(
            view["reactions"][0]["peer_id"],
            p.peers[1].as_str(),
            "{view}"
        );
    }
    for emoji in ["🔥", "❤️", "👏", "😂"] {
        p.act(&p.b, "react", &[emoji]);
    }
    let said = p.refused(&p.b, "react", &["🎶"]);
    assert!(said.contains("at most 5 reactions"), "{said}");
    let said = p.refused(&p.c, "react", &["hello"]);
    assert!(said.contains("one emoji"), "{said}");
    let text = p.c.cli(&["session", "now", &p.id]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Reactions: 🎉 Bea"), "{text}");
}
