//! flistd's image format: rfs `.fl` flists, read, verified and packed with this project's own code, so
//! that an image made by ZOS's tools works here unchanged (threefoldtech/rfs v2.0.6).
//!
//! An `.fl` is an SQLite database ([`meta`]): the tree (`inode`, `extra` for symlink targets), each
//! file's blocks in order (`block`), tags and the routes to the block stores. Content is cut into chunks
//! of at most 512 KiB ([`block`]): `key = blake2b-256(plain)`, the chunk snappy-compressed, then
//! AES-256-GCM encrypted with `key` and nonce `key[..12]`, `id = blake2b-256(cipher)`; a store
//! ([`store`]) maps `id` to the ciphertext. Reading a block verifies it (a block whose plaintext does not
//! hash to its key is an error, never wrong bytes); older flists keyed blocks with sha256 and are read
//! too. [`pack`] builds an `.fl` from a directory tree; [`unpack`] extracts one into a tree (the
//! fallback where FUSE is not available), refusing unsafe archives.
//!
//! [`mount`] serves an flist read-only over FUSE, blocks fetched on first read. [`hub`] downloads
//! `.fl` files over HTTP(S) into the cache, verified. The daemon ([`config`], [`mounts`], [`service`])
//! serves `flist@0.0.1` on zbus: named mounts, each a FUSE mount in a process of its own, read-write
//! ones an overlay on a storaged volume, found again after a restart ([`mountinfo`]). Not here yet:
//! the s3 store.

#![warn(missing_docs)]

pub mod block;
pub mod config;
mod error;
pub mod hub;
pub mod meta;
pub mod mount;
pub mod mountinfo;
pub mod mounts;
pub mod pack;
pub mod service;
pub mod store;
pub mod unpack;

pub use error::FlistError;
