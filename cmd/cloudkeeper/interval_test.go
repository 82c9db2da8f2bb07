package main

import (
	"errors"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestParseInterval(t *testing.T) {
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
		got, err := parseInterval(c.value, c.unit)
		if err != nil || got != c.want {
			t.Errorf("parseInterval(%q, %q) = %v, %v; want %v", c.value, c.unit, got, err, c.want)
		}
	}
	for _, c := range []struct{ value, unit string }{
		{"ten", "minutes"}, {"", "hours"}, {"10m", "minutes"}, {"10", "days"}, {"10", "fortnights"},
	} {
		if d, err := parseInterval(c.value, c.unit); err == nil {
			t.Errorf("parseInterval(%q, %q) = %v, want an error", c.value, c.unit, d)
		}
	}
}

// intervalOf runs intervalSetting for the push interval with args on a
// command line like watch's.
func intervalOf(t *testing.T, args ...string) (time.Duration, error) {
	t.Helper()
	var d time.Duration
	var err error
	app := &cli.App{
		Flags: []cli.Flag{&cli.DurationFlag{Name: "push-interval", Value: 24 * time.Hour}},
		Action: func(c *cli.Context) error {
			d, err = intervalSetting(c, "push-interval", "S3_BACKUP_INTERVAL")
			return nil
		},
	}
	if runErr := app.Run(append([]string{"cloudkeeper"}, args...)); runErr != nil {
		t.Fatal(runErr)
	}
	return d, err
}

func TestIntervalSetting(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		if d, err := intervalOf(t); err != nil || d != 24*time.Hour {
			t.Errorf("%v, %v; want the flag's default 24h", d, err)
		}
	})
	t.Run("original .env pair", func(t *testing.T) {
		t.Setenv("S3_BACKUP_INTERVAL", "2")
		t.Setenv("S3_BACKUP_INTERVAL_UNIT", "minutes")
		if d, err := intervalOf(t); err != nil || d != 2*time.Minute {
			t.Errorf("%v, %v; want 2m", d, err)
		}
	})
	t.Run("number alone is hours", func(t *testing.T) {
		t.Setenv("S3_BACKUP_INTERVAL", "3")
		if d, err := intervalOf(t); err != nil || d != 3*time.Hour {
			t.Errorf("%v, %v; want 3h", d, err)
		}
	})
	t.Run("the flag wins", func(t *testing.T) {
		t.Setenv("S3_BACKUP_INTERVAL", "2")
		t.Setenv("S3_BACKUP_INTERVAL_UNIT", "minutes")
		if d, err := intervalOf(t, "--push-interval", "5s"); err != nil || d != 5*time.Second {
			t.Errorf("%v, %v; want 5s", d, err)
		}
	})
	for name, c := range map[string]struct {
		args        []string
		value, unit string
	}{
		"bad unit":      {nil, "2", "days"},
		"not a number":  {nil, "two", "hours"},
		"zero":          {nil, "0", "hours"},
		"negative flag": {[]string{"--push-interval", "-1s"}, "", ""},
		"zero flag":     {[]string{"--push-interval", "0s"}, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			if c.value != "" {
				t.Setenv("S3_BACKUP_INTERVAL", c.value)
				t.Setenv("S3_BACKUP_INTERVAL_UNIT", c.unit)
			}
			d, err := intervalOf(t, c.args...)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("%v, %v; want a usage error", d, err)
			}
		})
	}
}
