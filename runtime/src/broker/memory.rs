//! The in-process broker: needs nothing, the default in examples and tests.
