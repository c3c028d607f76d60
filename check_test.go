package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckValidatesWithoutServing: `push-server check` exits 0 with one
// line on a good environment, without opening the store, and 2 with the
// very line serve prints on a bad one.
func TestCheckValidatesWithoutServing(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	var stdout, stderr bytes.Buffer
	code := run([]string{"check"}, envMap(map[string]string{"RELAY_PUBLIC_KEY": testKey, "DATA_DIR": dataDir}), &stdout, &stderr)
	if code != 0 || stdout.String() != "push-server: configuration OK\n" || stderr.Len() != 0 {
		t.Fatalf("check on a good environment: exit %d, stdout %q, stderr %q; want 0 and one OK line", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("check opened the embedded store: %s exists (%v)", dataDir, err)
	}

	smallOrder := "01" + strings.Repeat("00", 31) // 32 bytes, but the identity point
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"RELAY_PUBLIC_KEY": testKey, "PORT": "http"},
			"push-server: configuration: PORT=\"http\": want a whole number from 1 to 65535\n"},
		{map[string]string{"RELAY_PUBLIC_KEY": testKey, "JWT_SECRET": strings.Repeat("s", 32)},
			"push-server: configuration: TENANT_CREDENTIALS_KEY: required with JWT_SECRET (32 bytes, hex or base64)\n"},
		{map[string]string{"RELAY_PUBLIC_KEY": testKey, "APNS_TYPE": "token"},
			"push-server: configuration: APNS_TOPIC: required when APNS_TYPE is set\n"},
		{map[string]string{"RELAY_PUBLIC_KEY": smallOrder}, "push-server: RELAY_PUBLIC_KEY: "},
	} {
		tc.env["DATA_DIR"] = dataDir
		stdout.Reset()
		stderr.Reset()
		code := run([]string{"check"}, envMap(tc.env), &stdout, &stderr)
		checkLine := stderr.String()
		if code != 2 || stdout.Len() != 0 || !strings.HasPrefix(checkLine, tc.want) || strings.Count(checkLine, "\n") != 1 {
			t.Errorf("check with %v: exit %d, stdout %q, stderr %q; want 2 and one line starting %q", tc.env, code, stdout.String(), checkLine, tc.want)
			continue
		}
		// serve stops at the same line, before it opens anything.
		stderr.Reset()
		if code := run(nil, envMap(tc.env), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), checkLine) {
			t.Errorf("serve with %v: exit %d, stderr %q; want 2 and check's line %q", tc.env, code, stderr.String(), checkLine)
		}
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("a refused configuration opened the embedded store: %s exists (%v)", dataDir, err)
	}
}
