//! CO-RE relocation engine (being written).
