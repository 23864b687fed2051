//! The at-rest scan: after the run has settled, every region's database (its primary or
//! replica, whatever runs there) and cache are searched for personal-data tokens.
//!
//! - **Databases**: every ordinary table of the `public` schema, each row as text
//!   (`t::text`, every column), filtered on the token prefix by PostgreSQL and the tokens
//!   read by [`super::tokens_in`]. Not only the declared personal tables: a token that leaked
//!   into another table (a log, a key-value row) is found too.
//! - **Caches**: every key (`SCAN`), the key's name and, for string values, its value.
//!
//! The harness reaches each store directly in its own region (never through a link), so a
//! partition cannot hide a copy. A store that cannot be read is listed as unreadable: the
//! scan then proves nothing about it.

use super::tokens_in;
use crate::history::{AtRest, HeldCopy};
use crate::stack::Stack;
use crate::stack::topology::{NodeId, REGIONS, Role};
use std::collections::BTreeMap;
use std::time::Duration;

/// Scans every region's stores of `stack`, judged later against `allow` (kept in the
/// result with each user's home, `homes`).
pub async fn scan(
    stack: &Stack,
    allow: BTreeMap<String, Vec<String>>,
    homes: BTreeMap<u32, String>,
) -> AtRest {
    let mut out = AtRest {
        allow,
        homes,
        ..AtRest::default()
    };
    let mut found: BTreeMap<(String, String, String, u32), u32> = BTreeMap::new();
    for region in REGIONS {
        if let Some(port) = stack.port(&NodeId::new(region, Role::Db)) {
            match tokio::time::timeout(Duration::from_secs(15), scan_db(port)).await {
                Ok(Ok((role, hits))) => {
                    out.scanned.push(format!("{region}-db ({role})"));
                    for (table, user, n) in hits {
                        *found
                            .entry((region.to_string(), "db".into(), table, user))
                            .or_default() += n;
                    }
                }
                Ok(Err(e)) => out.unreadable.push(format!("{region}-db: {e}")),
                Err(_) => out
                    .unreadable
                    .push(format!("{region}-db: no answer within 15 s")),
            }
        }
        if let Some(port) = stack.port(&NodeId::new(region, Role::Cache)) {
            match tokio::time::timeout(Duration::from_secs(15), scan_cache(port)).await {
                Ok(Ok(hits)) => {
                    out.scanned.push(format!("{region}-cache"));
                    for (key, user, n) in hits {
                        *found
                            .entry((region.to_string(), "cache".into(), key, user))
                            .or_default() += n;
                    }
                }
                Ok(Err(e)) => out.unreadable.push(format!("{region}-cache: {e}")),
                Err(_) => out
                    .unreadable
                    .push(format!("{region}-cache: no answer within 15 s")),
            }
        }
    }
    out.found = found
        .into_iter()
        .map(|((region, store, place, user), tokens)| HeldCopy {
            region,
            store,
            place,
            user,
            tokens,
        })
        .collect();
    out
}

/// Every token in the database on `port`: its role (`primary` or `replica`) and
/// (table, user, tokens) for each table holding a user's tokens.
async fn scan_db(port: u16) -> Result<(&'static str, Vec<(String, u32, u32)>), String> {
    let c = crate::postgres::connect(port, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    let role = match crate::postgres::in_recovery(&c).await {
        Ok(true) => "replica",
        Ok(false) => "primary",
        Err(e) => return Err(e.to_string()),
    };
    let tables = crate::postgres::query(
        &c,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.relname",
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut hits = Vec::new();
    for t in tables {
        let table: String = t.get(0);
        let sql = format!(
            "SELECT t::text FROM public.\"{}\" t WHERE t::text LIKE '%rdpii-%'",
            table.replace('"', "\"\"")
        );
        let rows = crate::postgres::query(&c, &sql)
            .await
            .map_err(|e| e.to_string())?;
        let mut by_user: BTreeMap<u32, u32> = BTreeMap::new();
        for row in rows {
            let text: String = row.get(0);
            tokens_in(text.as_bytes(), |u| *by_user.entry(u).or_default() += 1);
        }
        hits.extend(by_user.into_iter().map(|(u, n)| (table.clone(), u, n)));
    }
    Ok((role, hits))
}

/// Every token in the Redis on `port`: (key, user, tokens) for each key whose name or string
/// value holds a user's tokens.
async fn scan_cache(port: u16) -> Result<Vec<(String, u32, u32)>, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut cursor: u64 = 0;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    let mut hits = Vec::new();
    for key in keys {
        let mut by_user: BTreeMap<u32, u32> = BTreeMap::new();
        tokens_in(&key, |u| *by_user.entry(u).or_default() += 1);
        // Only strings hold values here; any other type (or a key gone since) reads as nil.
        let value: redis::RedisResult<Option<Vec<u8>>> =
            redis::cmd("GET").arg(&key).query_async(&mut conn).await;
        if let Ok(Some(value)) = value {
            tokens_in(&value, |u| *by_user.entry(u).or_default() += 1);
        }
        let name = String::from_utf8_lossy(&key).into_owned();
        hits.extend(by_user.into_iter().map(|(u, n)| (name.clone(), u, n)));
    }
    Ok(hits)
}
