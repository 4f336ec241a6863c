//! The size policy of the `zos-cache` volume (reference section 3.5), as a pure function that
//! storaged calls every few minutes.

use zos_types::Unit;

/// Step and floor of the cache volume: 5 GiB.
pub const CACHE_STEP: Unit = Unit::gib(5);

/// Grow when the exclusive usage reaches this percentage of the quota.
pub const GROW_PERCENT: u64 = 60;

/// Shrink when the exclusive usage is below this percentage of the quota.
pub const SHRINK_PERCENT: u64 = 20;

/// The new quota of the cache volume, or `None` when it stays as it is.
///
/// ZOS's rules: an unlimited volume gets `max(step, 2 x usage)`; at 60% or more, grow by one step;
/// below 20% (and above one step), shrink to `(2 x usage / step) x step + step`; never below one step.
pub fn next_size(size: Unit, exclusive: Unit, step: Unit) -> Option<Unit> {
    if step == Unit::ZERO {
        return None;
    }
    let doubled = Unit(exclusive.0.saturating_mul(2));
    let new = if size == Unit::ZERO {
        doubled.max(step)
    } else {
        let percent = exclusive.0.saturating_mul(100).checked_div(size.0).unwrap_or(0);
        if percent >= GROW_PERCENT {
            size.saturating_add(step)
        } else if percent < SHRINK_PERCENT && size > step {
            let steps = doubled.0.checked_div(step.0).unwrap_or(0);
            Unit(steps.saturating_mul(step.0)).saturating_add(step)
        } else {
            size
        }
    };
    let new = new.max(step);
    (new != size).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Upstream `TestCacheResize` (pkg/storage/storage_test.go), with its step of 5.
    #[test]
    fn cache_resize() {
        let step = Unit(5);
        assert_eq!(next_size(Unit(100), Unit(1), step), Some(Unit(5)));
        assert_eq!(next_size(Unit(100), Unit(19), step), Some(Unit(40)));
        assert_eq!(next_size(Unit(100), Unit(0), step), Some(Unit(5)));
        assert_eq!(next_size(Unit(1000), Unit(16), step), Some(Unit(35)));
        assert_eq!(next_size(Unit(100), Unit(91), step), Some(Unit(105)));
        assert_eq!(next_size(Unit(100), Unit(50), step), None);
    }

    #[test]
    fn floor_and_unlimited() {
        assert_eq!(next_size(Unit::ZERO, Unit::gib(1), CACHE_STEP), Some(CACHE_STEP));
        assert_eq!(next_size(Unit::ZERO, Unit::gib(4), CACHE_STEP), Some(Unit::gib(8)));
        assert_eq!(next_size(CACHE_STEP, Unit::ZERO, CACHE_STEP), None, "never below one step");
        assert_eq!(next_size(CACHE_STEP, Unit::gib(3), CACHE_STEP), Some(Unit::gib(10)), "60% grows");
        assert_eq!(next_size(Unit(u64::MAX), Unit(u64::MAX), CACHE_STEP), None, "saturates, no panic");
    }
}
