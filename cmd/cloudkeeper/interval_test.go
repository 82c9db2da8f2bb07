package main

import (
	"errors"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

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
