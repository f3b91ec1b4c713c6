//! The NVMe/TCP transport, target side.
