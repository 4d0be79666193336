//! A strict JSON reader for the review path: it reads the few fields Vigil needs straight from the text and
//! skips the rest with a byte scan, where serde_json's typed decode spends most of a review's time.
//!
//! It is a fast path only. It gives up ([`Bail`]) on anything it does not read exactly as serde_json would:
//! a syntax error, a type it was not asked for, a duplicate field, a surrogate escape, a number it cannot
//! hold, deep nesting. The caller then decodes the same text with serde, which either accepts it or names
//! the error. So this reader never needs an error message, and it must never accept what serde would
//! refuse: `admission::decoders_agree` and tests/decoders.rs hold the two to the same answers.
//!
//! The same sixteen-bytes-at-a-time scan for the end of a string's plain run also serves the way out:
//! [`quote_into`] writes the response's strings as serde_json would escape them.

use std::borrow::Cow;

use wide::u8x16;

/// The reader gave up; decode with serde instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

pub(crate) type Read<T> = Result<T, Bail>;

/// Nesting beyond this gives up (serde_json refuses beyond 128).
const MAX_DEPTH: u32 = 100;

/// Bytes that end the plain run of a string: the quote, the backslash and the control characters.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Reader {
            text,
            pos: 0,
            depth: 0,
        }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        match self.bytes().get(self.pos) {
            Some(b' ' | b'\n' | b'\r' | b'\t') => self.whitespace(),
            next => next.copied(),
        }
    }

    /// Passes a run of whitespace (indentation, in pretty-printed JSON), sixteen bytes at a time; returns
    /// the byte after it. Kept out of line: compact JSON, which the API server sends, never gets here.
    #[inline(never)]
    fn whitespace(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        // Most runs are the one space after a colon.
        self.pos += 1;
        match bytes.get(self.pos) {
            Some(b' ' | b'\n' | b'\r' | b'\t') => {}
            next => return next.copied(),
        }
        let (space, newline) = (u8x16::splat(b' '), u8x16::splat(b'\n'));
        let (tab, cr) = (u8x16::splat(b'\t'), u8x16::splat(b'\r'));
        while let Some(chunk) = bytes.get(self.pos..self.pos + 16) {
            let v = u8x16::from(<[u8; 16]>::try_from(chunk).expect("sixteen bytes"));
            let blank = v.simd_eq(space) | v.simd_eq(newline) | v.simd_eq(tab) | v.simd_eq(cr);
            let other = !blank.to_bitmask() & 0xffff;
            if other != 0 {
                self.pos += other.trailing_zeros() as usize;
                return Some(bytes[self.pos]);
            }
            self.pos += 16;
        }
        while let Some(&b) = bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Read<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Read<()> {
        if self.bytes()[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Only whitespace is left.
    pub(crate) fn end(mut self) -> Read<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Bail),
        }
    }

    /// Consumes a `null` if that is what comes next.
    #[inline]
    pub(crate) fn null(&mut self) -> Read<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    pub(crate) fn bool(&mut self) -> Read<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|_| true),
            Some(b'f') => self.literal(b"false").map(|_| false),
            _ => Err(Bail),
        }
    }

    /// An integer written without fraction or exponent that fits `T`. serde_json reads `-0`, fractions and
    /// exponents as floating point, which an integer field refuses, so they give up here.
    pub(crate) fn int<T: TryFrom<i64>>(&mut self) -> Read<T> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let bytes = self.bytes();
        let start = self.pos;
        let mut value: i64 = 0;
        while let Some(&b) = bytes.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(b - b'0')))
                .ok_or(Bail)?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        let leading_zero = digits > 1 && bytes[start] == b'0';
        let float = matches!(bytes.get(self.pos), Some(b'.' | b'e' | b'E'));
        if digits == 0 || leading_zero || float || (negative && value == 0) {
            return Err(Bail);
        }
        T::try_from(if negative { -value } else { value }).map_err(|_| Bail)
    }

    /// A string: borrowed from the text when it has no escapes, decoded otherwise.
    #[inline]
    pub(crate) fn str(&mut self) -> Read<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = self.plain_run();
        match self.bytes().get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                Ok(Cow::Borrowed(&self.text[start..end]))
            }
            Some(b'\\') => self.escaped(start, end).map(Cow::Owned),
            _ => Err(Bail),
        }
    }

    /// A key and its colon.
    #[inline]
    fn key(&mut self) -> Read<Cow<'a, str>> {
        let key = self.str()?;
        self.eat(b':')?;
        Ok(key)
    }

    /// A key and its colon, not kept.
    #[inline]
    fn skip_key(&mut self) -> Read<()> {
        self.skip_str()?;
        self.eat(b':')
    }

    /// Where the run of plain string bytes from the current position ends.
    #[inline]
    fn plain_run(&self) -> usize {
        plain_run(self.bytes(), self.pos)
    }

    /// The rest of a string that has escapes, from `start` (just after the opening quote); `at` is the
    /// first backslash.
    fn escaped(&mut self, start: usize, mut at: usize) -> Read<String> {
        let mut out = String::with_capacity(at - start + 16);
        let mut from = start;
        loop {
            out.push_str(&self.text[from..at]);
            match self.bytes().get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let (c, len) = self.escape(at)?;
                    out.push(c);
                    at += len;
                }
                _ => return Err(Bail),
            }
            from = at;
            self.pos = at;
            at = self.plain_run();
        }
    }

    /// The escape at `at` (a backslash): the character and the escape's length. Surrogates give up.
    fn escape(&self, at: usize) -> Read<(char, usize)> {
        let c = match self.bytes().get(at + 1).ok_or(Bail)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = self.bytes().get(at + 2..at + 6).ok_or(Bail)?;
                let mut code = 0u32;
                for &h in hex {
                    code = code * 16 + char::from(h).to_digit(16).ok_or(Bail)?;
                }
                return char::from_u32(code).map(|c| (c, 6)).ok_or(Bail);
            }
            _ => return Err(Bail),
        };
        Ok((c, 2))
    }

    #[inline]
    fn skip_str(&mut self) -> Read<()> {
        self.eat(b'"')?;
        self.skip_str_rest()
    }

    /// The rest of a string, after its opening quote.
    #[inline]
    fn skip_str_rest(&mut self) -> Read<()> {
        loop {
            let at = self.plain_run();
            match self.bytes().get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(());
                }
                Some(b'\\') => self.pos = at + self.escape(at)?.1,
                _ => return Err(Bail),
            }
        }
    }

    /// A number, by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn skip_number(&mut self) -> Read<()> {
        let bytes = self.bytes();
        let digits = |pos: &mut usize| {
            let start = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos - start
        };
        let mut pos = self.pos;
        if bytes.get(pos) == Some(&b'-') {
            pos += 1;
        }
        let first = pos;
        let n = digits(&mut pos);
        if n == 0 || (n > 1 && bytes[first] == b'0') {
            return Err(Bail);
        }
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            if digits(&mut pos) == 0 {
                return Err(Bail);
            }
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            if digits(&mut pos) == 0 {
                return Err(Bail);
            }
        }
        self.pos = pos;
        Ok(())
    }

    /// Skips one value of any type, checking its syntax. Iterative, so that nesting costs no stack.
    pub(crate) fn skip(&mut self) -> Read<()> {
        // One bit per open container, set for an object.
        let mut open: u128 = 0;
        let mut depth = 0u32;
        loop {
            // A value.
            match self.peek().ok_or(Bail)? {
                c @ (b'{' | b'[') => {
                    self.pos += 1;
                    depth += 1;
                    if self.depth + depth > MAX_DEPTH {
                        return Err(Bail);
                    }
                    let object = c == b'{';
                    open = open << 1 | u128::from(object);
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        open >>= 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.pos += 1;
                    self.skip_str_rest()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return Err(Bail),
            }
            // After a value: close what ends here, then go on to the next item.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let object = open & 1 == 1;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => return Err(Bail),
                }
                self.pos += 1;
                open >>= 1;
                depth -= 1;
            }
        }
    }

    /// Skips one value and returns its text.
    pub(crate) fn raw(&mut self) -> Read<&'a str> {
        self.peek();
        let start = self.pos;
        self.skip()?;
        Ok(&self.text[start..self.pos])
    }

    fn enter(&mut self) -> Read<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Bail);
        }
        Ok(())
    }

    /// An object: `field` reads (or skips) the value of each key.
    #[inline]
    pub(crate) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &str) -> Read<()>,
    ) -> Read<()> {
        self.items(b'{', b'}', |r| {
            let key = r.key()?;
            field(r, &key)
        })
    }

    /// An array: `item` reads each item.
    #[inline]
    pub(crate) fn array(&mut self, item: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        self.items(b'[', b']', item)
    }

    /// The items of an object or an array, between `open` and `close`, separated by commas.
    #[inline]
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Read<()>,
    ) -> Read<()> {
        self.eat(open)?;
        self.enter()?;
        if self.peek() == Some(close) {
            self.pos += 1;
        } else {
            loop {
                item(self)?;
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b) if b == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Bail),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }
}

/// Where the run of plain string bytes (not a quote, a backslash or a control character) from `from` ends:
/// sixteen bytes at a time, the rest byte by byte.
#[inline]
fn plain_run(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    let quote = u8x16::splat(b'"');
    let backslash = u8x16::splat(b'\\');
    let control = u8x16::splat(0x1f);
    while let Some(chunk) = bytes.get(i..i + 16) {
        let v = u8x16::from(<[u8; 16]>::try_from(chunk).expect("sixteen bytes"));
        let stop = v.simd_eq(quote) | v.simd_eq(backslash) | v.min(control).simd_eq(v);
        let mask = stop.to_bitmask();
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    while let Some(&b) = bytes.get(i) {
        if STRING_STOP[usize::from(b)] {
            break;
        }
        i += 1;
    }
    i
}

/// Appends `text` as a JSON string literal, quotes included, escaped byte for byte as serde_json escapes it;
/// a run of plain bytes is copied at once rather than looked at one byte at a time.
pub(crate) fn quote_into(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    out.push('"');
    let mut from = 0;
    loop {
        let at = plain_run(bytes, from);
        out.push_str(&text[from..at]);
        let Some(&b) = bytes.get(at) else { break };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        from = at + 1;
    }
    out.push('"');
}

/// `None` for `null`, else what `read` reads: serde's `Option`.
#[inline]
pub(crate) fn opt<'a, T>(
    r: &mut Reader<'a>,
    read: impl FnOnce(&mut Reader<'a>) -> Read<T>,
) -> Read<Option<T>> {
    if r.null()? {
        Ok(None)
    } else {
        read(r).map(Some)
    }
}

/// A list, `null` read as empty (Go's decoder, and Vigil's `nullable`).
pub(crate) fn list<'a, T>(
    r: &mut Reader<'a>,
    mut read: impl FnMut(&mut Reader<'a>) -> Read<T>,
) -> Read<Vec<T>> {
    let mut items = Vec::new();
    if !r.null()? {
        r.array(|r| {
            items.push(read(r)?);
            Ok(())
        })?;
    }
    Ok(items)
}

/// An owned string.
pub(crate) fn string(r: &mut Reader<'_>) -> Read<String> {
    r.str().map(Cow::into_owned)
}

/// Reads an object's fields by name: each named field at most once (serde's derived decoders refuse a
/// duplicate), any other key skipped. `$r` names the reader inside the arms.
macro_rules! fields {
    ($r:ident, { $($name:literal => $read:expr,)* }) => {{
        let mut seen: u64 = 0;
        $r.object(|$r, key| {
            let mut bit: u64 = 1;
            $(
                if key == $name {
                    if seen & bit != 0 {
                        return Err($crate::json::Bail);
                    }
                    seen |= bit;
                    $read;
                    return Ok(());
                }
                bit <<= 1;
            )*
            let _ = bit;
            $r.skip()
        })
    }};
}
pub(crate) use fields;

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut r = Reader::new(text);
        r.skip().is_ok() && r.end().is_ok()
    }

    #[test]
    fn skip_accepts_exactly_what_serde_json_accepts() {
        let cases = [
            "{}",
            "[]",
            r#"{"a":[1,-2.5e+3,true,false,null,"x\"\\\/\b\f\n\r\t\u00e9"],"b":{}}"#,
            " [ 1 , { \"k\" : [ ] } ] ",
            "0",
            "-0.0",
            "1E9",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[-]",
            "\"a\u{1}b\"",
            "\"\\x\"",
            "\"\\u12g4\"",
            "[tru]",
            "[nul]",
            "{1:2}",
            "[1}",
            "{\"a\":1]",
            "[1] x",
            "",
            "[",
            "\"abc",
            "\"é\"",
        ];
        for case in cases {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(case).is_ok();
            let ours = skips(case);
            // Ours may give up where serde accepts (the caller then asks serde); never the reverse.
            assert!(
                !ours || serde,
                "{case:?}: accepted here, refused by serde_json"
            );
            assert_eq!(ours, serde, "{case:?}");
        }
    }

    #[test]
    fn a_plain_run_stops_at_the_first_quote_backslash_or_control_character() {
        for filler in ["a", "é", "\u{7f}", " ", "~"] {
            for stop in ['"', '\\', '\u{0}', '\u{1f}', '\n'] {
                for at in 0..50 {
                    let text: String = filler.repeat(at) + &stop.to_string() + &"\"".repeat(9);
                    let expected = filler.len() * at;
                    assert_eq!(Reader::new(&text).plain_run(), expected, "{text:?}");
                }
            }
            let plain = filler.repeat(49);
            assert_eq!(Reader::new(&plain).plain_run(), plain.len());
        }
    }

    #[test]
    fn whitespace_runs_of_any_length_and_mix_are_passed() {
        for blank in [" ", "\n", "\t", "\r", "\r\n  ", "\n\t "] {
            for n in 0..40 {
                let run = blank.repeat(n);
                let text = format!("{run}7{run}");
                let mut r = Reader::new(&text);
                assert_eq!(r.peek(), Some(b'7'), "{run:?}");
                assert_eq!(r.pos, run.len());
                r.pos += 1;
                assert_eq!(r.peek(), None, "{run:?}");
                assert_eq!(r.pos, 2 * run.len() + 1);
            }
        }
        // A byte that only looks blank to a careless mask stops the run.
        for stop in ["\u{b}", "\u{c}", "\u{0}", "\u{a0}", "x"] {
            let text = " ".repeat(21) + stop;
            assert_eq!(
                Reader::new(&text).peek(),
                Some(stop.as_bytes()[0]),
                "{stop:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_gives_up_without_recursion() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(Reader::new(&deep).skip(), Err(Bail));
        let fine = "[".repeat(50) + &"]".repeat(50);
        assert!(skips(&fine));
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let mut r = Reader::new(r#" "plain" "a\nb\u00e9\"" "#);
        assert!(matches!(r.str(), Ok(Cow::Borrowed("plain"))));
        assert_eq!(r.str().unwrap(), "a\nbé\"");
        assert_eq!(Reader::new(r#""\ud83d\ude00""#).str(), Err(Bail));
    }

    #[test]
    fn integers_are_read_as_serde_reads_an_integer_field() {
        let int = |s: &str| Reader::new(s).int::<i32>();
        assert_eq!(int("42"), Ok(42));
        assert_eq!(int("-7"), Ok(-7));
        assert_eq!(int("0"), Ok(0));
        for refused in [
            "-0",
            "1.0",
            "1e2",
            "01",
            "2147483648",
            "-",
            "x",
            "99999999999999999999",
        ] {
            assert_eq!(int(refused), Err(Bail), "{refused}");
            assert!(serde_json::from_str::<i32>(refused).is_err(), "{refused}");
        }
    }
}
