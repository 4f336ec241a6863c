//! The twin registry: each twin's ed25519 public key, from a directory of files named after the twin
//! id and holding the key in hex (ZOS reads the keys from its chain).

use std::collections::HashMap;
use std::path::Path;
use zos_types::KeyGetter;

/// Known twins and their keys.
#[derive(Debug, Clone, Default)]
pub struct TwinRegistry {
    keys: HashMap<u32, [u8; 32]>,
}

impl TwinRegistry {
    /// A registry from known keys.
    pub fn from_keys(keys: impl IntoIterator<Item = (u32, [u8; 32])>) -> TwinRegistry {
        TwinRegistry { keys: keys.into_iter().collect() }
    }

    /// Loads `<dir>/<twin id>` files, each holding a hex ed25519 public key; other files are an error.
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
            keys.insert(twin, key);
        }
        Ok(TwinRegistry { keys })
    }
}

impl KeyGetter for TwinRegistry {
    fn key(&self, twin: u32) -> Result<[u8; 32], String> {
        self.keys.get(&twin).copied().ok_or_else(|| format!("twin '{twin}' is not known to this node"))
    }
}
