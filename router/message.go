package router

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"

	"github.com/goccy/go-json"

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

// sendBody is the relay's send request, in both shapes API.md accepts.
type sendBody struct {
	Topic   json.RawMessage `json:"topic"`
	Tag     json.RawMessage `json:"tag"`
	Message json.RawMessage `json:"message"`
	ID      json.RawMessage `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// legacyPayload is the legacy body's "payload" member.
type legacyPayload struct {
	Topic json.RawMessage `json:"topic"`
	Flags json.RawMessage `json:"flags"`
	Blob  json.RawMessage `json:"blob"`
}

// sendRequest is a send body with its members type-checked.
type sendRequest struct {
	topic, message, id   string
	hasTopic, hasMessage bool
	hasID                bool
	tag                  uint64
	hasTag               bool
	hasPayload           bool
	payloadTopic, blob   string
	hasPayloadTopic      bool
	hasBlob              bool
	flags                uint64
}

// parseSend checks the types of every member it knows and reports all bad
// members at once.
func parseSend(body []byte) (sendRequest, *requestError) {
	var raw sendBody
	if err := decodeObject(body, &raw); err != nil {
		return sendRequest{}, err
	}
	var r sendRequest
	var errs []fieldError
	r.topic, r.hasTopic = jsonField{"topic", raw.Topic}.string(&errs)
	r.tag, r.hasTag = jsonField{"tag", raw.Tag}.uint(&errs)
	r.message, r.hasMessage = jsonField{"message", raw.Message}.string(&errs)
	r.id, r.hasID = jsonField{"id", raw.ID}.string(&errs)
	if p := (jsonField{"payload", raw.Payload}); p.present() {
		if p.raw[0] != '{' {
			errs = append(errs, fieldError{"payload", "must be an object {topic, flags, blob}", inBody})
		} else {
			var lp legacyPayload
			if err := json.Unmarshal(p.raw, &lp); err != nil {
				errs = append(errs, fieldError{"payload", "malformed JSON: " + err.Error(), inBody})
			} else {
				r.hasPayload = true
				r.payloadTopic, r.hasPayloadTopic = jsonField{"payload.topic", lp.Topic}.string(&errs)
				r.flags, _ = jsonField{"payload.flags", lp.Flags}.uint(&errs)
				r.blob, r.hasBlob = jsonField{"payload.blob", lp.Blob}.string(&errs)
			}
		}
	}
	if len(errs) > 0 {
		return sendRequest{}, badFields(errs...)
	}
	return r, nil
}

// messageID is the dedup id of API.md: the legacy id when present, else the
// lowercase hex SHA-256 of message.
func (r *sendRequest) messageID() (string, *requestError) {
	if r.hasID && r.id != "" {
		return r.id, nil
	}
	if !r.hasMessage {
		return "", badFields(fieldError{"id", "required with a legacy payload and no message", inBody})
	}
	sum := sha256.Sum256([]byte(r.message))
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
			{Key: "topic", Value: r.topic},
			{Key: "tag", Value: strconv.FormatUint(r.tag, 10)},
			{Key: "message", Value: r.message},
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
		n.Data = encryptedData(n.Data, topic, blob, hasTopic, hasBlob)
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
			n.Data = append(n.Data, dispatch.Field{Key: "topic", Value: topic})
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
	n.Data = encryptedData(n.Data, topic, blob, true, true)
	return n, nil
}

func encryptedData(dst []dispatch.Field, topic, blob string, hasTopic, hasBlob bool) []dispatch.Field {
	if hasTopic {
		dst = append(dst, dispatch.Field{Key: "topic", Value: topic})
	}
	if hasBlob {
		dst = append(dst, dispatch.Field{Key: "blob", Value: blob})
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
func decodeBlob(blob string) (visibleBlob, string) {
	raw, err := base64.StdEncoding.DecodeString(blob)
	if err != nil {
		return visibleBlob{}, "must be standard base64: " + err.Error()
	}
	var v visibleBlob
	if rerr := decodeObject(raw, &v); rerr != nil {
		return visibleBlob{}, "must decode to a JSON object {title, body, image?, url?}"
	}
	if v.Title == "" && v.Body == "" {
		return visibleBlob{}, "decoded object needs a title or a body"
	}
	return v, ""
}
