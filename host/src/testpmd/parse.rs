//! testpmd's output as the runner stamped it: the forward statistics, the per-second
//! blocks of `--stats-period`, the forwarding time, and a baseline direction made of a
//! transmitter's and a receiver's run.

use crate::results::{BenchDirection, BenchSecond};

/// testpmd's final forward statistics for port 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// RX-packets.
    pub rx_packets: u64,
    /// RX-dropped (the port's imissed).
    pub rx_dropped: u64,
    /// RX-error (shown only when errors or nombufs are non-zero).
    pub rx_errors: u64,
    /// RX-nombufs.
    pub rx_nombuf: u64,
    /// TX-packets.
    pub tx_packets: u64,
    /// TX-dropped: packets the tx burst refused (tx ring full).
    pub tx_dropped: u64,
}

/// One block of port statistics testpmd prints every second with `--stats-period=1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    /// When it was printed, guest clock, µs.
    pub at_us: u64,
    /// The port's RX-packets so far.
    pub rx_packets: u64,
    /// The port's TX-packets so far.
    pub tx_packets: u64,
    /// `Rx-pps`: received per second since the previous block (0 in the first).
    pub rx_pps: u64,
    /// `Tx-pps`: sent per second since the previous block (0 in the first).
    pub tx_pps: u64,
}

/// What one remote run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Port 0's totals.
    pub stats: ForwardStats,
    /// Every statistics block; the first is printed as forwarding starts.
    pub periods: Vec<Period>,
    /// When testpmd reset its statistics and launched forwarding: the stamp of the
    /// line it prints just before (guest clock, µs).
    pub start_us: u64,
    /// When it stopped forwarding: "Telling cores to stop..." (guest clock, µs).
    pub stop_us: u64,
    /// Host time minus guest time, µs, the smallest over the run's lines (the line
    /// that reached the host quickest): puts the guest's stamps on the host's clock.
    pub clock_offset_us: i64,
}

impl RunOutput {
    /// How long testpmd forwarded, µs (at least 1).
    pub fn forwarding_us(&self) -> u64 {
        self.stop_us.saturating_sub(self.start_us).max(1)
    }

    fn on_host(&self, guest_us: u64) -> i64 {
        i64::try_from(guest_us)
            .unwrap_or(i64::MAX)
            .saturating_add(self.clock_offset_us)
    }
}

/// A line from the remote script and when the host read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// µs since the run began on the host.
    pub host_us: u64,
    /// The text.
    pub text: String,
}

fn number_after(text: &str, label: &str) -> Option<u64> {
    let mut tokens = text.split_whitespace();
    tokens.find(|token| *token == label)?;
    tokens.next()?.parse().ok()
}

/// A testpmd line the script stamped: `T<µs> <line>` -> (µs, line).
pub(crate) fn stamped(text: &str) -> Option<(u64, &str)> {
    let rest = text.strip_prefix('T')?;
    let (stamp, line) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((stamp.parse().ok()?, line.trim_end_matches('\r')))
}

/// Whether a line shows anything (testpmd clears the screen before each block with a
/// line of escape sequences alone).
fn visible(line: &str) -> bool {
    let mut escape = false;
    for c in line.chars() {
        match c {
            '\u{1b}' => escape = true,
            c if escape => escape = !c.is_ascii_alphabetic(),
            c if !c.is_whitespace() => return true,
            _ => {}
        }
    }
    false
}

/// testpmd's "Forward statistics for port 0" block, from its unstamped text.
pub fn parse_forward_stats(text: &str) -> Option<ForwardStats> {
    let start = text.find("Forward statistics for port 0")?;
    let block = &text[start..];
    let end = block
        .find("Accumulated forward statistics")
        .unwrap_or(block.len());
    let block = &block[..end];
    Some(ForwardStats {
        rx_packets: number_after(block, "RX-packets:")?,
        rx_dropped: number_after(block, "RX-dropped:")?,
        rx_errors: number_after(block, "RX-error:").unwrap_or(0),
        rx_nombuf: number_after(block, "RX-nombufs:").unwrap_or(0),
        tx_packets: number_after(block, "TX-packets:")?,
        tx_dropped: number_after(block, "TX-dropped:")?,
    })
}

/// The per-second blocks among testpmd's stamped lines.
fn parse_periods(lines: &[(u64, &str)]) -> Vec<Period> {
    let mut periods = Vec::new();
    let mut current: Option<Period> = None;
    for &(at_us, line) in lines {
        if line.contains("Port statistics ====") {
            periods.extend(current.take());
            current = Some(Period {
                at_us,
                ..Period::default()
            });
            continue;
        }
        let Some(period) = current.as_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if !trimmed.is_empty() && trimmed.chars().all(|c| c == '#') {
            // The ruler that closes the block.
            periods.extend(current.take());
            continue;
        }
        if let Some(n) = number_after(line, "RX-packets:") {
            period.rx_packets = n;
        }
        if let Some(n) = number_after(line, "TX-packets:") {
            period.tx_packets = n;
        }
        if let Some(n) = number_after(line, "Rx-pps:") {
            period.rx_pps = n;
        }
        if let Some(n) = number_after(line, "Tx-pps:") {
            period.tx_pps = n;
        }
    }
    periods.extend(current);
    periods
}

/// Parses what the remote script printed: testpmd's stamped lines (per-second
/// blocks, the start and stop of forwarding, the forward statistics). The error says
/// what is missing.
pub fn parse_output(lines: &[Line]) -> Result<RunOutput, String> {
    let mut testpmd = Vec::new();
    let mut clock_offset_us = i64::MAX;
    for line in lines {
        if let Some((at_us, text)) = stamped(&line.text) {
            let offset = i64::try_from(line.host_us).unwrap_or(i64::MAX)
                - i64::try_from(at_us).unwrap_or(i64::MAX);
            clock_offset_us = clock_offset_us.min(offset);
            testpmd.push((at_us, text));
        }
    }
    let text: String = testpmd
        .iter()
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let stats = parse_forward_stats(&text).ok_or("printed no forward statistics")?;
    let periods = parse_periods(&testpmd);
    let first_block = testpmd
        .iter()
        .position(|(_, line)| line.contains("Port statistics ===="))
        .ok_or("printed no per-second statistics (--stats-period)")?;
    let start_us = testpmd[..first_block]
        .iter()
        .rev()
        .find(|(_, line)| visible(line))
        .map_or(testpmd[first_block].0, |(at, _)| *at);
    let stop_us = testpmd
        .iter()
        .find(|(_, line)| line.starts_with("Telling cores to stop"))
        .map(|(at, _)| *at)
        .ok_or("never said it stopped forwarding (\"Telling cores to stop\")")?;
    Ok(RunOutput {
        stats,
        periods,
        start_us,
        stop_us,
        clock_offset_us,
    })
}

fn per_second_of(count: u64, us: u64) -> u64 {
    let rate = u128::from(count) * 1_000_000 / u128::from(us.max(1));
    u64::try_from(rate).unwrap_or(u64::MAX)
}

/// The baseline's per-second table.
///
/// Rows 1.. are the transmitter's seconds: tx is testpmd's `Tx-pps` of each block after
/// the first (the first is printed as forwarding starts, with no rate yet). testpmd
/// stops forwarding where it would have printed its last second, so the last row is
/// what its totals add to the printed seconds (that last second and the moments before
/// its first block) over that time. rx is the receiver's `Rx-pps` of the block printed
/// nearest in time (both guests' stamps put on the host's clock): the two testpmds'
/// one-second timers are not in phase, so a row's rx may lead or lag its tx by up to
/// half a second — as the agent's rows do, whose receiver starts first. Rows after
/// the transmitter stopped (tx 0) follow while the receiver still counted packets.
pub fn per_second(sent: &RunOutput, received: &RunOutput) -> Vec<BenchSecond> {
    let mut tx_rows: Vec<(i64, u64)> = sent
        .periods
        .iter()
        .skip(1)
        .map(|period| (sent.on_host(period.at_us), period.tx_pps))
        .collect();
    if let (Some(first), Some(last)) = (sent.periods.first(), sent.periods.last()) {
        let printed_packets = last.tx_packets.saturating_sub(first.tx_packets);
        let printed_us = last.at_us.saturating_sub(first.at_us);
        let rest_packets = sent.stats.tx_packets.saturating_sub(printed_packets);
        let rest_us = sent.forwarding_us().saturating_sub(printed_us);
        if sent.stop_us > last.at_us && rest_us > 0 {
            tx_rows.push((
                sent.on_host(sent.stop_us),
                per_second_of(rest_packets, rest_us),
            ));
        }
    }
    let rx_rows: Vec<(i64, u64)> = received
        .periods
        .iter()
        .skip(1)
        .map(|period| (received.on_host(period.at_us), period.rx_pps))
        .collect();
    let nearest = |at: i64| (0..rx_rows.len()).min_by_key(|&index| rx_rows[index].0.abs_diff(at));
    let mut rows = Vec::new();
    let mut last_rx = None;
    for (at, tx_pps) in tx_rows {
        let rx = nearest(at);
        rows.push(BenchSecond {
            second: rows.len() as u64 + 1,
            tx_pps,
            rx_pps: rx.map_or(0, |index| rx_rows[index].1),
        });
        last_rx = rx.or(last_rx);
    }
    if let Some(last) = last_rx {
        for &(_, rx_pps) in rx_rows[last + 1..].iter().take_while(|(_, pps)| *pps > 0) {
            rows.push(BenchSecond {
                second: rows.len() as u64 + 1,
                tx_pps: 0,
                rx_pps,
            });
        }
    }
    rows
}

/// The baseline's direction from what the transmitter's and the receiver's testpmd
/// printed. Rates are totals over the transmitter's forwarding time, like the agent's.
pub fn direction(
    sent: &RunOutput,
    received: &RunOutput,
    (from, to): (u32, u32),
    size: u32,
    link_drops: u64,
) -> BenchDirection {
    let forwarding_us = sent.forwarding_us();
    let seconds = forwarding_us as f64 / 1e6;
    let mut direction = BenchDirection {
        method: "testpmd".to_owned(),
        from,
        to,
        size,
        duration_ns: forwarding_us.saturating_mul(1000),
        tx_packets: sent.stats.tx_packets,
        rx_packets: received.stats.rx_packets,
        tx_ring_full: sent.stats.tx_dropped,
        imissed: received.stats.rx_dropped,
        rx_nombuf: received.stats.rx_nombuf,
        ierrors: received.stats.rx_errors,
        link_drops,
        unaccounted: 0,
        tx_pps: sent.stats.tx_packets as f64 / seconds,
        rx_pps: received.stats.rx_packets as f64 / seconds,
        // testpmd counts frames without FCS, like the agent.
        rx_gbps: received.stats.rx_packets as f64 * f64::from(size) * 8.0 / seconds / 1e9,
        per_second: per_second(sent, received),
        ..BenchDirection::default()
    };
    direction.account();
    direction
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Trimmed from a dpdk-testpmd 22.11 run (txonly, then rxonly with drops).
    const TX_OUTPUT: &str = "READY 1000000000
STOP 11000000000
Telling cores to stop...
Waiting for lcores to finish...

  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 2612345        TX-dropped: 40921         TX-total: 2653266
  ----------------------------------------------------------------------------

  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 0              RX-dropped: 0             RX-total: 0
  TX-packets: 2612345        TX-dropped: 40921         TX-total: 2653266
  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++
EXIT 0
";

    const RX_OUTPUT: &str = "READY 5
STOP 7
  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 1000123        RX-dropped: 2000          RX-total: 1002123
  RX-error: 3
  RX-nombufs: 17
  TX-packets: 0              TX-dropped: 0             TX-total: 0
  ----------------------------------------------------------------------------
";

    // What `remote_script` printed around dpdk-testpmd 22.11.11 (Debian 12) with
    // --stats-period=1: txonly for 3 s into one end of a veth pair (net_af_packet,
    // --no-huge) and rxonly on the other end, started 2.5 s earlier and told to stop
    // 1 s after the transmitter's script ended. Both ran on one host, so their stamps
    // share a clock.
    pub(crate) const TXONLY: &str = include_str!("../../tests/fixtures/testpmd-22.11-txonly.txt");
    const RXONLY: &str = include_str!("../../tests/fixtures/testpmd-22.11-rxonly.txt");

    /// The lines as the host would have read them, `delay_us` after they were stamped,
    /// µs since `BASE_US`; the stamps moved `guest_ahead_us` (a guest clock that is
    /// ahead of the host's).
    pub(crate) fn arrived(text: &str, guest_ahead_us: u64, delay_us: u64) -> Vec<Line> {
        let mut last = 0;
        text.lines()
            .map(|text| match stamped(text) {
                Some((at, line)) => {
                    last = at.saturating_sub(BASE_US) + delay_us;
                    Line {
                        host_us: last,
                        text: format!("T{} {line}", at + guest_ahead_us),
                    }
                }
                None => Line {
                    host_us: last,
                    text: text.to_owned(),
                },
            })
            .collect()
    }

    const BASE_US: u64 = 1_795_820_240_000_000;

    #[test]
    fn parses_txonly_forward_statistics() {
        let stats = parse_forward_stats(TX_OUTPUT).unwrap();
        assert_eq!(stats.tx_packets, 2_612_345);
        assert_eq!(stats.tx_dropped, 40_921);
        assert_eq!(stats.rx_packets, 0);
    }

    #[test]
    fn parses_rx_errors_and_nombufs_when_shown() {
        let stats = parse_forward_stats(RX_OUTPUT).unwrap();
        assert_eq!(
            stats,
            ForwardStats {
                rx_packets: 1_000_123,
                rx_dropped: 2000,
                rx_errors: 3,
                rx_nombuf: 17,
                tx_packets: 0,
                tx_dropped: 0,
            }
        );
    }

    #[test]
    fn parses_the_seconds_and_the_forwarding_time_of_a_real_txonly_run() {
        let run = parse_output(&arrived(TXONLY, 0, 2000)).unwrap();
        assert_eq!(run.stats.tx_packets, 674_688);
        assert_eq!(run.stats.tx_dropped, 0);
        let pps: Vec<u64> = run.periods.iter().map(|p| p.tx_pps).collect();
        assert_eq!(pps, [0, 266_523, 260_243]);
        let sent: Vec<u64> = run.periods.iter().map(|p| p.tx_packets).collect();
        assert_eq!(sent, [96, 266_656, 527_328]);
        assert_eq!(run.periods[0].at_us, 1_795_820_252_420_003);
        // From the line before the statistics reset to "Telling cores to stop...".
        assert_eq!(run.start_us, 1_795_820_252_419_612);
        assert_eq!(run.stop_us, 1_795_820_255_427_961);
        assert_eq!(run.forwarding_us(), 3_008_349);
        assert_eq!(run.clock_offset_us, 2000 - i64::try_from(BASE_US).unwrap());
    }

    #[test]
    fn parses_the_seconds_of_a_real_rxonly_run() {
        let run = parse_output(&arrived(RXONLY, 0, 2000)).unwrap();
        assert_eq!(run.stats.rx_packets, 180_095);
        assert_eq!(run.stats.rx_dropped, 0);
        let pps: Vec<u64> = run.periods.iter().map(|p| p.rx_pps).collect();
        assert_eq!(pps, [0, 0, 0, 21_423, 89_173, 46_745, 22_468]);
        assert_eq!(run.periods.last().unwrap().rx_packets, 180_095);
    }

    #[test]
    fn the_baseline_counts_over_the_transmitters_forwarding_time_and_lines_its_seconds_up() {
        let sent = parse_output(&arrived(TXONLY, 0, 3000)).unwrap();
        // The receiver's guest clock runs 0.7 s ahead of the transmitter's; its lines
        // are put on the host's clock by their own offset.
        let received = parse_output(&arrived(RXONLY, 700_000, 1000)).unwrap();
        let d = direction(&sent, &received, (1, 2), 64, 400_000);
        assert_eq!(d.method, "testpmd");
        assert_eq!(d.duration_ns, 3_008_349_000);
        assert!(
            (d.tx_pps - 674_688.0 / 3.008_349).abs() < 0.01,
            "{}",
            d.tx_pps
        );
        assert!(
            (d.rx_pps - 180_095.0 / 3.008_349).abs() < 0.01,
            "{}",
            d.rx_pps
        );
        assert_eq!(d.unaccounted, 674_688 - 180_095 - 400_000);
        let rows: Vec<(u64, u64, u64)> = d
            .per_second
            .iter()
            .map(|s| (s.second, s.tx_pps, s.rx_pps))
            .collect();
        // tx: the two printed seconds, then the rest of the total (147456 packets in
        // the last 1.004287 s); rx: the receiver's block nearest each (0.23 s after).
        assert_eq!(
            rows,
            [
                (1, 266_523, 89_173),
                (2, 260_243, 46_745),
                (3, 146_826, 22_468)
            ]
        );
    }

    #[test]
    fn receiver_seconds_with_packets_after_the_transmitter_stopped_follow_with_tx_0() {
        let period = |at_s: u64, pps: u64| Period {
            at_us: at_s * 1_000_000,
            rx_pps: pps,
            tx_pps: pps,
            ..Period::default()
        };
        let run = |periods: Vec<Period>, stop_s: u64, packets: u64| RunOutput {
            stats: ForwardStats {
                rx_packets: packets,
                tx_packets: packets,
                ..ForwardStats::default()
            },
            start_us: periods[0].at_us,
            stop_us: stop_s * 1_000_000,
            periods,
            clock_offset_us: 0,
        };
        let mut sent = run(vec![period(10, 0), period(11, 100)], 12, 100);
        sent.periods[1].tx_packets = 100;
        let rx_pps = [0, 0, 0, 60, 30, 10, 0, 5];
        let received = run(
            (8..=15)
                .zip(rx_pps)
                .map(|(s, pps)| period(s, pps))
                .collect(),
            16,
            100,
        );
        let rows: Vec<(u64, u64, u64)> = per_second(&sent, &received)
            .iter()
            .map(|s| (s.second, s.tx_pps, s.rx_pps))
            .collect();
        // Nothing was left over for the transmitter's unprinted last second (tx 0);
        // the drain ends at the receiver's first empty second.
        assert_eq!(rows, [(1, 100, 60), (2, 0, 30), (3, 0, 10)]);
    }

    #[test]
    fn output_without_statistics_is_refused() {
        let lines = |text: &str| arrived(text, 0, 0);
        let error = parse_output(&lines("T1 EAL: Cannot init memory\nEXIT 1\n")).unwrap_err();
        assert!(error.contains("forward statistics"), "{error}");
        let stamp = |text: &str| -> String { text.lines().map(|l| format!("T5 {l}\n")).collect() };
        let error = parse_output(&lines(&stamp(TX_OUTPUT))).unwrap_err();
        assert!(error.contains("per-second"), "{error}");
        let no_stop = TXONLY.replace("Telling cores", "Asking cores");
        let error = parse_output(&lines(&no_stop)).unwrap_err();
        assert!(error.contains("Telling cores to stop"), "{error}");
    }
}
