//! `dpdk-agent completions` and `dpdk-agent man`: the scripts parse and complete in
//! the shells that run them, and the pages render with man(1).

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn agent(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_dpdk-agent"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `shell` with `args` (the script path last), stdout on success.
fn run_shell(shell: &str, args: &[&str], script: &Path) -> String {
    let output = Command::new(shell)
        .args(args)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{shell} (scripts/setup installs it): {e}"));
    assert!(
        output.status.success(),
        "{shell} {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn bash_completion_parses_and_completes_subcommands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dpdk-agent.bash");
    std::fs::write(&script, agent(&["completions", "bash"]).stdout).unwrap();
    run_shell("bash", &["-n"], &script);

    // Source it and ask the function it registers, as bash does on TAB.
    let probe = dir.path().join("probe.bash");
    std::fs::write(
        &probe,
        format!(
            r#"source {script}
function_name=$(complete -p dpdk-agent | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
complete_line() {{
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
    COMPREPLY=()
    "$function_name" dpdk-agent "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD - 1]}}"
    echo "$*: ${{COMPREPLY[*]}}"
}}
complete_line dpdk-agent pi
complete_line dpdk-agent ping 10.0.1.6 --int
complete_line dpdk-agent completions ''
"#,
            script = script.display()
        ),
    )
    .unwrap();
    let replies = run_shell("bash", &[], &probe);
    let lines: Vec<&str> = replies.lines().collect();
    assert_eq!(lines.len(), 3, "{replies}");
    let words = |line: &str| -> Vec<String> {
        let mut words: Vec<String> = line
            .split_once(": ")
            .map_or("", |(_, words)| words)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        words.sort();
        words
    };
    assert_eq!(words(lines[0]), ["ping", "pingpong"], "{replies}");
    assert_eq!(words(lines[1]), ["--interval-ms"], "{replies}");
    for shell in ["bash", "zsh", "fish"] {
        assert!(words(lines[2]).contains(&shell.to_owned()), "{replies}");
    }
}

#[test]
fn zsh_and_fish_completions_parse() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        let script = dir.path().join(format!("dpdk-agent.{shell}"));
        let text = agent(&["completions", shell]).stdout;
        assert!(
            String::from_utf8_lossy(&text).contains("interval-ms"),
            "{shell}"
        );
        std::fs::write(&script, text).unwrap();
        run_shell(shell, &[check], &script);
    }
}

/// `man -l page` as a user reads it, 80 columns, no pager.
fn render(page: &Path) -> String {
    let output = Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "man -l {}: {stderr}",
        page.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn man_prints_the_main_page_and_writes_one_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("stdout.1");
    std::fs::write(&printed, agent(&["man"]).stdout).unwrap();
    let main_page = render(&printed);
    assert!(main_page.starts_with("dpdk-agent(1)"), "{main_page}");
    for text in [
        "NAME",
        "SYNOPSIS",
        "--selftest",
        "--control-socket",
        "SUBCOMMANDS",
    ] {
        assert!(main_page.contains(text), "{text:?} in {main_page}");
    }
    let subcommands = [
        "bench",
        "reflect",
        "pingpong",
        "serve",
        "ping",
        "completions",
        "man",
    ];
    for name in subcommands {
        let reference = format!("dpdk-agent-{name}(1)");
        assert!(main_page.contains(&reference), "{reference} in {main_page}");
    }

    let out = dir.path().join("man1");
    let listing =
        String::from_utf8(agent(&["man", "--out", out.to_str().unwrap()]).stdout).unwrap();
    let mut expected: Vec<String> = std::iter::once("dpdk-agent.1".to_owned())
        .chain(
            subcommands
                .iter()
                .map(|name| format!("dpdk-agent-{name}.1")),
        )
        .collect();
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, expected);
    for name in &written {
        assert!(
            listing.contains(&format!("wrote {}", out.join(name).display())),
            "{listing}"
        );
    }
    assert_eq!(render(&out.join("dpdk-agent.1")), main_page);

    // man justifies lines: compare with single spaces.
    let ping = render(&out.join("dpdk-agent-ping.1"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(ping.starts_with("dpdk-agent-ping(1)"), "{ping}");
    for text in [
        "dpdk-agent ping",
        "--count",
        "1..=1000",
        "--interval-ms",
        "--json",
        "PEER_IP",
        "dpdk-agent 0.",
    ] {
        assert!(ping.contains(text), "{text:?} in {ping}");
    }
}
