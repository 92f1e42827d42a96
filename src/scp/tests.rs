//! The SCP layer against the in-memory backend, driven byte by byte as a client would.
