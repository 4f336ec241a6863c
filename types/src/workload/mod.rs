//! Workloads: the typed data of each ZOS workload type, its capacity, validation and challenge.

mod disk;
mod gateway;
mod ip;
mod network;
mod qsfs;
mod zdb;
mod zlogs;
mod zmachine;

pub use disk::{Volume, ZMount};
pub use gateway::{Backend, GatewayFqdnProxy, GatewayNameProxy};
pub use ip::{PublicIp, PublicIpv4};
pub use network::{Mycelium, Network, Peer};
pub use qsfs::{
    Compression, Encryption, Qsfs, QuantumSafeFsConfig, QuantumSafeMeta, QuantumSafeMetaConfig, ZdbBackend, ZdbGroup,
};
pub use zdb::Zdb;
pub use zlogs::ZLogs;
pub use zmachine::{
    GpuRef, MachineCapacity, MachineInterface, MachineMount, MachineNetwork, MyceliumIp, ZMachine, ZMachineResult,
};

use crate::{Capacity, Challenge, Deployment, WorkloadResult, validate_name};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The workload types ZOS knows, with their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadType {
    /// `zmachine`
    ZMachine,
    /// `zmount`
    ZMount,
    /// `volume`
    Volume,
    /// `zdb`
    Zdb,
    /// `qsfs`
    Qsfs,
    /// `ip`
    Ip,
    /// `ipv4` (deprecated)
    Ipv4,
    /// `network`
    Network,
    /// `gateway-name-proxy`
    GatewayNameProxy,
    /// `gateway-fqdn-proxy`
    GatewayFqdnProxy,
    /// `zlogs`
    ZLogs,
}

impl WorkloadType {
    /// Every type.
    pub const ALL: [WorkloadType; 11] = [
        WorkloadType::ZMachine,
        WorkloadType::ZMount,
        WorkloadType::Volume,
        WorkloadType::Zdb,
        WorkloadType::Qsfs,
        WorkloadType::Ip,
        WorkloadType::Ipv4,
        WorkloadType::Network,
        WorkloadType::GatewayNameProxy,
        WorkloadType::GatewayFqdnProxy,
        WorkloadType::ZLogs,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadType::ZMachine => "zmachine",
            WorkloadType::ZMount => "zmount",
            WorkloadType::Volume => "volume",
            WorkloadType::Zdb => "zdb",
            WorkloadType::Qsfs => "qsfs",
            WorkloadType::Ip => "ip",
            WorkloadType::Ipv4 => "ipv4",
            WorkloadType::Network => "network",
            WorkloadType::GatewayNameProxy => "gateway-name-proxy",
            WorkloadType::GatewayFqdnProxy => "gateway-fqdn-proxy",
            WorkloadType::ZLogs => "zlogs",
        }
    }

    /// Parses a wire name; the error names the unknown type.
    pub fn parse(name: &str) -> Result<WorkloadType, String> {
        WorkloadType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| format!("unknown workload type '{name}'"))
    }

    /// Sharable types are unique per twin across deployments (ZOS `RegisterSharableType`).
    pub fn is_sharable(self) -> bool {
        self == WorkloadType::Network
    }

    /// Types whose manager can update a running workload.
    pub fn is_updatable(self) -> bool {
        matches!(
            self,
            WorkloadType::ZMount
                | WorkloadType::Volume
                | WorkloadType::Network
                | WorkloadType::Zdb
                | WorkloadType::Qsfs
        )
    }
}

impl fmt::Display for WorkloadType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed data of a workload; the variant is the workload's type.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadData {
    /// A virtual machine.
    ZMachine(ZMachine),
    /// A virtual disk.
    ZMount(ZMount),
    /// A subvolume.
    Volume(Volume),
    /// A 0-db namespace.
    Zdb(Zdb),
    /// A quantum-safe filesystem.
    Qsfs(Qsfs),
    /// Public IPv4/IPv6.
    Ip(PublicIp),
    /// Public IPv4 (deprecated).
    Ipv4(PublicIpv4),
    /// A private network resource.
    Network(Network),
    /// A name proxy.
    GatewayNameProxy(GatewayNameProxy),
    /// A domain proxy.
    GatewayFqdnProxy(GatewayFqdnProxy),
    /// A log stream.
    ZLogs(ZLogs),
}

impl WorkloadData {
    /// The workload type of this data.
    pub fn kind(&self) -> WorkloadType {
        match self {
            WorkloadData::ZMachine(_) => WorkloadType::ZMachine,
            WorkloadData::ZMount(_) => WorkloadType::ZMount,
            WorkloadData::Volume(_) => WorkloadType::Volume,
            WorkloadData::Zdb(_) => WorkloadType::Zdb,
            WorkloadData::Qsfs(_) => WorkloadType::Qsfs,
            WorkloadData::Ip(_) => WorkloadType::Ip,
            WorkloadData::Ipv4(_) => WorkloadType::Ipv4,
            WorkloadData::Network(_) => WorkloadType::Network,
            WorkloadData::GatewayNameProxy(_) => WorkloadType::GatewayNameProxy,
            WorkloadData::GatewayFqdnProxy(_) => WorkloadType::GatewayFqdnProxy,
            WorkloadData::ZLogs(_) => WorkloadType::ZLogs,
        }
    }

    /// Decodes `data` as the data of type `kind`. JSON `null` (or a missing `data`) gives the type's zero value,
    /// and unknown fields are ignored, as Go's `encoding/json` does.
    pub fn from_json(kind: WorkloadType, data: serde_json::Value) -> Result<WorkloadData, serde_json::Error> {
        fn decode<T: serde::de::DeserializeOwned + Default>(data: serde_json::Value) -> Result<T, serde_json::Error> {
            if data.is_null() { Ok(T::default()) } else { serde_json::from_value(data) }
        }
        Ok(match kind {
            WorkloadType::ZMachine => WorkloadData::ZMachine(decode(data)?),
            WorkloadType::ZMount => WorkloadData::ZMount(decode(data)?),
            WorkloadType::Volume => WorkloadData::Volume(decode(data)?),
            WorkloadType::Zdb => WorkloadData::Zdb(decode(data)?),
            WorkloadType::Qsfs => WorkloadData::Qsfs(decode(data)?),
            WorkloadType::Ip => WorkloadData::Ip(decode(data)?),
            WorkloadType::Ipv4 => WorkloadData::Ipv4(decode(data)?),
            WorkloadType::Network => WorkloadData::Network(decode(data)?),
            WorkloadType::GatewayNameProxy => WorkloadData::GatewayNameProxy(decode(data)?),
            WorkloadType::GatewayFqdnProxy => WorkloadData::GatewayFqdnProxy(decode(data)?),
            WorkloadType::ZLogs => WorkloadData::ZLogs(decode(data)?),
        })
    }

    /// Encodes the data as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        // Plain structs with string keys always encode.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The capacity this workload consumes, exactly as ZOS's per-type `Capacity()`.
    pub fn capacity(&self) -> Capacity {
        match self {
            WorkloadData::ZMachine(data) => data.capacity(),
            WorkloadData::ZMount(data) => data.capacity(),
            WorkloadData::Volume(data) => data.capacity(),
            WorkloadData::Zdb(data) => data.capacity(),
            WorkloadData::Qsfs(data) => data.capacity(),
            WorkloadData::Ip(data) => data.capacity(),
            WorkloadData::Ipv4(data) => data.capacity(),
            WorkloadData::Network(data) => data.capacity(),
            WorkloadData::GatewayNameProxy(data) => data.capacity(),
            WorkloadData::GatewayFqdnProxy(data) => data.capacity(),
            WorkloadData::ZLogs(data) => data.capacity(),
        }
    }

    /// The zmachine data, when this is one.
    pub fn as_zmachine(&self) -> Option<&ZMachine> {
        match self {
            WorkloadData::ZMachine(data) => Some(data),
            _ => None,
        }
    }

    fn validate(&self, deployment: &Deployment) -> Result<(), String> {
        match self {
            WorkloadData::ZMachine(data) => data.validate(deployment),
            WorkloadData::ZMount(data) => data.validate(),
            WorkloadData::Volume(data) => data.validate(),
            WorkloadData::Zdb(data) => data.validate(),
            WorkloadData::Qsfs(data) => data.validate(),
            WorkloadData::Ip(data) => data.validate(),
            WorkloadData::Ipv4(_) => Ok(()),
            WorkloadData::Network(data) => data.validate(),
            WorkloadData::GatewayNameProxy(data) => data.validate(),
            WorkloadData::GatewayFqdnProxy(data) => data.validate(),
            WorkloadData::ZLogs(data) => data.validate(deployment),
        }
    }

    fn challenge(&self, c: &mut Challenge) {
        match self {
            WorkloadData::ZMachine(data) => data.challenge(c),
            WorkloadData::ZMount(data) => data.challenge(c),
            WorkloadData::Volume(data) => data.challenge(c),
            WorkloadData::Zdb(data) => data.challenge(c),
            WorkloadData::Qsfs(data) => data.challenge(c),
            WorkloadData::Ip(data) => data.challenge(c),
            WorkloadData::Ipv4(_) => {}
            WorkloadData::Network(data) => data.challenge(c),
            WorkloadData::GatewayNameProxy(data) => data.challenge(c),
            WorkloadData::GatewayFqdnProxy(data) => data.challenge(c),
            WorkloadData::ZLogs(data) => data.challenge(c),
        }
    }
}

/// The data alone, as its type's struct (the type is the workload's `type` field).
impl Serialize for WorkloadData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WorkloadData::ZMachine(data) => data.serialize(serializer),
            WorkloadData::ZMount(data) => data.serialize(serializer),
            WorkloadData::Volume(data) => data.serialize(serializer),
            WorkloadData::Zdb(data) => data.serialize(serializer),
            WorkloadData::Qsfs(data) => data.serialize(serializer),
            WorkloadData::Ip(data) => data.serialize(serializer),
            WorkloadData::Ipv4(data) => data.serialize(serializer),
            WorkloadData::Network(data) => data.serialize(serializer),
            WorkloadData::GatewayNameProxy(data) => data.serialize(serializer),
            WorkloadData::GatewayFqdnProxy(data) => data.serialize(serializer),
            WorkloadData::ZLogs(data) => data.serialize(serializer),
        }
    }
}

/// A workload: `{"version", "name", "type", "data", "metadata", "description", "result"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawWorkload")]
pub struct Workload {
    /// Version; a workload is updated when it equals the new deployment version.
    pub version: u32,
    /// Name, unique in the deployment.
    pub name: String,
    /// Typed data (carries the type).
    pub data: WorkloadData,
    /// User metadata.
    pub metadata: String,
    /// Description.
    pub description: String,
    /// Result set by the node.
    pub result: WorkloadResult,
}

impl Workload {
    /// The workload type.
    pub fn kind(&self) -> WorkloadType {
        self.data.kind()
    }

    /// The capacity it consumes.
    pub fn capacity(&self) -> Capacity {
        self.data.capacity()
    }

    /// ZOS's per-type update rules (its `primitives` managers), checked at the door instead of after
    /// the fact: a zmount and a zdb only grow (`not safe to shrink a disk`), a volume never goes below
    /// its quota, a zdb's mode never changes. `None` when `self` may replace `old`.
    pub fn update_error(&self, old: &Workload) -> Option<String> {
        match (&old.data, &self.data) {
            (WorkloadData::ZMount(old), WorkloadData::ZMount(new)) if new.size < old.size => {
                Some("not safe to shrink a disk".into())
            }
            (WorkloadData::Volume(old), WorkloadData::Volume(new)) if new.size < old.size => {
                Some("not safe to shrink a volume below its quota".into())
            }
            (WorkloadData::Zdb(old), WorkloadData::Zdb(new)) if new.mode != old.mode => {
                Some("cannot change namespace mode".into())
            }
            (WorkloadData::Zdb(old), WorkloadData::Zdb(new)) if new.size < old.size => {
                Some("not safe to shrink a disk".into())
            }
            _ => None,
        }
    }

    /// ZOS's `Workload.Valid`: name, then type-specific rules, in the context of its deployment.
    pub fn validate(&self, deployment: &Deployment) -> Result<(), String> {
        validate_name(&self.name).map_err(|err| format!("invalid workload name: {err}"))?;
        self.data.validate(deployment)
    }

    /// Appends this workload's challenge: version, name, type, metadata, description, data.
    pub fn challenge(&self, c: &mut Challenge) {
        c.put(self.version);
        c.put(&self.name);
        c.put(self.kind());
        c.put(&self.metadata);
        c.put(&self.description);
        self.data.challenge(c);
    }
}

/// The fields of a workload as encoded, in order, written without copying the workload. In a format
/// that is not human-readable (zbus's MessagePack) the data goes through its JSON value, as it always
/// did: its addresses and networks stay strings there instead of their compact binary forms.
impl Serialize for Workload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let human_readable = serializer.is_human_readable();
        let mut fields = serializer.serialize_struct("Workload", 7)?;
        fields.serialize_field("version", &self.version)?;
        fields.serialize_field("name", &self.name)?;
        fields.serialize_field("type", self.kind().as_str())?;
        if human_readable {
            fields.serialize_field("data", &self.data)?;
        } else {
            fields.serialize_field("data", &self.data.to_json())?;
        }
        fields.serialize_field("metadata", &self.metadata)?;
        fields.serialize_field("description", &self.description)?;
        fields.serialize_field("result", &self.result)?;
        fields.end()
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawWorkload {
    version: u32,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    data: serde_json::Value,
    metadata: String,
    description: String,
    result: WorkloadResult,
}

impl Default for RawWorkload {
    fn default() -> Self {
        RawWorkload {
            version: 0,
            name: String::new(),
            kind: String::new(),
            data: serde_json::Value::Null,
            metadata: String::new(),
            description: String::new(),
            result: WorkloadResult::default(),
        }
    }
}

impl TryFrom<RawWorkload> for Workload {
    type Error = String;

    fn try_from(raw: RawWorkload) -> Result<Self, Self::Error> {
        let kind = WorkloadType::parse(&raw.kind)?;
        let data = WorkloadData::from_json(kind, raw.data)
            .map_err(|err| format!("invalid data of workload '{}' (type {kind}): {err}", raw.name))?;
        Ok(Workload {
            version: raw.version,
            name: raw.name,
            data,
            metadata: raw.metadata,
            description: raw.description,
            result: raw.result,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Unit;
    use serde_json::json;

    fn workload(value: serde_json::Value) -> Result<Workload, serde_json::Error> {
        serde_json::from_value(value)
    }

    #[test]
    fn update_rules_grow_only_and_keep_the_zdb_mode() {
        let of = |kind: &str, data: serde_json::Value| {
            workload(json!({"name": "w", "type": kind, "data": data})).expect("workload")
        };
        let disk = |size: u64| of("zmount", json!({"size": size}));
        assert_eq!(disk(5).update_error(&disk(10)).as_deref(), Some("not safe to shrink a disk"));
        assert_eq!(disk(10).update_error(&disk(10)), None);
        assert_eq!(disk(20).update_error(&disk(10)), None);
        let volume = |size: u64| of("volume", json!({"size": size}));
        assert!(volume(1).update_error(&volume(2)).is_some());
        assert_eq!(volume(3).update_error(&volume(2)), None);
        let zdb = |size: u64, mode: &str| of("zdb", json!({"size": size, "mode": mode}));
        assert_eq!(zdb(10, "seq").update_error(&zdb(10, "user")).as_deref(), Some("cannot change namespace mode"));
        assert_eq!(zdb(5, "user").update_error(&zdb(10, "user")).as_deref(), Some("not safe to shrink a disk"));
        assert_eq!(zdb(20, "user").update_error(&zdb(10, "user")), None);
        assert_eq!(disk(5).update_error(&volume(10)), None, "a type change is refused elsewhere");
    }

    // Upstream `TestWorkloadData` (gridtypes/zos/types_test.go).
    #[test]
    fn zmount_data_decodes_by_type() {
        let wl = workload(json!({"name": "disk", "type": "zmount", "data": {"size": 10}})).expect("workload");
        assert_eq!(wl.data, WorkloadData::ZMount(ZMount { size: Unit(10) }));
    }

    // Upstream `TestWorkloadValidation`.
    #[test]
    fn named_zmount_is_valid() {
        let wl = workload(json!({"name": "disk", "type": "zmount", "data": {"size": 10}})).expect("workload");
        assert_eq!(wl.validate(&Deployment::default()), Ok(()));
    }

    #[test]
    fn unknown_type_is_named_in_the_error() {
        let err = workload(json!({"name": "x", "type": "kubernetes", "data": {}})).expect_err("unknown type");
        assert!(err.to_string().contains("unknown workload type 'kubernetes'"), "{err}");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let wl = workload(json!({"name": "d", "type": "zdb", "future": 1, "data": {"size": 1, "mode": "seq", "x": 2}}))
            .expect("workload");
        assert_eq!(wl.capacity().hru, Unit(1));
    }

    #[test]
    fn json_round_trips_in_zos_shape() {
        let input = json!({
            "version": 0, "name": "vm", "type": "zmachine", "metadata": "", "description": "",
            "data": {"flist": "f", "network": {"public_ip": "", "planetary": true, "interfaces": [{"network": "n", "ip": "10.1.0.2"}]},
                     "size": 0, "compute_capacity": {"cpu": 2, "memory": 2147483648u64}, "mounts": [],
                     "entrypoint": "", "env": {}, "corex": false},
            "result": {"created": 0, "state": "", "message": "", "data": null}
        });
        let wl = workload(input.clone()).expect("workload");
        assert_eq!(serde_json::to_value(&wl).expect("serialize"), input);
    }

    // The capacity table of reference section 1.3.
    #[test]
    fn capacity_per_type() {
        let cap = |value: serde_json::Value| workload(value).expect("workload").capacity();
        assert_eq!(
            cap(json!({"type": "zmount", "data": {"size": 7}})),
            Capacity { sru: Unit(7), ..Default::default() }
        );
        assert_eq!(
            cap(json!({"type": "volume", "data": {"size": 7}})),
            Capacity { sru: Unit(7), ..Default::default() }
        );
        assert_eq!(
            cap(json!({"type": "zdb", "data": {"size": 7, "mode": "user"}})),
            Capacity { hru: Unit(7), ..Default::default() }
        );
        assert_eq!(
            cap(json!({"type": "qsfs", "data": {"cache": 7}})),
            Capacity { cru: 1, mru: Unit::GIB, sru: Unit(7), ..Default::default() }
        );
        assert_eq!(cap(json!({"type": "ipv4", "data": {}})), Capacity { ipv4u: 1, ..Default::default() });
        assert_eq!(cap(json!({"type": "ip", "data": {"v4": true}})), Capacity { ipv4u: 1, ..Default::default() });
        assert_eq!(cap(json!({"type": "ip", "data": {"v6": true}})), Capacity::default());
        for zero in ["network", "gateway-name-proxy", "gateway-fqdn-proxy", "zlogs"] {
            assert_eq!(cap(json!({"type": zero})), Capacity::default(), "{zero}");
        }
        assert_eq!(
            cap(json!({"type": "zmachine", "data": {"compute_capacity": {"cpu": 2, "memory": 4294967296u64}}})),
            Capacity { cru: 2, mru: Unit::gib(4), sru: Unit::gib(2), ..Default::default() }
        );
    }
}
