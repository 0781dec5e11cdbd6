//! `dpdkhost report RUN...`: several saved runs in one SVG (latency curves overlaid,
//! packet rates overlaid) and their summary lines.

use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::cli::ReportArgs;
use crate::results::{chart, RunRecord, RunResult};

/// Runs `report`.
pub fn run(args: ReportArgs, json: bool) -> anyhow::Result<ExitCode> {
    if args.runs.is_empty() {
        bail!("report needs at least one saved run (results/*.json)");
    }
    let mut records = Vec::new();
    for path in &args.runs {
        let record = RunRecord::load(path)?;
        let label = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        records.push((label, record));
    }
    let borrowed: Vec<(String, &RunRecord)> = records.iter().map(|(l, r)| (l.clone(), r)).collect();
    let svg = chart::for_runs(&borrowed, &args.runs[0])?;
    std::fs::write(&args.output, svg)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let mut lines = Vec::new();
    for (label, record) in &records {
        match &record.result {
            RunResult::Pingpong(run) => {
                for side in std::iter::once(&run.agent).chain(run.baseline.as_ref()) {
                    lines.push(chart::latency_line(
                        &format!("{label} {}", side.method),
                        &side.rtt,
                    ));
                }
            }
            RunResult::Bench(run) => {
                for d in run.agent.iter().chain(&run.baseline) {
                    lines.push(chart::rate_line(
                        &format!("{label} {} vm{}->vm{}", d.method, d.from, d.to),
                        d,
                    ));
                }
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "svg": args.output, "summary": lines })
            )?
        );
    } else {
        for line in &lines {
            println!("{line}");
        }
        println!("chart: {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}
