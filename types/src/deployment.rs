//! Deployments: validation, the update diff, the challenge hash and signatures (ZOS `gridtypes/deployment.go`).

use crate::{Challenge, Timestamp, Workload, WorkloadId, validate_name};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A twin whose signature the deployment asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignatureRequest {
    /// The twin.
    pub twin_id: u32,
    /// Whether its signature is required.
    pub required: bool,
    /// Weight its signature adds.
    pub weight: u64,
}

/// A signature of the deployment's challenge hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Signature {
    /// The signing twin.
    pub twin_id: u32,
    /// The signature, in hex.
    pub signature: String,
    /// `ed25519` (the default) or `sr25519`.
    pub signature_type: String,
}

/// Who must sign a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SignatureRequirement {
    /// Requested signers.
    pub requests: Vec<SignatureRequest>,
    /// Total weight needed.
    pub weight_required: u64,
    /// Signatures collected.
    pub signatures: Vec<Signature>,
    /// `""` (sign the raw hash) or `polka-wallet` (sign `<Bytes>hex(hash)</Bytes>`).
    pub signature_style: String,
}

/// A deployment in ZOS's JSON shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deployment {
    /// Version: 0 at creation, +1 per update.
    pub version: u32,
    /// Owner twin.
    pub twin_id: u32,
    /// Node contract on chain.
    pub contract_id: u64,
    /// User metadata.
    pub metadata: String,
    /// Description.
    pub description: String,
    /// Deprecated, unused.
    pub expiration: Timestamp,
    /// Signers.
    pub signature_requirement: SignatureRequirement,
    /// Workloads.
    pub workloads: Vec<Workload>,
}

/// The operations an update implies (ZOS `Upgrade`), as workload names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgrade {
    /// New workloads, in the new deployment's order.
    pub to_add: Vec<String>,
    /// Workloads whose version is the new deployment version, in the new deployment's order.
    pub to_update: Vec<String>,
    /// Workloads missing from the new deployment, in the old deployment's order.
    pub to_remove: Vec<String>,
}

/// Where a twin's public key comes from.
pub trait KeyGetter {
    /// The ed25519 public key of `twin`, parsed once when the registry learnt it (parsing a key
    /// decompresses a curve point, a fifth of a signature check).
    fn key(&self, twin: u32) -> Result<VerifyingKey, String>;
}

impl KeyGetter for HashMap<u32, VerifyingKey> {
    fn key(&self, twin: u32) -> Result<VerifyingKey, String> {
        self.get(&twin).copied().ok_or_else(|| format!("twin '{twin}' not found"))
    }
}

const POLKA_WALLET: &str = "polka-wallet";

impl Deployment {
    /// The global id of workload `name` of this deployment.
    pub fn workload_id(&self, name: &str) -> WorkloadId {
        WorkloadId::new(self.twin_id, self.contract_id, name)
    }

    /// ZOS's `Deployment.Valid`: the first problem, with ZOS's message; before it, the size limits of
    /// [`Limits::DEFAULT`](crate::Limits) (which ZOS does not have).
    pub fn validate(&self) -> Result<(), String> {
        self.validate_size(&crate::Limits::DEFAULT)?;
        let mut names = HashSet::new();
        for workload in &self.workloads {
            self.validate_workload_in(workload, &mut names)?;
        }
        Ok(())
    }

    /// Whether the deployment stays within `limits`: each text field, the number of workloads and the
    /// whole encoding. The error names the field, its size and the limit.
    pub fn validate_size(&self, limits: &crate::Limits) -> Result<(), String> {
        // The field is named only when it is over the limit: no text is built for the valid ones.
        let text = |field: &dyn Fn() -> String, value: &str| {
            if value.len() > limits.text {
                Err(format!("{} is {} bytes, more than the limit of {} bytes", field(), value.len(), limits.text))
            } else {
                Ok(())
            }
        };
        text(&|| "deployment metadata".into(), &self.metadata)?;
        text(&|| "deployment description".into(), &self.description)?;
        if self.workloads.len() > limits.workloads {
            return Err(format!(
                "deployment has {} workloads, more than the limit of {}",
                self.workloads.len(),
                limits.workloads
            ));
        }
        for workload in &self.workloads {
            text(&|| format!("metadata of workload '{}'", workload.name), &workload.metadata)?;
            text(&|| format!("description of workload '{}'", workload.name), &workload.description)?;
        }
        let mut size = crate::limits::Counter::default();
        serde_json::to_writer(&mut size, self).map_err(|err| format!("deployment cannot be encoded: {err}"))?;
        if size.0 > limits.deployment {
            return Err(format!("deployment is {} bytes, more than the limit of {} bytes", size.0, limits.deployment));
        }
        Ok(())
    }

    /// The problem with each workload, in deployment order (`None` for a valid one):
    /// what a caller shows next to each workload of a rejected deployment.
    pub fn workload_errors(&self) -> Vec<Option<String>> {
        let mut names = HashSet::new();
        self.workloads.iter().map(|wl| self.validate_workload_in(wl, &mut names).err()).collect()
    }

    fn validate_workload_in<'a>(&self, workload: &'a Workload, names: &mut HashSet<&'a str>) -> Result<(), String> {
        if workload.version > self.version {
            return Err("workload version cannot be higher than deployment version".into());
        }
        validate_name(&workload.name).map_err(|err| format!("name '{}' is invalid: {err}", workload.name))?;
        if !names.insert(workload.name.as_str()) {
            return Err(format!("multiple workloads with the same name '{}'", workload.name));
        }
        workload.validate(self)
    }

    /// ZOS's `Upgrade`: validates `new` as the next version of `self` and lists what changes.
    /// Like ZOS, workloads that exist in both keep their stored result in `new`.
    pub fn upgrade(&self, new: &mut Deployment) -> Result<Upgrade, String> {
        new.validate().map_err(|err| format!("new deployment is invalid: {err}"))?;
        if self.twin_id != new.twin_id || self.contract_id != new.contract_id {
            return Err("cannot change deployment or twin id".into());
        }
        let expected = self.version.saturating_add(1);
        if new.version != expected {
            return Err(format!("expecting deployment version {expected}, got {}", new.version));
        }
        let current: HashMap<&str, &Workload> = self.workloads.iter().map(|wl| (wl.name.as_str(), wl)).collect();
        let mut upgrade = Upgrade::default();
        for workload in &mut new.workloads {
            match current.get(workload.name.as_str()) {
                None if workload.version == expected => upgrade.to_add.push(workload.name.clone()),
                None => {
                    return Err(format!(
                        "invalid version number for workload '{}' expected '{expected}'",
                        workload.name
                    ));
                }
                Some(older) => {
                    if older.kind() != workload.kind() {
                        return Err(format!("cannot change workload type '{}'", workload.name));
                    }
                    workload.result = older.result.clone();
                    if workload.version == expected {
                        upgrade.to_update.push(workload.name.clone());
                    }
                }
            }
        }
        let kept: HashSet<&str> = new.workloads.iter().map(|wl| wl.name.as_str()).collect();
        upgrade.to_remove =
            self.workloads.iter().filter(|wl| !kept.contains(wl.name.as_str())).map(|wl| wl.name.clone()).collect();
        Ok(upgrade)
    }

    /// The challenge text: version, twin, metadata, description, expiration, each workload,
    /// then the signature requirement. The contract id is deliberately not part of it.
    pub fn challenge(&self) -> Challenge {
        let mut c = Challenge::default();
        c.put(self.version);
        c.put(self.twin_id);
        c.put(&self.metadata);
        c.put(&self.description);
        c.put(self.expiration.0);
        for workload in &self.workloads {
            workload.challenge(&mut c);
        }
        let requirement = &self.signature_requirement;
        for request in &requirement.requests {
            c.put(request.twin_id);
            c.put(request.required);
            c.put(request.weight);
        }
        c.put(requirement.weight_required);
        c.put(&requirement.signature_style);
        c
    }

    /// The MD5 challenge hash, which the contract's deployment hash must equal (as lowercase hex).
    pub fn challenge_hash(&self) -> [u8; 16] {
        self.challenge().md5()
    }

    /// The bytes a signer signs, by signature style.
    fn signed_message(&self) -> Vec<u8> {
        let hash = self.challenge_hash();
        if self.signature_requirement.signature_style == POLKA_WALLET {
            format!("<Bytes>{}</Bytes>", hex::encode(hash)).into_bytes()
        } else {
            hash.to_vec()
        }
    }

    /// Signs as `twin` with an ed25519 key, replacing an earlier signature of that twin.
    pub fn sign(&mut self, twin: u32, key: &SigningKey) {
        let signature = hex::encode(key.sign(&self.signed_message()).to_bytes());
        let signatures = &mut self.signature_requirement.signatures;
        match signatures.iter_mut().find(|sig| sig.twin_id == twin) {
            Some(existing) => {
                existing.signature = signature;
                existing.signature_type = "ed25519".into();
            }
            None => signatures.push(Signature { twin_id: twin, signature, signature_type: "ed25519".into() }),
        }
    }

    /// ZOS's `Verify`: the originator must be among the requests and is always required; every required
    /// request must carry a valid signature; the weights of the valid signatures must reach `weight_required`.
    /// Unlike ZOS, a request that is not required and not signed is skipped instead of failing the whole check.
    pub fn verify(&self, keys: &dyn KeyGetter) -> Result<(), String> {
        let message = self.signed_message();
        let requirement = &self.signature_requirement;
        let mut originator_found = false;
        let mut weight: u64 = 0;
        for request in &requirement.requests {
            let required = request.required || request.twin_id == self.twin_id;
            originator_found |= request.twin_id == self.twin_id;
            let Some(signature) = requirement.signatures.iter().find(|sig| sig.twin_id == request.twin_id) else {
                if required {
                    return Err(format!("missing required signature for twin '{}'", request.twin_id));
                }
                continue;
            };
            if !signature.signature_type.is_empty() && signature.signature_type != "ed25519" {
                return Err(format!("unsupported signature type '{}'", signature.signature_type));
            }
            let key = keys
                .key(request.twin_id)
                .map_err(|err| format!("failed to get public key for twin '{}': {err}", request.twin_id))?;
            let bytes = hex::decode(&signature.signature).map_err(|err| format!("invalid signature: {err}"))?;
            let signature =
                ed25519_dalek::Signature::from_slice(&bytes).map_err(|err| format!("invalid signature: {err}"))?;
            key.verify(&message, &signature).map_err(|_| "failed to verify signature".to_string())?;
            weight = weight.saturating_add(request.weight);
        }
        if !originator_found {
            return Err("originator twin id must be in the signature requests".into());
        }
        if weight < requirement.weight_required {
            return Err("required signature weight is not reached".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).expect("deployment")
    }

    fn zmount(name: &str, version: u32) -> serde_json::Value {
        json!({"name": name, "version": version, "type": "zmount", "data": {"size": 10}})
    }

    fn signed_by_twin_1(style: &str) -> (Deployment, HashMap<u32, VerifyingKey>) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut dl = deployment(json!({
            "version": 0, "twin_id": 1, "contract_id": 10,
            "signature_requirement": {"requests": [{"twin_id": 1, "required": true, "weight": 1}], "weight_required": 1,
                                      "signature_style": style},
            "workloads": [zmount("d1", 0)]
        }));
        dl.sign(1, &key);
        let keys = HashMap::from([(1, key.verifying_key())]);
        (dl, keys)
    }

    // Upstream `TestSignVerify` (gridtypes/sign_test.go), polka-wallet style, plus the plain style.
    #[test]
    fn signature_round_trip_in_both_styles() {
        for style in ["", "polka-wallet"] {
            let (dl, keys) = signed_by_twin_1(style);
            assert_eq!(dl.verify(&keys), Ok(()), "style '{style}'");
        }
    }

    #[test]
    fn tampered_deployment_fails_verification() {
        let (mut dl, keys) = signed_by_twin_1("");
        dl.description = "changed".into();
        assert_eq!(dl.verify(&keys), Err("failed to verify signature".to_string()));
    }

    #[test]
    fn signature_rules() {
        let (mut dl, keys) = signed_by_twin_1("");
        dl.signature_requirement.signatures.clear();
        assert_eq!(dl.verify(&keys), Err("missing required signature for twin '1'".to_string()));

        let (mut dl, keys) = signed_by_twin_1("");
        dl.signature_requirement.weight_required = 2;
        let key = SigningKey::from_bytes(&[7; 32]);
        dl.sign(1, &key);
        assert_eq!(dl.verify(&keys), Err("required signature weight is not reached".to_string()));

        let (mut dl, keys) = signed_by_twin_1("");
        dl.signature_requirement.requests[0] = SignatureRequest { twin_id: 2, required: false, weight: 1 };
        assert_eq!(dl.verify(&keys), Err("originator twin id must be in the signature requests".to_string()));
    }

    #[test]
    fn unsigned_optional_request_is_skipped() {
        let (mut dl, mut keys) = signed_by_twin_1("");
        dl.signature_requirement.requests.push(SignatureRequest { twin_id: 2, required: false, weight: 1 });
        keys.insert(2, SigningKey::from_bytes(&[9; 32]).verifying_key());
        dl.sign(1, &SigningKey::from_bytes(&[7; 32]));
        assert_eq!(dl.verify(&keys), Ok(()));
    }

    #[test]
    fn contract_id_is_not_in_the_hash() {
        let (dl, _) = signed_by_twin_1("");
        let mut other = dl.clone();
        other.contract_id = 99;
        assert_eq!(dl.challenge_hash(), other.challenge_hash());
        other.version = 1;
        assert_ne!(dl.challenge_hash(), other.challenge_hash());
    }

    #[test]
    fn challenge_text_layout() {
        let dl = deployment(json!({
            "version": 1, "twin_id": 2, "metadata": "m", "description": "d", "expiration": 0,
            "signature_requirement": {"requests": [{"twin_id": 2, "required": false, "weight": 1}], "weight_required": 1},
            "workloads": [{"version": 1, "name": "x", "type": "zmount", "metadata": "wm", "description": "wd", "data": {"size": 5}}]
        }));
        assert_eq!(dl.challenge().as_str(), "12md01xzmountwmwd52false11");
    }

    /// A deployment with megabytes of text is refused with the field and the limit named, and one of
    /// a normal size is not.
    #[test]
    fn oversized_text_fields_are_refused() {
        let big = "x".repeat(crate::Limits::DEFAULT.text + 1);
        let base = || {
            let dl: Deployment = serde_json::from_value(serde_json::json!({
                "version": 0, "twin_id": 1, "contract_id": 1, "metadata": "{\"type\":\"vm\"}",
                "workloads": [{"version": 0, "name": "disk", "type": "zmount", "data": {"size": 1024}}]
            }))
            .expect("deployment");
            dl
        };
        assert_eq!(base().validate(), Ok(()));
        let mut dl = base();
        dl.metadata = big.clone();
        let err = dl.validate().expect_err("metadata too long");
        assert_eq!(err, "deployment metadata is 4097 bytes, more than the limit of 4096 bytes");
        let mut dl = base();
        dl.description = "y".repeat(50 << 20);
        assert!(dl.validate().expect_err("50 MB description").starts_with("deployment description is 52428800 bytes"));
        let mut dl = base();
        dl.workloads[0].metadata = big;
        assert!(dl.validate().expect_err("workload metadata").starts_with("metadata of workload 'disk' is 4097 bytes"));
        let mut dl = base();
        let tight = crate::Limits { deployment: 64, ..crate::Limits::DEFAULT };
        dl.description = "z".repeat(100);
        assert!(dl.validate_size(&tight).expect_err("whole deployment").contains("more than the limit of 64 bytes"));
        let few = crate::Limits { workloads: 0, ..crate::Limits::DEFAULT };
        assert_eq!(base().validate_size(&few), Err("deployment has 1 workloads, more than the limit of 0".into()));
    }

    #[test]
    fn validation_messages() {
        let dl = deployment(json!({"version": 0, "workloads": [zmount("a", 1)]}));
        assert_eq!(dl.validate(), Err("workload version cannot be higher than deployment version".to_string()));
        let dl = deployment(json!({"workloads": [zmount("a", 0), zmount("a", 0)]}));
        assert_eq!(dl.validate(), Err("multiple workloads with the same name 'a'".to_string()));
        assert_eq!(dl.workload_errors(), vec![None, Some("multiple workloads with the same name 'a'".to_string())]);
        let dl = deployment(json!({"workloads": [zmount("a-b", 0)]}));
        assert_eq!(dl.validate(), Err("name 'a-b' is invalid: unsupported character in workload name".to_string()));
        let dl = deployment(json!({"workloads": [{"name": "a", "type": "zmount", "data": {"size": 0}}]}));
        assert_eq!(dl.validate(), Err("invalid size".to_string()));
    }

    fn v1() -> Deployment {
        deployment(json!({"version": 1, "twin_id": 1, "contract_id": 10, "workloads": [
            {"name": "a", "version": 0, "type": "zmount", "data": {"size": 10}, "result": {"created": 1, "state": "ok"}},
            zmount("b", 1),
        ]}))
    }

    // Derived upgrade cases of reference section 7.8.
    #[test]
    fn upgrade_marks_update_and_add() {
        let mut new = deployment(json!({"version": 2, "twin_id": 1, "contract_id": 10,
            "workloads": [zmount("a", 0), zmount("b", 2), zmount("c", 2)]}));
        let upgrade = v1().upgrade(&mut new).expect("upgrade");
        assert_eq!(upgrade.to_update, vec!["b".to_string()]);
        assert_eq!(upgrade.to_add, vec!["c".to_string()]);
        assert!(upgrade.to_remove.is_empty());
        assert_eq!(new.workloads[0].result.state, crate::ResultState::Ok, "result carried over");
    }

    #[test]
    fn upgrade_removes_missing() {
        let mut new = deployment(json!({"version": 2, "twin_id": 1, "contract_id": 10, "workloads": [zmount("b", 1)]}));
        assert_eq!(v1().upgrade(&mut new).expect("upgrade").to_remove, vec!["a".to_string()]);
    }

    #[test]
    fn upgrade_errors() {
        let mut new = deployment(json!({"version": 3, "twin_id": 1, "contract_id": 10, "workloads": []}));
        assert_eq!(v1().upgrade(&mut new), Err("expecting deployment version 2, got 3".to_string()));
        let mut new = deployment(json!({"version": 2, "twin_id": 1, "contract_id": 10, "workloads": [zmount("c", 1)]}));
        assert_eq!(v1().upgrade(&mut new), Err("invalid version number for workload 'c' expected '2'".to_string()));
        let mut new = deployment(json!({"version": 2, "twin_id": 1, "contract_id": 11, "workloads": []}));
        assert_eq!(v1().upgrade(&mut new), Err("cannot change deployment or twin id".to_string()));
        let mut new = deployment(json!({"version": 2, "twin_id": 1, "contract_id": 10,
            "workloads": [{"name": "a", "version": 0, "type": "volume", "data": {"size": 10}}]}));
        assert_eq!(v1().upgrade(&mut new), Err("cannot change workload type 'a'".to_string()));
        let mut new = deployment(json!({"version": 2, "twin_id": 1, "contract_id": 10, "workloads": [zmount("a", 3)]}));
        assert_eq!(
            v1().upgrade(&mut new),
            Err("new deployment is invalid: workload version cannot be higher than deployment version".to_string())
        );
    }
}
