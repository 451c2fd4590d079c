//! The shipper: a background task that copies this gateway's committed audit entries and
//! checkpoints, in seq order, from its local SQLite log to the fleet's PostgreSQL store.
//!
//! - It reads the local log through a read-only connection (the writer is never disturbed) and
//!   holds at most one batch (`[fleet] batch` entries) in memory.
//! - Idempotent: a row is keyed by (gateway id, seq) and inserted with `ON CONFLICT DO
//!   NOTHING`; a row that was already there is compared with the local one, and a difference is
//!   an alarm (an error log line and `gatehouse_fleet_conflicts_total`), never an overwrite.
//!   Shipping then stops until an operator looks: a gateway id used twice, or an edited store.
//! - Resumable: on every (re)connect it asks the store for the last seq it holds for this
//!   gateway and continues after it, so a restart of the gateway or of the database loses and
//!   duplicates nothing. Failures are retried with exponential backoff.
//! - Calls do not wait for it, unless `require_shipped` gives the gateway a [`ShipGate`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio_postgres::types::ToSql;

use super::store::Store;
use super::{FleetError, FleetSettings};
use crate::audit::{AuditReader, EntryColumns, RawRow, StoredCheckpoint};
use crate::telemetry::FleetMetrics;

/// The first wait after a failure; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// After a conflict nothing will change by itself: alarm again at this pace.
const CONFLICT_BACKOFF: Duration = Duration::from_secs(30);
/// How often the gateway's row in the store is refreshed (its lag, for `fleet status`).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Where the shipper is: the last seq the store acknowledged, and how many idle rounds (nothing
/// left to ship) it has finished, which tells a waiter that it has caught up.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    acked: u64,
    idle_rounds: u64,
}

/// A handle on the running shipper: waits for entries to be acknowledged.
#[derive(Clone)]
pub struct ShipGate {
    progress: watch::Receiver<Progress>,
    nudge: Arc<Notify>,
    timeout: Duration,
    gateway_id: String,
}

impl std::fmt::Debug for ShipGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipGate")
            .field("gateway_id", &self.gateway_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ShipGate {
    /// Returns once entry `seq` is in the store; the reason to refuse the call when that takes
    /// longer than `[fleet] ship_timeout_ms` (`require_shipped`).
    pub async fn shipped(&self, seq: u64) -> Result<(), String> {
        self.nudge.notify_one();
        let mut progress = self.progress.clone();
        match tokio::time::timeout(self.timeout, progress.wait_for(|p| p.acked >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(
                "the fleet's audit shipper has stopped (require_shipped): calls are refused".into(),
            ),
            Err(_) => Err(format!(
                "the fleet's audit store did not acknowledge this call's verdict within {} ms (require_shipped): calls are refused while it is unreachable",
                self.timeout.as_millis()
            )),
        }
    }

    /// The last seq the store acknowledged.
    pub fn acknowledged(&self) -> u64 {
        self.progress.borrow().acked
    }

    /// Waits (at most `timeout`) until the shipper has found nothing left to ship after this
    /// call: at shutdown, so the final entries and checkpoint leave with the gateway. False on
    /// timeout; whatever is left is shipped on the next start.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let start = self.progress.borrow().idle_rounds;
        self.nudge.notify_one();
        let mut progress = self.progress.clone();
        // One round may have begun before the last entry was committed: wait for a second.
        tokio::time::timeout(timeout, progress.wait_for(|p| p.idle_rounds >= start + 2))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The shipping task's state.
pub struct Shipper {
    settings: FleetSettings,
    gateway_id: String,
    audit_path: PathBuf,
    public_key: Option<String>,
    metrics: FleetMetrics,
    progress: watch::Sender<Progress>,
    nudge: Arc<Notify>,
    /// The local log, opened once and read on blocking threads.
    reader: Arc<std::sync::Mutex<Option<AuditReader>>>,
}

impl Shipper {
    /// Starts shipping the log at `audit_path` (on the current tokio runtime) as configured;
    /// `public_key` is the log's checkpoint verifier key, recorded in the store for auditors.
    /// Fails only on a configuration error; an unreachable store is retried in the background.
    pub fn start(
        settings: &FleetSettings,
        audit_path: PathBuf,
        public_key: Option<String>,
        metrics: FleetMetrics,
    ) -> Result<ShipGate, FleetError> {
        settings.validate().map_err(FleetError::Config)?;
        let gateway_id = settings
            .gateway_id()
            .map_err(FleetError::Config)?
            .to_owned();
        // A missing password source fails now, not on every retry.
        if let Some(source) = &settings.password {
            source.read("fleet-password")?;
        }
        let (progress, receiver) = watch::channel(Progress::default());
        let nudge = Arc::new(Notify::new());
        let gate = ShipGate {
            progress: receiver,
            nudge: nudge.clone(),
            timeout: settings.ship_timeout(),
            gateway_id: gateway_id.clone(),
        };
        let shipper = Shipper {
            settings: settings.clone(),
            gateway_id,
            audit_path,
            public_key,
            metrics,
            progress,
            nudge,
            reader: Arc::default(),
        };
        tokio::spawn(shipper.run());
        Ok(gate)
    }

    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let started = Instant::now();
            let error = self.session().await;
            self.metrics.failed();
            let wait = match &error {
                FleetError::Conflict { .. } => {
                    self.metrics.conflict();
                    tracing::error!(gateway_id = %self.gateway_id, error = %error, "fleet audit shipping stopped: the store disagrees with the local log");
                    CONFLICT_BACKOFF
                }
                _ => {
                    // A session that ran for a while was a success: start the backoff over.
                    if started.elapsed() > MAX_BACKOFF {
                        backoff = MIN_BACKOFF;
                    }
                    tracing::warn!(gateway_id = %self.gateway_id, error = %error, retry_in_ms = backoff.as_millis() as u64, "fleet audit shipping interrupted; retrying");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            // A closed gate means the gateway is gone.
            if self.progress.is_closed() {
                return;
            }
            // A call waiting for its verdict (`require_shipped`) cuts the wait short, so a
            // store that is back serves calls at once; still at most one attempt per
            // MIN_BACKOFF, however many calls wait. A conflict does not go away by itself.
            let conflict = matches!(error, FleetError::Conflict { .. });
            let nudge = self.nudge.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = async {
                    nudge.notified().await;
                    tokio::time::sleep(MIN_BACKOFF).await;
                }, if !conflict => {}
            }
        }
    }

    /// One connection's worth of shipping; returns only with the error that ended it.
    async fn session(&mut self) -> FleetError {
        match self.ship_until_error().await {
            Err(e) => e,
            Ok(never) => match never {},
        }
    }

    async fn ship_until_error(&mut self) -> Result<std::convert::Infallible, FleetError> {
        let mut store = Store::connect(
            self.settings.postgres.as_deref().unwrap_or_default(),
            self.settings.password.as_ref(),
            self.settings.ca_file.as_deref(),
        )
        .await?;
        if store.ensure_schema().await? {
            tracing::info!(store = %store.describe(), "fleet audit store: schema applied");
        }
        let (local, _) = self.read_local(0, 0, i64::MAX).await?;
        self.register(&store, &local.origin).await?;
        let gw = &self.gateway_id;
        let row = store
            .client
            .query_one(
                "SELECT coalesce(max(seq), 0) FROM entries WHERE gateway_id = $1",
                &[gw],
            )
            .await
            .map_err(store.sql("reading the last shipped entry"))?;
        let mut acked = row.get::<_, i64>(0).max(0) as u64;
        let row = store
            .client
            .query_one(
                "SELECT coalesce(max(id), 0) FROM checkpoints WHERE gateway_id = $1",
                &[gw],
            )
            .await
            .map_err(store.sql("reading the last shipped checkpoint"))?;
        let mut checkpoint_id: i64 = row.get(0);
        if local.last_seq < acked {
            return Err(FleetError::Conflict {
                store: store.describe().to_owned(),
                detail: format!(
                    "the store holds {acked} entries of {gw}, its local log only {}: another gateway uses gateway_id {gw:?}, or the local log was replaced",
                    local.last_seq
                ),
            });
        }
        tracing::info!(gateway_id = %gw, store = %store.describe(), resume_after = acked, "fleet audit shipping connected");
        self.progress.send_modify(|p| p.acked = acked);
        let mut last_heartbeat: Option<Instant> = None;
        loop {
            let (local, batch) = self
                .read_local(acked, self.settings.batch, checkpoint_id)
                .await?;
            let full = batch.rows.len() as u64 == self.settings.batch;
            // How far behind the shipper is as it looks: what this round is about to ship.
            self.metrics.lag(local.last_seq.saturating_sub(acked));
            if let Some(last) = batch.rows.last() {
                let last = last.seq.max(0) as u64;
                self.ship_entries(&store, &batch.rows, local.last_seq)
                    .await?;
                last_heartbeat = Some(Instant::now());
                self.metrics.shipped(last - acked);
                acked = last;
                self.progress.send_modify(|p| p.acked = acked);
            }
            for checkpoint in batch.checkpoints.iter().filter(|c| c.1 <= acked) {
                self.ship_checkpoint(&store, checkpoint).await?;
                checkpoint_id = checkpoint.0;
            }
            // Every shipped batch updates it in its own transaction; now and then while idle.
            if last_heartbeat.is_none_or(|t| t.elapsed() >= HEARTBEAT) {
                heartbeat(&store, gw, local.last_seq).await?;
                last_heartbeat = Some(Instant::now());
            }
            if full {
                continue;
            }
            let idle =
                batch.rows.is_empty() && batch.checkpoints.iter().all(|c| c.0 <= checkpoint_id);
            if idle {
                self.progress.send_modify(|p| p.idle_rounds += 1);
            }
            if store.is_closed() {
                return Err(FleetError::Connect {
                    store: store.describe().to_owned(),
                    detail: "the connection was closed".into(),
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(self.settings.poll_ms)) => {}
                _ = self.nudge.notified() => {}
            }
        }
    }

    /// Records this gateway in the store, or checks that the store's record is of this log.
    async fn register(&self, store: &Store, origin: &str) -> Result<(), FleetError> {
        let gw = &self.gateway_id;
        store
            .client
            .execute(
                "INSERT INTO gateways (gateway_id, origin, public_key) VALUES ($1, $2, $3) ON CONFLICT (gateway_id) DO NOTHING",
                &[gw, &origin, &self.public_key],
            )
            .await
            .map_err(store.sql("registering the gateway"))?;
        let row = store
            .client
            .query_one(
                "SELECT origin, public_key FROM gateways WHERE gateway_id = $1",
                &[gw],
            )
            .await
            .map_err(store.sql("registering the gateway"))?;
        let stored: String = row.get(0);
        if stored != origin {
            return Err(FleetError::Conflict {
                store: store.describe().to_owned(),
                detail: format!(
                    "gateway {gw} is registered with the log {stored:?}, but this gateway's log is {origin:?}: another gateway uses gateway_id {gw:?}, or this log was rotated (give the gateway a new gateway_id after a rotation)"
                ),
            });
        }
        let key: Option<String> = row.get(1);
        if key != self.public_key && self.public_key.is_some() {
            store
                .client
                .execute(
                    "UPDATE gateways SET public_key = $2 WHERE gateway_id = $1",
                    &[gw, &self.public_key],
                )
                .await
                .map_err(store.sql("registering the gateway"))?;
        }
        Ok(())
    }

    /// Reads, on a blocking thread, up to `limit` entries after `after` and the checkpoints
    /// after `checkpoint_id` from the local log (opened once, read-only).
    async fn read_local(
        &self,
        after: u64,
        limit: u64,
        checkpoint_id: i64,
    ) -> Result<(LocalState, Batch), FleetError> {
        let path = self.audit_path.clone();
        let opened = self.reader.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut opened = opened.lock().unwrap_or_else(|p| p.into_inner());
            if opened.is_none() {
                *opened = Some(AuditReader::open(&path)?);
            }
            let reader = opened.as_ref().expect("opened above");
            let read = || -> Result<(LocalState, Batch), crate::audit::AuditError> {
                let rows = if limit == 0 {
                    Vec::new()
                } else {
                    reader.raw_after(after, limit)?
                };
                // Read after the rows, so it is never below the last of them: the heartbeat's
                // `local_seq` may then be relied on not to trail what the store holds.
                let last_seq = reader.last_seq()?;
                let checkpoints = if limit == 0 {
                    Vec::new()
                } else {
                    reader.checkpoints_after(checkpoint_id)?
                };
                Ok((
                    LocalState {
                        origin: reader.meta().origin.clone(),
                        last_seq,
                    },
                    Batch { rows, checkpoints },
                ))
            };
            read()
        })
        .await
        .map_err(|e| FleetError::Config(format!("reading the local audit log: {e}")))?;
        Ok(result?)
    }

    /// Inserts `rows` (consecutive seqs) in one transaction; rows the store already held are
    /// compared, and a batch with a conflicting row leaves nothing of itself behind: the chain
    /// in the store stops before the conflict. The gateway's heartbeat (`local_seq`, read
    /// after the rows) commits with them, so no reader sees a chain longer than `local_seq`.
    async fn ship_entries(
        &self,
        store: &Store,
        rows: &[RawRow],
        local_seq: u64,
    ) -> Result<(), FleetError> {
        store
            .client
            .batch_execute("BEGIN")
            .await
            .map_err(store.sql("shipping entries"))?;
        let shipped = match self.insert_entries(store, rows).await {
            Ok(()) => heartbeat(store, &self.gateway_id, local_seq).await,
            Err(e) => Err(e),
        };
        match shipped {
            Ok(()) => store
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(store.sql("shipping entries")),
            Err(e) => {
                let _ = store.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    async fn insert_entries(&self, store: &Store, rows: &[RawRow]) -> Result<(), FleetError> {
        const COLUMNS: usize = 16;
        let gw = &self.gateway_id;
        let mut sql = String::from(
            "INSERT INTO entries (gateway_id, seq, time, decision_id, call_id, phase, caller, tool, component_digest, policy_revision, input, verdict, reasons, obligations, metrics, entry_hash) VALUES ",
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * COLUMNS);
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..COLUMNS {
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * COLUMNS + c + 1));
            }
            sql.push(')');
            let c = &row.columns;
            params.extend_from_slice(&[
                gw as &(dyn ToSql + Sync),
                &row.seq,
                &row.time,
                &c.decision_id,
                &c.call_id,
                &c.phase,
                &c.caller,
                &c.tool,
                &c.component_digest,
                &c.policy_revision,
                &c.input,
                &c.verdict,
                &c.reasons,
                &c.obligations,
                &c.metrics,
                &row.entry_hash,
            ]);
        }
        sql.push_str(" ON CONFLICT (gateway_id, seq) DO NOTHING RETURNING seq");
        let inserted = store
            .client
            .query(&sql, &params)
            .await
            .map_err(store.sql("shipping entries"))?;
        if inserted.len() == rows.len() {
            return Ok(());
        }
        // Resent rows (a batch whose acknowledgement was lost): they must be the same.
        let inserted: std::collections::HashSet<i64> = inserted.iter().map(|r| r.get(0)).collect();
        let resent: Vec<i64> = rows
            .iter()
            .map(|r| r.seq)
            .filter(|s| !inserted.contains(s))
            .collect();
        let stored = store
            .client
            .query(
                &format!(
                    "SELECT {} FROM entries WHERE gateway_id = $1 AND seq = ANY($2) ORDER BY seq",
                    crate::audit::ENTRY_COLUMNS
                ),
                &[gw, &resent],
            )
            .await
            .map_err(store.sql("comparing resent entries"))?;
        for stored in &stored {
            let stored = raw_row(stored).map_err(store.sql("comparing resent entries"))?;
            let local = rows.iter().find(|r| r.seq == stored.seq);
            let same = local.is_some_and(|l| {
                l.time == stored.time
                    && l.columns == stored.columns
                    && l.entry_hash == stored.entry_hash
            });
            if !same {
                return Err(FleetError::Conflict {
                    store: store.describe().to_owned(),
                    detail: format!(
                        "entry {} of {gw}: the store holds other content than the local log (left as it is, not overwritten): another gateway uses gateway_id {gw:?}, or the store was edited; run `gatehouse audit verify --postgres`",
                        stored.seq
                    ),
                });
            }
        }
        Ok(())
    }

    async fn ship_checkpoint(
        &self,
        store: &Store,
        (id, size, root, note): &StoredCheckpoint,
    ) -> Result<(), FleetError> {
        let gw = &self.gateway_id;
        let note_text = match note {
            Ok(cp) => cp.note.clone(),
            // An unreadable local checkpoint is the local verifier's finding; ship what is known.
            Err(e) => format!("(unreadable in the local log: {e})"),
        };
        let inserted = store
            .client
            .execute(
                "INSERT INTO checkpoints (gateway_id, id, tree_size, root_hash, note) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gateway_id, id) DO NOTHING",
                &[gw, id, &(*size as i64), root, &note_text],
            )
            .await
            .map_err(store.sql("shipping a checkpoint"))?;
        if inserted == 1 {
            return Ok(());
        }
        let row = store
            .client
            .query_one(
                "SELECT note FROM checkpoints WHERE gateway_id = $1 AND id = $2",
                &[gw, id],
            )
            .await
            .map_err(store.sql("comparing a resent checkpoint"))?;
        let stored: String = row.get(0);
        if stored != note_text {
            return Err(FleetError::Conflict {
                store: store.describe().to_owned(),
                detail: format!(
                    "checkpoint #{id} of {gw}: the store holds another note than the local log (left as it is, not overwritten)"
                ),
            });
        }
        Ok(())
    }
}

/// Records how far the gateway's local log is (`local_seq`) and that it is alive.
async fn heartbeat(store: &Store, gateway_id: &str, local_seq: u64) -> Result<(), FleetError> {
    store
        .client
        .execute(
            "UPDATE gateways SET local_seq = $2, heartbeat = now() WHERE gateway_id = $1",
            &[&gateway_id, &(local_seq as i64)],
        )
        .await
        .map_err(store.sql("updating the gateway's heartbeat"))?;
    Ok(())
}

/// What the local log says about itself.
struct LocalState {
    origin: String,
    last_seq: u64,
}

/// What one round reads from the local log.
struct Batch {
    rows: Vec<RawRow>,
    checkpoints: Vec<StoredCheckpoint>,
}

/// An `entries` row of the store, in [`crate::audit::ENTRY_COLUMNS`] order.
pub(crate) fn raw_row(row: &tokio_postgres::Row) -> Result<RawRow, tokio_postgres::Error> {
    Ok(RawRow {
        seq: row.try_get(0)?,
        time: row.try_get(1)?,
        columns: EntryColumns {
            decision_id: row.try_get(2)?,
            call_id: row.try_get(3)?,
            phase: row.try_get(4)?,
            caller: row.try_get(5)?,
            tool: row.try_get(6)?,
            component_digest: row.try_get(7)?,
            policy_revision: row.try_get(8)?,
            input: row.try_get(9)?,
            verdict: row.try_get(10)?,
            reasons: row.try_get(11)?,
            obligations: row.try_get(12)?,
            metrics: row.try_get(13)?,
        },
        entry_hash: row.try_get(14)?,
    })
}
