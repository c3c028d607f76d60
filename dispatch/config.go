package dispatch

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sideshow/apns2/certificate"
	"github.com/sideshow/apns2/token"
	"software.sslmate.com/src/go-pkcs12"
)

// APNs authentication modes, the values of APNS_TYPE.
const (
	APNSTypeCertificate = "certificate"
	APNSTypeToken       = "token"
)

// Defaults filled in by New when the Config leaves a field zero.
const (
	// DefaultTimeout bounds one push, retries included.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxAttempts bounds the tries of one push.
	DefaultMaxAttempts = 3
	// DefaultMaxRetriesPerSecond is the retry budget of one Dispatcher:
	// room for a short outage of a busy provider while keeping a flapping
	// one from seeing every push MaxAttempts times.
	DefaultMaxRetriesPerSecond = 100
)

// Parse checks every setting without touching the network and returns the
// credentials opened, for NewParsed and APNSCertificateNotAfter, so that the
// operator's .p12 and keys are parsed once per start. Its error names the
// environment variable of the first bad setting: it opens the .p12 and
// parses the keys, so a wrong password or a wrong key type stops start-up
// instead of failing the first push. A bad credential is a
// *CredentialError whose Part is the variable's name.
func (c *Config) Parse() (*Parsed, error) {
	cr, err := c.parse()
	if err != nil {
		return nil, err
	}
	return &Parsed{cr: cr}, nil
}

// Parsed is a Config's credentials as Parse opened them: the APNs
// certificate or key, the FCM service account and the VAPID key.
type Parsed struct {
	cr *credentials
}

// VAPIDPublicKey is the public key of VAPID_PRIVATE_KEY, base64url
// without padding (the applicationServerKey wallets subscribe with), or ""
// when Web Push is not configured.
func (p *Parsed) VAPIDPublicKey() string {
	if p.cr.vapid == nil {
		return ""
	}
	return p.cr.vapid.public
}

// APNSCertificateNotAfter is when the APNs certificate expires, its
// notAfter: the date the gateway watches and warns about. It is zero
// unless APNS_TYPE is certificate.
func (p *Parsed) APNSCertificateNotAfter() time.Time {
	if p.cr.apnsCert.Leaf == nil {
		return time.Time{}
	}
	return p.cr.apnsCert.Leaf.NotAfter
}

// credentials is what parse extracts from a Config: the material New needs
// to build the providers.
type credentials struct {
	apnsCert tls.Certificate   // certificate auth; zero otherwise
	apnsKey  *ecdsa.PrivateKey // token auth; nil otherwise
	fcm      *serviceAccount   // nil when FCM is not configured
	vapid    *vapidKey         // nil when Web Push is not configured
}

// serviceAccount is the part of a service-account JSON that dispatch reads
// itself; golang.org/x/oauth2/google reads the rest.
type serviceAccount struct {
	Type        string `json:"type"`
	ProjectID   string `json:"project_id"`
	PrivateKey  string `json:"private_key"`
	ClientEmail string `json:"client_email"`
	TokenURI    string `json:"token_uri"`
}

// parse is the body of Parse, which New calls too, so what was
// validated is what gets built.
func (c *Config) parse() (*credentials, error) {
	var cr credentials
	switch c.APNSType {
	case "":
		// APNs not configured; the other APNS_* credentials are ignored.
	case APNSTypeCertificate, APNSTypeToken:
		if c.APNSTopic == "" {
			return nil, errors.New("APNS_TOPIC: required when APNS_TYPE is set")
		}
		if c.APNSType == APNSTypeCertificate {
			if len(c.APNSCertificate) == 0 {
				return nil, errors.New("APNS_CERTIFICATE: required when APNS_TYPE is certificate")
			}
			cert, err := parseP12(c.APNSCertificate, c.APNSCertificatePassword, envNames)
			if err != nil {
				return nil, err
			}
			cr.apnsCert = cert
		} else {
			if len(c.APNSPKCS8PEM) == 0 {
				return nil, errors.New("APNS_PKCS8_PEM: required when APNS_TYPE is token")
			}
			key, err := parseAPNSKey(c.APNSPKCS8PEM, envNames)
			if err != nil {
				return nil, err
			}
			if c.APNSKeyID == "" {
				return nil, errors.New("APNS_KEY_ID: required when APNS_TYPE is token")
			}
			if c.APNSTeamID == "" {
				return nil, errors.New("APNS_TEAM_ID: required when APNS_TYPE is token")
			}
			cr.apnsKey = key
		}
	default:
		return nil, fmt.Errorf("APNS_TYPE: want %q or %q, got %q", APNSTypeCertificate, APNSTypeToken, c.APNSType)
	}
	if len(c.FCMCredentials) > 0 {
		sa, err := parseServiceAccount(c.FCMCredentials, envNames)
		if err != nil {
			return nil, err
		}
		cr.fcm = sa
	}
	if c.VAPIDPrivateKey != "" {
		// VAPID_SUBJECT alone is ignored, as the other APNS_* settings
		// are without APNS_TYPE.
		k, err := parseVAPID(c.VAPIDPrivateKey, c.VAPIDSubject, envNames)
		if err != nil {
			return nil, err
		}
		cr.vapid = k
	}
	if c.WebPushTTL < 0 {
		return nil, fmt.Errorf("WEBPUSH_TTL: want a positive duration, got %s", c.WebPushTTL)
	}
	for _, u := range [...]struct{ name, value string }{
		{"APNS_URL", c.APNSURL}, {"APNS_SANDBOX_URL", c.APNSSandboxURL}, {"FCM_URL", c.FCMURL},
	} {
		if err := checkBaseURL(u.value); err != nil {
			return nil, fmt.Errorf("%s: %w", u.name, err)
		}
	}
	if c.Timeout < 0 {
		return nil, fmt.Errorf("PROVIDER_TIMEOUT: want a positive duration, got %s", c.Timeout)
	}
	if c.MaxAttempts < 0 {
		return nil, fmt.Errorf("PROVIDER_MAX_ATTEMPTS: want at least 1, got %d", c.MaxAttempts)
	}
	if c.MaxRetriesPerSecond < 0 {
		return nil, fmt.Errorf("PROVIDER_MAX_RETRIES_PER_SECOND: want at least 1, got %d", c.MaxRetriesPerSecond)
	}
	return &cr, nil
}

// partNames names the credential inputs in error messages: environment
// variables for Parse, multipart parts for the Check functions. Each
// parser reports its failure as a *CredentialError whose Part is one of
// these names, so the caller can point at the input at fault.
type partNames struct {
	cert, password, pem, keyID, teamID, topic, fcm string
	vapidKey, vapidSubject                         string
}

// envNames names the inputs of single-tenant mode.
var envNames = &partNames{
	cert: "APNS_CERTIFICATE", password: "APNS_CERTIFICATE_PASSWORD", pem: "APNS_PKCS8_PEM",
	keyID: "APNS_KEY_ID", teamID: "APNS_TEAM_ID", topic: "APNS_TOPIC", fcm: "FCM_V1_CREDENTIALS",
	vapidKey: "VAPID_PRIVATE_KEY", vapidSubject: "VAPID_SUBJECT",
}

// credErr is a *CredentialError for part with a formatted reason.
func credErr(part, format string, args ...any) error {
	return &CredentialError{Part: part, Err: fmt.Errorf(format, args...)}
}

// parseP12 opens an APNs .p12. apns2's decoder (golang.org/x/crypto/pkcs12)
// knows only the legacy 3DES/RC2 encryption and exactly one certificate, so
// a .p12 exported by OpenSSL 3 or macOS 14+ (AES, PBES2) or one holding the
// chain is opened with go-pkcs12 instead.
func parseP12(p12 []byte, password string, n *partNames) (tls.Certificate, error) {
	if len(p12) == 0 {
		return tls.Certificate{}, credErr(n.cert, "required")
	}
	p12 = unbase64(p12)
	cert, err := certificate.FromP12Bytes(p12, password)
	if err != nil {
		key, leaf, chain, err2 := pkcs12.DecodeChain(p12, password)
		if err2 != nil {
			return tls.Certificate{}, p12Error(p12, password, err2, n)
		}
		cert = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
		for _, c := range chain {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
	}
	signer, ok := cert.PrivateKey.(crypto.Signer)
	if !ok || cert.Leaf == nil {
		return tls.Certificate{}, credErr(n.cert, "the .p12 must hold a certificate and its private key")
	}
	pub, ok := cert.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return tls.Certificate{}, credErr(n.cert, "the private key in the .p12 does not match its certificate")
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		return tls.Certificate{}, credErr(n.cert, "the certificate expired on %s", cert.Leaf.NotAfter.Format(time.DateOnly))
	}
	return cert, nil
}

// p12Error explains why go-pkcs12 could not open a .p12, blaming the
// password only when the .p12's MAC says the password is wrong: a file
// that is no .p12 at all is the certificate's fault.
func p12Error(p12 []byte, password string, err error, n *partNames) error {
	if errors.Is(err, pkcs12.ErrIncorrectPassword) {
		return credErr(n.password, "does not open the .p12 in %s: %w", n.cert, err)
	}
	// A .p12 exported without its key (only the certificate selected in
	// Keychain Access) opens, but DecodeChain wants a key bag.
	if certs, err2 := pkcs12.DecodeTrustStore(p12, password); (err2 == nil && len(certs) > 0) ||
		strings.Contains(err.Error(), "private key missing") {
		return credErr(n.cert, "the .p12 must hold a certificate and its private key; it holds no private key")
	}
	return credErr(n.cert, "cannot open .p12 with %s: %w", n.password, err)
}

// parseAPNSKey reads the .p8 key of token auth: a PEM PKCS#8 P-256 key.
func parseAPNSKey(pemText []byte, n *partNames) (*ecdsa.PrivateKey, error) {
	if len(pemText) == 0 {
		return nil, credErr(n.pem, "required")
	}
	key, err := token.AuthKeyFromBytes(apnsKeyPEM(pemText))
	if err != nil {
		return nil, credErr(n.pem, "want a P-256 PKCS#8 key: %w", err)
	}
	if key.Curve != elliptic.P256() {
		return nil, credErr(n.pem, "want a P-256 PKCS#8 key, got curve %s", key.Curve.Params().Name)
	}
	return key, nil
}

// apnsKeyPEM returns the .p8 key as PEM text: as it is when it is PEM,
// else decoded from standard base64 (of the PEM text or of the DER bytes),
// the forms operators paste into environment variables and upload forms.
// Anything else is returned unchanged for the parser to reject.
func apnsKeyPEM(b []byte) []byte {
	if bytes.Contains(b, []byte("-----BEGIN")) {
		return b
	}
	dec := unbase64(b)
	switch {
	case len(dec) == len(b) && bytes.Equal(dec, b):
		return b
	case bytes.Contains(dec, []byte("-----BEGIN")):
		return dec
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: dec})
}

// unbase64 decodes b when it is standard base64 text (line breaks and
// spaces allowed) and returns b unchanged otherwise. A binary .p12 or DER
// key is never valid base64: its first byte, 0x30, is followed by bytes
// outside the alphabet.
func unbase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c == ' ' || c == '\n' || c == '\r' || c == '\t':
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/', c == '=':
			clean = append(clean, c)
		default:
			return b
		}
	}
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(dec, clean)
	if err != nil || n == 0 {
		return b
	}
	return dec[:n]
}

// parseServiceAccount checks a service-account JSON enough that the first
// token request can succeed: the fields the JWT grant needs and an RSA key.
// Whether Google accepts the key is only known when it answers.
func parseServiceAccount(js []byte, n *partNames) (*serviceAccount, error) {
	var sa serviceAccount
	if err := json.Unmarshal(js, &sa); err != nil {
		return nil, credErr(n.fcm, "want a service-account JSON: %w", err)
	}
	switch {
	case sa.Type != "service_account":
		return nil, credErr(n.fcm, `want "type": "service_account", got %q`, sa.Type)
	case sa.ProjectID == "":
		return nil, credErr(n.fcm, "project_id is missing")
	case sa.ClientEmail == "":
		return nil, credErr(n.fcm, "client_email is missing")
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return nil, credErr(n.fcm, "private_key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		// Older keys are PKCS#1; oauth2/google accepts both.
		if k1, err1 := x509.ParsePKCS1PrivateKey(block.Bytes); err1 == nil {
			key, err = k1, nil
		}
	}
	if err != nil {
		return nil, credErr(n.fcm, "cannot parse private_key: %w", err)
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return nil, credErr(n.fcm, "private_key must be RSA, got %T", key)
	}
	if sa.TokenURI != "" {
		u, err := url.Parse(sa.TokenURI)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, credErr(n.fcm, "token_uri %q is not an http(s) URL", sa.TokenURI)
		}
	}
	return &sa, nil
}

// checkBaseURL accepts "" and scheme://host[:port] with an http or https
// scheme: the senders append the provider's path themselves.
func checkBaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("want scheme://host[:port] with scheme http or https, got %q", s)
	}
	return nil
}

// baseURL returns s without a trailing slash, so the path appended to it
// starts with exactly one.
func baseURL(s string) string { return strings.TrimSuffix(s, "/") }
