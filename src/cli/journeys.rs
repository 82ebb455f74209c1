//! `handover journeys ...`: find, inspect and repair.

use std::io::Read as _;

use anyhow::{Context, Result, bail};
use handover_engine::admin::{JourneyView, RepairReport, StuckItem};
use handover_engine::api::list_filter;
use handover_engine::{CancelOutcome, Engine, JourneyId};
use serde_json::{Value, json};

use super::JourneysCommand;
use super::table::Table;

/// Runs one `journeys` command; returns what to print.
pub async fn run(engine: &Engine, command: JourneysCommand) -> Result<String> {
    match command {
        JourneysCommand::List {
            workflow,
            status,
            key,
            since,
            limit,
            json,
        } => {
            let now = engine.clock().now().timestamp_millis();
            let filter = list_filter(
                workflow,
                status.as_deref(),
                key,
                since.as_deref(),
                Some(limit),
                now,
            )
            .map_err(anyhow::Error::msg)?;
            let rows = engine.list(&filter).await?;
            if json {
                return Ok(serde_json::to_string_pretty(&rows)?);
            }
            let mut t = Table::new(&["ID", "WORKFLOW", "STATUS", "STEP", "KEY", "UPDATED", "NOTE"]);
            for r in &rows {
                t.row(vec![
                    r.id.to_string(),
                    format!("{} v{}", r.workflow, r.version),
                    r.status.to_string(),
                    r.step.clone(),
                    r.business_key.clone().unwrap_or_default(),
                    short_time(&r.updated_at),
                    r.note.clone().unwrap_or_default(),
                ]);
            }
            Ok(if t.is_empty() {
                "no journeys match\n".to_owned()
            } else {
                format!("{}{} journey(s)\n", t.render(), rows.len())
            })
        }
        JourneysCommand::Show { id, json } => {
            let view = engine.show(parse_id(&id)?).await?;
            if json {
                return Ok(serde_json::to_string_pretty(&view)?);
            }
            Ok(render_show(&view))
        }
        JourneysCommand::Stuck { limit, json } => {
            let items = engine.stuck(limit).await?;
            if json {
                return Ok(serde_json::to_string_pretty(&items)?);
            }
            Ok(render_stuck(&items))
        }
        JourneysCommand::Retry { id, audit, json } => {
            let report = engine
                .retry_now(parse_id(&id)?, &audit.actor, &audit.reason)
                .await?;
            Ok(render_report(&report, json)?)
        }
        JourneysCommand::Signal {
            id,
            name,
            payload,
            audit,
            json,
        } => {
            let payload: Value =
                serde_json::from_str(&payload).context("--payload is not valid JSON")?;
            let report = engine
                .signal_as_operator(parse_id(&id)?, &name, payload, &audit.actor, &audit.reason)
                .await?;
            Ok(render_report(&report, json)?)
        }
        JourneysCommand::Cancel { id, audit, json } => {
            let id = parse_id(&id)?;
            let outcome = engine.cancel(id, &audit.actor, &audit.reason).await?;
            let text = match outcome {
                CancelOutcome::Cancelled => "cancelled: its compensations (if any) are running",
                CancelOutcome::Requested => {
                    "cancel requested: a worker is running its step and cancels right after it"
                }
            };
            Ok(if json {
                serde_json::to_string_pretty(
                    &json!({ "journey": id, "action": "cancel", "outcome": text }),
                )?
            } else {
                format!("{id}: {text}\n")
            })
        }
        JourneysCommand::Skip { id, audit, json } => {
            let report = engine
                .skip(parse_id(&id)?, &audit.actor, &audit.reason)
                .await?;
            Ok(render_report(&report, json)?)
        }
        JourneysCommand::Rewind {
            id,
            to,
            audit,
            json,
        } => {
            let report = engine
                .rewind(parse_id(&id)?, to, &audit.actor, &audit.reason)
                .await?;
            Ok(render_report(&report, json)?)
        }
        JourneysCommand::PatchState {
            id,
            file,
            audit,
            json,
        } => {
            let text = if file == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            let state: Value =
                serde_json::from_str(&text).with_context(|| format!("{file} is not valid JSON"))?;
            let report = engine
                .patch_state(parse_id(&id)?, state, &audit.actor, &audit.reason)
                .await?;
            Ok(render_report(&report, json)?)
        }
        JourneysCommand::Dismiss { signal_id, audit } => {
            if engine.dismiss_signal(signal_id).await? {
                tracing::info!(signal_id, actor = %audit.actor, reason = %audit.reason, "unmatched callback dismissed");
                Ok(format!("callback {signal_id} dismissed\n"))
            } else {
                bail!("callback {signal_id} is not an undismissed unmatched callback")
            }
        }
    }
}

fn parse_id(raw: &str) -> Result<JourneyId> {
    raw.parse()
        .with_context(|| format!("{raw:?} is not a journey id (a UUID, as `journeys list` shows)"))
}

/// `2030-01-01T00:00:00.123+00:00` → `2030-01-01 00:00:00`.
fn short_time(rfc: &str) -> String {
    rfc.get(..19).unwrap_or(rfc).replace('T', " ")
}

fn render_report(report: &RepairReport, json: bool) -> Result<String> {
    if json {
        return Ok(serde_json::to_string_pretty(report)?);
    }
    let mut out = format!(
        "{} {}: done; status now {}\n",
        report.action, report.journey, report.status
    );
    if let Some(note) = &report.note {
        out.push_str(&format!("  {note}\n"));
    }
    for change in &report.diff {
        out.push_str(&format!(
            "  {}: {} -> {}\n",
            change.path,
            change
                .before
                .as_ref()
                .map_or("(none)".to_owned(), Value::to_string),
            change
                .after
                .as_ref()
                .map_or("(none)".to_owned(), Value::to_string),
        ));
    }
    out.push_str("  recorded in the journey's history\n");
    Ok(out)
}

fn render_stuck(items: &[StuckItem]) -> String {
    if items.is_empty() {
        return "nothing is stuck\n".to_owned();
    }
    let mut t = Table::new(&["JOURNEY", "WORKFLOW", "KEY", "SINCE", "KIND", "REASON"]);
    for item in items {
        t.row(vec![
            item.journey
                .map(|j| j.to_string())
                .or_else(|| item.signal_id.map(|s| format!("signal {s}")))
                .unwrap_or_default(),
            item.workflow.clone().unwrap_or_default(),
            item.business_key.clone().unwrap_or_default(),
            short_time(&item.since),
            serde_json::to_value(item.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            item.reason.clone(),
        ]);
    }
    format!(
        "{}{} item(s). Inspect with `handover journeys show ID`; repair with retry | signal | skip | rewind | patch-state | cancel (each needs --reason).\n",
        t.render(),
        items.len()
    )
}

fn render_show(v: &JourneyView) -> String {
    let s = &v.summary;
    let mut out = String::new();
    let mut line = |k: &str, val: String| out.push_str(&format!("{k:<14}{val}\n"));
    line("journey", s.id.to_string());
    line("workflow", format!("{} v{}", s.workflow, s.version));
    line("status", s.status.to_string());
    if let Some(key) = &s.business_key {
        line("key", key.clone());
    }
    line(
        "step",
        format!("{} (since {})", s.step, short_time(&s.step_since)),
    );
    if let Some(w) = &v.waiting {
        let what = if w.signals.is_empty() {
            "a timer".to_owned()
        } else {
            w.signals.join(" or ")
        };
        let until = w
            .until
            .as_ref()
            .map(|u| format!(" until {}", short_time(u)))
            .unwrap_or_default();
        let then = w
            .on_timeout
            .as_ref()
            .map(|t| format!(", then {t}"))
            .unwrap_or_default();
        line("waiting for", format!("{what}{until}{then}"));
        if !w.correlation_keys.is_empty() {
            line("callbacks by", w.correlation_keys.join(", "));
        }
    }
    if let Some(r) = &v.retry {
        let of = r
            .max_attempts
            .map(|m| format!(" of {m}"))
            .unwrap_or_default();
        let next = r
            .next_attempt_at
            .as_ref()
            .map(|n| format!(", next at {}", short_time(n)))
            .unwrap_or_default();
        line("retry", format!("attempt {}{of}{next}", r.attempt));
        if let Some(e) = &r.last_error {
            line(
                "last error",
                format!("{e} ({})", r.last_error_kind.clone().unwrap_or_default()),
            );
        }
    }
    if let Some(d) = &v.deadline {
        line("deadline", short_time(d));
    }
    if let Some(o) = &v.overdue_at {
        line(
            "overdue at",
            format!(
                "{}{}",
                short_time(o),
                if v.overdue { " (OVERDUE)" } else { "" }
            ),
        );
    }
    if let Some((owner, until)) = &v.lease {
        line(
            "running on",
            format!("{owner} (lease until {})", short_time(until)),
        );
    }
    if let Some(a) = &v.attention {
        line("NEEDS YOU", a.clone());
    }
    if let Some(f) = &v.failure {
        line("failure", f.clone());
    }
    if !v.compensations_pending.is_empty() {
        line("compensations", v.compensations_pending.join(", "));
    }
    line(
        "skippable",
        if v.skippable { "yes" } else { "no" }.to_owned(),
    );
    out.push_str("\nstate (secrets redacted):\n");
    out.push_str(&serde_json::to_string_pretty(&v.state).unwrap_or_default());
    out.push('\n');
    if let Some(o) = &v.output {
        out.push_str(&format!("\noutput: {o}\n"));
    }
    out.push_str("\nhistory:\n");
    let mut t = Table::new(&["SEQ", "AT", "EVENT", "STEP", "TRY", "TOOK", "DETAIL"]);
    for h in &v.history {
        let detail = match &h.detail {
            Value::Object(m) if m.is_empty() => String::new(),
            other => compact(other),
        };
        t.row(vec![
            format!("{}{}", h.seq, if h.has_state { "*" } else { "" }),
            short_time(&h.at),
            h.kind.as_str().to_owned(),
            h.step.clone().unwrap_or_default(),
            h.attempt.map(|a| a.to_string()).unwrap_or_default(),
            h.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
            detail,
        ]);
    }
    out.push_str(&t.render());
    out.push_str("(* = a state was recorded: a `rewind --to SEQ` target)\n");
    if !v.signals.is_empty() {
        out.push_str("\nsignals:\n");
        let mut t = Table::new(&["ID", "NAME", "FROM", "RECEIVED", "CONSUMED"]);
        for s in &v.signals {
            t.row(vec![
                s.id.to_string(),
                s.name.clone(),
                s.source.clone(),
                short_time(&s.received_at),
                s.consumed_at
                    .as_deref()
                    .map(short_time)
                    .unwrap_or_else(|| "pending".into()),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// One-line JSON for a table cell: `{"a":1}` → `a=1`.
fn compact(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}
