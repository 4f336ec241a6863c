//! The twin registry: each twin's ed25519 public key, from a directory of files named after the twin
//! id and holding the key in hex (ZOS reads the keys from its chain).

use std::collections::HashMap;
use std::path::Path;
use zos_types::{KeyGetter, VerifyingKey};

/// Known twins and their keys, each parsed once.
#[derive(Debug, Clone, Default)]
pub struct TwinRegistry {
    keys: HashMap<u32, VerifyingKey>,
}

impl TwinRegistry {
    /// A registry from known keys.
    pub fn from_keys(keys: impl IntoIterator<Item = (u32, VerifyingKey)>) -> TwinRegistry {
        TwinRegistry { keys: keys.into_iter().collect() }
    }

    /// Loads `<dir>/<twin id>` files, each holding a hex ed25519 public key; other files, and a key that
    /// is not a point of the curve, are an error.
    pub fn load(dir: &Path) -> Result<TwinRegistry, String> {
        let mut keys = HashMap::new();
        let entries =
            std::fs::read_dir(dir).map_err(|err| format!("cannot read twin registry {}: {err}", dir.display()))?;
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let twin: u32 =
                name.parse().map_err(|_| format!("{}: file name is not a twin id", entry.path().display()))?;
            let text =
                std::fs::read_to_string(entry.path()).map_err(|err| format!("{}: {err}", entry.path().display()))?;
            let bytes =
                hex::decode(text.trim()).map_err(|err| format!("{}: invalid hex: {err}", entry.path().display()))?;
            let key: [u8; 32] =
                bytes.try_into().map_err(|_| format!("{}: an ed25519 key has 32 bytes", entry.path().display()))?;
            let key = VerifyingKey::from_bytes(&key)
                .map_err(|err| format!("{}: not an ed25519 public key: {err}", entry.path().display()))?;
            keys.insert(twin, key);
        }
        Ok(TwinRegistry { keys })
    }
}

impl KeyGetter for TwinRegistry {
    fn key(&self, twin: u32) -> Result<VerifyingKey, String> {
        self.keys.get(&twin).copied().ok_or_else(|| format!("twin '{twin}' is not known to this node"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file is parsed when the registry loads, so a key that is no curve point stops the load
    /// with the file's name instead of failing every signature check of that twin later.
    #[test]
    fn a_key_that_is_not_a_curve_point_fails_the_load_with_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = zos_types::SigningKey::from_bytes(&[3; 32]).verifying_key();
        std::fs::write(dir.path().join("1"), hex::encode(good)).expect("key");
        let registry = TwinRegistry::load(dir.path()).expect("load");
        assert_eq!(registry.key(1), Ok(good));
        assert!(registry.key(2).is_err(), "an unknown twin");
        // The first y coordinate from 2 up whose x^2 has no square root: not a point.
        let bad = (2u8..=u8::MAX)
            .map(|y| [y; 32])
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .expect("a non-point");
        std::fs::write(dir.path().join("2"), hex::encode(bad)).expect("key");
        let err = TwinRegistry::load(dir.path()).expect_err("a non-point");
        assert!(err.contains("/2: not an ed25519 public key"), "{err}");
    }
}
