package router

import (
	"bytes"
	"hash/maphash"
	"unicode"
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

// Scan errors that callers tell apart.
const (
	errNotUTF8           = "string is not valid UTF-8"
	errUnpairedSurrogate = "unpaired surrogate escape in a string"
)

// maxDepth bounds nesting, so that a hostile body cannot recurse deeply.
const maxDepth = 32

// scanner walks one JSON text.
type scanner struct {
	data    []byte
	pos     int
	scratch []byte // unescaped strings are appended here
	err     *scanError
	// keys, when set, refuses duplicate member names: object reports the
	// first one in dup (its dotted path) and skips its value, so that a
	// second "topic" or "payload" is never read over or merged into the
	// first. A duplicate is not malformed JSON, so it does not set err.
	keys *keySet
	dup  string
	// strict refuses \u escapes of unpaired surrogates instead of reading
	// them as U+FFFD: ids and tokens must be exactly what the client sent.
	strict bool
	// anyBytes accepts strings that are not valid UTF-8, for a pass that
	// checks only structure and leaves the refusal to the field's reader.
	anyBytes bool
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
	obj := s.keys.open()
	defer s.keys.close()
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
		if s.keys != nil && s.err == nil && !s.keys.add(obj, key) {
			if s.dup == "" {
				s.dup = s.keys.path(key)
			}
			s.skip(depth + 1)
		} else {
			s.keys.enter(key)
			member(key)
			s.keys.leave()
		}
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
			if !s.anyBytes && !utf8.Valid(v) {
				s.fail(errNotUTF8)
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
			if !s.anyBytes && !utf8.Valid(v) {
				s.fail(errNotUTF8)
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
				// As encoding/json: the next escape is taken as the low
				// half only when the two make a pair; otherwise this one
				// alone reads as U+FFFD and the next is read on its own.
				r2 := rune(-1)
				if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
					r2, _ = s.hex4At(s.pos + 2)
				}
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					r = pair
					s.pos += 6
				} else if s.strict {
					s.fail(errUnpairedSurrogate)
					return nil
				} else {
					r = utf8.RuneError
				}
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
	r, ok := s.hex4At(s.pos)
	if ok {
		s.pos += 4
	}
	return r, ok
}

// hex4At reads the four hex digits at i without consuming them.
func (s *scanner) hex4At(i int) (rune, bool) {
	if i+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[i : i+4] {
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

// keySet remembers the member names of every object of one JSON text, so
// that object can refuse a duplicate in constant time per member (a
// quadratic scan would let one body of many members cost seconds). It is
// an open-addressing table keyed by (object number, name), reused from
// request to request: the valid path does not allocate once it has grown
// to the size of a typical body.
type keySet struct {
	slots   []keySlot
	used    int
	objects uint32   // numbers the objects of the current text, from 1
	stack   []uint32 // the objects being read, innermost last
	names   [][]byte // the member names leading to the current value
	seed    maphash.Seed
	fold    bool // compare names as encoding/json matches them (case-folded)
	folded  []byte
}

type keySlot struct {
	obj uint32 // 0: empty
	key []byte
}

// maxKeySlots is the largest table kept for the next request; a bigger
// one (a body of thousands of members) is dropped.
const maxKeySlots = 1024

func (k *keySet) reset() {
	if len(k.slots) > maxKeySlots {
		k.slots = nil
	}
	if k.used > 0 {
		clear(k.slots)
	}
	if k.seed == (maphash.Seed{}) {
		k.seed = maphash.MakeSeed()
	}
	k.used, k.objects, k.stack, k.names, k.folded = 0, 0, k.stack[:0], k.names[:0], k.folded[:0]
}

// open starts a new object and returns its number.
func (k *keySet) open() uint32 {
	if k == nil {
		return 0
	}
	k.objects++
	k.stack = append(k.stack, k.objects)
	return k.objects
}

func (k *keySet) close() {
	if k != nil {
		k.stack = k.stack[:len(k.stack)-1]
	}
}

// enter and leave track the member whose value is being read, for path.
func (k *keySet) enter(key []byte) {
	if k != nil {
		k.names = append(k.names, key)
	}
}

func (k *keySet) leave() {
	if k != nil {
		k.names = k.names[:len(k.names)-1]
	}
}

// path is the dotted name of member key of the current object, for the
// field error (array positions are not counted).
func (k *keySet) path(key []byte) string {
	var b []byte
	for _, n := range k.names {
		b = append(append(b, n...), '.')
	}
	return string(append(b, key...))
}

// add records key as a member of object obj; false when obj has it already.
func (k *keySet) add(obj uint32, key []byte) bool {
	if k.fold {
		start := len(k.folded)
		k.folded = appendFoldedName(k.folded, key)
		key = k.folded[start:len(k.folded):len(k.folded)]
	}
	if 2*(k.used+1) > len(k.slots) {
		k.grow()
	}
	mask := uint64(len(k.slots) - 1)
	for i := (maphash.Bytes(k.seed, key) ^ uint64(obj)*0x9e3779b97f4a7c15) & mask; ; i = (i + 1) & mask {
		sl := &k.slots[i]
		if sl.obj == 0 {
			*sl = keySlot{obj: obj, key: key}
			k.used++
			return true
		}
		if sl.obj == obj && bytes.Equal(sl.key, key) {
			return false
		}
	}
}

func (k *keySet) grow() {
	old := k.slots
	n := 2 * len(old)
	if n < 32 {
		n = 32
	}
	k.slots, k.used = make([]keySlot, n), 0
	fold := k.fold
	k.fold = false // the names in old are folded already
	for _, sl := range old {
		if sl.obj != 0 {
			k.add(sl.obj, sl.key)
		}
	}
	k.fold = fold
}

// appendFoldedName appends name folded as encoding/json folds member names
// when it matches them to struct fields: ASCII letters to upper case, any
// other rune to the smallest rune of its Unicode fold set (so the Kelvin
// sign K folds to K and the long s ſ to S).
func appendFoldedName(dst, name []byte) []byte {
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// foldsTo reports whether encoding/json would match key to the member
// name (lower-case ASCII) without key being name itself.
func foldsTo(key []byte, name string) bool {
	if string(key) == name {
		return false
	}
	j := 0
	for i := 0; i < len(key); {
		c := key[i]
		var f rune
		if c < utf8.RuneSelf {
			f, i = rune(c), i+1
		} else {
			r, n := utf8.DecodeRune(key[i:])
			f, i = foldRune(r), i+n
		}
		n := rune(-1)
		if j < len(name) {
			n = rune(name[j])
		}
		if 'a' <= f && f <= 'z' {
			f -= 'a' - 'A'
		}
		if 'a' <= n && n <= 'z' {
			n -= 'a' - 'A'
		}
		if f != n {
			return false
		}
		j++
	}
	return j == len(name)
}
