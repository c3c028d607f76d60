package router

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"sync"

	"push-server/dispatch"
)

// WalletConnect tags that ask the user to sign: they are shown as a
// cleartext notification even though the message itself is encrypted.
const (
	tagSessionPropose = 1100 // wc_sessionPropose
	tagSessionRequest = 1108 // wc_sessionRequest
)

// flagEncrypted is the bit of the legacy payload.flags that marks an
// encrypted blob (the others, Sign=2, Auth=4, Chat=8, Notify=16, do not
// change what is pushed).
const flagEncrypted = 1

// sendRequest is a send body with its members type-checked, in both shapes
// API.md accepts. Its byte slices point into the request body or into
// scratch: they are valid until the handler returns.
type sendRequest struct {
	topic, message, id          []byte
	hasTopic, hasMessage, hasID bool
	tag                         uint64
	hasTag                      bool
	hasPayload                  bool
	payloadTopic, blob          []byte
	hasPayloadTopic, hasBlob    bool
	flags                       uint64
	scratch                     []byte // unescaped strings
	errs                        []fieldError
	keys                        keySet // member names seen, for duplicates
	// out is the notification built from the body (send), here so that it
	// is not allocated per send.
	out dispatch.Notification
}

var sendRequestPool = sync.Pool{New: func() any { return new(sendRequest) }}

// acquireSendRequest returns an empty sendRequest; releaseSendRequest gives
// it back once nothing refers to its slices.
func acquireSendRequest() *sendRequest { return sendRequestPool.Get().(*sendRequest) }

func releaseSendRequest(r *sendRequest) {
	scratch, errs, keys := r.scratch[:0], r.errs[:0], r.keys
	if cap(scratch) > 64<<10 {
		scratch = nil // one huge body must not stay pinned in the pool
	}
	keys.reset() // nor the body its names point into
	*r = sendRequest{scratch: scratch, errs: errs, keys: keys}
	sendRequestPool.Put(r)
}

// Member names of the send body, as parse reads them.
var (
	sendMembers    = [...]string{"topic", "tag", "message", "id", "payload"}
	payloadMembers = [...]string{"topic", "flags", "blob"}
)

// parse reads body into r, checking the type of every member it knows and
// reporting all bad members at once. Unknown members are skipped. The body
// must mean the same to every JSON reader, so that what the relay signed
// is what is pushed and deduplicated: a duplicate member name, in any
// object, is refused; member names match exactly (relays send them
// lowercase), and a name that encoding/json would match case-insensitively
// to one of ours ("TOPIC", "Payload") is refused rather than ignored. The
// valid path does not allocate.
func (r *sendRequest) parse(body []byte) *requestError {
	r.keys.reset()
	s := scanner{data: body, scratch: r.scratch[:0], keys: &r.keys}
	if s.peek() != '{' {
		return badFields(fieldError{"body", "must be a JSON object", inBody})
	}
	s.object(0, func(key []byte) {
		switch string(key) {
		case "topic":
			r.topic, r.hasTopic = r.readString(&s, "topic")
		case "tag":
			r.tag, r.hasTag = r.readUint(&s, "tag")
		case "message":
			r.message, r.hasMessage = r.readString(&s, "message")
		case "id":
			r.id, r.hasID = r.readString(&s, "id")
		case "payload":
			r.readPayload(&s)
		default:
			r.refuseFolded(key, sendMembers[:], "")
			s.skip(1)
		}
	})
	s.end()
	r.scratch = s.scratch
	if s.err != nil {
		return badFields(fieldError{"body", "malformed JSON: " + s.err.what + " at byte " + strconv.Itoa(s.err.offset), inBody})
	}
	if s.dup != "" {
		r.errs = append(r.errs, fieldError{s.dup, "appears more than once; a member may be given only once", inBody})
	}
	if len(r.errs) > 0 {
		return badFields(r.errs...)
	}
	return nil
}

func (r *sendRequest) readPayload(s *scanner) {
	switch s.kind() {
	case 'n':
		s.literal("null")
		return
	case '{':
	default:
		r.errs = append(r.errs, fieldError{"payload", "must be an object {topic, flags, blob}", inBody})
		s.skip(1)
		return
	}
	r.hasPayload = true
	s.object(1, func(key []byte) {
		switch string(key) {
		case "topic":
			r.payloadTopic, r.hasPayloadTopic = r.readString(s, "payload.topic")
		case "flags":
			r.flags, _ = r.readUint(s, "payload.flags")
		case "blob":
			r.blob, r.hasBlob = r.readString(s, "payload.blob")
		default:
			r.refuseFolded(key, payloadMembers[:], "payload.")
			s.skip(2)
		}
	})
}

// refuseFolded reports key when it is not one of names but encoding/json
// would take it for one (it matches member names case-insensitively): such
// a body means one thing to us and another to a case-folding reader.
func (r *sendRequest) refuseFolded(key []byte, names []string, prefix string) {
	for _, name := range names {
		if foldsTo(key, name) {
			r.errs = append(r.errs, fieldError{prefix + name,
				"member names are case-sensitive: " + strconv.Quote(string(key)) + " is not " + strconv.Quote(name), inBody})
			return
		}
	}
}

// readString reads a string member; null counts as absent.
func (r *sendRequest) readString(s *scanner, name string) ([]byte, bool) {
	switch s.kind() {
	case '"':
		return s.str(), true
	case 'n':
		s.literal("null")
		return nil, false
	}
	r.errs = append(r.errs, fieldError{name, "must be a string", inBody})
	s.skip(1)
	return nil, false
}

// readUint reads a non-negative integer member (tags and flags); null counts
// as absent.
func (r *sendRequest) readUint(s *scanner, name string) (uint64, bool) {
	switch s.kind() {
	case '0':
		num := s.number()
		if s.err != nil {
			return 0, false
		}
		n, ok := parseUint(num)
		if !ok {
			r.errs = append(r.errs, fieldError{name, "must be a non-negative integer", inBody})
		}
		return n, ok
	case 'n':
		s.literal("null")
		return 0, false
	}
	r.errs = append(r.errs, fieldError{name, "must be a non-negative integer", inBody})
	s.skip(1)
	return 0, false
}

// parseUint parses decimal digits into a uint64, refusing signs, fractions,
// exponents and overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// messageID is the dedup id of API.md: the legacy id when present, else the
// lowercase hex SHA-256 of message.
func (r *sendRequest) messageID() (string, *requestError) {
	if r.hasID && len(r.id) > 0 {
		return string(r.id), nil
	}
	if !r.hasMessage {
		return "", badFields(fieldError{"id", "required with a legacy payload and no message", inBody})
	}
	sum := sha256.Sum256(r.message)
	return hex.EncodeToString(sum[:]), nil
}

// notification selects what is pushed, per API.md "What is pushed". It is
// the one place a send body becomes a provider-neutral notification.
func (r *sendRequest) notification(alwaysRaw bool) (dispatch.Notification, *requestError) {
	n, rerr := r.compose(alwaysRaw)
	if rerr != nil {
		return n, rerr
	}
	n.MessageID, rerr = r.messageID()
	return n, rerr
}

// compose is notification without the message id: the shape checks come
// first so that one reply names every missing member.
func (r *sendRequest) compose(alwaysRaw bool) (dispatch.Notification, *requestError) {
	var n dispatch.Notification

	if alwaysRaw {
		var errs []fieldError
		if !r.hasTopic {
			errs = append(errs, fieldError{"topic", "required for a client registered with always_raw", inBody})
		}
		if !r.hasTag {
			errs = append(errs, fieldError{"tag", "required for a client registered with always_raw", inBody})
		}
		if !r.hasMessage {
			errs = append(errs, fieldError{"message", "required for a client registered with always_raw", inBody})
		}
		if len(errs) > 0 {
			return n, badFields(errs...)
		}
		n.Kind = dispatch.KindRaw
		n.Data = []dispatch.Field{
			{Key: "topic", Value: string(r.topic)},
			{Key: "tag", Value: strconv.FormatUint(r.tag, 10)},
			{Key: "message", Value: string(r.message)},
		}
		return n, nil
	}

	// The encrypted parts: the legacy payload's, or topic and message
	// standing in for them.
	topic, blob, topicField, blobField := r.topic, r.message, "topic", "message"
	hasTopic, hasBlob := r.hasTopic, r.hasMessage
	if r.hasPayload {
		topic, blob, topicField, blobField = r.payloadTopic, r.blob, "payload.topic", "payload.blob"
		hasTopic, hasBlob = r.hasPayloadTopic, r.hasBlob
	}

	if r.hasTag && (r.tag == tagSessionPropose || r.tag == tagSessionRequest) {
		n.Kind = dispatch.KindVisible
		n.Title, n.Body = "Signature required", "You have a message to sign"
		// One allocation for the three fields instead of three as it grows.
		n.Data = encryptedData(make([]dispatch.Field, 0, 3), topic, blob, hasTopic, hasBlob)
		n.Data = append(n.Data, dispatch.Field{Key: "tag", Value: strconv.FormatUint(r.tag, 10)})
		return n, nil
	}

	if r.hasPayload && r.flags&flagEncrypted == 0 {
		if !r.hasBlob {
			return n, badFields(fieldError{"payload.blob", "required: base64 of {title, body}", inBody})
		}
		v, err := decodeBlob(r.blob)
		if err != "" {
			return n, badFields(fieldError{"payload.blob", err, inBody})
		}
		n.Kind = dispatch.KindVisible
		n.Title, n.Body, n.ImageURL, n.URL = v.Title, v.Body, v.Image, v.URL
		if hasTopic {
			n.Data = append(n.Data, dispatch.Field{Key: "topic", Value: string(topic)})
		}
		return n, nil
	}

	var errs []fieldError
	if !hasTopic {
		errs = append(errs, fieldError{topicField, "required for an encrypted message", inBody})
	}
	if !hasBlob {
		errs = append(errs, fieldError{blobField, "required for an encrypted message", inBody})
	}
	if len(errs) > 0 {
		return n, badFields(errs...)
	}
	n.Kind = dispatch.KindEncrypted
	n.Data = encryptedData(make([]dispatch.Field, 0, 2), topic, blob, true, true)
	return n, nil
}

func encryptedData(dst []dispatch.Field, topic, blob []byte, hasTopic, hasBlob bool) []dispatch.Field {
	if hasTopic {
		dst = append(dst, dispatch.Field{Key: "topic", Value: string(topic)})
	}
	if hasBlob {
		dst = append(dst, dispatch.Field{Key: "blob", Value: string(blob)})
	}
	return dst
}

// visibleBlob is what an unencrypted legacy blob decodes to.
type visibleBlob struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Image string `json:"image"`
	URL   string `json:"url"`
}

// decodeBlob decodes a standard-base64 JSON {title, body, image?, url?}; the
// string it returns on failure says why, for the field error.
func decodeBlob(blob []byte) (visibleBlob, string) {
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(blob)))
	n, err := base64.StdEncoding.Decode(raw, blob)
	raw = raw[:n]
	if err != nil {
		return visibleBlob{}, "must be standard base64: " + err.Error()
	}
	var v visibleBlob
	if rerr := decodeObject(raw, &v); rerr != nil {
		why := "must decode to a JSON object {title, body, image?, url?}"
		if len(rerr.fields) == 1 && rerr.fields[0].Field != "body" {
			why += ": member " + strconv.Quote(rerr.fields[0].Field) + " " + rerr.fields[0].Description
		}
		return visibleBlob{}, why
	}
	if v.Title == "" && v.Body == "" {
		return visibleBlob{}, "decoded object needs a title or a body"
	}
	return v, ""
}
