//! The turn race: five members in turns mode all adding and passing at once, round after
//! round. Every member must end on the same turn, and the turn must have moved exactly once
//! per completed turn — once for every add or pass that succeeded, never twice for one.

use std::sync::{Arc, Barrier};

use serde_json::Value;

use crate::support::*;

const MEMBERS: usize = 5;

fn rounds() -> usize {
    std::env::var("WHATNEXT_RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100)
}

/// Waits until every member reports the same turn number; returns it.
fn agreed_turn(nodes: &[Node], id: &str) -> u64 {
    wait_until("all members agree on the turn", PATIENCE * 3, || {
        let turns: Vec<Option<u64>> = nodes
            .iter()
            .map(|n| session_now(n, id).and_then(|s| s["turn"]["number"].as_u64()))
            .collect();
        let first = turns[0]?;
        turns.iter().all(|t| *t == Some(first)).then_some(first)
    })
}

#[test]
fn concurrent_adds_and_passes_advance_the_turn_exactly_once_each() {
    let nodes: Vec<Node> = (0..MEMBERS).map(|_| Node::start()).collect();
    let owner = &nodes[0];
    let (id, link) = create_shared(owner, "Turns");
    for member in &nodes[1..] {
        join(member, &link);
    }
    // Everyone is in the turn order, the same on every member.
    let order = wait_until("the turn order on all members", PATIENCE * 3, || {
        let orders: Vec<Value> = nodes
            .iter()
            .map(|n| session_now(n, &id).map(|s| s["turn_order"].clone()))
            .collect::<Option<_>>()?;
        let first = orders[0].as_array()?;
        (first.len() == MEMBERS && orders.iter().all(|o| *o == orders[0])).then(|| first.clone())
    });
    assert_eq!(order[0], owner.peer_id().as_str(), "the owner goes first");
    cli_json(owner, &["session", "mode", &id, "turns", "--per-turn", "1"]);
    assert_eq!(agreed_turn(&nodes, &id), 0);

    let homes: Vec<_> = nodes.iter().map(|n| n.home.clone()).collect();
    let mut turn = 0;
    let mut advanced_once = 0;
    let total = rounds();
    for round in 0..total {
        // Every member adds a track and passes, all at the same moment.
        let start = Arc::new(Barrier::new(MEMBERS * 2));
        let attempts: Vec<_> = homes
            .iter()
            .enumerate()
            .flat_map(|(who, home)| {
                let title = format!("r{round}-m{who}");
                [
                    vec![
                        "playlist".to_string(),
                        "add".into(),
                        id.clone(),
                        "--title".into(),
                        title,
                        "--artist".into(),
                        "x".into(),
                    ],
                    vec!["session".into(), "pass".into(), id.clone()],
                ]
                .map(|args| (home.clone(), args))
            })
            .map(|(home, args)| {
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    start.wait();
                    let out = whatnext(&home, &args);
                    if !out.status.success() {
                        let said = String::from_utf8_lossy(&out.stderr);
                        assert!(said.contains("turn"), "a refusal names the turn: {said}");
                    }
                    out.status.success()
                })
            })
            .collect();
        let succeeded = attempts
            .into_iter()
            .map(|t| t.join().expect("attempt"))
            .filter(|ok| *ok)
            .count() as u64;
        assert!(
            succeeded >= 1,
            "round {round}: the member whose turn it was could act"
        );
        let now = agreed_turn(&nodes, &id);
        assert_eq!(
            now,
            turn + succeeded,
            "round {round}: {succeeded} adds/passes succeeded, so the turn moves from {turn} by exactly that"
        );
        if succeeded == 1 {
            advanced_once += 1;
        }
        turn = now;
    }
    println!(
        "turn race: {MEMBERS} members, {total} rounds, final turn {turn}; {advanced_once} rounds advanced once, the others more than once because the next member saw the turn before its own attempts ran"
    );
    // The tracks in each turn are those of that turn's member only.
    let view = session_now(owner, &id).expect("session");
    assert_eq!(view["turn"]["number"], turn);
}
