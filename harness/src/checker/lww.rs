//! Last-write-wins: whether the value each key converged to was the latest write in real
//! time, and which acknowledged writes were silently dropped.
//!
//! The harness has one true clock (regions are emulated on one host), so "latest" is exact
//! here, whatever the regions' HLC timestamps said: a region whose clock is skewed ahead
//! makes LWW keep its older write and drop a newer one, and this is what shows it.
//!
//! # Definitions
//! - **Checked**: when the final state was read and has at least one region's view
//!   (`FinalState::regions`). Otherwise `checked` is false and every figure is 0. Computed
//!   for every posture that reports region views; it means most where both regions write
//!   shared keys (`active-active-lww`, `-crdt`), but a single primary must pass it too.
//! - **Keys**: keys with at least one `ok` write ([`OpKind::Write`]; counters are checked by
//!   [`super::counters`]). `keys` counts them.
//! - **Converged winner** `F` of a key: the write id its value carries in the first region
//!   (in name order) of the final state; no value when that region lacks the key.
//!   **Diverged** (`diverged_keys`): the regions disagree on the key's write id (a key absent
//!   from one region and present in another counts).
//! - **Wrong winner** (`wrong_winners`, a count of keys): `F` is an `ok` write and some `ok`
//!   write to the key was invoked after `F` was acknowledged (strictly later in real time,
//!   yet `F` won); or the key has no value, or `F` is a `fail` write, a write of another key
//!   or no write at all (no acknowledged data survived). Concurrent writes (each invoked
//!   before the other was acknowledged) may legitimately win either way. An `unknown` write
//!   is never a wrong winner: it may have taken effect at any time after it was sent, so it
//!   may well have been the latest.
//! - **Silently dropped write** (`dropped_writes`, `dropped_ids` ascending): an `ok` write
//!   `W ≠ F` to the key that nothing replaced — no `ok` write to the key was invoked after
//!   `W` was acknowledged — and that `F` certainly preceded: `F` is an `ok` write acknowledged
//!   before `W` was invoked, or `F` is one of the "no acknowledged data" cases above. With an
//!   `unknown` `F` no write is counted dropped (`F` may have been applied after `W`). A
//!   dropped write implies a wrong winner on its key; a wrong winner whose key's last writes
//!   were concurrent with `F` drops nothing.
//!
//! [`OpKind::Write`]: crate::history::OpKind::Write

use super::FastMap;
use super::rows::{FindingRow, RowContext};
use crate::history::{FinalState, History, Nanos, OpKind, Outcome};
use crate::posture::Posture;
use serde::{Deserialize, Serialize};

/// LWW findings (`lww.*` in results.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lww {
    /// Whether the final state had region views; when false, nothing here was measured.
    pub checked: bool,
    /// Keys with at least one `ok` write.
    pub keys: usize,
    /// Keys whose converged value was not the latest write in real time.
    pub wrong_winners: usize,
    /// `ok` writes nothing replaced whose value did not survive.
    pub dropped_writes: usize,
    /// Their ids, ascending.
    pub dropped_ids: Vec<u64>,
    /// Keys on which the regions' final values differ.
    pub diverged_keys: usize,
}

/// What the converged winner of a key is.
#[derive(Clone, Copy)]
enum Winner {
    /// No value, or a value no write of this key in the history carries, or a failed write:
    /// no acknowledged data.
    Nothing,
    /// An `ok` write, acknowledged at `complete`.
    Ok { complete: Nanos },
    /// An `unknown` write: it may have taken effect at any time after it was sent.
    Unknown,
}

struct Key {
    /// `F`'s write id (None: the first region lacks the key).
    winner_id: Option<u64>,
    winner: Winner,
    diverged: bool,
    /// Latest invoke among the key's ok writes (None: no ok write).
    max_invoke: Option<Nanos>,
}

/// Checks each key's converged value against the real-time order of its writes.
pub fn check(history: &History, final_state: Option<&FinalState>) -> Lww {
    let Some(fs) = final_state.filter(|f| !f.regions.is_empty()) else {
        return Lww::default();
    };
    let mut key_index: FastMap<&str, u32> = FastMap::default();
    let mut keys: Vec<Key> = Vec::new();
    // (key number, invoke, complete, id) of every ok write.
    let mut ok: Vec<(u32, Nanos, Nanos, u64)> = Vec::new();
    for op in &history.ops {
        if op.kind != OpKind::Write {
            continue;
        }
        let k = *key_index.entry(op.key.as_str()).or_insert_with(|| {
            let mut views = fs.regions.values().map(|r| r.kv.get(&op.key).copied());
            let winner_id = views.next().flatten();
            keys.push(Key {
                winner_id,
                winner: Winner::Nothing,
                diverged: views.any(|v| v != winner_id),
                max_invoke: None,
            });
            keys.len() as u32 - 1
        });
        let key = &mut keys[k as usize];
        let is_winner = key.winner_id == Some(op.id);
        match op.outcome {
            Outcome::Ok { .. } => {
                ok.push((k, op.invoke_ns, op.complete_ns, op.id));
                key.max_invoke = Some(key.max_invoke.map_or(op.invoke_ns, |m| m.max(op.invoke_ns)));
                if is_winner {
                    key.winner = Winner::Ok {
                        complete: op.complete_ns,
                    };
                }
            }
            Outcome::Unknown { .. } if is_winner => key.winner = Winner::Unknown,
            _ => {}
        }
    }

    let mut out = Lww {
        checked: true,
        ..Lww::default()
    };
    for key in &keys {
        let Some(max_invoke) = key.max_invoke else {
            continue;
        };
        out.keys += 1;
        out.diverged_keys += key.diverged as usize;
        out.wrong_winners += match key.winner {
            Winner::Nothing => true,
            Winner::Ok { complete } => max_invoke > complete,
            Winner::Unknown => false,
        } as usize;
    }
    for &(k, invoke, complete, id) in &ok {
        let key = &keys[k as usize];
        let replaced = key.max_invoke.is_some_and(|m| m > complete);
        if replaced || key.winner_id == Some(id) {
            continue;
        }
        let preceded = match key.winner {
            Winner::Nothing => true,
            Winner::Ok {
                complete: f_complete,
            } => f_complete < invoke,
            Winner::Unknown => false,
        };
        if preceded {
            out.dropped_ids.push(id);
        }
    }
    out.dropped_ids.sort_unstable();
    out.dropped_writes = out.dropped_ids.len();
    out
}

/// The LWW row, in the postures that resolve conflicts by timestamp, when checked.
pub fn rows(l: &Lww, cx: &RowContext) -> Vec<FindingRow> {
    if !matches!(
        cx.posture,
        Posture::ActiveActiveLww | Posture::ActiveActiveCrdt
    ) || !l.checked
    {
        return Vec::new();
    }
    vec![FindingRow::info(
        "LWW wrong winners / dropped writes",
        format!(
            "{} of {} keys / {} writes, {} diverged",
            l.wrong_winners, l.keys, l.dropped_writes, l.diverged_keys
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    fn lww(wrong_winners: usize, dropped_ids: Vec<u64>, keys: usize, diverged_keys: usize) -> Lww {
        Lww {
            checked: true,
            keys,
            wrong_winners,
            dropped_writes: dropped_ids.len(),
            dropped_ids,
            diverged_keys,
        }
    }

    #[test]
    fn no_final_state_is_not_checked() {
        let h = history(vec![w(1, "a", 0, 10)], vec![]);
        assert_eq!(check(&h, None), Lww::default());
        // A final state without region views (an old run, or no database reachable).
        let fs = FinalState {
            residency: None,
            primaries: Vec::new(),
            standbys: Vec::new(),
            primary_region: Some("us".into()),
            write_ids: vec![1],
            regions: Default::default(),
        };
        assert!(!check(&h, Some(&fs)).checked);
    }

    #[test]
    fn latest_write_wins_everywhere() {
        // a: 1 [0, 10], 2 [20, 30] → 2 is the latest; both regions hold 2.
        // b: 3 [0, 10] only. Unknown and failed writes to c only: c is not a key here.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 30).region("eu"),
                w(3, "b", 0, 10),
                w(4, "c", 0, 10).unknown(),
                w(5, "c", 0, 10).fail(),
            ],
            vec![],
        );
        let fs = final_regions(&[
            ("eu", &[("a", 2), ("b", 3), ("c", 4)], &[]),
            ("us", &[("a", 2), ("b", 3), ("c", 4)], &[]),
        ]);
        assert_eq!(check(&h, Some(&fs)), lww(0, vec![], 2, 0));
    }

    #[test]
    fn concurrent_writes_may_win_either_way() {
        // 1 [0, 50] in us and 2 [10, 40] in eu overlap: either winning is correct.
        let h = history(
            vec![w(1, "a", 0, 50), w(2, "a", 10, 40).region("eu")],
            vec![],
        );
        for winner in [1, 2] {
            let fs = final_regions(&[("eu", &[("a", winner)], &[]), ("us", &[("a", winner)], &[])]);
            assert_eq!(check(&h, Some(&fs)), lww(0, vec![], 1, 0));
        }
    }

    #[test]
    fn skewed_clock_makes_the_earlier_write_win() {
        // eu's clock runs 1 s ahead. eu writes 1 [0, 10] (HLC ≈ 1000); us writes 2 [20, 30]
        // (HLC ≈ 20) strictly later in real time. LWW keeps 1: a wrong winner, and 2 —
        // replaced by nothing, invoked after 1 was acknowledged — silently dropped.
        let h = history(
            vec![w(1, "a", 0, 10).region("eu"), w(2, "a", 20, 30)],
            vec![],
        );
        let fs = final_regions(&[("eu", &[("a", 1)], &[]), ("us", &[("a", 1)], &[])]);
        assert_eq!(check(&h, Some(&fs)), lww(1, vec![2], 1, 0));
    }

    #[test]
    fn only_writes_nothing_replaced_are_dropped() {
        // 1 [0, 10] wins. Later: 2 [20, 30], replaced by 3 [40, 60] and 4 [45, 55]
        // (concurrent with each other). 2 is not dropped (3 and 4 were invoked after it was
        // acked); 3 and 4 are (nothing invoked after either was acked, and 1 preceded both).
        // A concurrent-with-1 write 5 [5, 15] is replaced by 2: not dropped either.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(5, "a", 5, 15),
                w(2, "a", 20, 30),
                w(3, "a", 40, 60),
                w(4, "a", 45, 55),
            ],
            vec![],
        );
        let fs = final_regions(&[("us", &[("a", 1)], &[])]);
        assert_eq!(check(&h, Some(&fs)), lww(1, vec![3, 4], 1, 0));
    }

    #[test]
    fn wrong_winner_concurrent_with_the_last_writes_drops_nothing() {
        // 1 [0, 10], 2 [20, 100], 3 [50, 60]. 3 wins: 2 overlaps 3, but was 3 the latest?
        // The latest invoke is 50 < 60 = 3's ack: 3 is a legitimate winner, nothing dropped.
        // If 1 wins instead: 2 and 3 were invoked after 1 was acked → wrong winner; both
        // are unreplaced (latest invoke 50 < their acks) → both dropped.
        let h = history(
            vec![w(1, "a", 0, 10), w(2, "a", 20, 100), w(3, "a", 50, 60)],
            vec![],
        );
        let fs = final_regions(&[("us", &[("a", 3)], &[])]);
        assert_eq!(check(&h, Some(&fs)), lww(0, vec![], 1, 0));
        let fs = final_regions(&[("us", &[("a", 1)], &[])]);
        assert_eq!(check(&h, Some(&fs)), lww(1, vec![2, 3], 1, 0));
        // 2 wins: 3 was invoked (50) before 2 was acked (100): concurrent, fine; 1 was
        // replaced by 2 and 3: nothing dropped.
        let fs = final_regions(&[("us", &[("a", 2)], &[])]);
        assert_eq!(check(&h, Some(&fs)), lww(0, vec![], 1, 0));
    }

    #[test]
    fn no_acknowledged_data_survived() {
        // a: the key is gone; b: holds a failed write; c: holds a write of a; d: holds an id
        // no write has. Each is a wrong winner and its last write dropped.
        // e: holds an unknown write invoked before the last ok write was acked: it may have
        // been applied last, so it is not a wrong winner, and nothing is dropped.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "b", 0, 10),
                w(3, "b", 20, 30).fail(),
                w(4, "c", 0, 10),
                w(5, "d", 0, 10),
                w(6, "e", 0, 10),
                w(7, "e", 5, 2005).unknown(),
            ],
            vec![],
        );
        let fs = final_regions(&[("us", &[("b", 3), ("c", 1), ("d", 99), ("e", 7)], &[])]);
        assert_eq!(check(&h, Some(&fs)), lww(4, vec![1, 2, 4, 5], 5, 0));
    }

    #[test]
    fn diverged_regions_use_the_first_in_name_order() {
        // a: eu holds 2 (the latest), us holds 1 → diverged; judged by eu: correct.
        // b: eu holds 3, us lacks b → diverged; judged by eu: correct.
        // c: eu lacks c, us holds 5 (latest) → diverged; judged by eu: nothing → wrong
        // winner, 5 dropped.
        let h = history(
            vec![
                w(1, "a", 0, 10),
                w(2, "a", 20, 30).region("eu"),
                w(3, "b", 0, 10),
                w(5, "c", 0, 10),
            ],
            vec![],
        );
        let fs = final_regions(&[
            ("us", &[("a", 1), ("c", 5)], &[]),
            ("eu", &[("a", 2), ("b", 3)], &[]),
        ]);
        assert_eq!(check(&h, Some(&fs)), lww(1, vec![5], 3, 3));
    }

    /// The definition transcribed literally, in O(n²) per key.
    fn brute_force(h: &History, fs: &FinalState) -> Lww {
        let mut out = Lww {
            checked: true,
            ..Lww::default()
        };
        let ok: Vec<&crate::history::Operation> = h
            .ops
            .iter()
            .filter(|o| o.kind == OpKind::Write && o.outcome.is_ok())
            .collect();
        let mut keys: Vec<&str> = ok.iter().map(|o| o.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            out.keys += 1;
            let views: Vec<Option<u64>> = fs
                .regions
                .values()
                .map(|r| r.kv.get(key).copied())
                .collect();
            out.diverged_keys += views.iter().any(|v| *v != views[0]) as usize;
            let f = views[0].and_then(|id| {
                h.ops
                    .iter()
                    .find(|o| o.id == id && o.key == key && o.kind == OpKind::Write)
            });
            let writes: Vec<_> = ok.iter().filter(|o| o.key == key).collect();
            // None: no acknowledged data (−∞); Some(None): unknown (never provably early).
            let f_complete: Option<Option<Nanos>> = match f.map(|f| &f.outcome) {
                Some(Outcome::Ok { .. }) => Some(Some(f.unwrap().complete_ns)),
                Some(Outcome::Unknown { .. }) => Some(None),
                _ => None,
            };
            let wrong = match f_complete {
                None => true,
                Some(None) => false,
                Some(Some(c)) => writes.iter().any(|w| w.invoke_ns > c),
            };
            out.wrong_winners += wrong as usize;
            for w in &writes {
                let replaced = writes.iter().any(|o| o.invoke_ns > w.complete_ns);
                let is_f = views[0] == Some(w.id);
                let preceded = match f_complete {
                    None => true,
                    Some(None) => false,
                    Some(Some(c)) => c < w.invoke_ns,
                };
                if !replaced && !is_f && preceded {
                    out.dropped_ids.push(w.id);
                }
            }
        }
        out.dropped_ids.sort_unstable();
        out.dropped_writes = out.dropped_ids.len();
        out
    }

    #[test]
    fn matches_brute_force_on_random_histories() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut wrong, mut dropped, mut diverged) = (0, 0, 0);
        for seed in 0..200 {
            let h = random_history(seed, 200, 5, 4);
            // Each region keeps, per key, some write id of the key (any outcome), a foreign
            // id, or nothing.
            let ids: Vec<(&str, u64)> = h
                .ops
                .iter()
                .filter(|o| o.kind == OpKind::Write)
                .map(|o| (o.key.as_str(), o.id))
                .collect();
            let view = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<(String, u64)> {
                (0..5)
                    .filter_map(|k| {
                        let key = format!("k{k}");
                        let of_key: Vec<u64> = ids
                            .iter()
                            .filter(|(kk, _)| *kk == key)
                            .map(|(_, id)| *id)
                            .collect();
                        match rng.random_range(0..10) {
                            0 => None,
                            1 => Some((key, 99_999)),
                            _ if of_key.is_empty() => None,
                            _ => Some((key, of_key[rng.random_range(0..of_key.len())])),
                        }
                    })
                    .collect()
            };
            let us = view(&mut rng);
            let eu = if rng.random_bool(0.5) {
                us.clone()
            } else {
                view(&mut rng)
            };
            let us: Vec<(&str, u64)> = us.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let eu: Vec<(&str, u64)> = eu.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let fs = final_regions(&[("us", &us, &[]), ("eu", &eu, &[])]);
            let f = check(&h, Some(&fs));
            assert_eq!(f, brute_force(&h, &fs), "seed {seed}");
            wrong += f.wrong_winners;
            dropped += f.dropped_writes;
            diverged += f.diverged_keys;
        }
        assert!(
            wrong > 50 && dropped > 50 && diverged > 50,
            "{wrong} {dropped} {diverged}"
        );
    }
}
