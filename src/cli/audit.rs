//! `gatehouse audit …`: the auditor's commands. All of them open the log read-only, except
//! `keygen`, which only writes the new key files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::audit::{
    AuditReader, Entry, EntryFilter, NoteSigner, NoteVerifier, VerifyOptions, describe,
    public_key_path, read_checkpoint_file, verify,
};

/// Inspect, verify and prove the audit log.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Create an Ed25519 checkpoint signing key (0600) and its public verifier key (<FILE>.pub).
    Keygen {
        /// Where to write the private key; the public key goes to <FILE>.pub.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Key name, shown in every checkpoint signature line (no '+' or spaces).
        #[arg(long, default_value = "gatehouse-audit")]
        name: String,
    },
    /// List entries matching filters (of a log file, or with --postgres across the fleet).
    Query {
        #[arg(required_unless_present = "postgres", conflicts_with = "postgres")]
        db: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many entries (the oldest matching ones, unless --newest).
        #[arg(long)]
        limit: Option<u64>,
        /// With --limit: keep the newest matching entries instead of the oldest.
        #[arg(long)]
        newest: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// The whole story of one call as a timeline.
    /// `show DB CALL_ID`, or `show --postgres URL CALL_ID`.
    Show {
        /// The log file (without --postgres), else the call id.
        #[arg(value_name = "DB")]
        db: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "CALL_ID")]
        call_id: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print the newest entries; with -f keep printing new ones as they arrive.
    Tail {
        db: PathBuf,
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many of the newest entries to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        /// Poll interval for -f, in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Calls, denials by reason, top tools and callers.
    Stats {
        #[arg(required_unless_present = "postgres", conflicts_with = "postgres")]
        db: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        /// RFC 3339 time or relative (30m, 1h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Recompute the log and check it against its checkpoints; exit 1 if anything is wrong.
    /// With --postgres: every gateway's chain in the fleet's store, and each replica's lag.
    Verify {
        #[arg(required_unless_present = "postgres", conflicts_with = "postgres")]
        db: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        /// With --postgres: the checkpoint key of one gateway (`gw-1=FILE`; repeat for each);
        /// --pubkey and --key-dir give the key of every other gateway.
        #[arg(long, value_name = "GATEWAY=FILE", requires = "postgres")]
        gateway_key: Vec<String>,
        /// The log's public checkpoint key (from `audit keygen`): require valid signatures.
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
        /// A checkpoint file kept outside the host (or one note printed by `audit checkpoint`):
        /// catches a truncated or replaced log.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The gateway's state directory: check signatures with its public key (without
        /// --pubkey, the default directory's key is used when it exists).
        #[arg(long, value_name = "DIR", conflicts_with = "pubkey")]
        key_dir: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the latest stored checkpoint (a C2SP signed note) to publish elsewhere; later,
    /// `audit verify DB --checkpoint FILE` proves the log still extends it.
    Checkpoint { db: PathBuf },
    /// Print an inclusion proof (--seq) or a consistency proof (--old-size) as JSON.
    Prove {
        db: PathBuf,
        /// Prove that this entry is in the checkpoint's tree.
        #[arg(
            long,
            required_unless_present = "old_size",
            conflicts_with = "old_size"
        )]
        seq: Option<u64>,
        /// Prove that the tree of this many entries (an older checkpoint) is a prefix of the
        /// checkpoint's tree.
        #[arg(long)]
        old_size: Option<u64>,
        /// Prove against the last checkpoint of this file instead of the latest stored one.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// All matching entries as JSON lines.
    Export {
        db: PathBuf,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

/// The fleet's PostgreSQL store, for the commands that read it instead of a file.
#[derive(Debug, Args, Default)]
pub struct StoreArgs {
    /// Read the fleet's PostgreSQL store (a libpq URL; the password from PGPASSWORD or the URL)
    /// instead of a log file.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// With --postgres: only this gateway's entries.
    #[arg(long, value_name = "ID", requires = "postgres")]
    pub gateway: Option<String>,
    /// With --postgres: PEM file of the CA of the server's certificate (sslmode=require etc.).
    #[arg(long, value_name = "FILE", requires = "postgres")]
    pub ca_file: Option<PathBuf>,
}

/// Filters shared by `query` and `export`.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Entries at or after this time: RFC 3339 (2026-11-22T10:00:00Z) or relative (30m, 1h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Entries before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Caller principal.
    #[arg(long)]
    caller: Option<String>,
    #[arg(long)]
    tool: Option<String>,
    /// list, call, http, fs, socket, config, result, log, outcome, lifecycle, supply.
    #[arg(long)]
    phase: Option<String>,
    /// allow, deny (decisions) or ok, tool_error, trap, limit, denied, error (outcomes).
    #[arg(long)]
    verdict: Option<String>,
    /// Call id.
    #[arg(long = "call")]
    call_id: Option<String>,
    /// Session id (`s-…`, `input.session.id`): every decision made in one MCP session.
    #[arg(long)]
    session: Option<String>,
    /// Case-insensitive text to find in the reasons.
    #[arg(long)]
    text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON object per line.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// Runs an audit subcommand. Exit codes: 0 fine, 1 verification found problems, 2 error.
pub fn run(args: AuditArgs) -> ExitCode {
    match dispatch(args.command) {
        Ok(code) => code,
        // A closed pipe (`… | head`) ends the output early; that is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, reporting a failure (such as a closed pipe) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

fn dispatch(command: AuditCommand) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    match command {
        AuditCommand::Keygen { out, name } => keygen(&out, &name),
        AuditCommand::Query {
            db,
            store,
            filter,
            limit,
            newest,
            format,
        } => {
            let mut f = filter.to_filter(now)?;
            f.limit = limit;
            f.newest_first = newest;
            let Some(db) = db else {
                let mut found = super::fleet::query(&store, &f)?;
                if newest {
                    found.reverse();
                }
                return print_fleet_entries(&found, format);
            };
            let mut entries = open(&db)?.query(&f)?;
            if newest {
                entries.reverse();
            }
            print_entries(&entries, format, true)
        }
        AuditCommand::Show {
            db,
            store,
            call_id,
            format,
        } => match (&store.postgres, call_id) {
            (None, Some(call_id)) => show(&open(&db)?, &call_id, format),
            (None, None) => bail!("give the call id: gatehouse audit show DB CALL_ID"),
            (Some(_), Some(_)) => {
                bail!(
                    "with --postgres give only the call id: gatehouse audit show --postgres URL CALL_ID"
                )
            }
            (Some(_), None) => {
                // With --postgres the one positional argument is the call id.
                let call_id = db.display().to_string();
                let story = super::fleet::query(
                    &store,
                    &EntryFilter {
                        call_id: Some(call_id.clone()),
                        ..Default::default()
                    },
                )?;
                if story.is_empty() {
                    bail!("no entries for call {call_id:?} in the fleet's store");
                }
                print_fleet_entries(&story, format)
            }
        },
        AuditCommand::Tail {
            db,
            follow,
            lines,
            interval_ms,
            format,
        } => tail(
            &open(&db)?,
            follow,
            lines,
            Duration::from_millis(interval_ms),
            format,
        ),
        AuditCommand::Stats {
            db,
            store,
            since,
            format,
        } => {
            let since = since.map(|s| parse_time_arg(&s, now)).transpose()?;
            match db {
                Some(db) => {
                    let reader = open(&db)?;
                    let s = reader.stats(since.as_deref())?;
                    print_stats(&s, &reader.path().display().to_string(), format)
                }
                None => {
                    let (s, name) = super::fleet::stats(&store, since.as_deref())?;
                    print_stats(&s, &name, format)
                }
            }
        }
        AuditCommand::Verify {
            db,
            store,
            gateway_key,
            pubkey,
            checkpoint,
            key_dir,
            json,
        } => {
            let key = find_key(pubkey, key_dir)?;
            match db {
                Some(db) => verify_cmd(&db, key.as_ref(), checkpoint.as_deref(), json),
                None => {
                    if checkpoint.is_some() {
                        bail!(
                            "--checkpoint checks one log file; verify each gateway's local log with it"
                        );
                    }
                    super::fleet::verify(&store, key.map(|k| k.verifier), &gateway_key, json)
                }
            }
        }
        AuditCommand::Checkpoint { db } => {
            let latest = open(&db)?.checkpoints()?.pop().with_context(|| {
                format!("{}: no checkpoint yet (the gateway writes one every N entries, T seconds and at shutdown)", db.display())
            })?;
            if !latest.is_signed() {
                eprintln!(
                    "warning: this checkpoint is unsigned: it still shows later truncation, but anyone could have made it"
                );
            }
            // One record of the checkpoint file format: the note and an empty line.
            say!("{}", latest.note);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Prove {
            db,
            seq,
            old_size,
            checkpoint,
        } => {
            let reader = open(&db)?;
            let external = match &checkpoint {
                Some(p) => Some(
                    read_checkpoint_file(p)?
                        .pop()
                        .with_context(|| format!("{}: no checkpoint in the file", p.display()))?,
                ),
                None => None,
            };
            let json = match (seq, old_size) {
                (Some(seq), _) => {
                    serde_json::to_string_pretty(&reader.inclusion_proof(seq, external.as_ref())?)?
                }
                (None, Some(old)) => serde_json::to_string_pretty(
                    &reader.consistency_proof(old, external.as_ref())?,
                )?,
                (None, None) => bail!("give --seq or --old-size"),
            };
            say!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { db, filter } => {
            let reader = open(&db)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut write_error = None;
            let result = reader.for_each(&filter.to_filter(now)?, |e| {
                writeln!(out, "{}", entry_json(&e)).map_err(|err| {
                    let stop = crate::audit::AuditError::Invalid(format!("writing output: {err}"));
                    write_error = Some(err);
                    stop
                })
            });
            if let Some(err) = write_error {
                return Err(err.into());
            }
            result?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(db: &Path) -> Result<AuditReader> {
    Ok(AuditReader::open(db)?)
}

impl FilterArgs {
    fn to_filter(&self, now: chrono::DateTime<chrono::Utc>) -> Result<EntryFilter> {
        Ok(EntryFilter {
            since: self
                .since
                .as_deref()
                .map(|s| parse_time_arg(s, now))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|s| parse_time_arg(s, now))
                .transpose()?,
            principal: self.caller.clone(),
            tool: self.tool.clone(),
            phase: self.phase.clone(),
            verdict: self.verdict.clone(),
            call_id: self.call_id.clone(),
            session: self.session.clone(),
            text: self.text.clone(),
            ..Default::default()
        })
    }
}

/// A time bound as people write it (see [`crate::audit::parse_time_bound`]).
pub fn parse_time_arg(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    Ok(crate::audit::parse_time_bound(s, now)?)
}

fn keygen(out: &Path, name: &str) -> Result<ExitCode> {
    let signer = NoteSigner::generate(name).map_err(|e| anyhow::anyhow!(e))?;
    let public = signer.write_key_files(out)?;
    say!(
        "private key: {} (mode 0600; configure it as the audit signing key)",
        out.display()
    );
    say!(
        "public key:  {} (give it to auditors: `gatehouse audit verify --pubkey`)",
        public.display()
    );
    say!("{}", signer.verifier().to_text());
    debug_assert_eq!(public, public_key_path(out));
    Ok(ExitCode::SUCCESS)
}

/// The entry as one JSON line (the stored fields and the hex entry hash).
fn entry_json(e: &Entry) -> String {
    serde_json::to_string(e).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
}

fn caller_text(caller: &Value) -> String {
    let principal = caller
        .get("principal")
        .and_then(Value::as_str)
        .unwrap_or("-");
    match caller.get("transport").and_then(Value::as_str) {
        Some(t) => format!("{principal} ({t})"),
        None => principal.to_owned(),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn print_entries(entries: &[Entry], format: Format, header: bool) -> Result<ExitCode> {
    let rows: Vec<(Option<&str>, &Entry)> = entries.iter().map(|e| (None, e)).collect();
    print_rows(&rows, format, header)
}

/// Entries of the fleet's store: each with the gateway that recorded it as the first column.
fn print_fleet_entries(
    entries: &[crate::fleet::query::FleetEntry],
    format: Format,
) -> Result<ExitCode> {
    let rows: Vec<(Option<&str>, &Entry)> = entries
        .iter()
        .map(|e| (Some(e.gateway_id.as_str()), &e.entry))
        .collect();
    print_rows(&rows, format, true)
}

/// Entries, each with its gateway id when they come from the fleet's store.
fn print_rows(
    entries: &[(Option<&str>, &Entry)],
    format: Format,
    header: bool,
) -> Result<ExitCode> {
    let fleet = entries.iter().any(|(gateway, _)| gateway.is_some());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        Format::Json => {
            for (gateway, e) in entries {
                match gateway {
                    None => writeln!(out, "{}", entry_json(e))?,
                    Some(gateway) => {
                        let mut value = serde_json::to_value(e)?;
                        value["gateway_id"] = Value::String(gateway.to_string());
                        writeln!(out, "{value}")?;
                    }
                }
            }
        }
        Format::Csv => {
            if header {
                writeln!(
                    out,
                    "{}seq,time,decision_id,call_id,phase,principal,transport,client,tool,component_digest,policy_revision,verdict,reasons,input,obligations,metrics,entry_hash",
                    if fleet { "gateway_id," } else { "" }
                )?;
            }
            for (gateway, e) in entries {
                let opt = |o: &Option<String>| o.clone().unwrap_or_default();
                let get = |k: &str| e.caller.get(k).map(plain).unwrap_or_default();
                let fields = [
                    e.seq.to_string(),
                    e.time.clone(),
                    e.decision_id.clone(),
                    opt(&e.call_id),
                    e.phase.clone(),
                    get("principal"),
                    get("transport"),
                    get("client"),
                    opt(&e.tool),
                    opt(&e.component_digest),
                    opt(&e.policy_revision),
                    e.verdict.clone(),
                    serde_json::to_string(&e.reasons)?,
                    e.input.to_string(),
                    e.obligations.to_string(),
                    e.metrics.to_string(),
                    hex::encode(e.entry_hash),
                ];
                let line: Vec<String> = gateway
                    .filter(|_| fleet)
                    .map(str::to_owned)
                    .iter()
                    .chain(fields.iter())
                    .map(|f| csv_field(f))
                    .collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|(gateway, e)| {
                    let first = gateway.filter(|_| fleet).map(str::to_owned);
                    first
                        .into_iter()
                        .chain([
                            e.seq.to_string(),
                            e.time.clone(),
                            e.phase.clone(),
                            e.verdict.clone(),
                            caller_text(&e.caller),
                            e.tool.clone().unwrap_or_else(|| "-".into()),
                            e.call_id.clone().unwrap_or_else(|| "-".into()),
                            truncate(&describe(e), 100),
                        ])
                        .collect()
                })
                .collect();
            let headers = [
                "GATEWAY", "SEQ", "TIME", "PHASE", "VERDICT", "CALLER", "TOOL", "CALL", "DETAIL",
            ];
            let headers = if fleet { &headers[..] } else { &headers[1..] };
            write_table(&mut out, if header { Some(headers) } else { None }, &rows)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(super) fn write_table(
    out: &mut impl Write,
    headers: Option<&[&str]>,
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let columns = headers.map_or_else(|| rows.first().map_or(0, Vec::len), <[&str]>::len);
    let mut widths = vec![0usize; columns];
    let all = headers
        .map(|h| h.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .into_iter()
        .chain(rows.iter().cloned());
    let all: Vec<Vec<String>> = all.collect();
    for row in &all {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in &all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn show(reader: &AuditReader, call_id: &str, format: Format) -> Result<ExitCode> {
    let missing = || {
        anyhow::anyhow!(
            "no entries for call {call_id:?} in {}",
            reader.path().display()
        )
    };
    if format != Format::Table {
        let story = reader.call_story(call_id)?;
        if story.is_empty() {
            return Err(missing());
        }
        return print_entries(&story, format, true);
    }
    let story = reader.story(call_id)?.ok_or_else(missing)?;
    let call = &story.summary;
    let transport = call
        .transport
        .as_deref()
        .map_or_else(String::new, |t| format!(" ({t})"));
    say!(
        "call {call_id}  tool {}  caller {}{transport}  started {}",
        call.tool.as_deref().unwrap_or("-"),
        call.caller,
        call.time
    );
    if let Some(d) = &story.component_digest {
        say!("component {d}");
    }
    if let Some(r) = &story.policy_revision {
        say!("policy revision {r}");
    }
    let rows: Vec<Vec<String>> = story
        .steps
        .iter()
        .map(|step| {
            vec![
                step.offset_ms
                    .map_or_else(|| "?".into(), |ms| format!("+{ms} ms")),
                format!("#{}", step.seq),
                step.phase.clone(),
                step.verdict.clone(),
                truncate(&step.detail, 120),
            ]
        })
        .collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_table(
        &mut out,
        Some(&["OFFSET", "SEQ", "PHASE", "VERDICT", "DETAIL"]),
        &rows,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn tail(
    reader: &AuditReader,
    follow: bool,
    lines: u64,
    interval: Duration,
    format: Format,
) -> Result<ExitCode> {
    let mut newest = reader.query(&EntryFilter {
        limit: Some(lines),
        newest_first: true,
        ..Default::default()
    })?;
    newest.reverse();
    print_entries(&newest, format, true)?;
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut last = newest.last().map_or(0, |e| e.seq);
    loop {
        std::thread::sleep(interval);
        let fresh = reader.query(&EntryFilter {
            after_seq: Some(last),
            ..Default::default()
        })?;
        if let Some(e) = fresh.last() {
            last = e.seq;
            print_entries(&fresh, format, false)?;
        }
    }
}

/// Prints statistics of the log (or store) named `source`.
fn print_stats(s: &crate::audit::Stats, source: &str, format: Format) -> Result<ExitCode> {
    if format == Format::Json {
        say!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "log:      {source}")?;
    writeln!(
        out,
        "period:   {} .. {}",
        s.first_time.as_deref().unwrap_or("-"),
        s.last_time.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "entries:  {}", s.entries)?;
    writeln!(out, "calls:    {} ({} denied)", s.calls, s.calls_denied)?;
    for (title, counts) in [
        ("by phase and verdict", &s.by_phase_verdict),
        ("denials by reason", &s.denials_by_reason),
        ("top tools (calls)", &s.top_tools),
        ("top callers (calls)", &s.top_callers),
    ] {
        writeln!(out, "\n{title}:")?;
        if counts.is_empty() {
            writeln!(out, "  (none)")?;
        }
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|c| vec![format!("  {}", c.count), truncate(&c.key, 100)])
            .collect();
        write_table(&mut out, None, &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The public key `verify` checks signatures with, and where it came from.
struct VerifyKey {
    path: PathBuf,
    verifier: NoteVerifier,
}

/// `--pubkey`, else `--key-dir`'s public key (which must exist), else the default state
/// directory's when it exists; `None`: nothing to check signatures with.
fn find_key(pubkey: Option<PathBuf>, key_dir: Option<PathBuf>) -> Result<Option<VerifyKey>> {
    let path = match (pubkey, key_dir) {
        (Some(path), _) => path,
        (None, Some(dir)) => dir.join(crate::audit::CHECKPOINT_PUBLIC_KEY),
        (None, None) => match crate::audit::default_key_dir()
            .map(|dir| dir.join(crate::audit::CHECKPOINT_PUBLIC_KEY))
            .filter(|path| path.exists())
        {
            Some(path) => path,
            None => return Ok(None),
        },
    };
    let verifier = NoteVerifier::load(&path)?;
    Ok(Some(VerifyKey { path, verifier }))
}

/// What a passing verification proves, given the key and external checkpoints it had.
fn proved(key: Option<&VerifyKey>, external: Option<&Path>) -> String {
    let mut text = match key {
        Some(key) => format!(
            "signatures checked with {}+{} ({}): a log rebuilt without that key fails",
            key.verifier.name(),
            hex::encode(key.verifier.key_id()),
            key.path.display()
        ),
        None => "internal consistency only: no key, a rebuilt log would also pass".to_owned(),
    };
    match external {
        Some(file) => text.push_str(&format!(
            "; the log extends the checkpoints in {}, so it was not truncated or replaced since",
            file.display()
        )),
        None => text.push_str("; no external checkpoint, a truncated tail would pass"),
    }
    text
}

fn verify_cmd(
    db: &Path,
    key: Option<&VerifyKey>,
    checkpoint: Option<&Path>,
    json: bool,
) -> Result<ExitCode> {
    let reader = open(db)?;
    let proved = proved(key, checkpoint);
    let options = VerifyOptions {
        pubkey: key.map(|k| k.verifier.clone()),
        external: checkpoint
            .map(|p| read_checkpoint_file(p).map(|cps| (p.to_owned(), cps)))
            .transpose()?,
    };
    let report = verify(&reader, &options)?;
    let code = if report.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["proved"] = Value::String(proved);
        say!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(code);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "audit log:   {}", report.path.display())?;
    writeln!(out, "origin:      {}", report.origin)?;
    writeln!(
        out,
        "entries:     {} (root {})",
        report.entries, report.root
    )?;
    writeln!(
        out,
        "checkpoints: {} stored ({} signed, signatures {}), {} external",
        report.checkpoints,
        report.signed_checkpoints,
        if report.signatures_checked {
            "checked"
        } else {
            "NOT checked"
        },
        report.external_checkpoints
    )?;
    for w in &report.warnings {
        writeln!(out, "WARNING: {w}")?;
    }
    if let Some((a, b)) = report.uncovered {
        writeln!(
            out,
            "NOT YET COVERED: entries {a}..={b} come after the last checkpoint (size {}); their rows are consistent but no checkpoint attests them yet (normal after a crash or before the next checkpoint).",
            report.last_checkpoint_size
        )?;
    }
    writeln!(out, "proved:      {proved}")?;
    match report.first_problem() {
        None => writeln!(
            out,
            "OK: every entry matches its hash, seq has no gaps, time never runs backwards, and every checkpoint matches the recomputed tree."
        )?,
        Some(first) => {
            writeln!(
                out,
                "FAILED: first bad entry: seq {}: {}",
                first.seq.map_or("?".into(), |s| s.to_string()),
                first.what
            )?;
            writeln!(
                out,
                "all problems ({}):",
                report.problems.len() as u64 + report.more_problems
            )?;
            for p in &report.problems {
                writeln!(
                    out,
                    "  seq {}: {}",
                    p.seq.map_or("?".into(), |s| s.to_string()),
                    p.what
                )?;
            }
            if report.more_problems > 0 {
                writeln!(out, "  … and {} more", report.more_problems)?;
            }
        }
    }
    Ok(code)
}
