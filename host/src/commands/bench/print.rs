//! What `bench` prints: the same figures `--json` carries.

use crate::cli::BenchArgs;
use crate::results::{BenchDirection, BenchRun, Gate, Spread, Trial};

/// The first line: what is measured between which VMs.
pub fn headline(args: &BenchArgs, from: &str, to: &str) -> String {
    let arrow = if args.direction == crate::cli::BenchDirectionArg::Bi {
        "<->"
    } else {
        "->"
    };
    let through;
    let (arrow, to) = match &args.through {
        Some(_) => {
            through = format!("{to} (DUT: {}) -> {from}", args.app);
            ("->", through.as_str())
        }
        None => (arrow, to),
    };
    if args.search {
        let sizes = args.frame_sizes();
        format!(
            "bench {from} {arrow} {to}: NDR/PDR search, sizes {sizes:?} B, loss-ratio goal {}, \
             trials of {:?}, final trials of {:?}, precision {}",
            args.loss_ratio, args.trial_duration, args.final_trial, args.precision
        )
    } else {
        format!(
            "bench {from} {arrow} {to} for {:?}, {} bytes, rate {}{}",
            args.duration,
            args.size,
            args.rate
                .map_or_else(|| "as fast as possible".to_owned(), |r| format!("{r} pps")),
            if args.trials > 1 {
                format!(", {} trials", args.trials)
            } else {
                String::new()
            }
        )
    }
}

fn rate_text(pps: Option<u64>) -> String {
    pps.map_or_else(|| "max".to_owned(), |pps| pps.to_string())
}

/// One trial per line: load, duration, and per direction sent, received, loss ratio
/// and where the lost packets went.
pub fn trial_line(trial: &Trial) -> String {
    // A latency level at 0 % sends its probes alone: no load, not the maximum.
    let probes_only = trial
        .directions
        .iter()
        .all(|d| d.tx_packets == 0 && d.latency.is_some());
    let load = if probes_only {
        "none".to_owned()
    } else {
        rate_text(trial.target_pps)
    };
    let mut line = format!(
        "  {:<8} load {:>10} pps {:>5.1} s",
        trial.phase,
        load,
        trial.duration_ns as f64 / 1e9
    );
    for d in &trial.directions {
        line.push_str(&format!(
            " | {} offered {:.0} pps sent {} received {} loss {:.5} (link {} imissed {} rx_nombuf {} ierrors {} unaccounted {})",
            d.link_label(),
            d.offered_pps,
            d.tx_packets,
            d.rx_packets,
            d.loss_ratio(),
            d.link_drops,
            d.imissed,
            d.rx_nombuf,
            d.ierrors,
            d.unaccounted
        ));
        if let Some(dut) = &d.dut {
            line.push_str(&format!(
                " dut vm{}: rx {} tx {} imissed {} rx_nombuf {} ierrors {} fwd-drop {}",
                dut.vm,
                dut.port.ipackets,
                dut.port.opackets,
                dut.port.imissed,
                dut.port.rx_nombuf,
                dut.port.ierrors,
                dut.forward_drops
            ));
        }
        if d.reordered > 0 {
            line.push_str(&format!(" reordered {}", d.reordered));
        }
        if let Some(error) = d.pacing_error {
            line.push_str(&format!(" pacing {:+.2}%", error * 100.0));
        }
        if let Some(latency) = &d.latency {
            line.push_str(&format!(
                " rtt p50 {:.1} us p99 {:.1} us ({} of {} probes)",
                latency.rtt.p50_ns as f64 / 1e3,
                latency.rtt.p99_ns as f64 / 1e3,
                latency.returned,
                latency.sent
            ));
        }
    }
    line
}

/// One line of a direction's rates.
pub fn rate_summary(label: &str, d: &BenchDirection) -> String {
    format!(
        "  {label} {}: tx {:.0} pps rx {:.0} pps, lost {} ({:.2}%)",
        d.link_label(),
        d.tx_pps,
        d.rx_pps,
        d.lost(),
        d.loss_ratio() * 100.0
    )
}

/// The gate's verdict with both numbers.
pub fn gate_line(gate: &Gate) -> String {
    format!(
        "gate {}: {} {:.0} {} {:.0} (--expect-pps {:.0} x (1 - --tolerance {}))",
        if gate.pass { "passed" } else { "FAILED" },
        gate.metric,
        gate.measured,
        if gate.pass { ">=" } else { "<" },
        gate.floor,
        gate.expected,
        gate.tolerance
    )
}

fn spread_text(spread: &Spread) -> String {
    if spread.n > 1 {
        format!(
            "{:.0} (min {:.0}, max {:.0}, n {})",
            spread.median, spread.min, spread.max, spread.n
        )
    } else {
        format!("{:.0}", spread.median)
    }
}

/// The whole run as text.
pub fn run(run: &BenchRun) {
    if !run.search.is_empty() {
        for size in &run.search {
            println!("frame size {} B:", size.size);
            for (index, search) in size.searches.iter().enumerate() {
                println!(
                    "  search {}: {} trials, sender maximum {:.0} pps, NDR {} pps, PDR {} pps{}",
                    index + 1,
                    search.trials.len(),
                    search.max_offered_pps,
                    search.ndr_pps,
                    search.pdr_pps,
                    if search.converged {
                        ""
                    } else {
                        " (trial budget ran out: --max-trials)"
                    }
                );
                for trial in &search.trials {
                    println!("  {}", trial_line(trial));
                }
            }
            for level in &size.latency {
                println!(
                    "  latency at {:>2} % of PDR ({} pps): {}",
                    level.percent_of_pdr,
                    level.load_pps,
                    trial_line(&level.trial).trim_start()
                );
            }
        }
        println!(
            "{:>6} {:>22} {:>22} {:>10} {:>10}",
            "size", "NDR pps", "PDR pps", "NDR Gb/s", "PDR Gb/s"
        );
        for size in &run.search {
            println!(
                "{:>6} {:>22} {:>22} {:>10.3} {:>10.3}",
                size.size,
                spread_text(&size.ndr),
                spread_text(&size.pdr),
                size.ndr_gbps,
                size.pdr_gbps
            );
        }
        if run.search.iter().any(|s| !s.latency.is_empty()) {
            println!(
                "round trip under load (timestamps: {}):",
                crate::results::PROBE_TIMESTAMP_SOURCE
            );
            println!(
                "{:>6} {:>6} {:>10} {:>9} {:>10} {:>10} {:>10} {:>10}",
                "size", "% PDR", "load pps", "link", "p50 us", "p90 us", "p99 us", "max us"
            );
            for size in &run.search {
                for level in &size.latency {
                    for d in &level.trial.directions {
                        if let Some(latency) = &d.latency {
                            println!(
                                "{:>6} {:>6} {:>10} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                                size.size,
                                level.percent_of_pdr,
                                level.load_pps,
                                d.link_label(),
                                latency.rtt.p50_ns as f64 / 1e3,
                                latency.rtt.p90_ns as f64 / 1e3,
                                latency.rtt.p99_ns as f64 / 1e3,
                                latency.rtt.max_ns as f64 / 1e3
                            );
                        }
                    }
                }
            }
        }
        return;
    }
    if !run.rounds.is_empty() {
        println!(
            "{:>5} {:>8} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
            "round",
            "first",
            "agent tx",
            "agent rx",
            "testpmd tx",
            "testpmd rx",
            "tx ratio",
            "rx ratio"
        );
        for round in &run.rounds {
            println!(
                "{:>5} {:>8} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>8.2} {:>8.2}",
                round.round,
                round.first,
                round.agent.tx_pps,
                round.agent.rx_pps,
                round.testpmd.tx_pps,
                round.testpmd.rx_pps,
                round.tx_ratio,
                round.rx_ratio
            );
        }
        let show =
            |ratio: Option<f64>| ratio.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
        println!(
            "ratio agent/testpmd (median of {} rounds): tx={} rx={}",
            run.rounds.len(),
            show(run.median_tx_ratio),
            show(run.median_rx_ratio)
        );
        return;
    }
    if run.trials.len() > 1 {
        for (index, trial) in run.trials.iter().enumerate() {
            println!("trial {}:{}", index + 1, trial_line(trial));
        }
        for (link, spread) in &run.rx_pps_spread {
            println!(
                "{link} rx pps over {} trials: {}",
                spread.n,
                spread_text(spread)
            );
        }
        return;
    }
    for direction in &run.agent {
        print_direction(direction);
    }
    if let Some(dut) = &run.dut {
        println!("DUT vm{}: {} ({})", dut.vm, dut.command, dut.ended);
    }
}

pub fn print_direction(d: &BenchDirection) {
    println!(
        "{} ({} bytes, {:.1} s):",
        d.link_label().replace("->", " -> "),
        d.size,
        d.duration_ns as f64 / 1e9
    );
    println!(
        "  tx {:>12.0} pps   rx {:>12.0} pps   {:.3} Gbit/s received",
        d.tx_pps, d.rx_pps, d.rx_gbps
    );
    println!(
        "  sent {}  received {}  lost {} ({:.2}%)",
        d.tx_packets,
        d.rx_packets,
        d.lost(),
        if d.tx_packets == 0 {
            0.0
        } else {
            d.lost() as f64 * 100.0 / d.tx_packets as f64
        }
    );
    println!(
        "  where: link (host UDP socket) {}  imissed {}  rx_nombuf {}  ierrors {}  unaccounted {}   (tx ring full: {} packets refused by the driver, not counted in tx)",
        d.link_drops, d.imissed, d.rx_nombuf, d.ierrors, d.unaccounted, d.tx_ring_full
    );
    if let Some(dut) = &d.dut {
        println!(
            "  DUT vm{} ({}): rx {}  tx {}  dropped by its rx ring (imissed) {}  rx_nombuf {}  ierrors {}  received and not sent on {}  oerrors {}",
            dut.vm,
            dut.source,
            dut.port.ipackets,
            dut.port.opackets,
            dut.port.imissed,
            dut.port.rx_nombuf,
            dut.port.ierrors,
            dut.forward_drops,
            dut.port.oerrors
        );
    }
    if d.reordered > 0 {
        println!("  reordered {} (arrived after a later packet)", d.reordered);
    }
    if d.send_ns > 0 {
        println!(
            "  offered {:.0} pps over the {:.3} s it sent{}",
            d.offered_pps,
            d.send_ns as f64 / 1e9,
            match (d.target_pps, d.pacing_error) {
                (Some(target), Some(error)) => format!(
                    " (target {target} pps, pacing error {:+.2}%)",
                    error * 100.0
                ),
                _ => String::new(),
            }
        );
    }
    if let Some(latency) = &d.latency {
        println!(
            "  round trip ({} probes/s, {} of {} back; {}): p50 {:.1} us  p90 {:.1} us  p99 {:.1} us  max {:.1} us",
            latency.probe_rate_pps,
            latency.returned,
            latency.sent,
            latency.timestamp_source,
            latency.rtt.p50_ns as f64 / 1e3,
            latency.rtt.p90_ns as f64 / 1e3,
            latency.rtt.p99_ns as f64 / 1e3,
            latency.rtt.max_ns as f64 / 1e3
        );
    }
    println!("  {:>6} {:>12} {:>12}", "second", "tx pps", "rx pps");
    for second in &d.per_second {
        println!(
            "  {:>6} {:>12} {:>12}",
            second.second, second.tx_pps, second.rx_pps
        );
    }
}
