//! MAC addresses, one way for the host and the agent: six bytes written as two hex
//! digits each (either case), separated all by `:` or all by `-`; shown as lowercase
//! `aa:bb:cc:dd:ee:ff`.

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Text that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address like 02:00:00:00:00:01")]
pub struct BadMac(pub String);

impl std::str::FromStr for MacAddr {
    type Err = BadMac;

    fn from_str(text: &str) -> Result<MacAddr, BadMac> {
        let bad = || BadMac(text.to_owned());
        let separator = if text.contains('-') { '-' } else { ':' };
        let mut mac = [0u8; 6];
        let mut parts = text.split(separator);
        for byte in &mut mac {
            let part = parts.next().ok_or_else(bad)?;
            // from_str_radix alone would take a sign ("+2").
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(mac))
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_mac() {
        let mac = MacAddr([0x52, 0x54, 0, 0xaa, 0, 2]);
        for good in [
            "52:54:00:aa:00:02",
            "52:54:00:AA:00:02",
            "52-54-00-aa-00-02",
        ] {
            assert_eq!(good.parse::<MacAddr>(), Ok(mac), "{good}");
        }
        assert_eq!(mac.to_string(), "52:54:00:aa:00:02");
        for bad in [
            "",
            "52:54:00:aa:00",
            "52:54:00:aa:00:02:00",
            "52:54:00:aa:00:+2",
            "52:54:00-aa:00:02",
            "52:54:00:aa:00:2",
            "52:54:00:aa:00:0g",
            " 52:54:00:aa:00:02",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?}");
        }
    }
}
