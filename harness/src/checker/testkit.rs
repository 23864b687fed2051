//! Builders for hand-made histories in the checkers' known-answer tests. Times are given in
//! whole milliseconds so the expected figures can be worked out by hand in comments.

use crate::history::{
    Event, EventKind, FinalState, History, Nanos, OpKind, Operation, Outcome, RegionState, Source,
};

/// One millisecond in [`Nanos`].
pub const MS: Nanos = 1_000_000;

/// An operation under construction: by default user 1 of region `us`, outcome `ok`.
pub struct B(pub Operation);

/// An `ok` write `id` of `key`, invoked at `invoke_ms`, acknowledged at `complete_ms`.
pub fn w(id: u64, key: &str, invoke_ms: u64, complete_ms: u64) -> B {
    B(Operation {
        from: None,
        id,
        user: 1,
        region: "us".into(),
        kind: OpKind::Write,
        key: key.into(),
        invoke_ns: invoke_ms * MS,
        planned_ns: None,
        complete_ns: complete_ms * MS,
        outcome: Outcome::Ok {
            timeline: None,
            served_by: "us".into(),
            version: Some(id as i64),
            write_id: Some(id),
            source: None,
            committed_by: None,
            value: None,
        },
    })
}

/// An `ok` read `id` of `key` from the database that returned write `returned` (None: absent).
pub fn r(id: u64, key: &str, invoke_ms: u64, complete_ms: u64, returned: Option<u64>) -> B {
    B(Operation {
        from: None,
        id,
        user: 1,
        region: "us".into(),
        kind: OpKind::Read,
        key: key.into(),
        invoke_ns: invoke_ms * MS,
        planned_ns: None,
        complete_ns: complete_ms * MS,
        outcome: Outcome::Ok {
            timeline: None,
            served_by: "us".into(),
            version: returned.map(|v| v as i64),
            write_id: returned,
            source: Some(Source::Db),
            committed_by: None,
            value: None,
        },
    })
}

/// An `ok` increment (by 1) `id` of counter `key`, invoked at `invoke_ms`, acknowledged at
/// `complete_ms`.
pub fn inc(id: u64, key: &str, invoke_ms: u64, complete_ms: u64) -> B {
    B(Operation {
        from: None,
        id,
        user: 1,
        region: "us".into(),
        kind: OpKind::Incr,
        key: key.into(),
        invoke_ns: invoke_ms * MS,
        planned_ns: None,
        complete_ns: complete_ms * MS,
        outcome: Outcome::Ok {
            timeline: None,
            served_by: "us".into(),
            version: None,
            write_id: None,
            source: None,
            committed_by: None,
            value: None,
        },
    })
}

impl B {
    /// Committed by the database of `region` (writes and increments).
    pub fn committed_by(mut self, region: &str) -> B {
        if let Outcome::Ok { committed_by, .. } = &mut self.0.outcome {
            *committed_by = Some(region.into());
        }
        self
    }

    /// Committed on this PostgreSQL timeline (writes).
    pub fn timeline(mut self, tl: u32) -> B {
        if let Outcome::Ok { timeline, .. } = &mut self.0.outcome {
            *timeline = Some(tl);
        }
        self
    }

    /// Issued while the user was travelling in `region`.
    pub fn travelling(mut self, region: &str) -> B {
        self.0.from = Some(region.into());
        self
    }

    /// Issued by this user.
    pub fn user(mut self, user: u32) -> B {
        self.0.user = user;
        self
    }

    /// The user's home region (and the serving region, for `ok` outcomes).
    pub fn region(mut self, region: &str) -> B {
        self.0.region = region.into();
        if let Outcome::Ok { served_by, .. } = &mut self.0.outcome {
            *served_by = region.into();
        }
        self
    }

    /// The outcome is `fail`.
    pub fn fail(mut self) -> B {
        self.0.outcome = Outcome::Fail {
            error: "refused".into(),
        };
        self
    }

    /// The outcome is `unknown`.
    pub fn unknown(mut self) -> B {
        self.0.outcome = Outcome::Unknown {
            error: "timeout".into(),
        };
        self
    }

    /// Planned (by the open-loop generator) for `at_ms`.
    pub fn planned(mut self, at_ms: u64) -> B {
        self.0.planned_ns = Some(at_ms * MS);
        self
    }

    /// A read served from the cache.
    pub fn cache(mut self) -> B {
        if let Outcome::Ok { source, .. } = &mut self.0.outcome {
            *source = Some(Source::Cache);
        }
        self
    }
}

/// A history of these operations (in the given order) and events.
pub fn history(ops: Vec<B>, events: Vec<Event>) -> History {
    History {
        ops: ops.into_iter().map(|b| b.0).collect(),
        events,
    }
}

/// An event at `at_ms`.
pub fn ev(at_ms: u64, kind: EventKind) -> Event {
    Event {
        at_ns: at_ms * MS,
        kind,
    }
}

/// Fault `index` starts at `at_ms`.
pub fn fault(at_ms: u64, index: usize, hits_primary: bool) -> Event {
    ev(
        at_ms,
        EventKind::FaultStarted {
            index,
            fault: format!("fault {index}"),
            hits_primary,
        },
    )
}

/// Fault `index`, described as the harness does (e.g. "kill region us"), starts at
/// `at_ms`.
pub fn fault_described(at_ms: u64, index: usize, description: &str, hits_primary: bool) -> Event {
    ev(
        at_ms,
        EventKind::FaultStarted {
            index,
            fault: description.into(),
            hits_primary,
        },
    )
}

/// Fault `index` heals at `at_ms`.
pub fn heal(at_ms: u64, index: usize) -> Event {
    ev(
        at_ms,
        EventKind::FaultHealed {
            index,
            fault: format!("fault {index}"),
        },
    )
}

/// The controller's failover steps: declared down, promoted, rerouted (to `eu`).
pub fn failover_steps(declared_ms: u64, promoted_ms: u64, rerouted_ms: u64) -> Vec<Event> {
    vec![
        ev(
            declared_ms,
            EventKind::PrimaryDeclaredDown {
                region: "us".into(),
            },
        ),
        ev(
            promoted_ms,
            EventKind::Promoted {
                region: "eu".into(),
                from: None,
            },
        ),
        ev(
            rerouted_ms,
            EventKind::Rerouted {
                region: "eu".into(),
            },
        ),
    ]
}

/// One region's final view for [`final_regions`]: (region, [(key, write id)],
/// [(counter, value)]).
pub type RegionView<'a> = (&'a str, &'a [(&'a str, u64)], &'a [(&'a str, i64)]);

/// A final state read from every region in `regions`: (region, [(key, write id)],
/// [(counter, value)]). `write_ids` is the union of the regions' key values.
pub fn final_regions(regions: &[RegionView]) -> FinalState {
    let mut write_ids: Vec<u64> = regions
        .iter()
        .flat_map(|(_, kv, _)| kv.iter().map(|&(_, id)| id))
        .collect();
    write_ids.sort_unstable();
    write_ids.dedup();
    FinalState {
        residency: None,
        primaries: Vec::new(),
        standbys: Vec::new(),
        primary_region: regions.first().map(|(r, _, _)| (*r).to_owned()),
        write_ids,
        regions: regions
            .iter()
            .map(|(r, kv, counters)| {
                (
                    (*r).to_owned(),
                    RegionState {
                        kv: kv.iter().map(|&(k, id)| (k.to_owned(), id)).collect(),
                        counters: counters.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
                    },
                )
            })
            .collect(),
    }
}

/// A random small history for cross-checking a checker against a brute-force transcription
/// of its definition: `n` operations (writes, reads returning a recent write id, some never
/// written id, or nothing; increments) over `keys` keys by `users` users in us / eu, with
/// overlapping times, ~15 % unknown and ~10 % failed outcomes, shuffled ids half the time.
pub fn random_history(seed: u64, n: usize, keys: usize, users: u32) -> History {
    use rand::{Rng, SeedableRng, seq::SliceRandom};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut ids: Vec<u64> = (1..=n as u64).collect();
    if rng.random_bool(0.5) {
        ids.shuffle(&mut rng);
    }
    let mut ops = Vec::with_capacity(n);
    for (i, &id) in ids.iter().enumerate() {
        let key = format!("k{}", rng.random_range(0..keys));
        let invoke = i as u64 * 3 + rng.random_range(0..3);
        let complete = invoke + rng.random_range(0..20);
        let user = rng.random_range(0..users);
        let region = if user % 2 == 0 { "us" } else { "eu" };
        let roll: f64 = rng.random();
        let mut b = if roll < 0.45 {
            w(id, &key, invoke, complete)
        } else if roll < 0.9 {
            let returned = match rng.random_range(0..10) {
                0 => None,
                1 => Some(10_000),
                _ if i == 0 => None,
                _ => Some(ids[rng.random_range(i.saturating_sub(30)..i)]),
            };
            r(id, &key, invoke, complete, returned)
        } else {
            inc(id, &key, invoke, complete)
        };
        b = b.user(user).region(region);
        if rng.random_bool(0.5) {
            b = b.committed_by(if rng.random_bool(0.8) { region } else { "us" });
        }
        let outcome: f64 = rng.random();
        if outcome < 0.1 {
            b = b.fail();
        } else if outcome < 0.25 {
            b = b.unknown();
        }
        ops.push(b);
    }
    history(ops, vec![])
}

/// A row context for an active-passive async run with no SLO checks.
pub fn cx() -> super::RowContext<'static> {
    let slo: &'static super::Verdict = Box::leak(Box::new(super::Verdict {
        passed: true,
        checks: Vec::new(),
    }));
    super::RowContext {
        posture: crate::posture::Posture::ActivePassiveAsync,
        slo,
    }
}
