package s3test_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// TestGatewayDiesWithParent starts a gateway from a child process, kills
// the child with SIGKILL (so no cleanup runs) and checks that the gateway
// goes away too.
func TestGatewayDiesWithParent(t *testing.T) {
	if os.Getenv("GATEWAY_TEST_CHILD") == "1" {
		g, err := s3test.Start(context.Background(), s3test.Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(g.Endpoint, filepath.Dir(g.LogFile))
		time.Sleep(time.Minute) // until killed
		os.Exit(1)
	}

	child := exec.Command(os.Args[0], "-test.run=^TestGatewayDiesWithParent$")
	child.Env = append(os.Environ(), "GATEWAY_TEST_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	endpoint, tmp, ok := strings.Cut(strings.TrimSpace(line), " ")
	if err != nil || !ok || !strings.HasPrefix(endpoint, "http://") {
		t.Fatalf("child said %q (%v)", line, err)
	}
	defer os.RemoveAll(tmp) // the child had no chance to
	if _, err := http.Get(endpoint); err != nil {
		t.Fatalf("gateway started by the child does not answer: %v", err)
	}

	child.Process.Kill()
	child.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(endpoint)
		if err != nil {
			return // gone
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("gateway still answers 10s after its parent was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
