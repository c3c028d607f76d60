package dispatch

import (
	"crypto/sha256"
	"sync"

	"push-server/internal/jsonstr"
)

// Placeholder alert of KindEncrypted: iOS shows it if the notification
// service extension cannot decrypt in time.
const (
	encryptedTitle = "New message"
	encryptedBody  = "You have a new message"
)

// Custom-data keys the senders add for KindVisible extras, unless Data
// already carries the key (Data wins).
const (
	keyImage = "image"
	keyURL   = "url"
)

// payloadPool holds buffers for building payloads. A buffer goes back with
// its length reset; one that grew far past the limit is dropped so that a
// rare oversize notification does not pin memory.
var payloadPool = sync.Pool{New: func() any {
	b := make([]byte, 0, MaxPayloadSize+512)
	return &b
}}

func acquirePayload() *[]byte { return payloadPool.Get().(*[]byte) }

func releasePayload(b *[]byte) {
	if cap(*b) > 4*MaxPayloadSize {
		return
	}
	*b = (*b)[:0]
	payloadPool.Put(b)
}

// validKind reports whether k is one of the kinds the senders can build.
func validKind(k Kind) bool { return k >= KindVisible && k <= KindRaw }

// appendAPNSPayload appends the APNs JSON payload of n to dst and returns
// the extended slice:
//
//	KindVisible:   {"aps":{"alert":{"title":…,"body":…},"sound":"default"[,"mutable-content":1]}, data…}
//	KindEncrypted: {"aps":{"alert":{placeholder},"mutable-content":1}, data…}
//	KindRaw:       {"aps":{"content-available":1}, data…}
//
// mutable-content is set for KindVisible only with an ImageURL, so that the
// notification service extension runs only when it has an image to fetch;
// the image and url extras travel as custom data "image" and "url". A Data
// key "aps" is skipped: it would clash with the aps dictionary. Strings are
// escaped exactly as encoding/json escapes them (HTML characters included),
// because apns2 passes the payload through json.Marshal: that keeps the
// bytes, and so the size checked against MaxPayloadSize, unchanged.
func appendAPNSPayload(dst []byte, n *Notification) []byte {
	dst = append(dst, `{"aps":{`...)
	switch n.Kind {
	case KindVisible:
		dst = append(dst, `"alert":{"title":`...)
		dst = jsonstr.Append(dst, n.Title)
		dst = append(dst, `,"body":`...)
		dst = jsonstr.Append(dst, n.Body)
		dst = append(dst, `},"sound":"default"`...)
		if n.ImageURL != "" {
			dst = append(dst, `,"mutable-content":1`...)
		}
	case KindEncrypted:
		dst = append(dst, `"alert":{"title":"`+encryptedTitle+`","body":"`+encryptedBody+`"},"mutable-content":1`...)
	default:
		dst = append(dst, `"content-available":1`...)
	}
	dst = append(dst, '}')
	for _, f := range n.Data {
		if f.Key == "aps" {
			continue
		}
		dst = appendMember(dst, f.Key, f.Value)
	}
	if n.Kind == KindVisible {
		if n.ImageURL != "" && !hasKey(n.Data, keyImage) {
			dst = appendMember(dst, keyImage, n.ImageURL)
		}
		if n.URL != "" && !hasKey(n.Data, keyURL) {
			dst = appendMember(dst, keyURL, n.URL)
		}
	}
	return append(dst, '}')
}

// fcmPayloadSize is what FCM counts against its 4096-byte limit: the
// bytes of the data keys and values and of the notification's strings,
// without the JSON around them (the SDK builds that).
func fcmPayloadSize(n *Notification) int {
	size := 0
	for _, d := range n.Data {
		size += len(d.Key) + len(d.Value)
	}
	if n.Kind == KindVisible {
		size += len(n.Title) + len(n.Body) + len(n.ImageURL)
		if n.URL != "" && !hasKey(n.Data, keyURL) {
			size += len(keyURL) + len(n.URL)
		}
	}
	return size
}

// fcmData calls f for every data entry of the FCM message of n: Data, plus
// "url" for KindVisible (the image goes into the notification instead).
func fcmData(n *Notification, f func(k, v string)) {
	for _, d := range n.Data {
		f(d.Key, d.Value)
	}
	if n.Kind == KindVisible && n.URL != "" && !hasKey(n.Data, keyURL) {
		f(keyURL, n.URL)
	}
}

func hasKey(data []Field, key string) bool {
	for _, f := range data {
		if f.Key == key {
			return true
		}
	}
	return false
}

// appendMember appends ,"key":"value" to an object that already has a
// member.
func appendMember(dst []byte, key, value string) []byte {
	dst = append(dst, ',')
	dst = jsonstr.Append(dst, key)
	dst = append(dst, ':')
	return jsonstr.Append(dst, value)
}

const hexDigits = "0123456789abcdef"

// apnsID returns the apns-id for a message id: the first 16 bytes of
// SHA-256(messageID) as an RFC 9562 version-8 UUID. Apple logs it and
// returns it, so a provider-side record links back to our message id
// without a table; the same message always gets the same apns-id.
func apnsID(messageID string) string {
	// Hashed from a stack buffer: []byte(messageID) of a 64-character id
	// (the relay's, a SHA-256 in hex) would be a heap copy.
	var in [128]byte
	sum := sha256.Sum256(append(in[:0], messageID...))
	sum[6] = sum[6]&0x0f | 0x80 // version 8
	sum[8] = sum[8]&0x3f | 0x80 // RFC 9562 variant
	var b [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hexDigits[sum[i]>>4], hexDigits[sum[i]&0xf]
		j += 2
	}
	return string(b[:])
}
