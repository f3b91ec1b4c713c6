//! [`ErrorSource`]: a lower layer's error kept, not flattened into text,
//! as the source of a [`BdevError`](super::BdevError) — shared behind an
//! `Arc` so the bdev error stays `Clone` and comparable.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The error underneath a [`BdevError`](super::BdevError): an
/// `std::io::Error`, an NVMe or thread-layer error, or a message, with the
/// errno SPDK's methods answer with when there is one.
/// Two are equal when they show the same text and errno.
#[derive(Clone)]
pub struct ErrorSource {
    inner: Arc<dyn Error + Send + Sync>,
    errno: Option<i32>,
}

/// A plain message as an error (for a cause with no error value of its own).
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

impl ErrorSource {
    /// Keeps `e` (its errno, if any, is found in its chain).
    pub fn new(e: impl Error + Send + Sync + 'static) -> ErrorSource {
        ErrorSource {
            inner: Arc::new(e),
            errno: None,
        }
    }

    /// Keeps `e` and the errno it stands for (shown after it).
    pub fn with_errno(e: impl Error + Send + Sync + 'static, errno: i32) -> ErrorSource {
        ErrorSource {
            inner: Arc::new(e),
            errno: Some(errno),
        }
    }

    /// A cause that is only a message, standing for `errno`.
    pub fn message(msg: impl Into<String>, errno: i32) -> ErrorSource {
        ErrorSource::with_errno(Message(msg.into()), errno)
    }

    /// The errno: the one given, else an `std::io::Error`'s in the chain.
    pub fn errno(&self) -> Option<i32> {
        if self.errno.is_some() {
            return self.errno;
        }
        let mut cur: Option<&(dyn Error + 'static)> = Some(&*self.inner);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return io.raw_os_error();
            }
            cur = e.source();
        }
        None
    }

    /// The error kept.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.inner
    }
}

impl From<std::io::Error> for ErrorSource {
    fn from(e: std::io::Error) -> Self {
        ErrorSource::new(e)
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)?;
        match self.errno {
            Some(n) => write!(f, " (os error {n})"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.inner)?;
        if let Some(n) = self.errno {
            write!(f, " (errno {n})")?;
        }
        Ok(())
    }
}

impl Error for ErrorSource {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.inner.source()
    }
}

impl PartialEq for ErrorSource {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &o.inner)
            || (self.errno == o.errno && self.inner.to_string() == o.inner.to_string())
    }
}

impl Eq for ErrorSource {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_keeps_its_errno_and_its_place_in_the_chain() {
        let s = ErrorSource::from(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(s.errno(), Some(libc::ENOENT));
        assert!(s.get().downcast_ref::<std::io::Error>().is_some());
        let m = ErrorSource::message("busy", libc::EBUSY);
        assert_eq!(m.errno(), Some(libc::EBUSY));
        assert_eq!(m.to_string(), format!("busy (os error {})", libc::EBUSY));
        assert_eq!(m.clone(), m);
        assert_ne!(m, ErrorSource::message("busy", libc::EAGAIN));
    }
}
