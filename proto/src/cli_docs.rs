//! Shell completions and man pages for dpdkhost and dpdk-agent, generated from their
//! clap definitions, one way for both: the `completions` and `man` subcommands'
//! arguments, the scripts (with clap_complete's bash output mended for a hyphenated
//! binary name) and the pages (the command and every subcommand, nested ones too,
//! without the `help` subcommand that `--help` already covers).

use std::io::Write;
use std::path::{Path, PathBuf};

/// `completions SHELL`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `man [--out DIR]`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write <bin>.1 and one <bin>-<subcommand>.1 per subcommand into this directory
    /// (created when missing) instead of printing <bin>.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Writes `bin`'s completion script for `shell` to `out`.
pub fn write_completions(
    command: clap::Command,
    bin: &str,
    shell: clap_complete::Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut command = command;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, bin, &mut script);
    if shell == clap_complete::Shell::Bash {
        script = respell_bash_states(bin, &String::from_utf8_lossy(&script)).into_bytes();
    }
    out.write_all(&script)
}

/// clap_complete's bash script names its subcommand states from the binary name with
/// `-` turned into `__subcmd__` in one place and `__` in the other (clap-rs/clap#6421),
/// so no subcommand option of a hyphenated binary ever completes. Identity once
/// upstream agrees with itself, and for names without a hyphen.
fn respell_bash_states(bin: &str, script: &str) -> String {
    script.replace(&bin.replace('-', "__subcmd__"), &bin.replace('-', "__"))
}

/// The command as its pages describe it: built, so that each subcommand's page is
/// titled <bin>-<name>; without the `help` subcommand.
fn documented(command: clap::Command) -> clap::Command {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    command
}

/// `bin`'s man page (the top command) as troff.
pub fn man_page(command: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(documented(command)).render(&mut page)?;
    Ok(page)
}

/// Writes the page of the command and of every subcommand (nested ones too) into
/// `dir`, the footer naming `source` (`dpdk-agent 0.1.0`); returns the files written.
pub fn write_man_pages(
    command: clap::Command,
    source: &str,
    dir: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut pending = vec![documented(command)];
    let mut written = Vec::new();
    while let Some(page) = pending.pop() {
        pending.extend(page.get_subcommands().cloned());
        let man = clap_mangen::Man::new(page).source(source.to_owned());
        written.push(dir.join(man.get_filename()));
        man.generate_to(dir)?;
    }
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bash_states_of_a_hyphenated_name_are_respelled() {
        assert_eq!(
            respell_bash_states("dpdk-agent", "dpdk__subcmd__agent__ping) dpdk__agent__ping"),
            "dpdk__agent__ping) dpdk__agent__ping"
        );
        assert_eq!(
            respell_bash_states("dpdkhost", "dpdkhost__up"),
            "dpdkhost__up"
        );
    }

    #[test]
    fn every_subcommand_gets_a_page_and_help_none() {
        let command = clap::Command::new("tool")
            .version("1.0")
            .subcommand(clap::Command::new("up"))
            .subcommand(clap::Command::new("image").subcommand(clap::Command::new("build")));
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = write_man_pages(command, "tool 1.0", dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["tool-image-build.1", "tool-image.1", "tool-up.1", "tool.1"]
        );
        for name in &names {
            assert!(dir.path().join(name).is_file(), "{name}");
        }
    }
}
