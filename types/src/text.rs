//! Serde helpers for values that travel as text, where Go's empty string means "unset".

use serde::{Deserialize, Deserializer, Serializer};
use std::fmt::Display;
use std::str::FromStr;

/// `""` and `null` read as `None`; `None` writes as `""`.
pub mod empty_as_none {
    use super::*;

    /// Writes the value's text, or `""` for `None`.
    pub fn serialize<T: Display, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_str(""),
        }
    }

    /// Parses the text with `FromStr`; `""` and `null` give `None`.
    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|err| serde::de::Error::custom(format!("invalid value '{text}': {err}")))
    }
}

/// A byte string that travels as lowercase hex, as ZOS's `zos.Bytes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HexBytes(pub Vec<u8>);

impl serde::Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        hex::decode(&text).map(HexBytes).map_err(|err| serde::de::Error::custom(format!("invalid hex '{text}': {err}")))
    }
}

impl Display for HexBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Upstream `TestHexEncoder` (gridtypes/zos/types_test.go).
    #[test]
    fn hex_bytes_round_trip() {
        let bytes = HexBytes(vec![0x00, 0x11, 0xcc, 0xff]);
        let json = serde_json::to_string(&bytes).expect("serialize");
        assert_eq!(json, "\"0011ccff\"");
        let back: HexBytes = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, bytes);
        assert!(serde_json::from_str::<HexBytes>("\"zz\"").is_err());
    }
}
