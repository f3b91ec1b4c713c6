//! The env clock (`now_ns`): monotonic, and running at the OS clock's rate
//! whether it reads the TSC or the OS clock.

use spdk_io::env;
use std::time::{Duration, Instant};

#[test]
fn clock_never_goes_back_on_one_thread() {
    let mut last = env::now_ns();
    for _ in 0..100_000 {
        let t = env::now_ns();
        assert!(t >= last, "clock went back from {last} to {t}");
        last = t;
    }
}

#[test]
fn clock_counts_nanoseconds_at_the_os_clock_rate() {
    let (n0, i0) = (env::now_ns(), Instant::now());
    std::thread::sleep(Duration::from_millis(200));
    let (n1, i1) = (env::now_ns(), Instant::now());
    let ours = (n1 - n0) as i64;
    let os = i1.duration_since(i0).as_nanos() as i64;
    // 2 % plus a preemption's worth between the paired reads.
    assert!(
        (ours - os).abs() < os / 50 + 5_000_000,
        "200 ms by the OS clock, {ours} ns by now_ns (tsc: {})",
        env::clock_is_tsc()
    );
}
