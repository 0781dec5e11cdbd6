//! `dpdkhost report RUN...`: a table of saved runs (one row per run, direction and
//! method, and per frame size of a search) and an SVG with one chart per figure, the
//! runs side by side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use crate::cli::ReportArgs;
use crate::results::{chart, table, RunRecord};

/// Runs `report`.
pub fn run(args: ReportArgs, json: bool) -> anyhow::Result<ExitCode> {
    if args.runs.is_empty() {
        bail!("report needs at least one saved run (results/*.json)");
    }
    let mut records = Vec::new();
    for (path, label) in args.runs.iter().zip(labels(&args.runs)) {
        records.push((label, RunRecord::load(path)?));
    }
    let borrowed: Vec<(String, &RunRecord)> = records.iter().map(|(l, r)| (l.clone(), r)).collect();
    let svg = chart::for_runs(&borrowed, &args.runs[0])?;
    std::fs::write(&args.output, svg)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let rows = table::rows(&borrowed);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "svg": args.output, "rows": rows }))?
        );
    } else {
        print!("{}", table::render(&rows));
        println!("chart: {}", args.output.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Each run's label: its file's stem, or its whole path where two files share a stem
/// (runs of two results directories), so that no two rows or chart ticks merge.
fn labels(paths: &[PathBuf]) -> Vec<String> {
    let stem = |path: &Path| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string())
    };
    paths
        .iter()
        .map(|path| {
            let own = stem(path);
            if paths.iter().filter(|other| stem(other) == own).count() > 1 {
                path.display().to_string()
            } else {
                own
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stems_unless_two_runs_share_one() {
        let paths: Vec<PathBuf> = ["a/1-bench.json", "b/1-bench.json", "a/2-pingpong.json"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            labels(&paths),
            ["a/1-bench.json", "b/1-bench.json", "2-pingpong"]
        );
    }
}
