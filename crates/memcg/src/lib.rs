//! memcg
#![no_std]
extern crate alloc;
