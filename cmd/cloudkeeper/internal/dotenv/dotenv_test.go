package dotenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeEnv(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseEnvFileOriginalDaemonFormat(t *testing.T) {
	p := writeEnv(t, `# cloudkeeper daemon settings
BACKUP_DIR=/home/me/work
S3_BACKUP_INTERVAL=24
S3_BACKUP_INTERVAL_UNIT=hours
DB_PERSISTENCE_INTERVAL=10
DB_PERSISTENCE_INTERVAL_UNIT=minutes

export S3_BUCKET="my-backups"
S3_BUCKET_PREFIX='laptop/'   # where it goes
AWS_ACCESS_KEY=AKIAEXAMPLE
AWS_SECRET_ACCESS_KEY="se\"cr#et"
AWS_REGION=eu-west-1 # comment
EMPTY=
`)
	got, err := parseMap(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"BACKUP_DIR": "/home/me/work", "S3_BACKUP_INTERVAL": "24", "S3_BACKUP_INTERVAL_UNIT": "hours",
		"DB_PERSISTENCE_INTERVAL": "10", "DB_PERSISTENCE_INTERVAL_UNIT": "minutes",
		"S3_BUCKET": "my-backups", "S3_BUCKET_PREFIX": "laptop/", "AWS_ACCESS_KEY": "AKIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY": `se"cr#et`, "AWS_REGION": "eu-west-1", "EMPTY": "",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d vars: %q", len(got), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestParseEnvFileMalformedLineNamesFileAndLine(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{"A=1\nthis is not a setting\n", ":2: expected KEY=VALUE"},
		{"A=1\nB=2\n9X=3\n", `:3: "9X" is not a valid variable name`},
		{"A=\"open\n", ":1: A: unterminated \" quote"},
	} {
		p := writeEnv(t, c.content)
		_, err := parseMap(p)
		if err == nil || !strings.Contains(err.Error(), p+c.want) {
			t.Errorf("%q: got %v, want %q", c.content, err, p+c.want)
		}
	}
}

func TestInterval(t *testing.T) {
	for _, c := range []struct {
		value, unit string
		want        time.Duration
	}{
		{"24", "hours", 24 * time.Hour},
		{"24", "", 24 * time.Hour}, // no unit: hours, as the original daemon
		{"1", "hour", time.Hour},
		{"10", "minutes", 10 * time.Minute},
		{"10", "Minute", 10 * time.Minute},
		{" 30 ", " seconds ", 30 * time.Second},
		{"1.5", "h", 90 * time.Minute},
		{"2", "min", 2 * time.Minute},
		{"5", "sec", 5 * time.Second},
		{"5", "s", 5 * time.Second},
		{"10m", "", 10 * time.Minute}, // a Go duration, when no unit is given
		{"0", "hours", 0},             // parsed; intervalSetting refuses it
	} {
		got, err := Interval(c.value, c.unit)
		if err != nil || got != c.want {
			t.Errorf("Interval(%q, %q) = %v, %v; want %v", c.value, c.unit, got, err, c.want)
		}
	}
	for _, c := range []struct{ value, unit string }{
		{"ten", "minutes"}, {"", "hours"}, {"10m", "minutes"}, {"10", "days"}, {"10", "fortnights"},
	} {
		if d, err := Interval(c.value, c.unit); err == nil {
			t.Errorf("Interval(%q, %q) = %v, want an error", c.value, c.unit, d)
		}
	}
}

// parseMap is the file's settings by key, the last one of a key winning.
func parseMap(path string) (map[string]string, error) {
	lines, err := ParseLines(path)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	for _, v := range lines {
		vars[v.Key] = v.Value
	}
	return vars, nil
}
