//! The CLI as a user meets it, without a real lab: init, configuration errors, plan and
//! down against libvirt's test:///default driver, and clear errors before `up`.

use std::path::Path;
use std::process::{Command, Output};

fn dpdkhost(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpdkhost"))
        .args(args)
        .current_dir(dir)
        .env("DPDKHOST_STATE_DIR", dir.join("state"))
        .env("DPDKHOST_CACHE_DIR", dir.join("cache"))
        .env_remove("DPDKHOST_ENV")
        .env_remove("DPDKHOST_CONFIG")
        .output()
        .expect("run dpdkhost")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn init_writes_a_commented_default_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = dpdkhost(dir.path(), &["init"]);
    assert!(o.status.success(), "{}", text(&o));
    let written = std::fs::read_to_string(dir.path().join("dpdkhost.toml")).unwrap();
    assert!(written.contains("# vm_count = 2"));
    let again = dpdkhost(dir.path(), &["init"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));
    assert!(dpdkhost(dir.path(), &["init", "--force"]).status.success());
}

#[test]
fn configuration_errors_name_the_key_and_the_range() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dpdkhost.toml"), "vm_count = 12\n").unwrap();
    let o = dpdkhost(dir.path(), &["plan"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("vm_count") && t.contains("1..=8") && t.contains("12"),
        "{t}"
    );

    std::fs::write(dir.path().join("dpdkhost.toml"), "memroy_mb = 2048\n").unwrap();
    let t = text(&dpdkhost(dir.path(), &["plan"]));
    assert!(t.contains("memroy_mb"), "{t}");

    let t = text(&dpdkhost(dir.path(), &["--env", "Bad/Name", "status"]));
    assert!(t.contains("--env"), "{t}");
}

#[test]
fn plan_and_down_against_the_test_driver() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dpdkhost.toml"),
        "libvirt_uri = \"test:///default\"\nvm_count = 3\naccel = \"tcg\"\n",
    )
    .unwrap();
    let o = dpdkhost(dir.path(), &["--env", "cli", "plan", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let actions = v["plan"]["actions"].as_array().unwrap();
    assert_eq!(actions[0]["action"], "create_pool");
    assert_eq!(actions[1]["action"], "upload_image");
    assert_eq!(
        actions
            .iter()
            .filter(|a| a["action"] == "create_vm")
            .count(),
        3
    );
    assert_eq!(v["plan"]["accel"], "tcg");
    assert_eq!(v["plan"]["vms"][1]["data_ip"], "10.0.1.6");
    assert_eq!(v["plan"]["vms"][0]["domain"], "dpdkhost-cli-vm1");
    assert_eq!(v["image_cached"], false);

    let o = dpdkhost(dir.path(), &["--env", "cli", "down", "-y"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing to remove"), "{}", text(&o));
}

#[test]
fn commands_that_need_a_lab_say_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        &["status"][..],
        &["ssh", "1"],
        &["outputs", "--json"],
        &["inventory", "--list"],
    ] {
        let o = dpdkhost(dir.path(), cmd);
        assert!(!o.status.success(), "{cmd:?}");
        assert!(
            text(&o).contains("dpdkhost --env default up"),
            "{cmd:?}: {}",
            text(&o)
        );
    }
}

/// Combinations the testpmd baseline cannot measure fail before the lab is looked at,
/// and the message names what to change.
#[test]
fn baseline_combinations_testpmd_cannot_run_are_refused_before_anything_runs() {
    for (flags, expected) in [
        (
            ["--direction", "bi"],
            ["--direction uni", "--baseline testpmd"],
        ),
        (["--rate", "100000"], ["--rate 100000", "no rate limit"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["bench", "--pps", "--baseline", "testpmd"];
        args.extend(flags);
        let o = dpdkhost(dir.path(), &args);
        assert!(!o.status.success(), "{flags:?}");
        let text = text(&o);
        assert!(
            expected.iter().all(|e| text.contains(e)),
            "{flags:?}: {text}"
        );
        assert!(
            !text.contains("is not up"),
            "checked before the lab: {text}"
        );
    }
}

#[test]
fn through_combinations_are_refused_before_anything_runs() {
    for (args, expected) in [
        (
            &["bench", "--pps", "--through", "2", "--baseline", "testpmd"][..],
            "--baseline",
        ),
        (
            &["bench", "--pps", "--through", "2", "--direction", "bi"],
            "--direction",
        ),
        (&["bench", "--pps", "--through", "2", "--to", "1"], "--to"),
        (
            &["bench", "--pps", "--app", "dpdk-testpmd {eal}"],
            "--through",
        ),
        (
            &["run", "pingpong", "--through", "2", "--baseline", "kernel"],
            "--baseline",
        ),
        (&["run", "pingpong", "--app", "x"], "--through"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let o = dpdkhost(dir.path(), args);
        assert!(!o.status.success(), "{args:?}");
        let text = text(&o);
        assert!(text.contains(expected), "{args:?}: {text}");
        assert!(
            !text.contains("is not up"),
            "checked before the lab: {text}"
        );
    }
    // Without a lab, --through says how to get one.
    let dir = tempfile::tempdir().unwrap();
    let text = text(&dpdkhost(dir.path(), &["bench", "--pps", "--through", "2"]));
    assert!(text.contains("is not up"), "{text}");
}

/// doctor checks the programs libvirt runs for a nat-mode network only in nat mode.
#[test]
fn doctor_checks_dnsmasq_and_iptables_in_nat_mode() {
    let dir = tempfile::tempdir().unwrap();
    for (network, checked) in [("nat", true), ("user", false)] {
        std::fs::write(
            dir.path().join("dpdkhost.toml"),
            format!("libvirt_uri = \"test:///default\"\nnetwork = \"{network}\"\n"),
        )
        .unwrap();
        let o = dpdkhost(dir.path(), &["doctor", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&o)));
        let tool_lines: Vec<String> = report
            .as_array()
            .unwrap_or_else(|| panic!("checks in {report}"))
            .iter()
            .filter(|c| c["check"] == "tools")
            .map(|c| c["detail"].as_str().unwrap_or_default().to_owned())
            .collect();
        for program in ["dnsmasq", "iptables"] {
            assert_eq!(
                tool_lines.iter().any(|d| d.starts_with(program)),
                checked,
                "{network}: {tool_lines:?}"
            );
        }
    }
}

#[test]
fn up_without_the_agent_names_the_build_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = dpdkhost(
        dir.path(),
        &["up", "-y", "--agent", "/nonexistent/dpdk-agent"],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cargo build --release -p dpdk-agent"),
        "{}",
        text(&o)
    );
}

/// While one command holds an environment, a second mutating one fails at once and says
/// who holds it; read-only commands and other environments are not held up.
#[test]
fn a_second_down_while_the_environment_is_held_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dpdkhost.toml"),
        "libvirt_uri = \"test:///default\"\n",
    )
    .unwrap();
    let paths = dpdkhost::state::Paths {
        state_dir: dir.path().join("state/held"),
        image_cache: dir.path().join("cache"),
    };
    let lock =
        dpdkhost::lock::EnvLock::acquire(&paths, "held", "dpdkhost --env held up -y").unwrap();
    let o = dpdkhost(dir.path(), &["--env", "held", "down", "-y"]);
    assert!(!o.status.success(), "{}", text(&o));
    let expected = format!(
        "environment held is busy: `dpdkhost --env held up -y` (pid {}) holds it since ",
        std::process::id()
    );
    assert!(text(&o).contains(&expected), "{}", text(&o));
    let o = dpdkhost(dir.path(), &["--env", "held", "plan"]);
    assert!(o.status.success(), "plan reads only: {}", text(&o));
    let o = dpdkhost(dir.path(), &["--env", "other", "down", "-y"]);
    assert!(o.status.success(), "{}", text(&o));
    drop(lock);
    let o = dpdkhost(dir.path(), &["--env", "held", "down", "-y"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A libvirt test driver holding `objects` (a fresh copy for each dpdkhost process).
fn test_node(dir: &Path, objects: &str) -> String {
    let node = dir.join("node.xml");
    std::fs::write(&node, format!("<node>\n{objects}\n</node>\n")).unwrap();
    format!("test://{}", node.display())
}

fn test_domain(name: &str, metadata: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name>{metadata}<memory>1048576</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    )
}

/// `down` removes only what carries the environment's metadata, and a pool only if
/// dpdkhost made it; the rest is listed with the reason. `plan` (and so `up`) refuses
/// to replace a domain that has a planned name but is not the environment's.
#[test]
fn down_lists_and_leaves_alone_what_only_looks_like_the_environments() {
    let dir = tempfile::tempdir().unwrap();
    let ours = "<metadata><dpdkhost:vm xmlns:dpdkhost=\"https://dpdkhost.invalid/xmlns/vm/1\" \
                env=\"t\" index=\"1\" network=\"user\"/></metadata>";
    let uri = test_node(
        dir.path(),
        &format!(
            "{}\n{}\n<pool type='dir'><name>mine</name><target><path>/srv/mine</path></target></pool>",
            test_domain("dpdkhost-t-vm01", ""),
            test_domain("dpdkhost-t-vm1", ours),
        ),
    );
    std::fs::write(
        dir.path().join("dpdkhost.toml"),
        format!("libvirt_uri = \"{uri}\"\npool = \"mine\"\naccel = \"tcg\"\n"),
    )
    .unwrap();
    let o = dpdkhost(dir.path(), &["--env", "t", "down", "-y"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("  - domain dpdkhost-t-vm1 (running)"), "{t}");
    assert!(
        t.contains("left alone: domain dpdkhost-t-vm01 (no dpdkhost metadata)"),
        "{t}"
    );
    assert!(
        t.contains("left alone: pool mine (dpdkhost did not create it"),
        "{t}"
    );
    assert!(!t.contains("- pool"), "the pool is not removed: {t}");
    let o = dpdkhost(dir.path(), &["--env", "t", "down", "-y", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["removed"], serde_json::json!(["domain dpdkhost-t-vm1"]));
    let left: Vec<&str> = v["left_alone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["object"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["domain dpdkhost-t-vm01", "pool mine"]);

    // No pool at all: down does not claim to remove one.
    std::fs::write(
        dir.path().join("dpdkhost.toml"),
        format!(
            "libvirt_uri = \"{}\"\n",
            test_node(dir.path(), &test_domain("dpdkhost-t-vm1", ours))
        ),
    )
    .unwrap();
    let t = text(&dpdkhost(dir.path(), &["--env", "t", "down", "-y"]));
    assert!(t.contains("  - domain dpdkhost-t-vm1"), "{t}");
    assert!(!t.contains("pool"), "{t}");

    // A person's domain with the name up would give VM 2: refused, named, untouched.
    let uri = test_node(dir.path(), &test_domain("dpdkhost-t-vm2", ""));
    std::fs::write(
        dir.path().join("dpdkhost.toml"),
        format!("libvirt_uri = \"{uri}\"\naccel = \"tcg\"\n"),
    )
    .unwrap();
    let o = dpdkhost(dir.path(), &["--env", "t", "plan"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(
            "domain dpdkhost-t-vm2 exists but is not this environment's (no dpdkhost metadata)"
        ),
        "{}",
        text(&o)
    );
}

/// A shell's syntax check of a generated completion script (`check`: its no-execute flag).
fn shell_accepts(shell: &str, check: &str, script: &[u8]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("dpdkhost.{shell}"));
    std::fs::write(&path, script).unwrap();
    Command::new(shell)
        .arg(check)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{shell} (scripts/setup installs it): {e}"))
}

#[test]
fn completion_scripts_pass_their_shells_syntax_check() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")] {
        let o = dpdkhost(dir.path(), &["completions", shell]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("ssh-config"),
            "{shell}: every subcommand completes"
        );
        let checked = shell_accepts(shell, check, &o.stdout);
        assert!(
            checked.status.success(),
            "{shell} {check}: {}",
            text(&checked)
        );
    }
    let bad = dpdkhost(dir.path(), &["completions", "tcsh"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("possible values"), "{}", text(&bad));
}

#[test]
fn man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let o = dpdkhost(dir.path(), &["man", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for page in ["dpdkhost.1", "dpdkhost-up.1", "dpdkhost-ssh-config.1"] {
        let rendered = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(out.join(page))
            .env("MANWIDTH", "80")
            .output()
            .expect("man (package man-db)");
        assert!(rendered.status.success(), "{page}: {}", text(&rendered));
        let shown = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            shown.contains("NAME") && shown.contains("SYNOPSIS"),
            "{page}:\n{shown}"
        );
    }
}
