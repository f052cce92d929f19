//! Measures the rate limiter: the per-request cost (rule lookup + key hash + counter check, the
//! work the middleware adds) in ns, and the heap held by the limiter after 100,000 distinct
//! client IPs, counted by a global allocator wrapper. Prints the numbers (run with
//! `cargo test --release -p pocketlog-api --test ratelimit_bench -- --nocapture` for the
//! figures worth quoting) and asserts the bounds the design promises: memory stays under the
//! limiter's capacity whatever the number of IPs, and the cost does not grow with the IPs.

use api::ratelimit::{Config, Limiter};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards unchanged to the system allocator and only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn ip(n: u32) -> String {
    std::net::Ipv4Addr::from(0x0A00_0000 | n).to_string()
}

fn default_rules() -> Config {
    Config::from_settings(&json!({"rateLimits": {"enabled": true, "rules": [
        {"label": "*:auth", "audience": "", "duration": 3, "maxRequests": 2},
        {"label": "*:create", "audience": "", "duration": 5, "maxRequests": 20},
        {"label": "/api/batch", "audience": "", "duration": 1, "maxRequests": 3},
        {"label": "/api/", "audience": "", "duration": 10, "maxRequests": 300}
    ]}}))
}

/// One request's limiter work: find the rule, hash the key, count.
fn one_request(config: &Config, limiter: &Limiter, client: &str) -> bool {
    let rule = config
        .find_rule(None, "GET", "/api/health", false)
        .expect("the /api/ rule");
    let key = limiter.key("", rule, client);
    limiter.check(key, rule.duration, rule.max_requests)
}

#[test]
fn limiter_cost_and_memory_under_100k_ips() {
    let config = default_rules();
    let ips: Vec<String> = (0..100_000).map(ip).collect();

    // Memory: the limiter's own heap after 100,000 distinct IPs (default capacity).
    let before = LIVE.load(Ordering::SeqCst);
    let limiter = Limiter::default();
    for client in &ips {
        one_request(&config, &limiter, client);
    }
    let held = LIVE.load(Ordering::SeqCst) - before;
    let entries = limiter.len();
    println!(
        "limiter: {entries} entries for 100000 IPs, {held} bytes ({:.1} bytes/IP), capacity {}",
        held as f64 / 100_000.0,
        limiter.capacity()
    );
    assert_eq!(entries, 100_000, "the default capacity keeps 100k clients");
    assert!(held < 8 * 1024 * 1024, "{held} bytes");

    // A flood of 1,000,000 distinct IPs never grows it past its capacity.
    let flood_before = LIVE.load(Ordering::SeqCst);
    let small = Limiter::new(65_536);
    for n in 0..1_000_000u32 {
        one_request(&config, &small, &ip(n));
    }
    let flood_held = LIVE.load(Ordering::SeqCst) - flood_before;
    println!(
        "flood: 1000000 IPs into capacity {}: {} entries, {flood_held} bytes",
        small.capacity(),
        small.len()
    );
    assert!(small.len() <= small.capacity());
    assert!(flood_held < 4 * 1024 * 1024, "{flood_held} bytes");

    // Cost per request: the same client again (hot) and 100k clients round robin.
    let rounds = 1_000_000;
    let started = Instant::now();
    for n in 0..rounds {
        std::hint::black_box(one_request(&config, &limiter, &ips[n % 8]));
    }
    let hot = started.elapsed().as_nanos() as f64 / rounds as f64;
    let started = Instant::now();
    for n in 0..rounds {
        std::hint::black_box(one_request(&config, &limiter, &ips[n % ips.len()]));
    }
    let spread = started.elapsed().as_nanos() as f64 / rounds as f64;
    println!("cost per request: {hot:.0} ns (few clients), {spread:.0} ns (100k clients)");
    // O(1): 100k clients cost about the same as 8 (generous bound for noisy shared CPUs).
    assert!(
        spread < hot * 10.0 + 2_000.0,
        "hot {hot} ns, spread {spread} ns"
    );
}
