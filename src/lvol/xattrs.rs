//! SPDK's on-disk conventions of an lvstore (lib/lvol/lvol.c), kept byte
//! for byte so that a store made here loads in SPDK and one made by SPDK
//! loads here:
//!
//! - the blobstore's bstype is `LVOLSTORE`;
//! - the super blob carries the store's `uuid` (36 characters and a NUL)
//!   then its `name` (the name and a NUL);
//! - each lvol's blob carries `name` then `uuid`. A fresh lvol's `name`
//!   value is the whole 64-byte name buffer (the name, then NULs), as
//!   `spdk_lvol_create` stores it; a rename stores the name and one NUL.

use super::error::{LvolError, Result};
use crate::bdev::Uuid;

/// One xattr: name and value.
pub type Xattr = (String, Vec<u8>);

/// The blobstore type of an lvstore.
pub const BSTYPE: &[u8] = b"LVOLSTORE";
/// Longest lvstore name plus its NUL (`SPDK_LVS_NAME_MAX`).
pub const LVS_NAME_MAX: usize = 64;
/// Longest lvol name plus its NUL (`SPDK_LVOL_NAME_MAX`).
pub const LVOL_NAME_MAX: usize = 64;
/// The name xattr.
pub const NAME: &str = "name";
/// The UUID xattr.
pub const UUID: &str = "uuid";

/// The bstype field of the super block: `LVOLSTORE`, NUL-padded to 16 bytes.
pub fn bstype() -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..BSTYPE.len()].copy_from_slice(BSTYPE);
    b
}

/// Checks a name against SPDK's limit: 1 to `max - 1` bytes, no NUL.
pub fn check_name(what: &'static str, name: &str, max: usize) -> Result<()> {
    if name.is_empty() || name.len() >= max || name.contains('\0') {
        return Err(LvolError::BadName {
            what,
            name: name.to_string(),
            max: max - 1,
        });
    }
    Ok(())
}

/// A UUID as SPDK stores it: lowercase text and a NUL (37 bytes).
pub fn uuid_value(u: &Uuid) -> Vec<u8> {
    let mut v = u.to_string().into_bytes();
    v.push(0);
    v
}

/// A name and one NUL (the store's name; an lvol's after a rename).
pub fn name_value(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

/// A new lvol's name: the 64-byte buffer SPDK writes at create.
pub fn lvol_create_name_value(name: &str) -> Vec<u8> {
    let mut v = vec![0u8; LVOL_NAME_MAX];
    v[..name.len()].copy_from_slice(name.as_bytes());
    v
}

/// The xattrs of a new lvol, in SPDK's order.
pub fn lvol_xattrs(name: &str, uuid: &Uuid) -> Vec<Xattr> {
    vec![
        (NAME.to_string(), lvol_create_name_value(name)),
        (UUID.to_string(), uuid_value(uuid)),
    ]
}

/// Reads a UUID xattr: exactly 37 bytes, NUL last, parseable (as
/// `lvs_read_uuid` checks). `None` when missing or malformed.
pub fn parse_uuid(v: Option<&[u8]>) -> Option<Uuid> {
    let v = v?;
    if v.len() != 37 || v[36] != 0 {
        return None;
    }
    Uuid::parse(std::str::from_utf8(&v[..36]).ok()?)
}

/// Reads a name xattr: at most `max` bytes, the text up to the first NUL
/// (SPDK copies it with `snprintf("%s")`). `None` when missing, too long,
/// empty or not UTF-8.
pub fn parse_name(v: Option<&[u8]>, max: usize) -> Option<String> {
    let v = v?;
    if v.len() > max {
        return None;
    }
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    let s = std::str::from_utf8(&v[..end]).ok()?;
    if s.is_empty() || s.len() >= max {
        return None;
    }
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_lvol_name_fills_spdk_s_64_byte_buffer_and_a_rename_does_not() {
        let v = lvol_create_name_value("thick0");
        assert_eq!(v.len(), 64);
        assert_eq!(&v[..7], b"thick0\0");
        assert!(v[6..].iter().all(|&b| b == 0));
        assert_eq!(name_value("renamed0"), b"renamed0\0");
        assert_eq!(
            parse_name(Some(&v), LVOL_NAME_MAX).as_deref(),
            Some("thick0")
        );
    }

    #[test]
    fn a_uuid_xattr_is_37_bytes_ending_in_nul_or_it_is_refused() {
        let u = Uuid::parse("dfa3fb27-193b-476d-be4a-2582fdb2e900").unwrap();
        let v = uuid_value(&u);
        assert_eq!(v.len(), 37);
        assert_eq!(parse_uuid(Some(&v)), Some(u));
        assert_eq!(parse_uuid(Some(&v[..36])), None);
        let mut bad = v.clone();
        bad[3] = b'z';
        assert_eq!(parse_uuid(Some(&bad)), None);
        assert_eq!(parse_uuid(None), None);
    }

    #[test]
    fn names_must_be_1_to_63_bytes() {
        assert!(check_name("lvol", "a", LVOL_NAME_MAX).is_ok());
        assert!(check_name("lvol", "", LVOL_NAME_MAX).is_err());
        assert!(check_name("lvol", &"x".repeat(64), LVOL_NAME_MAX).is_err());
        assert!(check_name("lvol", &"x".repeat(63), LVOL_NAME_MAX).is_ok());
        assert_eq!(parse_name(Some(&[b'x'; 65]), LVOL_NAME_MAX), None);
    }

    #[test]
    fn the_bstype_is_lvolstore_nul_padded() {
        assert_eq!(&bstype(), b"LVOLSTORE\0\0\0\0\0\0\0");
    }
}
