package router

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/goccy/go-json"
)

// jsonField reads one member of a decoded JSON object. Each method returns
// whether the member was present (null counts as absent) and appends a field
// error when it has the wrong type.
type jsonField struct {
	name string
	raw  json.RawMessage
}

func (f jsonField) present() bool {
	return len(f.raw) > 0 && !bytes.Equal(f.raw, nullJSON)
}

var nullJSON = []byte("null")

func (f jsonField) string(errs *[]fieldError) (string, bool) {
	if !f.present() {
		return "", false
	}
	if f.raw[0] != '"' {
		*errs = append(*errs, fieldError{f.name, "must be a string", inBody})
		return "", false
	}
	// Our own scanner, strict: a decoder that reads invalid UTF-8 or an
	// unpaired surrogate escape as U+FFFD would store two different ids
	// or tokens as one, and one client would retire the other.
	s := scanner{data: f.raw, strict: true}
	v := s.str()
	s.end()
	if s.err != nil {
		why := "must be a valid JSON string"
		if s.err.what == errNotUTF8 || s.err.what == errUnpairedSurrogate {
			why = "must be valid UTF-8 (no invalid bytes, no unpaired \\uD800-\\uDFFF escape)"
		}
		*errs = append(*errs, fieldError{f.name, why, inBody})
		return "", false
	}
	return string(v), true
}

func (f jsonField) bool(errs *[]fieldError) (bool, bool) {
	if !f.present() {
		return false, false
	}
	switch string(f.raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	*errs = append(*errs, fieldError{f.name, "must be true or false", inBody})
	return false, false
}

// decodeObject decodes body, which must be one JSON object, into dst (a
// struct of json.RawMessage members). A member name given twice in any
// object, also in another case (the decoder matches names as encoding/json
// does, case-insensitively), is refused naming it: which one wins would
// differ from one JSON reader to the next.
func decodeObject(body []byte, dst any) *requestError {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return badFields(fieldError{"body", "must be a JSON object, got an empty body", inBody})
	}
	if body[0] != '{' {
		return badFields(fieldError{"body", "must be a JSON object", inBody})
	}
	// Invalid UTF-8 is left to jsonField.string, which names the field.
	s := scanner{data: body, keys: &keySet{fold: true}, anyBytes: true}
	s.keys.reset()
	s.skip(0)
	s.end()
	if s.err != nil {
		return badFields(fieldError{"body", "malformed JSON: " + s.err.what + " at byte " + strconv.Itoa(s.err.offset), inBody})
	}
	if s.dup != "" {
		return badFields(fieldError{s.dup, "appears more than once (member names match case-insensitively); a member may be given only once", inBody})
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return badFields(fieldError{"body", "malformed JSON: " + err.Error(), inBody})
	}
	return nil
}

// checkText reports why s is not acceptable as an id or token: stored
// values must be valid UTF-8 without control characters, so that nothing
// odd is written half-way or echoed into logs.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return "must not contain control characters"
		}
	}
	return ""
}
