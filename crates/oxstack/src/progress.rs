//! Start-up progress on the terminal: one line per step with its time, so
//! an operator can tell where a slow or failing start is.

use std::io::Write;
use std::time::Instant;

pub struct Progress {
    total: usize,
    done: usize,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress { total, done: 0 }
    }

    /// Runs one step, printing its name before and its time after.
    pub async fn step<T, F>(&mut self, name: &str, work: F) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = anyhow::Result<T>>,
    {
        self.done += 1;
        print!("[{}/{}] {name} ... ", self.done, self.total);
        let _ = std::io::stdout().flush();
        let started = Instant::now();
        let result = work.await;
        match &result {
            Ok(_) => println!("done ({} ms)", started.elapsed().as_millis()),
            Err(_) => println!("FAILED"),
        }
        result
    }
}
