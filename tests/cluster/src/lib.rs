//! Helpers for the cluster bed's tests (tests/cluster/tests/*.rs).
