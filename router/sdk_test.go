package router

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"push-server/internal/testkit"
)

// TestWalletConnectSDKRegisters drives the real @walletconnect/core (pinned
// in testdata/walletconnect-sdk/package-lock.json; make test runs npm ci):
// its EchoClient registers a device with a tenant, exactly as a wallet
// does, and a relay-signed send to that did:key reaches the mock APNs with
// the tenant's own topic and credentials.
func TestWalletConnectSDKRegisters(t *testing.T) {
	const dir = "testdata/walletconnect-sdk"
	testkit.SkipShort(t, "node and the WalletConnect SDK")
	if _, err := exec.LookPath("node"); err != nil {
		testkit.Missing(t, "node not found in PATH (%v): install Node.js, then run make sdk (or make test)", err)
	}
	if _, err := os.Stat(dir + "/node_modules/@walletconnect/core"); err != nil {
		testkit.Missing(t, "the WalletConnect SDK is not installed: run make sdk (npm ci --prefix router/%s), or make test: %v", dir, err)
	}
	h := newTenantHarness(t, redisStore)
	const project = "c4f79cc821944d9680842e34466bfbd"
	h.createTenant(project)
	h.setAPNS(project, "com.example.sdkwallet", "KEYSDK0001", true)
	token := strings.Repeat("5d", 32)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", dir+"/register.mjs")
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+h.url, "PROJECT_ID="+project, "DEVICE_TOKEN="+token, "NOTIFICATION_TYPE=apns")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("register.mjs: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	var res struct {
		ClientID string `json:"clientId"`
		Request  struct {
			Path string `json:"path"`
		} `json:"request"`
		Response struct {
			Status int `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("register.mjs printed %q: %v", out, err)
	}
	if !strings.HasPrefix(res.ClientID, "did:key:z6Mk") || res.Request.Path != "/"+project+"/clients" || res.Response.Status != 200 {
		t.Fatalf("the SDK's registration: %+v", res)
	}

	body := `{"topic":"session-topic","tag":1108,"message":"ZW5jcnlwdGVk"}`
	h.do("POST", "/"+project+"/clients/"+res.ClientID, body, h.signed(body, time.Now().Unix())).expectOK(t, 202)
	reqs := h.apns.Requests()
	if len(reqs) != 1 || reqs[0].Token != token || reqs[0].Header.Get("apns-topic") != "com.example.sdkwallet" {
		t.Fatalf("mock APNs got %d requests (%+v); want one to the SDK's token with the tenant's topic", len(reqs), reqs)
	}
}
