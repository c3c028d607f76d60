// Package jsonstr appends Go strings to byte slices as quoted JSON strings,
// without reflection or allocation: the builders of provider payloads
// (dispatch) and of event log lines (router) share it.
package jsonstr

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// Append appends s to dst as a quoted JSON string, escaped exactly as
// encoding/json.Marshal escapes it, and returns the extended slice: ", \
// and control characters (\n, \r, \t, \b, \f by name, the rest as \u00XX);
// <, > and & as \u003c, \u003e, \u0026; U+2028 and U+2029 as \u2028 and
// \u2029; each byte of invalid UTF-8 becomes \ufffd. The result is valid
// JSON, safe in HTML and in JavaScript source, whatever s holds.
func Append(dst []byte, s string) []byte {
	return appendQuoted(dst, s, true)
}

// AppendMinimal appends s to dst as a quoted JSON string escaping only ",
// \ and bytes below 0x20, the control characters always as \u00XX, and
// returns the extended slice. Every other byte is copied as it is: <, >,
// &, U+2028, U+2029 and invalid UTF-8 too, so the result is valid JSON
// only when s is valid UTF-8. The event log spells its lines this way; its
// fields are ASCII names, where Append gives the same bytes.
func AppendMinimal(dst []byte, s string) []byte {
	return appendQuoted(dst, s, false)
}

// appendQuoted is Append when marshal is true, AppendMinimal otherwise.
// Runs of bytes that need no escape are copied whole.
func appendQuoted(dst []byte, s string, marshal bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf || !marshal {
			if c >= 0x20 && c != '"' && c != '\\' && (!marshal || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case marshal && c == '\n':
				dst = append(dst, '\\', 'n')
			case marshal && c == '\r':
				dst = append(dst, '\\', 'r')
			case marshal && c == '\t':
				dst = append(dst, '\\', 't')
			case marshal && c == '\b':
				dst = append(dst, '\\', 'b')
			case marshal && c == '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
