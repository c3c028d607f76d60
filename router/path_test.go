package router

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends one request with path exactly as given (Go's client
// would refuse or re-encode a path such as /clients/a%zz) and returns the
// status and the envelope's field names.
func rawRequest(t *testing.T, baseURL, method, path string) (int, []string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(method + " " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Fields []struct {
			Field, Location string
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	var fields []string
	for _, f := range env.Fields {
		fields = append(fields, f.Field+" in "+f.Location)
	}
	return resp.StatusCode, fields
}

// TestPathClientIDIsPercentDecoded: a wallet that URL-encodes its id in the
// path names the client it registered: its unregister removes it, and a
// send with the encoded id finds it. Decoding happens once, and an encoded
// "/" stays part of the id.
func TestPathClientIDIsPercentDecoded(t *testing.T) {
	h := newHarness(t, options{})
	noop := h.providers.Noop()
	h.register("did:key:z6MkEncoded", "noop", "tok-enc", false)
	body := `{"topic":"t","tag":4000,"message":"m"}`
	h.send("did%3Akey%3Az6MkEncoded", body).expectOK(t, 202)
	h.send("z6Mk%45ncoded", body).expectOK(t, 200) // %45 is E: the same client, the same message
	if noop.Sent() != 1 {
		t.Fatalf("noop sent %d; want 1", noop.Sent())
	}
	h.do("DELETE", "/clients/did%3Akey%3Az6MkEncoded", "", nil).expectOK(t, 200)
	h.send("z6MkEncoded", `{"topic":"t","tag":4000,"message":"after"}`).expectError(t, 404, "client_not_found")

	// %2F is a "/" inside the id, not a path separator; %25 decodes to a
	// "%" that is not decoded again.
	h.register("a/b", "noop", "tok-slash", false)
	h.register("x%3Ay", "noop", "tok-pct", false)
	h.send("a%2Fb", body).expectOK(t, 202)
	h.send("x%253Ay", body).expectOK(t, 202)
	h.send("x%3Ay", body).expectError(t, 404, "client_not_found") // that is x:y
	if noop.Sent() != 3 {
		t.Fatalf("noop sent %d; want 3", noop.Sent())
	}
}

func TestPathClientIDBadPercentEncoding(t *testing.T) {
	h := newHarness(t, options{})
	for _, path := range []string{"/clients/abc%zz", "/clients/abc%4", "/clients/abc%", "/clients/%G0abc", "/clients/ab%00c"} {
		// (A send checks the relay's signature first.)
		status, fields := rawRequest(t, h.url, "DELETE", path)
		if status != 400 || strings.Join(fields, ",") != "client_id in path" {
			t.Errorf("DELETE %s = %d %v; want 400 naming client_id in path", path, status, fields)
		}
	}
}

// TestPathTenantIDIsPercentDecoded: the tenant id in a path is decoded too.
func TestPathTenantIDIsPercentDecoded(t *testing.T) {
	h := newTenantHarness(t, embeddedStore)
	h.createTenant("acme")
	h.registerIn("acme", "c1", "noop", "tok-t")
	h.do("GET", "/tenants/%61cme", "", bearer("acme", time.Hour)).status200(t)
	h.send2("/%61cme/clients/c1", `{"topic":"t","tag":4000,"message":"m"}`).expectOK(t, 202)
	if status, fields := rawRequest(t, h.url, "DELETE", "/%zzcme/clients/c1"); status != 400 || strings.Join(fields, ",") != "tenant_id in path" {
		t.Errorf("DELETE /%%zzcme/clients/c1 = %d %v; want 400 naming tenant_id in path", status, fields)
	}
}

func (r reply) status200(t *testing.T) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("got %d %s; want 200", r.status, r.body)
	}
}

func (h *harness) send2(path, body string) reply {
	h.t.Helper()
	return h.do("POST", path, body, h.signed(body, time.Now().Unix()))
}
