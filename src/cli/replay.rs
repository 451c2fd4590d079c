//! `gatehouse policy replay`: decides the decisions recorded in an audit log again with another
//! bundle and reports those that would change. The log is opened read-only, as the `audit`
//! commands open it; the replay itself is [`crate::policy::replay`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::audit::{parse_time_arg, truncate, write_table};
use crate::audit::{AuditReader, Entry, EntryFilter};
use crate::policy::replay::{self, ChangeCounts, Recorded, ReplayOptions, Report};
use crate::policy::{Evaluator, Phase};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The audit log (opened read-only; never written).
    pub db: PathBuf,
    /// The bundle to decide with.
    #[arg(long, value_name = "DIR")]
    pub policies: PathBuf,
    /// Extra data file (JSON or YAML) merged over the bundle's data, in order.
    #[arg(long = "policy-data", visible_alias = "data", value_name = "FILE")]
    pub policy_data: Vec<PathBuf>,
    /// Only decisions at or after this time: RFC 3339, YYYY-MM-DD, or a duration ago (30m, 24h,
    /// 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only decisions before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only decisions of this phase (call, http, fs, socket, config, result).
    #[arg(long)]
    pub phase: Option<Phase>,
    /// Only decisions about this tool.
    #[arg(long)]
    pub tool: Option<String>,
    /// Only decisions about this caller's calls (principal).
    #[arg(long)]
    pub caller: Option<String>,
    #[arg(long, value_enum, default_value_t = ReplayFormat::Table)]
    pub format: ReplayFormat,
    /// Exit with status 1 if any decision would change (to gate a policy change in CI).
    #[arg(long)]
    pub fail_on_change: bool,
    /// List at most N changes, the earliest (every change is counted); 0 lists all.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
    /// Decide on N threads at once (default: one per core).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Time budget of each decision, in milliseconds (the gateway's is 50).
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub timeout_ms: u64,
    /// The evaluator that decides (as the gateway's `policy.evaluator`).
    #[arg(long, value_enum, default_value_t = Evaluator::Interpreter)]
    pub evaluator: Evaluator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// A summary, the changes and their counts by tool and caller, for a terminal.
    Table,
    /// The whole report as one JSON object.
    Json,
}

/// Runs the replay. Exit codes: 0 done (no change, or changes without `--fail-on-change`), 1 a
/// decision would change and `--fail-on-change` was given; errors are the caller's (2).
pub fn run(args: ReplayArgs) -> Result<ExitCode> {
    let now = chrono::Utc::now();
    let filter = EntryFilter {
        since: args
            .since
            .as_deref()
            .map(|s| parse_time_arg(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_time_arg(s, now))
            .transpose()?,
        tool: args.tool.clone(),
        principal: args.caller.clone(),
        // Only the policy's phases are read: outcomes, logs, lifecycle and supply entries
        // hold no decision, and `auth` is the transport's, before any policy.
        phases: match args.phase {
            Some(phase) => vec![phase.as_str().to_owned()],
            None => Phase::ALL.iter().map(|p| p.as_str().to_owned()).collect(),
        },
        ..EntryFilter::default()
    };
    let reader = AuditReader::open(&args.db)?;
    let store = super::policy::load_candidate(
        &args.policies,
        &args.policy_data,
        args.timeout_ms,
        args.evaluator,
    )
    .with_context(|| format!("policy bundle {}", args.policies.display()))?;
    let options = ReplayOptions {
        jobs: args.jobs.unwrap_or(ReplayOptions::default().jobs).max(1),
        max_listed: (args.limit > 0).then_some(args.limit),
    };
    let reading_history = phases_reading_history(&args.policies, &args.policy_data)?;
    let started = Instant::now();
    let report = replay::replay(&store, &options, |decide| {
        reader.for_each(&filter, |entry| {
            let history_matters = reading_history.reads(&entry.phase);
            let mut recorded = Recorded::from(entry);
            recorded.redacted |= history_matters && session_history_left_out(&recorded.input);
            decide(recorded);
            Ok(())
        })
    })?;
    let elapsed = started.elapsed();
    match args.format {
        ReplayFormat::Json => {
            let mut value = serde_json::to_value(&report)?;
            if let Some(object) = value.as_object_mut() {
                object.insert("log".into(), args.db.display().to_string().into());
                object.insert(
                    "policies".into(),
                    args.policies.display().to_string().into(),
                );
            }
            emit(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
        }
        ReplayFormat::Table => emit(&table(&args, &report))?,
    }
    let read = report.replayed + report.skipped.values().sum::<u64>();
    eprintln!(
        "{read} entries read, {} decided again in {:.1} s ({:.0} entries per second, {} threads \
         deciding)",
        report.replayed,
        elapsed.as_secs_f64(),
        read as f64 / elapsed.as_secs_f64().max(1e-9),
        options.jobs
    );
    Ok(if args.fail_on_change && report.has_changes() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// An audit entry as replay sees it: the phase, verdict and reasons recorded, the input with
/// whether it differs from what the policy saw (values redacted by keyed digests, URL
/// credentials masked), and who refused if not the policy.
impl From<Entry> for Recorded {
    fn from(entry: Entry) -> Recorded {
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        Recorded {
            seq: entry.seq,
            principal: text(entry.caller.get("principal")),
            refused_by: text(entry.metrics.get("refused_by")),
            redacted: crate::audit::holds_redacted(&entry.input)
                || crate::support::userinfo::holds_masked_userinfo(&entry.input),
            time: entry.time,
            call_id: entry.call_id,
            phase: entry.phase,
            tool: entry.tool,
            input: entry.input,
            verdict: entry.verdict,
            reasons: entry.reasons,
        }
    }
}

/// Which phases of a bundle may read `input.session.history`, which audit entries do not hold
/// (the session's earlier entries are its history). Textual, so it errs towards "may read": a
/// phase package whose files mention `history`, or every phase if a helper package does.
struct HistoryReaders {
    every_phase: bool,
    phases: std::collections::BTreeSet<String>,
}

impl HistoryReaders {
    fn reads(&self, phase: &str) -> bool {
        self.every_phase || self.phases.contains(phase)
    }
}

fn phases_reading_history(dir: &Path, data: &[PathBuf]) -> Result<HistoryReaders> {
    let bundle = crate::policy::BundleSource::read(dir, data)?;
    let mut readers = HistoryReaders {
        every_phase: false,
        phases: Default::default(),
    };
    for file in bundle.files.iter().filter(|f| !f.is_test()) {
        if !file.contents.contains("history") {
            continue;
        }
        let package = file
            .contents
            .lines()
            .find_map(|line| line.trim().strip_prefix("package "))
            .unwrap_or_default()
            .trim();
        match package.strip_prefix("gatehouse.") {
            Some(phase) => {
                readers.phases.insert(phase.to_owned());
            }
            None => readers.every_phase = true,
        }
    }
    Ok(readers)
}

/// Whether the policy saw a session history that the entry does not hold: its session had
/// decisions before this one, and entries record a session without its history.
fn session_history_left_out(input: &Value) -> bool {
    input
        .pointer("/session/decisions")
        .and_then(Value::as_u64)
        .is_some_and(|earlier| earlier > 0)
        && input.pointer("/session/history").is_none()
}

/// The report for a terminal: a summary, the changes, and their counts by tool and caller.
fn table(args: &ReplayArgs, report: &Report) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_report(&mut out, args, report);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_report(out: &mut Vec<u8>, args: &ReplayArgs, report: &Report) -> std::io::Result<()> {
    let changed = &report.changed;
    writeln!(
        out,
        "replayed {} decisions of {} with {} (revision {})",
        report.replayed,
        args.db.display(),
        args.policies.display(),
        report.revision
    )?;
    writeln!(
        out,
        "changed:   {} (allow→deny {}, deny→allow {}, reasons changed {}, ask changed {}); unchanged {}",
        changed.total(),
        changed.allow_to_deny,
        changed.deny_to_allow,
        changed.reasons_changed,
        changed.ask_changed,
        report.unchanged
    )?;
    if report.redacted > 0 {
        writeln!(
            out,
            "redacted:  {} inputs held redacted values and were decided as recorded (redacted: may differ)",
            report.redacted
        )?;
    }
    if report.policy_errors > 0 {
        writeln!(
            out,
            "errors:    {} decisions were policy errors (each a deny)",
            report.policy_errors
        )?;
    }
    for (phase, count) in &report.phases_undefined {
        let as_gateway = if *phase == Phase::Result {
            "the gateway would not check results at all (they pass)"
        } else {
            "the gateway would deny them all"
        };
        writeln!(
            out,
            "undefined: the bundle has no {} package: {count} {phase} decisions; {as_gateway}",
            phase.package()
        )?;
    }
    for (why, count) in &report.skipped {
        writeln!(out, "skipped:   {count} ({why})")?;
    }
    if !report.has_changes() {
        writeln!(out, "\nno decision would change")?;
        return Ok(());
    }
    writeln!(out)?;
    let rows: Vec<Vec<String>> = report
        .changes
        .iter()
        .map(|c| {
            let detail = match c.kind {
                replay::ChangeKind::AllowToDeny => c.replayed_reasons.join("; "),
                replay::ChangeKind::DenyToAllow => {
                    format!("was: {}", c.recorded_reasons.join("; "))
                }
                replay::ChangeKind::ReasonsChanged => format!(
                    "was: {} — now: {}",
                    c.recorded_reasons.join("; "),
                    c.replayed_reasons.join("; ")
                ),
                replay::ChangeKind::AskChanged => format!(
                    "was: {} {} — now: {} {}",
                    c.recorded_verdict.as_str(),
                    c.recorded_reasons.join("; "),
                    c.replayed_verdict.as_str(),
                    c.replayed_reasons.join("; ")
                ),
            };
            let notes = c.notes();
            let detail = if notes.is_empty() {
                detail
            } else {
                format!("[{}] {detail}", notes.join(", "))
            };
            vec![
                c.seq.to_string(),
                c.time.clone(),
                c.phase.to_string(),
                c.call_id.clone().unwrap_or_else(|| "-".into()),
                c.tool.clone().unwrap_or_else(|| "-".into()),
                c.principal.clone().unwrap_or_else(|| "-".into()),
                c.kind.label().to_owned(),
                truncate(&detail, 140),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&[
            "SEQ", "TIME", "PHASE", "CALL", "TOOL", "CALLER", "CHANGE", "DETAIL",
        ]),
        &rows,
    )?;
    if report.unlisted > 0 {
        writeln!(
            out,
            "… and {} more changes not listed (--limit 0 lists all)",
            report.unlisted
        )?;
    }
    for (title, counts) in [("tool", &report.by_tool), ("caller", &report.by_caller)] {
        writeln!(out, "\nchanges by {title}:")?;
        let key = format!("  {}", title.to_uppercase());
        write_table(
            out,
            Some(&[
                &key,
                "ALLOW→DENY",
                "DENY→ALLOW",
                "REASONS CHANGED",
                "ASK CHANGED",
            ]),
            &count_rows(counts),
        )?;
    }
    Ok(())
}

/// One row per key, most changes first.
fn count_rows(counts: &std::collections::BTreeMap<String, ChangeCounts>) -> Vec<Vec<String>> {
    let mut sorted: Vec<(&String, &ChangeCounts)> = counts.iter().collect();
    sorted.sort_by_key(|(_, c)| std::cmp::Reverse(c.total()));
    sorted
        .into_iter()
        .map(|(key, c)| {
            vec![
                format!("  {key}"),
                c.allow_to_deny.to_string(),
                c.deny_to_allow.to_string(),
                c.reasons_changed.to_string(),
                c.ask_changed.to_string(),
            ]
        })
        .collect()
}

/// Writes to stdout; a closed pipe (`| head`) ends the output early, which is not an error.
fn emit(text: &str) -> Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_history_is_missed_only_where_a_phase_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "call.rego",
            "package gatehouse.call\n\ndefault allow := true\n",
        );
        write(
            "http.rego",
            "package gatehouse.http\n\ndeny contains \"x\" if { count(input.session.history) > 3 }\n\ndefault allow := true\n",
        );
        write(
            "http_test.rego",
            "package gatehouse.http_test\n\n# history\ntest_x if { true }\n",
        );
        let readers = phases_reading_history(dir.path(), &[]).unwrap();
        assert!(readers.reads("http") && !readers.reads("call") && !readers.reads("fs"));

        write(
            "lib.rego",
            "package lib\n\nlong(s) := count(s.history) > 3\n",
        );
        assert!(phases_reading_history(dir.path(), &[]).unwrap().reads("fs"));

        let first = serde_json::json!({"session": {"id": "s-1", "decisions": 0}});
        let later = serde_json::json!({"session": {"id": "s-1", "decisions": 2}});
        let whole = serde_json::json!({"session": {"id": "s-1", "decisions": 2, "history": []}});
        assert!(!session_history_left_out(&first));
        assert!(session_history_left_out(&later));
        assert!(!session_history_left_out(&whole));
        assert!(!session_history_left_out(
            &serde_json::json!({"phase": "call"})
        ));
    }
}
