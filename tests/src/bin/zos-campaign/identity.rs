//! Identity: every twin-scoped request is signed; forged, replayed, stale, cross-twin, cross-operation and
//! cross-contract requests are refused (`forbidden`), and so are deployments signed by another key or
//! sent for another twin. Genuine requests, sent alongside, must pass: a refusal of one is a violation
//! too.

use crate::tenant::{self, TWINS};
use zos_provisiond::engine::REPLAY_WINDOW;
use zos_provisiond::{EngineError, Outcome};
use zos_types::{Timestamp, TwinRequest};

/// What the identity run did.
pub struct Identity {
    /// Attacks sent, by kind.
    pub attacks: Vec<(&'static str, u64)>,
    /// Genuine requests sent.
    pub genuine: u64,
    /// Attacks let in and genuine requests refused.
    pub violations: Vec<String>,
}

const NOW: i64 = 1_700_000_000;

/// Sends `rounds` of each attack, and as many genuine requests, to an engine over a store in `dir`.
pub fn run(dir: &std::path::Path, rounds: u64, seed: u64) -> anyhow::Result<Identity> {
    let engine = tenant::engine(dir)?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut violations = Vec::new();
    let mut counts: Vec<(&'static str, u64)> = Vec::new();
    let mut count = |kind: &'static str| match counts.iter_mut().find(|(k, _)| *k == kind) {
        Some((_, n)) => *n += 1,
        None => counts.push((kind, 1)),
    };
    let mut nonce = 0u64;
    let mut genuine = 0;
    for round in 0..rounds {
        let twin = u32::try_from(round % u64::from(TWINS)).unwrap_or(0) + 1;
        let other = twin % TWINS + 1;
        let contract = round.saturating_add(1);
        nonce = nonce.wrapping_add(1);
        let signed = |op: &str, twin: u32, contract: u64, at: i64, nonce: u64, key_of: u32| {
            TwinRequest::sign(op, twin, contract, (at, nonce), &tenant::key(key_of))
        };
        // A genuine request passes once, and its replay is refused.
        let good = signed("get", twin, contract, NOW, nonce, twin);
        genuine += 1;
        if let Err(err) = engine.authenticate("get", &good, NOW) {
            violations.push(format!("a genuine get of twin {twin} was refused: {err}"));
        }
        let skew = i64::try_from(rng.u64(1..=86_400)).unwrap_or(1).saturating_add(REPLAY_WINDOW);
        let attacks: [(&'static str, &str, TwinRequest); 7] = [
            ("replayed", "get", good.clone()),
            ("forged (another twin's key)", "delete", signed("delete", twin, contract, NOW, nonce ^ 1, other)),
            (
                "cross-operation (a get's signature for a delete)",
                "delete",
                signed("get", twin, contract, NOW, nonce ^ 2, twin),
            ),
            ("cross-contract", "pause", {
                let mut it = signed("pause", twin, contract, NOW, nonce ^ 3, twin);
                it.contract = contract.saturating_add(1);
                it
            }),
            (
                "stale (clock behind)",
                "resume",
                signed("resume", twin, contract, NOW.saturating_sub(skew), nonce ^ 4, twin),
            ),
            (
                "from the future (clock ahead)",
                "resume",
                signed("resume", twin, contract, NOW.saturating_add(skew), nonce ^ 5, twin),
            ),
            (
                "unknown twin",
                "get",
                signed("get", TWINS.saturating_add(1), contract, NOW, nonce ^ 6, TWINS.saturating_add(1)),
            ),
        ];
        for (kind, operation, request) in attacks {
            count(kind);
            match engine.authenticate(operation, &request, NOW) {
                Err(EngineError::Forbidden(_)) => {}
                other => violations.push(format!("{kind} request let in: {other:?}")),
            }
        }
        // Deployments: signed by another twin's key, or sent as another twin.
        let dl = tenant::deployment(twin, contract, &mut rng);
        let mut forged = dl.clone();
        forged.signature_requirement.signatures.clear();
        forged.sign(twin, &tenant::key(other));
        for (kind, sender, deployment) in
            [("deployment signed by another key", twin, forged), ("deployment sent as another twin", other, dl)]
        {
            count(kind);
            match engine.create(sender, deployment, Timestamp(NOW)) {
                Err(EngineError::Forbidden(_)) => {}
                Ok(Outcome::Accepted(_)) => violations.push(format!("{kind}: accepted")),
                other => violations.push(format!("{kind}: not refused as forbidden: {other:?}")),
            }
        }
    }
    Ok(Identity { attacks: counts, genuine, violations })
}
