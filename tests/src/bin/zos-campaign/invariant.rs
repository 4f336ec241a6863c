//! What must hold whenever no request is in flight: the engine's ledger is exactly the ledger rebuilt
//! from the store's reservations (byte for byte: every reservation, every counter), the store agrees
//! with itself (every reservation belongs to a workload whose state holds capacity, and every such
//! workload has one), and nothing is over-allocated.

use zos_planner::Ledger;
use zos_provisiond::{Engine, TwinRegistry};

/// Every broken invariant, in words; empty when the node is sound.
pub fn violations(engine: &Engine<TwinRegistry>) -> Vec<String> {
    let mut found = Vec::new();
    let ledger = engine.ledger_snapshot();
    let store = engine.store();
    let mut rebuilt = Ledger::new(&crate::tenant::node(), crate::tenant::policy());
    match store.reservations() {
        Ok(records) => {
            for (id, record) in &records {
                for missing in rebuilt.restore_partial(id, record) {
                    found.push(format!("stored reservation of {id} cannot be restored: {missing}"));
                }
            }
        }
        Err(err) => found.push(format!("the store cannot be read: {err}")),
    }
    let records = |ledger: &Ledger| {
        let mut records: Vec<String> =
            ledger.reservations().map(|(id, reservation)| format!("{id} {:?}", ledger.record(reservation))).collect();
        records.sort();
        records
    };
    let (held, stored) = (records(&ledger), records(&rebuilt));
    if held != stored {
        let extra: Vec<&String> = held.iter().filter(|it| !stored.contains(it)).take(3).collect();
        let missing: Vec<&String> = stored.iter().filter(|it| !held.contains(it)).take(3).collect();
        found.push(format!("the ledger differs from the store: held only {extra:?}; stored only {missing:?}"));
    }
    let usage = ledger.usage();
    if usage != rebuilt.usage() {
        found.push(format!("counters drift: ledger {:?}, store {:?}", usage.used, rebuilt.usage().used));
    }
    match store.check_consistency() {
        Ok(drift) => found.extend(drift.iter().map(|it| format!("store drift: {it}"))),
        Err(err) => found.push(format!("the store cannot be checked: {err}")),
    }
    let (total, used, reserved) = (usage.total, usage.used, usage.reserved);
    if used.cru > total.cru {
        found.push(format!("CPU over-allocated: {} of {}", used.cru, total.cru));
    }
    if used.mru.bytes().saturating_add(reserved.mru.bytes()) > total.mru.bytes() {
        found.push(format!("memory over-allocated: {} + {} of {}", used.mru, reserved.mru, total.mru));
    }
    if used.ipv4u > total.ipv4u {
        found.push(format!("public addresses over-allocated: {} of {}", used.ipv4u, total.ipv4u));
    }
    for pool in ledger.pools().iter() {
        if pool.used > pool.size {
            found.push(format!("pool {} over-allocated: {} of {}", pool.name, pool.used, pool.size));
        }
    }
    found
}
