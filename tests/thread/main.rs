//! The thread layer's tests, one module per former test binary: messages,
//! pollers, io_channels, for_each_channel, exit, async, reactors, stress.
//! `thread_for_each_thread` (it counts every thread of its process) and
//! `thread_alloc` (a counting allocator) are binaries of their own.

#[path = "../thread_support/mod.rs"]
mod thread_support;

mod thread_async;
mod thread_block_on;
mod thread_exit;
mod thread_for_each;
mod thread_io_channel;
mod thread_msg;
mod thread_poller;
mod thread_reactor;
mod thread_stress;
