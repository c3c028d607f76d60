package router

import (
	"bytes"
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
	var s string
	if err := json.Unmarshal(f.raw, &s); err != nil {
		*errs = append(*errs, fieldError{f.name, "must be a valid JSON string", inBody})
		return "", false
	}
	return s, true
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
// struct of json.RawMessage members).
func decodeObject(body []byte, dst any) *requestError {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return badFields(fieldError{"body", "must be a JSON object, got an empty body", inBody})
	}
	if body[0] != '{' {
		return badFields(fieldError{"body", "must be a JSON object", inBody})
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
