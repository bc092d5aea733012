//! Host weighers: hosts with more free RAM and disk come first, which
//! spreads servers over hosts (Nova's default, a multiplier of 1.0 each).

use super::HostState;

/// A weigher returns one raw value per host; the scheduler scales the
/// values to 0..=1 across the hosts and adds them up with the multiplier.
pub trait Weigher: Send + Sync {
    fn name(&self) -> &'static str;
    fn multiplier(&self) -> f64;
    fn raw_weight(&self, host: &HostState) -> f64;
}

/// Free memory in MiB: `(total - reserved) * ratio - used`.
pub struct RamWeigher;

impl Weigher for RamWeigher {
    fn name(&self) -> &'static str {
        "RAMWeigher"
    }

    fn multiplier(&self) -> f64 {
        1.0
    }

    fn raw_weight(&self, host: &HostState) -> f64 {
        host.free("MEMORY_MB") as f64
    }
}

/// Free disk in GB.
pub struct DiskWeigher;

impl Weigher for DiskWeigher {
    fn name(&self) -> &'static str {
        "DiskWeigher"
    }

    fn multiplier(&self) -> f64 {
        1.0
    }

    fn raw_weight(&self, host: &HostState) -> f64 {
        host.free("DISK_GB") as f64
    }
}

pub fn default_weighers() -> Vec<Box<dyn Weigher>> {
    vec![Box::new(RamWeigher), Box::new(DiskWeigher)]
}

/// Orders `hosts` best first: by the sum of the weighers' scaled weights,
/// then by host name so equal hosts come in a stable order.
pub fn order(hosts: Vec<HostState>, weighers: &[Box<dyn Weigher>]) -> Vec<HostState> {
    let mut totals = vec![0.0_f64; hosts.len()];
    for weigher in weighers {
        let raw: Vec<f64> = hosts.iter().map(|host| weigher.raw_weight(host)).collect();
        let min = raw.iter().copied().fold(f64::INFINITY, f64::min);
        let max = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = max - min;
        for (total, value) in totals.iter_mut().zip(&raw) {
            // Equal values carry no preference, so they add nothing.
            let scaled = if range > 0.0 {
                (value - min) / range
            } else {
                0.0
            };
            *total += weigher.multiplier() * scaled;
        }
    }
    let mut weighed: Vec<(f64, HostState)> = totals.into_iter().zip(hosts).collect();
    weighed.sort_by(|(a, host_a), (b, host_b)| {
        b.total_cmp(a)
            .then_with(|| host_a.node.host.cmp(&host_b.node.host))
    });
    weighed.into_iter().map(|(_, host)| host).collect()
}
