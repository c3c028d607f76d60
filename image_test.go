package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestDockerfile checks what the image promises (docs/deploy.md,
// "Container image") in the Dockerfile's text, since no image can be built
// in a plain `go test`: a static binary built in its own stage, a final
// stage FROM scratch with the CA bundle and a non-root user, an exec-form
// entrypoint (no shell to run a string form), and fly.toml building that
// Dockerfile. `make image-check` builds and runs the final stage.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	stages := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(text, -1)
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a final one", len(stages))
	}
	final := text[strings.LastIndex(text, "\nFROM "):]
	build := text[:strings.LastIndex(text, "\nFROM ")]
	if stages[len(stages)-1][1] != "scratch" {
		t.Errorf("final stage FROM %s; want scratch", stages[len(stages)-1][1])
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "go build") {
		t.Error("the build stage does not build a static binary (CGO_ENABLED=0 go build)")
	}
	if !strings.Contains(final, "/etc/ssl/certs/ca-certificates.crt") {
		t.Error("the final stage has no CA certificates: APNs, FCM and OAuth need them")
	}
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(final)
	if user == nil || strings.HasPrefix(user[1], "0") || strings.HasPrefix(user[1], "root") {
		t.Errorf("final stage USER %v; want a non-root uid", user)
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT\s+\["/push-server"\]`).MatchString(final) {
		t.Error(`want ENTRYPOINT ["/push-server"]: exec form, there is no shell`)
	}

	ignore, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "**/node_modules"} {
		if !strings.Contains("\n"+string(ignore)+"\n", "\n"+want+"\n") {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}

	var fly struct {
		Build struct {
			Dockerfile string `toml:"dockerfile"`
		} `toml:"build"`
	}
	if _, err := toml.DecodeFile("fly.toml", &fly); err != nil {
		t.Fatal(err)
	}
	if fly.Build.Dockerfile != "Dockerfile" {
		t.Errorf("fly.toml [build] dockerfile = %q; want Dockerfile (docs/deploy.md says why)", fly.Build.Dockerfile)
	}
}
