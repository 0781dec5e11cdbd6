//! `dpdkhost selftest`: every agent's selftest, the test packet through its peer's
//! reflector, in one table. Exits non-zero when any check fails.

use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use crate::commands::workload_common::print_json;
use crate::context::{self, Context};
use crate::drive::{self, Agent};

#[derive(Serialize)]
struct Row {
    vm: String,
    check: String,
    ok: bool,
    detail: String,
}

/// Runs `selftest`.
pub fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let rt = context::runtime()?;
    rt.block_on(async {
        let endpoints = ctx.agents()?;
        let mut agents = Vec::new();
        for endpoint in &endpoints {
            agents.push(Agent::connect(endpoint).await?);
        }
        let replies = drive::selftest_all(&mut agents)
            .await
            .context("selftest failed")?;
        let rows: Vec<Row> = replies
            .iter()
            .flat_map(|(vm, reply)| {
                reply.checks.iter().map(move |check| Row {
                    vm: vm.clone(),
                    check: check.name.clone(),
                    ok: check.ok,
                    detail: check.detail.clone(),
                })
            })
            .collect();
        let all_ok = replies.iter().all(|(_, reply)| reply.ok) && !rows.is_empty();
        if ctx.json {
            print_json(&serde_json::json!({ "ok": all_ok, "checks": rows }))?;
        } else {
            let width = rows.iter().map(|r| r.check.len()).max().unwrap_or(5);
            println!("{:<5} {:<width$} {:<4} detail", "vm", "check", "ok");
            for row in &rows {
                println!(
                    "{:<5} {:<width$} {:<4} {}",
                    row.vm,
                    row.check,
                    if row.ok { "ok" } else { "FAIL" },
                    row.detail
                );
            }
            println!(
                "{}",
                if all_ok {
                    "selftest: every check passed"
                } else {
                    "selftest: FAILED"
                }
            );
        }
        Ok(if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
