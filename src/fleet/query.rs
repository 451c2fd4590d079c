//! The auditor's questions across the fleet: the same [`EntryFilter`] and [`Stats`] as on one
//! log file, answered from the store, every entry with the gateway that recorded it; and the
//! state of each replica (`fleet status`).

use serde::Serialize;
use tokio_postgres::types::ToSql;

use super::FleetError;
use super::ship::raw_row;
use super::store::Store;
use crate::audit::{Count, Entry, EntryFilter, Stats};

/// An entry and the gateway whose log it is from.
#[derive(Debug, Clone, Serialize)]
pub struct FleetEntry {
    pub gateway_id: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// The conditions of `filter` (and of `gateway`) as SQL over `entries`, with their parameters
/// (numbered from 1).
fn conditions(
    filter: &EntryFilter,
    gateway: Option<&str>,
) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |clause: &str, value: Box<dyn ToSql + Sync + Send>| {
        args.push(value);
        clauses.push(clause.replace('?', &format!("${}", args.len())));
    };
    let text = |v: &Option<String>| {
        v.clone()
            .map(|s| Box::new(s) as Box<dyn ToSql + Sync + Send>)
    };
    for (clause, value) in [
        ("gateway_id = ?", gateway.map(str::to_owned)),
        ("time >= ?", filter.since.clone()),
        ("time < ?", filter.until.clone()),
        ("tool = ?", filter.tool.clone()),
        ("phase = ?", filter.phase.clone()),
        ("verdict = ?", filter.verdict.clone()),
        ("call_id = ?", filter.call_id.clone()),
        (
            "caller::jsonb ->> 'principal' = ?",
            filter.principal.clone(),
        ),
        ("strpos(lower(reasons), lower(?)) > 0", filter.text.clone()),
        (
            "input::jsonb #>> '{session,id}' = ?",
            filter.session.clone(),
        ),
    ] {
        if let Some(v) = text(&value) {
            add(clause, v);
        }
    }
    if !filter.phases.is_empty() {
        add("phase = ANY(?)", Box::new(filter.phases.clone()));
    }
    if let Some(after) = filter.after_seq {
        add("seq > ?", Box::new(after.min(i64::MAX as u64) as i64));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, args)
}

/// Entries matching `filter` across the fleet (or of one gateway), in time order (newest first
/// with `newest_first`); entries of one time are ordered by gateway and seq.
pub async fn query(
    store: &Store,
    filter: &EntryFilter,
    gateway: Option<&str>,
) -> Result<Vec<FleetEntry>, FleetError> {
    let (clauses, args) = conditions(filter, gateway);
    let order = if filter.newest_first { " DESC" } else { "" };
    let limit = filter.limit.map_or(String::new(), |l| {
        format!(" LIMIT {}", l.min(i64::MAX as u64))
    });
    let sql = format!(
        "SELECT {}, gateway_id FROM entries{clauses} ORDER BY time{order}, gateway_id{order}, seq{order}{limit}",
        crate::audit::ENTRY_COLUMNS
    );
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
    let rows = store
        .client
        .query(&sql, &params)
        .await
        .map_err(store.sql("querying entries"))?;
    rows.iter()
        .map(|row| {
            let raw = raw_row(row).map_err(store.sql("reading entries"))?;
            let gateway_id: String = row.get(15);
            let entry = raw.into_entry().map_err(|detail| FleetError::Sql {
                store: store.describe().to_owned(),
                context: "reading entries",
                detail: format!("{gateway_id}: {detail}"),
            })?;
            Ok(FleetEntry { gateway_id, entry })
        })
        .collect()
}

/// The statistics of `audit stats` over the fleet (or one gateway) since a time.
pub async fn stats(
    store: &Store,
    since: Option<&str>,
    gateway: Option<&str>,
) -> Result<Stats, FleetError> {
    let since = since.unwrap_or("");
    // $1: since; $2: the gateway or NULL for all.
    let scope = "time >= $1 AND ($2::text IS NULL OR gateway_id = $2)";
    let params: [&(dyn ToSql + Sync); 2] = [&since, &gateway];
    let counts = |sql: String| async move {
        let rows = store
            .client
            .query(&sql, &params)
            .await
            .map_err(store.sql("computing statistics"))?;
        Ok::<_, FleetError>(
            rows.iter()
                .map(|r| Count {
                    key: r
                        .get::<_, Option<String>>(0)
                        .unwrap_or_else(|| "(none)".into()),
                    count: r.get::<_, i64>(1).max(0) as u64,
                })
                .collect::<Vec<_>>(),
        )
    };
    let one = |sql: String| async move {
        store
            .client
            .query_one(&sql, &params)
            .await
            .map(|r| r.get::<_, i64>(0).max(0) as u64)
            .map_err(store.sql("computing statistics"))
    };
    let times = store
        .client
        .query_one(
            &format!("SELECT min(time), max(time) FROM entries WHERE {scope}"),
            &params,
        )
        .await
        .map_err(store.sql("computing statistics"))?;
    Ok(Stats {
        entries: one(format!("SELECT count(*) FROM entries WHERE {scope}")).await?,
        calls: one(format!(
            "SELECT count(*) FROM entries WHERE phase = 'call' AND {scope}"
        ))
        .await?,
        calls_denied: one(format!(
            "SELECT count(*) FROM entries WHERE phase = 'call' AND verdict = 'deny' AND {scope}"
        ))
        .await?,
        by_phase_verdict: counts(format!(
            "SELECT phase || ' ' || verdict, count(*) FROM entries WHERE {scope} \
             GROUP BY phase, verdict ORDER BY count(*) DESC, 1"
        ))
        .await?,
        // As on a file: each denial once (see `AuditReader::stats`).
        denials_by_reason: counts(format!(
            "SELECT r.value, count(*) FROM entries AS e, jsonb_array_elements_text(e.reasons::jsonb) AS r(value) \
             WHERE e.{scope_e} AND (e.verdict = 'deny' OR (e.verdict = 'denied' \
               AND NOT EXISTS (SELECT 1 FROM entries AS d WHERE d.gateway_id = e.gateway_id \
                               AND d.call_id = e.call_id AND d.verdict = 'deny'))) \
             GROUP BY r.value ORDER BY count(*) DESC, 1 LIMIT 20",
            scope_e = "time >= $1 AND ($2::text IS NULL OR e.gateway_id = $2)"
        ))
        .await?,
        top_tools: counts(format!(
            "SELECT tool, count(*) FROM entries WHERE phase = 'call' AND {scope} \
             GROUP BY tool ORDER BY count(*) DESC, 1 LIMIT 10"
        ))
        .await?,
        top_callers: counts(format!(
            "SELECT caller::jsonb ->> 'principal', count(*) FROM entries WHERE phase = 'call' AND {scope} \
             GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 10"
        ))
        .await?,
        first_time: times.get(0),
        last_time: times.get(1),
    })
}

/// One replica as `fleet status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    pub gateway_id: String,
    pub origin: String,
    /// The last entry the store holds: seq and time.
    pub shipped_seq: u64,
    pub last_shipped_time: Option<String>,
    /// Committed locally at the last heartbeat.
    pub local_seq: u64,
    pub lag: u64,
    pub heartbeat: Option<String>,
    /// The policy revision of its newest entry that names one.
    pub policy_revision: Option<String>,
    /// Each tool it served, with the component digest of its newest entry.
    pub components: Vec<(String, String)>,
}

/// Every replica in the store.
pub async fn status(store: &Store) -> Result<Vec<ReplicaStatus>, FleetError> {
    let rows = store
        .client
        .query(
            "SELECT g.gateway_id, g.origin, g.local_seq, \
                    to_char(g.heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                    last.seq, last.time, \
                    (SELECT policy_revision FROM entries e WHERE e.gateway_id = g.gateway_id \
                       AND policy_revision IS NOT NULL ORDER BY seq DESC LIMIT 1) \
             FROM gateways g \
             LEFT JOIN LATERAL (SELECT seq, time FROM entries e WHERE e.gateway_id = g.gateway_id \
                                ORDER BY seq DESC LIMIT 1) last ON true \
             ORDER BY g.gateway_id",
            &[],
        )
        .await
        .map_err(store.sql("reading the replicas"))?;
    let mut replicas = Vec::with_capacity(rows.len());
    for row in rows {
        let gateway_id: String = row.get(0);
        let local_seq = row.get::<_, i64>(2).max(0) as u64;
        let shipped_seq = row.get::<_, Option<i64>>(4).unwrap_or(0).max(0) as u64;
        let components = store
            .client
            .query(
                "SELECT DISTINCT ON (tool) tool, component_digest FROM entries \
                 WHERE gateway_id = $1 AND tool IS NOT NULL AND component_digest IS NOT NULL \
                 ORDER BY tool, seq DESC",
                &[&gateway_id],
            )
            .await
            .map_err(store.sql("reading the replicas' components"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        replicas.push(ReplicaStatus {
            origin: row.get(1),
            local_seq,
            heartbeat: row.get(3),
            shipped_seq,
            last_shipped_time: row.get(5),
            lag: local_seq.saturating_sub(shipped_seq),
            policy_revision: row.get(6),
            components,
            gateway_id,
        });
    }
    Ok(replicas)
}
