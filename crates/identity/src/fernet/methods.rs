//! Authentication methods as the integer bitmask Keystone stores in tokens
//! (keystone/auth/plugins/core.py, `convert_method_list_to_integer`). Bit `i` is the
//! `i`-th entry of `[auth] methods` in keystone.conf.

use super::errors::{EncodeError, PayloadError};

/// Keystone's default `[auth] methods` (keystone/conf/constants.py,
/// `_DEFAULT_AUTH_METHODS`), in bit order: external is 1, password 2,
/// token 4, oauth1 8, mapped 16, application_credential 32.
pub const KEYSTONE_AUTH_METHODS: [&str; 6] = [
    "external",
    "password",
    "token",
    "oauth1",
    "mapped",
    "application_credential",
];

/// Encodes method names as a bitmask. Keystone silently drops names it does
/// not know, so its token would not record how the user authenticated. This
/// function rejects them instead.
pub(super) fn methods_to_bitmask(methods: &[String]) -> Result<u64, EncodeError> {
    let mut bitmask = 0;
    for method in methods {
        let bit = KEYSTONE_AUTH_METHODS
            .iter()
            .position(|known| known == method)
            .ok_or_else(|| EncodeError::UnknownMethod(method.clone()))?;
        bitmask |= 1 << bit;
    }
    Ok(bitmask)
}

/// Decodes a bitmask, highest bit first, which is the order Keystone's
/// `convert_integer_to_method_list` returns (a rescoped password token
/// lists `["token", "password"]`).
pub(super) fn bitmask_to_methods(bitmask: u64) -> Result<Vec<String>, PayloadError> {
    let known_bits = (1u64 << KEYSTONE_AUTH_METHODS.len()) - 1;
    if bitmask & !known_bits != 0 {
        return Err(PayloadError::UnknownMethodBits(bitmask));
    }
    let methods = KEYSTONE_AUTH_METHODS
        .iter()
        .enumerate()
        .rev()
        .filter(|(bit, _)| bitmask & (1 << bit) != 0)
        .map(|(_, method)| (*method).to_owned())
        .collect();
    Ok(methods)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(methods: &[&str]) -> Vec<String> {
        methods.iter().map(|method| (*method).to_owned()).collect()
    }

    #[test]
    fn each_method_has_keystone_bit() {
        let expected = [
            ("external", 1),
            ("password", 2),
            ("token", 4),
            ("oauth1", 8),
            ("mapped", 16),
            ("application_credential", 32),
        ];
        for (method, bit) in expected {
            assert_eq!(
                methods_to_bitmask(&names(&[method])),
                Ok(bit),
                "method {method}"
            );
        }
    }

    #[test]
    fn methods_combine_into_one_bitmask() {
        assert_eq!(methods_to_bitmask(&names(&["password", "token"])), Ok(6));
        assert_eq!(methods_to_bitmask(&names(&["password", "password"])), Ok(2));
        assert_eq!(methods_to_bitmask(&[]), Ok(0));
    }

    #[test]
    fn unknown_method_is_rejected() {
        let result = methods_to_bitmask(&names(&["password", "totp"]));
        assert_eq!(result, Err(EncodeError::UnknownMethod("totp".to_owned())));
    }

    #[test]
    fn bitmask_decodes_highest_bit_first() {
        assert_eq!(bitmask_to_methods(6), Ok(names(&["token", "password"])));
        assert_eq!(bitmask_to_methods(2), Ok(names(&["password"])));
        assert_eq!(bitmask_to_methods(0), Ok(Vec::new()));
        assert_eq!(bitmask_to_methods(63).map(|methods| methods.len()), Ok(6));
    }

    #[test]
    fn bitmask_with_unknown_bits_is_rejected() {
        assert_eq!(
            bitmask_to_methods(64),
            Err(PayloadError::UnknownMethodBits(64))
        );
        assert_eq!(
            bitmask_to_methods(u64::MAX),
            Err(PayloadError::UnknownMethodBits(u64::MAX))
        );
    }
}
