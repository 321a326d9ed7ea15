//! What iceoryx2 0.10's allocation per loaned sample costs, measured on raw iceoryx2.
//!
//! `cargo run --release -p takt --features test-hooks --example sample_alloc_cost`
//!
//! iceoryx2 0.10 creates the shared state of every loaned sample (`ChunkMutSharedState`)
//! behind its service's `ArcThreadSafetyPolicy`, a reference-counted heap cell, in
//! `Publisher::loan_uninit`. No publisher, sample or allocator option of 0.10 loans without
//! it. This program measures, in one process: the allocations and bytes per
//! loan + send + receive round (counting global allocator), the time of one round, and the
//! time of one heap allocation and free of the same size, so the share of the round that the
//! allocation costs is a figure, not a guess. A measurement, not a test: it asserts nothing.

use std::time::Instant;

use iceoryx2::prelude::*;

takt::counting_allocator!();

const ROUNDS: u64 = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if !takt::alloc_count::COUNTING {
        eprintln!("build with --features test-hooks: the counting allocator is a test hook");
        std::process::exit(2);
    }
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let name = format!("takt-sample-alloc-{}", std::process::id());
    let service = node
        .service_builder(&name.as_str().try_into()?)
        .publish_subscribe::<u64>()
        .open_or_create()?;
    let publisher = service.publisher_builder().create()?;
    let subscriber = service.subscriber_builder().create()?;
    let round = |i: u64| -> Result<(), Box<dyn std::error::Error>> {
        let sample = publisher.loan_uninit()?;
        sample.write_payload(i).send()?;
        while let Some(s) = subscriber.receive()? {
            std::hint::black_box(*s);
        }
        Ok(())
    };
    for i in 0..10_000 {
        round(i)?;
    }
    let (a0, b0) = (
        takt::alloc_count::allocations(),
        takt::alloc_count::allocated_bytes(),
    );
    let start = Instant::now();
    for i in 0..ROUNDS {
        round(i)?;
    }
    let round_ns = start.elapsed().as_nanos() as f64 / ROUNDS as f64;
    let allocs = takt::alloc_count::allocations() - a0;
    let bytes = takt::alloc_count::allocated_bytes() - b0;
    let per_round = allocs as f64 / ROUNDS as f64;
    let size = bytes.checked_div(allocs).unwrap_or(0) as usize;
    // One allocation and free of the size iceoryx2 asks for, in the same process.
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(size.max(1)));
        std::hint::black_box(&v);
    }
    let alloc_ns = start.elapsed().as_nanos() as f64 / ROUNDS as f64;
    println!("raw iceoryx2 0.10, u64 payload, {ROUNDS} rounds of loan_uninit + send + receive:");
    println!("  allocations per round:        {per_round:.3} ({size} bytes each)");
    println!("  time per round:               {round_ns:.0} ns");
    println!("  one allocation + free of {size} B: {alloc_ns:.0} ns");
    println!(
        "  share of the round:           {:.1}%",
        100.0 * per_round * alloc_ns / round_ns
    );
    Ok(())
}
