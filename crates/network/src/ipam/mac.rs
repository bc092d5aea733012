//! MAC addresses for ports, under the prefix Neutron uses by default.

use rand::Rng;

/// Neutron's default `base_mac` prefix (`fa:16:3e:00:00:00`, the first three
/// octets kept): locally administered, unicast.
pub const MAC_PREFIX: &str = "fa:16:3e";

/// Returns a random MAC address under `MAC_PREFIX`. Uniqueness on a network
/// is enforced by the database; callers retry on a collision.
pub fn generate_mac(rng: &mut impl Rng) -> String {
    let [a, b, c]: [u8; 3] = rng.gen();
    format!("{MAC_PREFIX}:{a:02x}:{b:02x}:{c:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_has_prefix_and_shape() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let mac = generate_mac(&mut rng);
            assert!(mac.starts_with("fa:16:3e:"), "{mac}");
            assert_eq!(mac.len(), 17, "{mac}");
            assert!(
                mac.split(':')
                    .all(|octet| octet.len() == 2 && u8::from_str_radix(octet, 16).is_ok()),
                "{mac}"
            );
        }
    }

    #[test]
    fn macs_differ() {
        let mut rng = rand::thread_rng();
        let macs: std::collections::HashSet<String> =
            (0..50).map(|_| generate_mac(&mut rng)).collect();
        assert!(macs.len() > 45, "too many repeats: {}", macs.len());
    }
}
