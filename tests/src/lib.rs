//! Workspace-wide tests of zos-rs. The library is empty; the tests live in `tests/`: `tidy.rs`
//! checks the house rules that ARCHITECTURE.md states, and end-to-end tests with real daemons
//! will join it. Never a dependency of a production crate.
