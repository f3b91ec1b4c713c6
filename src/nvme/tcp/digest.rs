//! Header and data digests: CRC32C (Castagnoli) as NVMe/TCP defines them,
//! sent little endian.

/// CRC32C of `bytes` (initial value all ones, final XOR all ones).
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Extends a CRC32C computed over earlier bytes with `bytes` (a data
/// digest over data that arrives in pieces).
#[inline]
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, bytes)
}

/// The data digest of `data` as its 4 wire bytes.
pub fn data_digest(data: &[u8]) -> [u8; 4] {
    crc32c(data).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of the ASCII digits 1..9 (RFC 3720, B.4).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c_append(crc32c(b"1234"), b"56789"), 0xe306_9283);
        // 32 bytes of zeros (RFC 3720 B.4 test vector).
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    }
}
