//! A workload crosses zbus (MessagePack) with the same fields as in JSON: its data's addresses and
//! networks stay strings, as they always did, whatever the encoders of each format do with them.

use serde_json::json;
use zos_types::Workload;

#[test]
fn a_workload_on_the_zbus_wire_carries_the_fields_of_its_json() {
    let workloads: Vec<Workload> = serde_json::from_value(json!([
        {"name": "vm", "type": "zmachine", "version": 1, "data": {"flist": "https://hub/f.flist",
            "network": {"interfaces": [{"network": "n", "ip": "10.1.1.2"}], "planetary": true},
            "compute_capacity": {"cpu": 2, "memory": 1u64 << 30}, "entrypoint": "/sbin/init"}},
        {"name": "n", "type": "network", "data": {"ip_range": "10.1.0.0/16", "subnet": "10.1.1.0/24",
            "wireguard_private_key": "key", "wireguard_listen_port": 3000, "peers": [{"subnet": "10.1.2.0/24",
            "wireguard_public_key": "pk", "allowed_ips": ["10.1.2.0/24", "100.64.1.2/32"], "endpoint": "1.2.3.4:3000"}]}},
        {"name": "ip", "type": "ip", "data": {"v4": true}},
        {"name": "disk", "type": "zmount", "data": {"size": 1u64 << 30}},
    ]))
    .expect("workloads");
    for workload in &workloads {
        let wire = zos_zbus::wire::encode(workload).expect("encode");
        let carried: serde_json::Value = zos_zbus::wire::decode(&wire).expect("decode");
        let json = serde_json::to_value(workload).expect("json");
        assert_eq!(carried, json, "workload {}", workload.name);
        let back: Workload = zos_zbus::wire::decode(&wire).expect("decode as a workload");
        assert_eq!(&back, workload);
        assert_eq!(serde_json::from_value::<Workload>(json).expect("from json"), *workload);
    }
}
