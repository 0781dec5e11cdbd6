//! The agent binary as a user runs it: the loopback selftest, clear errors for bad
//! input, two agent processes over a net_memif link, and a fully static DPDK link.

mod grpc_common;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use grpc_common::{memif, wait_for_socket};

const AGENT: &str = env!("CARGO_BIN_EXE_dpdk-agent");

fn agent(args: &[impl AsRef<OsStr>]) -> Output {
    Command::new(AGENT)
        .args(args)
        .output()
        .expect("the agent binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `--file-prefix` of this test process's agent called `name`.
fn file_prefix(name: &str) -> String {
    format!("dpdk-agent-{name}-{}", std::process::id())
}

/// EAL options for a process of its own: no hugepages, no PCI, its own runtime dir.
fn eal_args(name: &str, vdev: &str) -> String {
    format!(
        "--no-huge --no-pci --lcores=0@(0,1) -m 128 --file-prefix={} --vdev={vdev}",
        file_prefix(name)
    )
}

/// Where EAL keeps the runtime directory of the agent called `name`: under
/// /var/run/dpdk for root, else under $XDG_RUNTIME_DIR (or /tmp), as DPDK decides.
fn runtime_dir(name: &str) -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let base = if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
    };
    base.join("dpdk").join(file_prefix(name))
}

/// A child that is killed (by its own PID) if the test fails before it exits.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Reaped {
    /// Sends SIGTERM, as Ctrl-C or a service manager would, and collects the output.
    fn terminate(self, limit: Duration) -> Output {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a PID fits pid_t");
        // SAFETY: signals only the child this test started, which has not been reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.wait_output(limit)
    }

    fn wait_output(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let child = std::mem::replace(
            &mut self.0,
            Command::new("true").spawn().expect("true runs"),
        );
        child.wait_with_output().expect("child output")
    }
}

fn spawn(args: &[impl AsRef<OsStr>]) -> Reaped {
    Reaped(
        Command::new(AGENT)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the agent binary starts"),
    )
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}): {}\nstderr: {}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

#[test]
fn loopback_selftest_passes() {
    let out = agent(&["--selftest", "--loopback"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("packet round trip  ok"), "{stdout}");
    assert!(stdout.contains("selftest passed"), "{stdout}");

    let out = agent(&["--selftest", "--loopback", "--json"]);
    assert!(out.status.success());
    let report = json(&out);
    let checks = report["checks"].as_array().expect("checks array");
    assert!(checks.len() >= 5);
    assert!(checks.iter().all(|check| check["ok"] == true), "{report}");
}

/// With no serving agent and no --device/--eal/--ip, the selftest takes the data
/// NIC and its address from the agent's configuration: a broken one is named.
#[test]
fn standalone_selftest_reads_the_agent_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:50051\"\ndata_mac = \"52:54:00:aa:00:02\"\ndata_ip = \"10.0.1.4/40\"\n",
    )
    .unwrap();
    let out = Command::new(AGENT)
        .args(["--selftest", "--config"])
        .arg(&config)
        .env("DPDK_AGENT_RUN_DIR", dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("agent.toml") && stderr.contains("data_ip"),
        "{stderr}"
    );
}

#[test]
fn selftest_fails_without_a_device() {
    let out = agent(&[
        "--selftest",
        "--eal",
        "--no-huge --no-pci -l 0 -m 64 --file-prefix=dpdk-agent-nodev",
        "--ip",
        "10.0.0.1/24",
        "--device",
        "net_ring5",
    ]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("no DPDK port named \"net_ring5\""),
        "{stdout}"
    );
    assert!(stdout.contains("selftest FAILED"), "{stdout}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let eal = "--no-huge --no-pci -l 0 -m 64 --file-prefix=dpdk-agent-badinput";
    // `command --eal EAL --ip 10.0.0.1/24` and the rest, a word an argument.
    let cli = |command, eal, rest: &'static str| -> Vec<&str> {
        [command, "--eal", eal, "--ip", "10.0.0.1/24"]
            .into_iter()
            .chain(rest.split_whitespace())
            .collect()
    };
    let send = |rest: &'static str| {
        let mut args = cli("bench", eal, "--mode tx --peer 10.0.0.2");
        args.extend(rest.split_whitespace());
        args
    };
    let cases = [
        (
            cli(
                "bench",
                "--definitely-not-an-eal-option",
                "--mode rx --duration 1",
            ),
            "EAL initialisation with arguments",
        ),
        (
            cli("bench", eal, "--device net_ring9 --mode rx --duration 1"),
            "no DPDK port named \"net_ring9\"",
        ),
        (
            send("--size 40"),
            "`frame_size`: must be 64..=1514 (Ethernet frame without FCS), got 40",
        ),
        (send("--size 1515"), "got 1515"),
        (send("--rate 0"), "`rate_pps`: must be 1..="),
        (
            cli("bench", eal, "--mode tx"),
            "`peer_ip`: is required to send",
        ),
        (
            cli("pingpong", eal, "--peer 10.0.0.2 --window 0"),
            "`window`: must be 1..=",
        ),
        (vec!["--selftest", "--ip", "10.0.0.1/33"], "prefix length"),
    ];
    for (args, expected) in &cases {
        let out = agent(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            out.status.code(),
            Some(if args[0] == "--selftest" { 2 } else { 1 }),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    }
}

/// Two agent processes over a net_memif link: a reflector (memif server) and a
/// ping-pong initiator (memif client); then a counted tx -> rx bench.
#[test]
fn two_agents_over_memif() {
    let dir = tempfile::tempdir().expect("temp dir");
    // One socket file per link (not abstract, so the client can wait for it): a
    // killed server leaves its file behind.
    let socket = |name: &str| dir.path().join(format!("{name}.sock"));
    let eal = |name: &str, role: &str, link: &str| eal_args(name, &memif(&socket(link), role));
    // `command` on the memif port at `ip`, with the rest (a word an argument), in JSON.
    let cli = |command: &str, eal: String, ip: &str, rest: &str| -> Vec<String> {
        [command, "--eal", &eal, "--device", "net_memif0", "--ip", ip]
            .into_iter()
            .chain(rest.split_whitespace())
            .chain(["--json"])
            .map(str::to_owned)
            .collect()
    };

    let reflector = spawn(&cli(
        "reflect",
        eal("reflect", "server", "pingpong"),
        "10.8.0.2/24",
        "--duration 30",
    ));
    wait_for_socket(&socket("pingpong"));
    let pingpong = agent(&cli(
        "pingpong",
        eal("pingpong", "client", "pingpong"),
        "10.8.0.1/24",
        "--peer 10.8.0.2 --count 500 --window 4 --timeout-ms 2000",
    ));
    // Interrupted, the reflector stops its workload, reports what it did and exits.
    let reflected = reflector.terminate(Duration::from_secs(10));
    assert!(reflected.status.success(), "{}", text(&reflected.stderr));
    assert!(json(&reflected)["reflected"].as_u64().expect("reflected") >= 500);
    assert!(
        pingpong.status.success(),
        "{}\n{}",
        text(&pingpong.stdout),
        text(&pingpong.stderr)
    );
    let report = json(&pingpong);
    assert_eq!(report["sent"], 500);
    assert_eq!(report["received"], 500);
    assert_eq!(report["lost"], 0);
    assert!(report["rtt_ns"]["min"].as_u64().expect("min rtt") > 0);

    const COUNT: u64 = 100_000;
    let receiver = spawn(&cli(
        "bench",
        eal("rx", "server", "bench"),
        "10.8.0.2/24",
        &format!("--mode rx --duration 20 --count {COUNT}"),
    ));
    wait_for_socket(&socket("bench"));
    assert!(
        runtime_dir("rx").is_dir(),
        "EAL made {:?}",
        runtime_dir("rx")
    );
    let sender = agent(&cli(
        "bench",
        eal("tx", "client", "bench"),
        "10.8.0.1/24",
        &format!("--mode tx --peer 10.8.0.2 --count {COUNT}"),
    ));
    let received = receiver.wait_output(Duration::from_secs(30));
    assert!(
        sender.status.success(),
        "sender: {}\nreceiver: {}",
        text(&sender.stderr),
        text(&received.stderr)
    );
    assert!(received.status.success(), "{}", text(&received.stderr));
    let tx = json(&sender);
    let rx = json(&received);
    let sent = tx["counters"]["tx_packets"].as_u64().expect("tx_packets");
    assert_eq!(sent, COUNT);
    let got = rx["counters"]["rx_packets"].as_u64().expect("rx_packets");
    let port = &rx["port"];
    let dropped = ["imissed", "rx_nombuf", "ierrors"]
        .iter()
        .map(|key| port[key].as_u64().expect("port counter"))
        .sum::<u64>();
    assert_eq!(got + dropped, sent, "sent = received + drops: {rx}");
    assert_eq!(rx["counters"]["rx_seq_gaps"].as_u64(), Some(dropped));

    // Each agent removed its EAL runtime directory when it exited.
    for name in ["reflect", "pingpong", "rx", "tx"] {
        assert!(
            !runtime_dir(name).exists(),
            "{:?} left behind",
            runtime_dir(name)
        );
    }
}

#[test]
fn dpdk_is_linked_statically() {
    let out = Command::new("ldd").arg(AGENT).output().expect("ldd runs");
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(
        listing.contains("libc.so"),
        "ldd lists the dynamic libraries: {listing}"
    );
    assert!(
        !listing.contains("librte_"),
        "a DPDK library is linked dynamically:\n{listing}"
    );
    assert!(!listing.contains("libnuma"), "{listing}");
}
