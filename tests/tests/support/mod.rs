//! What the end-to-end tests of a node share beyond the library's [`zos_tests::node`] (the node, its
//! disks, configurations and daemons, shared with the campaign): flistd's own small HTTP hub.

#![allow(dead_code)]

#[path = "../../../flistd/tests/support/hub.rs"]
pub mod hub;
