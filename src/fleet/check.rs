//! `audit verify --postgres`: every gateway's chain in the fleet's store checked with the same
//! [`Verifier`] as a log file (audit/VERIFY.md), plus what only the fleet can show: a log
//! shipped under two gateway ids, a decision recorded by two gateways, a store that holds more
//! of a gateway than the gateway ever reported, and each replica's shipping lag.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::FleetError;
use super::ship::raw_row;
use super::store::Store;
use crate::audit::{
    CanonicalRow, NoteVerifier, SignedCheckpoint, StoredCheckpoint, Verifier, VerifyOptions,
    VerifyReport,
};

/// Rows fetched per query while streaming a chain.
const PAGE: i64 = 5000;

/// One gateway's chain in the store.
#[derive(Debug, Serialize)]
pub struct GatewayReport {
    pub gateway_id: String,
    /// The file-level checks over the chain (`path` reads `postgres:<gateway id>`).
    pub report: VerifyReport,
    /// The last seq the gateway reported committed locally (`gateways.local_seq`).
    pub local_seq: u64,
    /// Entries the store holds for it (its highest seq).
    pub shipped_seq: u64,
    /// `local_seq - shipped_seq` at the gateway's last heartbeat.
    pub lag: u64,
    /// When the gateway last reported (RFC 3339), if ever.
    pub heartbeat: Option<String>,
    /// Findings of the fleet checks on this gateway (also counted in `problems`).
    pub fleet_problems: Vec<String>,
}

impl GatewayReport {
    pub fn is_intact(&self) -> bool {
        self.report.is_intact() && self.fleet_problems.is_empty()
    }
}

/// The whole fleet.
#[derive(Debug, Serialize)]
pub struct FleetReport {
    pub store: String,
    pub gateways: Vec<GatewayReport>,
    /// Findings across gateways (a shared origin, a decision recorded twice, an unknown id).
    pub problems: Vec<String>,
}

impl FleetReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty() && self.gateways.iter().all(GatewayReport::is_intact)
    }
}

/// Which checkpoint key vouches for which gateway: `None` as key is "any gateway".
pub type FleetKeys = Vec<(Option<String>, NoteVerifier)>;

/// Verifies every gateway (or only `only`) in the store.
pub async fn verify_fleet(
    store: &Store,
    only: Option<&str>,
    keys: &FleetKeys,
) -> Result<FleetReport, FleetError> {
    let rows = store
        .client
        .query(
            "SELECT g.gateway_id, g.origin, g.local_seq, \
                    to_char(g.heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                    (SELECT coalesce(max(seq), 0) FROM entries e WHERE e.gateway_id = g.gateway_id) \
             FROM gateways g WHERE $1::text IS NULL OR g.gateway_id = $1 ORDER BY g.gateway_id",
            &[&only],
        )
        .await
        .map_err(store.sql("listing the gateways"))?;
    let mut problems = Vec::new();
    if let Some(id) = only
        && rows.is_empty()
    {
        problems.push(format!("gateway {id:?} is not in the store"));
    }
    let mut gateways = Vec::new();
    let mut origins: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let gateway_id: String = row.get(0);
        let origin: String = row.get(1);
        let local_seq = row.get::<_, i64>(2).max(0) as u64;
        let heartbeat: Option<String> = row.get(3);
        let shipped_seq = row.get::<_, i64>(4).max(0) as u64;
        origins
            .entry(origin.clone())
            .or_default()
            .push(gateway_id.clone());
        let key = keys
            .iter()
            .find(|(id, _)| id.as_deref() == Some(gateway_id.as_str()))
            .or_else(|| keys.iter().find(|(id, _)| id.is_none()))
            .map(|(_, key)| key.clone());
        let report = verify_chain(store, &gateway_id, origin, key).await?;
        let mut fleet_problems = Vec::new();
        if shipped_seq > local_seq {
            fleet_problems.push(format!(
                "the store holds entries up to seq {shipped_seq}, but {gateway_id} reported only {local_seq} committed: entries were added to its chain (moved from another gateway?)"
            ));
        }
        gateways.push(GatewayReport {
            lag: local_seq.saturating_sub(shipped_seq),
            gateway_id,
            report,
            local_seq,
            shipped_seq,
            heartbeat,
            fleet_problems,
        });
    }
    for (origin, ids) in &origins {
        if ids.len() > 1 {
            problems.push(format!(
                "gateways {} ship the same log (origin {origin:?}): one log was registered under two gateway ids",
                ids.join(", ")
            ));
        }
    }
    // A decision is made once, by one gateway: the same decision id in two chains is an entry
    // copied or moved between them.
    let duplicates = store
        .client
        .query(
            "SELECT decision_id, string_agg(gateway_id || ' seq ' || seq, ', ' ORDER BY gateway_id, seq) \
             FROM entries WHERE $1::text IS NULL OR gateway_id = $1 \
             GROUP BY decision_id HAVING count(*) > 1 ORDER BY 1 LIMIT 100",
            &[&only],
        )
        .await
        .map_err(store.sql("looking for decisions recorded twice"))?;
    for row in duplicates {
        let (decision, places): (String, String) = (row.get(0), row.get(1));
        problems.push(format!(
            "decision {decision} is recorded more than once ({places}): an entry was copied or moved between gateways"
        ));
    }
    Ok(FleetReport {
        store: store.describe().to_owned(),
        gateways,
        problems,
    })
}

/// The file-level checks over one gateway's chain, streamed in pages.
async fn verify_chain(
    store: &Store,
    gateway_id: &str,
    origin: String,
    key: Option<NoteVerifier>,
) -> Result<VerifyReport, FleetError> {
    let checkpoints = store
        .client
        .query(
            "SELECT id, tree_size, root_hash, note FROM checkpoints WHERE gateway_id = $1 ORDER BY id",
            &[&gateway_id],
        )
        .await
        .map_err(store.sql("reading checkpoints"))?;
    let stored: Vec<StoredCheckpoint> = checkpoints
        .iter()
        .map(|r| {
            let note: String = r.get(3);
            (
                r.get::<_, i64>(0),
                r.get::<_, i64>(1).max(0) as u64,
                r.get::<_, Vec<u8>>(2),
                SignedCheckpoint::parse(&note),
            )
        })
        .collect();
    let options = VerifyOptions {
        pubkey: key,
        external: None,
    };
    let mut verifier = Verifier::new(origin, stored, &options);
    let sql = format!(
        "SELECT {} FROM entries WHERE gateway_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        crate::audit::ENTRY_COLUMNS
    );
    let mut after = i64::MIN;
    loop {
        let page = store
            .client
            .query(&sql, &[&gateway_id, &after, &PAGE])
            .await
            .map_err(store.sql("reading entries"))?;
        for row in &page {
            let raw = raw_row(row).map_err(store.sql("reading entries"))?;
            after = raw.seq;
            verifier.row(CanonicalRow::new(
                raw.seq,
                raw.time,
                &raw.columns,
                raw.entry_hash,
            ));
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(verifier.finish(PathBuf::from(format!("postgres:{gateway_id}"))))
}
