//! zpool
#![no_std]
extern crate alloc;
