//! A twin's signed request for an operation on its deployments (delete, pause, resume, get, list,
//! changes): the operation, the twin, the contract and a timestamp, signed with the twin's ed25519 key,
//! so that the node acts on what the twin asked and not on the twin id a caller claims. The node also
//! refuses a request outside its replay window or seen before.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// A signed twin request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinRequest {
    /// The twin asking.
    pub twin: u32,
    /// The contract acted on (0 for an operation on all of the twin's deployments, such as list).
    pub contract: u64,
    /// When it was signed, seconds since the Unix epoch.
    pub timestamp: i64,
    /// A number the client picks anew for every request, so that two equal requests in the same second
    /// are two requests, and a replayed one is recognised.
    #[serde(default)]
    pub nonce: u64,
    /// The ed25519 signature of [`TwinRequest::message`], in hex.
    pub signature: String,
}

impl TwinRequest {
    /// What is signed: the operation and every argument, so that a signature for one operation or
    /// contract cannot be used for another.
    pub fn message(&self, operation: &str) -> Vec<u8> {
        let TwinRequest { twin, contract, timestamp, nonce, .. } = self;
        format!("zos-twin-request:{operation}:{twin}:{contract}:{timestamp}:{nonce}").into_bytes()
    }

    /// A request for `operation`, signed with the twin's key.
    pub fn sign(
        operation: &str,
        twin: u32,
        contract: u64,
        (timestamp, nonce): (i64, u64),
        key: &SigningKey,
    ) -> TwinRequest {
        let mut request = TwinRequest { twin, contract, timestamp, nonce, signature: String::new() };
        request.signature = hex::encode(key.sign(&request.message(operation)).to_bytes());
        request
    }

    /// Whether the request is `operation`, signed by the holder of `key`.
    pub fn verify(&self, operation: &str, key: &VerifyingKey) -> Result<(), String> {
        let bytes = hex::decode(&self.signature).map_err(|err| format!("invalid signature: {err}"))?;
        let signature =
            ed25519_dalek::Signature::from_slice(&bytes).map_err(|err| format!("invalid signature: {err}"))?;
        key.verify(&self.message(operation), &signature)
            .map_err(|_| format!("signature of twin {} does not verify for {operation}", self.twin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_binds_operation_twin_contract_and_time() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let public = key.verifying_key();
        let request = TwinRequest::sign("Deprovision", 7, 42, (1_000, 5), &key);
        assert_eq!(request.verify("Deprovision", &public), Ok(()));
        assert!(request.verify("Pause", &public).is_err(), "another operation");
        assert!(
            TwinRequest { contract: 43, ..request.clone() }.verify("Deprovision", &public).is_err(),
            "another contract"
        );
        assert!(TwinRequest { twin: 8, ..request.clone() }.verify("Deprovision", &public).is_err(), "another twin");
        assert!(
            TwinRequest { timestamp: 1_001, ..request.clone() }.verify("Deprovision", &public).is_err(),
            "another time"
        );
        let other = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert!(request.verify("Deprovision", &other).is_err(), "another key");
    }
}
