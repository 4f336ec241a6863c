//! Durable node state on the cache disk, crash-safe by construction.
//!
//! ZOS keeps deployments in a bolt file and jobs in a separate queue, and loses state in the gap
//! between them (reference sections 2.10 and 10). Here everything lives in one store, and every user
//! action is one [`Txn`]: "create the deployment, its workloads in `init`, their reservations and its
//! job" commits together or not at all, and is durable when `commit` returns.
//!
//! # Engine and promises
//!
//! sled 0.34 sits behind this crate's own API; nothing else in the workspace sees it. All records
//! live in one tree. A commit is staged in the store's backlog, which every read sees over sled at
//! once, and is made durable by the store's own write-ahead journal (`journal` in the store's
//! directory): group commit writes the frames of every commit made meanwhile after the journal's, over
//! blocks the file already has, with one `fdatasync`, and only then writes that round into sled, so sled never holds a commit that was
//! not durable. sled is flushed (its `flush`, then `fdatasync` of its data file, since `flush` only
//! calls `sync_file_range`) only at a checkpoint, when the journal passes 32 MiB and when the store
//! is closed, because sled 0.34's flush excludes every `apply_batch` while it runs. At open, the
//! journal's commits are applied again, in order. Writers are serialized by a mutex.
//!
//! What the store promises:
//! - a committed change is durable (in the journal, fdatasync'ed) when `commit` returns `Ok`;
//! - a crash at any instant leaves the state before or after each commit, never a mix;
//! - a failed commit (disk full, I/O error) returns an error; reopen the store after one;
//! - reading a workload's current state is one key lookup, whatever the length of its history;
//! - a store of schema 1 is migrated at open by a rewrite swapped in by renames (a crash leaves the
//!   old store or the new one); a store of another schema version is refused, never reinterpreted;
//! - [`Store::check_consistency`] lists every broken invariant (orphan jobs,
//!   sharable-name mismatches, reservations that disagree with workload states).

#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

mod backlog;
mod compaction;
mod consistency;
mod error;
mod job;
mod journal;
mod key;
mod migration;
mod store;

pub use consistency::{Drift, holds_capacity};
pub use error::StoreError;
pub use job::{Job, JobId, JobOp};
pub use store::{Commit, Pending, Prepared, SCHEMA_VERSION, Store, Txn};
