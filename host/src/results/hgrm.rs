//! The HdrHistogram percentile distribution text format (`.hgrm`), as
//! `outputPercentileDistribution` writes it, so HdrHistogram's plotter and other
//! tools read our files.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Formats `histogram` with values divided by `scale` (1000 turns ns into µs).
pub fn percentile_distribution(histogram: &Histogram<u64>, scale: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for step in histogram.iter_quantiles(5) {
        total += step.count_since_last_iteration();
        let value = step.value_iterated_to() as f64 / scale;
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {quantile:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {quantile:2.12} {total:10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean() / scale,
        histogram.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        histogram.max() as f64 / scale,
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        histogram.distinct_values()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_ends_at_the_maximum_and_counts_everything() {
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for value in 1..=100u64 {
            histogram.record(value * 1000).unwrap();
        }
        let text = percentile_distribution(&histogram, 1000.0);
        let rows: Vec<&str> = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.contains("Value"))
            .collect();
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last[0], "100.031");
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "100");
        let first: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!(first[0], "1.000");
        assert!(text.contains("Total count    =          100]"));
    }
}
