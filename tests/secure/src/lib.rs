//! Helpers for the secure bed's tests (tests/secure/tests/*.rs).
