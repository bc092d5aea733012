//! Per-project quota limits that the other services read.
