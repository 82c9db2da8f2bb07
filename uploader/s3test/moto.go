package s3test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
)

// EnvMoto names the environment variable that points FindMoto at a
// moto_server executable, or turns moto off with the value "off".
const EnvMoto = "CLOUDKEEPER_TEST_MOTO"

// ErrNoMoto reports that there is no moto_server to start: tests that
// would also run on it skip there, saying so. Unlike versitygw, moto is a
// Python package, which the tests cannot install from the Go module proxy.
var ErrNoMoto = errors.New("no moto_server")

// FindMoto returns the path of a moto_server executable: $CLOUDKEEPER_TEST_MOTO
// if set (which must then name an executable file, or be "off"), else
// "moto_server" on PATH. Without one the error wraps ErrNoMoto. The tests
// were written against moto 5.2.1 (pip install 'moto[server]').
func FindMoto() (string, error) {
	switch p := os.Getenv(EnvMoto); p {
	case "off":
		return "", fmt.Errorf("gateway: %w (%s=off)", ErrNoMoto, EnvMoto)
	case "":
		if p, err := exec.LookPath("moto_server"); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("gateway: %w on PATH (pip install 'moto[server]', or set %s to its path)", ErrNoMoto, EnvMoto)
	default:
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("gateway: %s=%s: %w", EnvMoto, p, err)
		}
		return p, nil
	}
}

// motoArgs are moto_server's arguments to listen on addr. moto checks no
// signature, so it takes no credentials; it also needs no region, answering
// in the one a request is signed for.
func motoArgs(addr string) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"--host", host, "--port", port}
}

// motoSetting reports whether the environment variable name changes how
// moto behaves: its limits and options (S3_UPLOAD_PART_MIN_SIZE, MOTO_*),
// the AWS settings it reads, and authentication (INITIAL_NO_AUTH_ACTION_COUNT).
func motoSetting(name string) bool {
	for _, prefix := range []string{"MOTO_", "AWS_", "S3_"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return name == "TEST_SERVER_MODE" || name == "INITIAL_NO_AUTH_ACTION_COUNT"
}
