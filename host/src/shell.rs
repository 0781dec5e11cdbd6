//! Shell text for commands that run in a guest over ssh. ssh hands the remote command
//! to the login shell as one string, so every word is quoted here; nothing that came
//! from a guest, a config file or the user reaches that shell unquoted.

/// A word that cannot be passed to a shell: it holds a NUL byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a remote command's word holds a NUL byte: {0:?}")]
pub struct NulInWord(pub String);

/// `word` as one POSIX shell word: single-quoted, each `'` written as `'\''`. Plain
/// words made only of characters no shell treats specially stay as they are, so
/// command lines in logs read naturally.
pub fn quote(word: &str) -> Result<String, NulInWord> {
    if word.contains('\0') {
        return Err(NulInWord(word.to_owned()));
    }
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if plain {
        return Ok(word.to_owned());
    }
    Ok(format!("'{}'", word.replace('\'', r"'\''")))
}

/// The words as one command line that a POSIX shell splits back into exactly them.
pub fn join<S: AsRef<str>>(words: &[S]) -> Result<String, NulInWord> {
    let quoted: Result<Vec<String>, NulInWord> =
        words.iter().map(|word| quote(word.as_ref())).collect();
    Ok(quoted?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// What a real shell makes of `line`: the words it passes to printf.
    fn words_seen_by(shell: &str, line: &str) -> Vec<String> {
        let out = Command::new(shell)
            .arg("-c")
            .arg(format!("printf '%s\\0' {line}"))
            .output()
            .expect("run the shell");
        assert!(out.status.success(), "{shell} refused {line:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut words: Vec<String> = text.split('\0').map(str::to_owned).collect();
        words.pop();
        words
    }

    #[test]
    fn hostile_words_stay_words() {
        let words = [
            "aa:bb:cc:dd:ee:ff' ; touch /tmp/pwned ; '",
            "$(reboot)",
            "`id`",
            "a b\tc\nd",
            "",
            "'",
            "--eth-peer=0,52:54:00:00:00:01",
            "*",
            "~root",
            "x\\y",
            "!!",
        ];
        assert_eq!(words_seen_by("bash", &join(&words).unwrap()), words);
        assert_eq!(words_seen_by("sh", &join(&words).unwrap()), words);
    }

    #[test]
    fn plain_words_are_left_bare() {
        assert_eq!(
            quote("--forward-mode=txonly").unwrap(),
            "--forward-mode=txonly"
        );
        assert_eq!(quote("0000:00:03.0").unwrap(), "0000:00:03.0");
        assert_eq!(quote("a b").unwrap(), "'a b'");
    }

    #[test]
    fn a_nul_byte_is_refused() {
        assert!(join(&["ok", "a\0b"]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_words_survive_a_real_shell(words in proptest::collection::vec("[^\\x00]{0,24}", 1..6)) {
            let line = join(&words).unwrap();
            prop_assert_eq!(words_seen_by("bash", &line), words);
        }
    }
}
