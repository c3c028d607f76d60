package router

import (
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON scanner for the send body: the relay's hot path. It reads
// members as byte slices without reflection or allocation. A string without
// escapes is returned as a sub-slice of the input; one with escapes is
// unescaped into the caller's scratch buffer. Slices are valid only while
// the input and the scratch buffer are (for a request: until the handler
// returns).

// scanError says where the input stopped being JSON.
type scanError struct {
	offset int
	what   string
}

func (e *scanError) Error() string { return e.what }

// maxDepth bounds nesting, so that a hostile body cannot recurse deeply.
const maxDepth = 32

// scanner walks one JSON text.
type scanner struct {
	data    []byte
	pos     int
	scratch []byte // unescaped strings are appended here
	err     *scanError
}

func (s *scanner) fail(what string) {
	if s.err == nil {
		s.err = &scanError{offset: s.pos, what: what}
	}
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// object calls member for each key of the object at the current position;
// member must consume the value (with one of the value methods).
func (s *scanner) object(depth int, member func(key []byte)) {
	if s.peek() != '{' {
		s.fail("want an object")
		return
	}
	if depth > maxDepth {
		s.fail("nested too deeply")
		return
	}
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return
	}
	for s.err == nil {
		if s.peek() != '"' {
			s.fail("want a member name")
			return
		}
		key := s.str()
		if s.peek() != ':' {
			s.fail("want ':' after a member name")
			return
		}
		s.pos++
		member(key)
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return
		default:
			s.fail("want ',' or '}' after a member")
			return
		}
	}
}

// kind tells the type of the value at the current position.
func (s *scanner) kind() byte {
	switch c := s.peek(); c {
	case '"', '{', '[', 't', 'f', 'n':
		return c
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return '0'
	default:
		return 0
	}
}

// str consumes a string and returns its unescaped bytes. The string must
// start at the current position.
func (s *scanner) str() []byte {
	s.pos++ // opening quote
	start := s.pos
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			v := s.data[start:s.pos]
			s.pos++
			if !utf8.Valid(v) {
				s.fail("string is not valid UTF-8")
			}
			return v
		case c == '\\':
			return s.escapedStr(start)
		case c < 0x20:
			s.fail("control character in a string")
			return nil
		default:
			s.pos++
		}
	}
	s.fail("unterminated string")
	return nil
}

// escapedStr continues str once a backslash is seen: it copies into scratch.
func (s *scanner) escapedStr(start int) []byte {
	out := len(s.scratch)
	s.scratch = append(s.scratch, s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			v := s.scratch[out:]
			if !utf8.Valid(v) {
				s.fail("string is not valid UTF-8")
			}
			return v
		case c < 0x20:
			s.fail("control character in a string")
			return nil
		case c != '\\':
			s.scratch = append(s.scratch, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.data) {
			break
		}
		e := s.data[s.pos+1]
		s.pos += 2
		switch e {
		case '"', '\\', '/':
			s.scratch = append(s.scratch, e)
		case 'b':
			s.scratch = append(s.scratch, '\b')
		case 'f':
			s.scratch = append(s.scratch, '\f')
		case 'n':
			s.scratch = append(s.scratch, '\n')
		case 'r':
			s.scratch = append(s.scratch, '\r')
		case 't':
			s.scratch = append(s.scratch, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				s.fail("bad \\u escape")
				return nil
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					s.pos += 2
					if r2, ok = s.hex4(); !ok {
						s.fail("bad \\u escape")
						return nil
					}
				}
				r = utf16.DecodeRune(r, r2) // U+FFFD when unpaired, as encoding/json does
			}
			s.scratch = utf8.AppendRune(s.scratch, r)
		default:
			s.fail("bad escape in a string")
			return nil
		}
	}
	s.fail("unterminated string")
	return nil
}

func (s *scanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.pos += 4
	return r, true
}

// number consumes a JSON number and returns its text.
func (s *scanner) number() []byte {
	start := s.pos
	d := s.data
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		s.fail("bad number")
		return nil
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if !s.digits() {
			return nil
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return nil
		}
	}
	return d[start:s.pos]
}

func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	if s.pos == start {
		s.fail("bad number")
		return false
	}
	return true
}

func (s *scanner) literal(word string) {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		s.fail("bad literal")
		return
	}
	s.pos += len(word)
}

// skip consumes any value, checking that it is well-formed.
func (s *scanner) skip(depth int) {
	switch s.kind() {
	case '"':
		mark := len(s.scratch)
		s.str()
		s.scratch = s.scratch[:mark]
	case '0':
		s.number()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	case '{':
		s.object(depth+1, func([]byte) { s.skip(depth + 1) })
	case '[':
		if depth > maxDepth {
			s.fail("nested too deeply")
			return
		}
		s.pos++
		if s.peek() == ']' {
			s.pos++
			return
		}
		for s.err == nil {
			s.skip(depth + 1)
			switch s.peek() {
			case ',':
				s.pos++
			case ']':
				s.pos++
				return
			default:
				s.fail("want ',' or ']' in an array")
				return
			}
		}
	default:
		s.fail("want a value")
	}
}

// end checks that nothing but space follows the value.
func (s *scanner) end() {
	// Compare positions, not peek's 0: a NUL byte after the value is data.
	if s.skipSpace(); s.pos < len(s.data) && s.err == nil {
		s.fail("unexpected data after the JSON value")
	}
}
