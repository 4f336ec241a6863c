//! Byte quantities in binary multiples, as ZOS's `gridtypes.Unit`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A number of bytes. ZOS's `gridtypes.Unit` is a bare `uint64` on the wire,
/// so this serializes as a plain JSON number.
///
/// All arithmetic on units is checked or saturating: capacity math never wraps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unit(pub u64);

impl Unit {
    /// Zero bytes.
    pub const ZERO: Unit = Unit(0);
    /// 1 KiB (1024 bytes), ZOS's `gridtypes.Kilobyte`.
    pub const KIB: Unit = Unit(1 << 10);
    /// 1 MiB, ZOS's `gridtypes.Megabyte`.
    pub const MIB: Unit = Unit(1 << 20);
    /// 1 GiB, ZOS's `gridtypes.Gigabyte`.
    pub const GIB: Unit = Unit(1 << 30);
    /// 1 TiB, ZOS's `gridtypes.Terabyte`.
    pub const TIB: Unit = Unit(1 << 40);

    /// `n` mebibytes, saturating at `u64::MAX` bytes.
    pub const fn mib(n: u64) -> Unit {
        Unit(n.saturating_mul(Self::MIB.0))
    }

    /// `n` gibibytes, saturating at `u64::MAX` bytes.
    pub const fn gib(n: u64) -> Unit {
        Unit(n.saturating_mul(Self::GIB.0))
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Sum, saturating at `u64::MAX`.
    pub const fn saturating_add(self, other: Unit) -> Unit {
        Unit(self.0.saturating_add(other.0))
    }

    /// Difference, saturating at zero.
    pub const fn saturating_sub(self, other: Unit) -> Unit {
        Unit(self.0.saturating_sub(other.0))
    }

    /// Sum, `None` on overflow.
    pub const fn checked_add(self, other: Unit) -> Option<Unit> {
        match self.0.checked_add(other.0) {
            Some(sum) => Some(Unit(sum)),
            None => None,
        }
    }
}

impl From<u64> for Unit {
    fn from(bytes: u64) -> Self {
        Unit(bytes)
    }
}

/// Human form with a binary suffix (`2 GiB`, `500 MiB`, `1.5 TiB`), for tables and messages.
impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SUFFIXES: [(&str, u64); 4] =
            [("TiB", Unit::TIB.0), ("GiB", Unit::GIB.0), ("MiB", Unit::MIB.0), ("KiB", Unit::KIB.0)];
        for (suffix, size) in SUFFIXES {
            if self.0 >= size {
                // `size` is a non-zero constant: these divisions cannot fail.
                let whole = self.0.checked_div(size).unwrap_or_default();
                let tenths = self.0.checked_rem(size).unwrap_or_default().checked_div(size / 10).unwrap_or_default();
                return if tenths == 0 {
                    write!(f, "{whole} {suffix}")
                } else {
                    write!(f, "{whole}.{tenths} {suffix}")
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

/// Parses `1024`, `512B`, `4KiB`, `500MiB`, `2GiB`, `1TiB` (also `K`, `M`, `G`, `T`, `KB`, ...: all binary).
impl std::str::FromStr for Unit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let number: u64 =
            number.parse().map_err(|_| format!("invalid size '{text}': expected a number with an optional unit"))?;
        let multiplier = match suffix.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => Unit::KIB.0,
            "m" | "mb" | "mib" => Unit::MIB.0,
            "g" | "gb" | "gib" => Unit::GIB.0,
            "t" | "tb" | "tib" => Unit::TIB.0,
            other => {
                return Err(format!("invalid size '{text}': unknown unit '{other}' (use B, KiB, MiB, GiB or TiB)"));
            }
        };
        number.checked_mul(multiplier).map(Unit).ok_or_else(|| format!("invalid size '{text}': too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiples_are_binary() {
        assert_eq!(Unit::KIB.bytes(), 1024);
        assert_eq!(Unit::MIB.bytes(), 1024 * 1024);
        assert_eq!(Unit::GIB.bytes(), 1024 * 1024 * 1024);
        assert_eq!(Unit::TIB.bytes(), 1024u64.pow(4));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(Unit(1).saturating_sub(Unit(2)), Unit::ZERO);
        assert_eq!(Unit(u64::MAX).saturating_add(Unit(1)), Unit(u64::MAX));
        assert_eq!(Unit(u64::MAX).checked_add(Unit(1)), None);
        assert_eq!(Unit::gib(u64::MAX), Unit(u64::MAX));
    }

    #[test]
    fn display_is_human() {
        assert_eq!(Unit::gib(2).to_string(), "2 GiB");
        assert_eq!(Unit::mib(500).to_string(), "500 MiB");
        assert_eq!(Unit(1536 * 1024 * 1024).to_string(), "1.5 GiB");
        assert_eq!(Unit(12).to_string(), "12 B");
    }

    #[test]
    fn parses_sizes() {
        assert_eq!("1024".parse::<Unit>(), Ok(Unit(1024)));
        assert_eq!("4GiB".parse::<Unit>(), Ok(Unit::gib(4)));
        assert_eq!("500M".parse::<Unit>(), Ok(Unit::mib(500)));
        assert_eq!("2 TiB".parse::<Unit>(), Ok(Unit(2 << 40)));
        assert!("lots".parse::<Unit>().is_err());
        assert!("4XB".parse::<Unit>().is_err());
        assert!("99999999999TiB".parse::<Unit>().is_err());
    }

    #[test]
    fn serializes_as_bare_number() {
        assert_eq!(serde_json::to_string(&Unit(42)).expect("serialize"), "42");
        assert_eq!(serde_json::from_str::<Unit>("42").expect("parse"), Unit(42));
    }
}
