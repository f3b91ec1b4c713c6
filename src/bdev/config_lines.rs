//! Where each config entry sits in the text: one pass over the JSON that
//! records, for every object of a `subsystems[i].config` array, the line of
//! its own `"method"` key (or of its opening brace when it has none).
//!
//! It is linear in the text (the line count is carried along, never
//! recounted from the start), and only keys of the entry object itself
//! count: a `"method"` key or string inside `params` does not shift the
//! numbering.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// 1-based line of every config entry, in document order (entry k of the
/// config, counted across subsystems, is element k). Meant for text that
/// parsed as JSON; on anything else it returns what it found so far.
pub(crate) fn entry_lines(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut lines = Vec::new();
    let mut stack: Vec<Container> = Vec::new();
    // Whether the object at each depth expects a key next.
    let mut want_key: Vec<bool> = Vec::new();
    let mut line = 1usize;
    let mut i = 0usize;
    // An entry is an object at depth 5: root {, "subsystems" [, {, "config" [, {.
    let entry_depth = |s: &[Container]| {
        s == [
            Container::Object,
            Container::Array,
            Container::Object,
            Container::Array,
        ]
    };
    let mut method_seen = false;
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'{' => {
                if entry_depth(&stack) {
                    lines.push(line);
                    method_seen = false;
                }
                stack.push(Container::Object);
                want_key.push(true);
            }
            b'[' => {
                stack.push(Container::Array);
                want_key.push(false);
            }
            b'}' | b']' => {
                stack.pop();
                want_key.pop();
            }
            b',' => {
                if let (Some(Container::Object), Some(w)) = (stack.last(), want_key.last_mut()) {
                    *w = true;
                }
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let is_key = stack.last() == Some(&Container::Object)
                    && want_key.last().copied().unwrap_or(false);
                if is_key {
                    if let Some(w) = want_key.last_mut() {
                        *w = false;
                    }
                    let in_entry = stack.len() == 5 && entry_depth(&stack[..4]);
                    if in_entry && !method_seen && &b[start..i.min(b.len())] == b"method" {
                        method_seen = true;
                        if let Some(l) = lines.last_mut() {
                            *l = line;
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::entry_lines;

    #[test]
    fn each_entry_gets_the_line_of_its_own_method_key() {
        let t = "{\"subsystems\":[{\"subsystem\":\"bdev\",\"config\":[\n{\"params\":{\"method\":\"x\"},\n\"method\":\"a\"},\n{\"method\":\"b\"}]}]}";
        assert_eq!(entry_lines(t), vec![3, 4]);
    }

    #[test]
    fn strings_with_braces_and_escaped_quotes_are_skipped() {
        let t = "{\"subsystems\":[{\"config\":[{\"method\":\"a\",\"params\":{\"name\":\"{[\\\"method\\\":\"}},\n{\"method\":\"b\"}]}]}";
        assert_eq!(entry_lines(t), vec![1, 2]);
    }

    #[test]
    fn an_entry_without_method_gets_the_line_of_its_brace() {
        let t = "{\"subsystems\":[{\"config\":[\n{\"params\":{}}]}]}";
        assert_eq!(entry_lines(t), vec![2]);
    }
}
