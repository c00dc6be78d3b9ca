//! Tests of the awareness relay: relaying, ownership of awareness client ids, leaving.

use super::*;

fn update(entries: &[(u64, u32, &str)]) -> Vec<u8> {
    let entries: Vec<AwarenessEntry> = entries
        .iter()
        .map(|(client, clock, json)| AwarenessEntry {
            client: *client,
            clock: *clock,
            json: (*json).into(),
        })
        .collect();
    encode_update(&entries)
}

fn entries(delivery: Option<Delivery>) -> Vec<(u64, u32, String)> {
    let (_, bytes) = delivery.expect("a delivery");
    decode_update(&bytes)
        .expect("decodes")
        .into_iter()
        .map(|e| (e.client, e.clock, e.json.to_string()))
        .collect()
}

fn try_next(p: &mut Presence) -> Option<Delivery> {
    p.inbox.try_recv().ok()
}

#[test]
fn updates_reach_other_members_and_newcomers_see_current_states() {
    let relay = AwarenessRelay::default();
    let (org, doc, alice, bob) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let mut a = relay.connect(org, alice, Uuid::now_v7());
    let mut b = relay.connect(org, bob, Uuid::now_v7());
    assert_eq!(a.join(doc), None);
    assert_eq!(b.join(doc), None);
    a.publish(doc, &update(&[(7, 1, r#"{"user":"alice"}"#)]))
        .expect("publish");
    assert_eq!(
        entries(try_next(&mut b)),
        vec![(7, 1, r#"{"user":"alice"}"#.into())]
    );
    assert!(try_next(&mut a).is_none(), "own updates are not echoed");
    // Stale (same clock) and foreign-owned entries are dropped.
    b.publish(doc, &update(&[(7, 5, "null"), (9, 1, "{}")]))
        .expect("publish");
    assert_eq!(entries(try_next(&mut a)), vec![(9, 1, "{}".into())]);
    a.publish(doc, &update(&[(7, 1, r#"{"old":1}"#)]))
        .expect("publish");
    assert!(try_next(&mut b).is_none(), "stale entry not relayed");

    let mut c = relay.connect(org, Uuid::now_v7(), Uuid::now_v7());
    let current = c.join(doc).expect("current states");
    let mut seen: Vec<u64> = decode_update(&current)
        .expect("decodes")
        .iter()
        .map(|e| e.client)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![7, 9]);
    assert_eq!(c.current(doc), Some(current));
}

#[test]
fn dropping_a_presence_removes_its_states_and_empty_rooms() {
    let relay = AwarenessRelay::default();
    let (org, doc) = (Uuid::now_v7(), Uuid::now_v7());
    let user = Uuid::now_v7();
    let mut a = relay.connect(org, user, Uuid::now_v7());
    let mut b = relay.connect(org, Uuid::now_v7(), Uuid::now_v7());
    a.join(doc);
    b.join(doc);
    a.publish(doc, &update(&[(3, 4, "{}")])).expect("publish");
    let _ = try_next(&mut b);
    drop(a);
    assert_eq!(entries(try_next(&mut b)), vec![(3, 5, "null".into())]);
    assert_eq!(b.current(doc), None);
    assert_eq!(relay.room_count(), 1);
    drop(b);
    assert_eq!(relay.room_count(), 0);
}

#[test]
fn the_same_user_takes_over_an_id_and_the_old_connection_leaving_keeps_it() {
    let relay = AwarenessRelay::default();
    let (org, doc, user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut old = relay.connect(org, user, Uuid::now_v7());
    let mut new = relay.connect(org, user, Uuid::now_v7());
    let mut watcher = relay.connect(org, Uuid::now_v7(), Uuid::now_v7());
    for p in [&mut old, &mut new, &mut watcher] {
        p.join(doc);
    }
    old.publish(doc, &update(&[(5, 1, "{}")])).expect("publish");
    new.publish(doc, &update(&[(5, 2, "{}")])).expect("publish");
    while try_next(&mut watcher).is_some() {}
    drop(old);
    assert!(
        try_next(&mut watcher).is_none(),
        "id 5 now belongs to the new connection"
    );
    assert!(watcher.current(doc).is_some());
}

#[test]
fn malformed_oversized_non_json_and_unjoined_updates_are_refused() {
    let relay = AwarenessRelay::default();
    let (org, doc) = (Uuid::now_v7(), Uuid::now_v7());
    let mut p = relay.connect(org, Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(
        p.publish(doc, &update(&[(1, 1, "{}")])),
        Err(AwarenessError::NotJoined)
    );
    p.join(doc);
    assert!(matches!(
        p.publish(doc, &[5, 1]),
        Err(AwarenessError::Malformed(_))
    ));
    assert_eq!(
        p.publish(doc, &update(&[(1, 1, "{not json")])),
        Err(AwarenessError::NotJson(1))
    );
    assert_eq!(
        p.publish(doc, &vec![0; MAX_UPDATE_BYTES + 1]),
        Err(AwarenessError::TooLarge)
    );
    let many: Vec<(u64, u32, &str)> = (0..40).map(|i| (i, 1, "{}")).collect();
    p.publish(doc, &update(&many)).expect("publish");
    let held = decode_update(&p.current(doc).expect("states")).expect("decodes");
    assert_eq!(held.len(), MAX_CLIENTS_PER_CONNECTION);
}
