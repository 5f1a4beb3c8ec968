//! The C ABI: a thin layer that only converts and checks. See include/chip.h.
