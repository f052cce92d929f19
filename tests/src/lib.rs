//! Workspace-level tests of pocketlog: crash, tidy and robustness suites live in `tests/`.
