#![deny(unsafe_code)]
//! `sink` whose jobs are honest (no overrun, no fault in its counters) while a thread of its
//! own, outside any job, keeps the CPU busy half the time: only the kernel's accounting of
//! the process shows it. The thread starts in `main`, at the normal priority `main` has
//! (the dispatchers raise their own), so it never competes with real-time work.
fn main() -> std::process::ExitCode {
    std::thread::spawn(|| loop {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(3) {
            std::hint::spin_loop();
        }
        std::thread::sleep(std::time::Duration::from_millis(3));
    });
    takt::lifecycle::app_main(takt_fault_app::registry(false, true, false))
}
