//! Finding where each JSON value ends in the unframed byte stream a client
//! sends: values are concatenated with or without whitespace between them
//! (Go clients pretty-print with tabs, rpc.py indents, others append a
//! newline), and one may arrive over many reads.
//!
//! The scan keeps its place between reads, so a large request that trickles
//! in is looked at once, not re-parsed from its start on every read; each
//! complete value is then handed whole to serde_json, which is the judge of
//! its validity (a mismatched bracket or a bad token there is a parse error).

/// The scanner's state between reads.
#[derive(Debug, Default)]
pub(crate) struct Framer {
    /// Next byte to look at.
    pos: usize,
    /// Where the value being scanned starts.
    start: Option<usize>,
    depth: u32,
    in_str: bool,
    esc: bool,
    /// A bare top-level scalar (number, literal, junk): ends at a delimiter.
    scalar: bool,
}

fn ends_scalar(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'{' | b'}' | b'[' | b']' | b'"' | b',' | b':')
}

impl Framer {
    /// Looks at `buf` from where the last call stopped; returns the range of
    /// the first complete value, or `None` if more bytes are needed.
    pub(crate) fn next(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        while self.pos < buf.len() {
            let b = buf[self.pos];
            let Some(start) = self.start else {
                if !b.is_ascii_whitespace() {
                    self.start = Some(self.pos);
                    match b {
                        b'{' | b'[' => self.depth = 1,
                        b'"' => self.in_str = true,
                        _ => self.scalar = true,
                    }
                }
                self.pos += 1;
                continue;
            };
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                    if self.depth == 0 {
                        return Some(self.complete(start, self.pos + 1));
                    }
                }
            } else if self.scalar {
                if ends_scalar(b) {
                    return Some(self.complete(start, self.pos));
                }
            } else {
                match b {
                    b'"' => self.in_str = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return Some(self.complete(start, self.pos + 1));
                        }
                    }
                    _ => {}
                }
            }
            self.pos += 1;
        }
        None
    }

    fn complete(&mut self, start: usize, end: usize) -> (usize, usize) {
        *self = Framer {
            pos: end,
            ..Framer::default()
        };
        (start, end)
    }

    /// The caller removed the first `n` bytes of its buffer (all before the
    /// value being scanned): shift the positions.
    pub(crate) fn consumed(&mut self, n: usize) {
        self.pos -= n.min(self.pos);
        if let Some(s) = self.start.as_mut() {
            *s -= n.min(*s);
        }
    }

    /// Bytes of the value being scanned so far (0 between values).
    pub(crate) fn pending_len(&self) -> usize {
        self.start.map_or(0, |s| self.pos - s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&str]) -> Vec<String> {
        let mut f = Framer::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c.as_bytes());
            while let Some((s, e)) = f.next(&buf) {
                out.push(String::from_utf8(buf[s..e].to_vec()).unwrap());
                buf.drain(..e);
                f.consumed(e);
            }
        }
        out
    }

    #[test]
    fn concatenated_values_are_split_with_or_without_whitespace_between_them() {
        assert_eq!(
            frames(&["{\"a\":1}{\"b\":[1,{}]}\n\t{\"c\":\"}\"}  [1]"]),
            vec!["{\"a\":1}", "{\"b\":[1,{}]}", "{\"c\":\"}\"}", "[1]"]
        );
    }

    #[test]
    fn a_value_split_across_reads_is_found_once_whole() {
        assert_eq!(
            frames(&["{\"method\":\"x\\\"", "}\", \"id\"", ":1", "}"]),
            vec!["{\"method\":\"x\\\"}\", \"id\":1}"]
        );
        assert!(frames(&["{\"a\":[1,2"]).is_empty());
    }

    #[test]
    fn a_bare_scalar_ends_at_a_delimiter_and_a_mismatched_bracket_still_closes_a_value() {
        assert_eq!(frames(&["junk {}"]), vec!["junk", "{}"]);
        assert_eq!(frames(&["{]"]), vec!["{]"]);
    }
}
