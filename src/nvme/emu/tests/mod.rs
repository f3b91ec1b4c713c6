//! hand-driven tests
