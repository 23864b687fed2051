//! The erasure probe: from each planned erasure's time to the end of the run, every `poll`
//! it looks for copies of the users asked to be erased in every region — each database's
//! profile tables (`profiles`, `profiles_us`, `profiles_eu`: whichever exist there, primary
//! or replica) and each cache's `profile:{user}` — and records each change of what it saw
//! ([`ErasureTrace`]).
//!
//! Each store is reached directly in its own region, like every probe (never through a
//! link). A poll's time is when its reads finished: a copy seen gone was gone by then, so an
//! erasure time measured from these is an upper bound, finer than the poll interval plus one
//! poll's duration. A store that does not answer (a killed node) is recorded as unreadable:
//! its copy is neither seen nor ruled out, and the erasure is not complete while it lasts.

use crate::history::{CopiesSeen, ErasureTrace, Nanos};
use crate::record::Clock;
use crate::stack::Stack;
use crate::stack::topology::{NodeId, REGIONS, Role};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long one store may take to answer one poll before it counts as unreadable: long
/// enough for a saturated host (polls of 200 ms timed out there), short enough to notice a
/// killed node within a second.
const POLL_BUDGET: Duration = Duration::from_secs(1);

/// A database and what the probe keeps of it between polls.
struct Db {
    region: String,
    port: u16,
    client: Option<tokio_postgres::Client>,
    /// Its profile tables, found on (re)connection.
    tables: Vec<String>,
}

/// A cache and its connection.
struct Cache {
    region: String,
    port: u16,
    conn: Option<redis::aio::MultiplexedConnection>,
}

/// Watches `targets` (planned erasure time, user, home) on `stack` every `poll` until `stop`;
/// the traces go to `out` (one per user, in the order given).
pub async fn watch(
    stack: Arc<Stack>,
    targets: Vec<(Nanos, u32, String)>,
    poll: Duration,
    clock: Clock,
    out: Arc<Mutex<Vec<ErasureTrace>>>,
    stop: CancellationToken,
) {
    let mut dbs: Vec<Db> = REGIONS
        .iter()
        .filter_map(|r| {
            Some(Db {
                region: r.to_string(),
                port: stack.port(&NodeId::new(r, Role::Db))?,
                client: None,
                tables: Vec::new(),
            })
        })
        .collect();
    let mut caches: Vec<Cache> = REGIONS
        .iter()
        .filter_map(|r| {
            Some(Cache {
                region: r.to_string(),
                port: stack.port(&NodeId::new(r, Role::Cache))?,
                conn: None,
            })
        })
        .collect();
    drop(stack);
    {
        let mut traces = out.lock().expect("erasure lock");
        *traces = targets
            .iter()
            .map(|(_, user, home)| ErasureTrace {
                user: *user,
                home: home.clone(),
                ..ErasureTrace::default()
            })
            .collect();
    }
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = clock.now();
        let due: Vec<i64> = targets
            .iter()
            .filter(|(at, ..)| *at <= now)
            .map(|(_, u, _)| i64::from(*u))
            .collect();
        if due.is_empty() {
            continue;
        }
        let mut seen: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let mut unreadable: Vec<String> = Vec::new();
        // Every store at once (each has its own connection), each within the budget.
        let dbs_read = futures::future::join_all(dbs.iter_mut().map(|db| {
            let due = &due;
            async move {
                let name = format!("{}-db", db.region);
                let got = tokio::time::timeout(POLL_BUDGET, poll_db(db, due)).await;
                if !matches!(got, Ok(Ok(_))) {
                    db.client = None;
                }
                (name, got.ok().and_then(Result::ok))
            }
        }));
        let caches_read = futures::future::join_all(caches.iter_mut().map(|cache| {
            let due = &due;
            async move {
                let name = format!("{}-cache", cache.region);
                let got = tokio::time::timeout(POLL_BUDGET, poll_cache(cache, due)).await;
                if !matches!(got, Ok(Ok(_))) {
                    cache.conn = None;
                }
                (name, got.ok().and_then(Result::ok))
            }
        }));
        let (dbs_read, caches_read) = tokio::join!(dbs_read, caches_read);
        for (name, hits) in dbs_read {
            match hits {
                Some(hits) => {
                    for (user, table) in hits {
                        seen.entry(user)
                            .or_default()
                            .push(format!("{name} {table}"));
                    }
                }
                None => unreadable.push(name),
            }
        }
        for (name, hits) in caches_read {
            match hits {
                Some(hits) => {
                    for user in hits {
                        seen.entry(user)
                            .or_default()
                            .push(format!("{name} profile:{user}"));
                    }
                }
                None => unreadable.push(name),
            }
        }
        unreadable.sort();
        let at_ns = clock.now();
        let mut traces = out.lock().expect("erasure lock");
        for (trace, (planned, ..)) in traces.iter_mut().zip(&targets) {
            if *planned > now {
                continue;
            }
            let mut copies = seen.remove(&i64::from(trace.user)).unwrap_or_default();
            copies.sort();
            let state = CopiesSeen {
                at_ns,
                copies,
                unreadable: unreadable.clone(),
            };
            let changed = trace.changes.last().is_none_or(|last| {
                last.copies != state.copies || last.unreadable != state.unreadable
            });
            if changed {
                trace.changes.push(state);
            }
            trace.last_poll_ns = Some(at_ns);
            let took = at_ns.saturating_sub(now);
            trace.slowest_poll_ns = Some(trace.slowest_poll_ns.map_or(took, |s| s.max(took)));
        }
    }
}

/// (user, table) for each of `users` found in `db`'s profile tables.
async fn poll_db(db: &mut Db, users: &[i64]) -> Result<Vec<(i64, String)>, String> {
    if db.client.as_ref().is_none_or(|c| c.is_closed()) {
        let c = crate::postgres::connect(db.port, Duration::from_secs(1))
            .await
            .map_err(|e| e.to_string())?;
        let rows = crate::postgres::query(
            &c,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname LIKE 'profiles%' \
             ORDER BY c.relname",
        )
        .await
        .map_err(|e| e.to_string())?;
        db.tables = rows.iter().map(|r| r.get(0)).collect();
        db.client = Some(c);
    }
    let c = db.client.as_ref().expect("connected above");
    if db.tables.is_empty() {
        return Ok(Vec::new());
    }
    let sql = db
        .tables
        .iter()
        .map(|t| format!("SELECT user_id, '{t}'::text FROM public.\"{t}\" WHERE user_id = ANY($1)"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = crate::postgres::query_with(c, &sql, &[&users])
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The users of `users` whose `profile:{user}` is in `cache`.
async fn poll_cache(cache: &mut Cache, users: &[i64]) -> Result<Vec<i64>, String> {
    if cache.conn.is_none() {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", cache.port))
            .map_err(|e| e.to_string())?;
        cache.conn = Some(
            client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let conn = cache.conn.as_mut().expect("connected above");
    let keys: Vec<String> = users.iter().map(|u| format!("profile:{u}")).collect();
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("EXISTS").arg(k);
    }
    let present: Vec<i64> = pipe.query_async(conn).await.map_err(|e| e.to_string())?;
    Ok(users
        .iter()
        .zip(present)
        .filter(|(_, n)| *n > 0)
        .map(|(u, _)| *u)
        .collect())
}
