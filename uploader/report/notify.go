package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

// Notification is the JSON body of a notification.
type Notification struct {
	Status    string    `json:"status"` // success, incomplete, failure or interrupted
	ExitCode  int       `json:"exit_code"`
	Host      string    `json:"host"`
	Source    string    `json:"source"`
	Bucket    string    `json:"bucket"`
	Prefix    string    `json:"prefix"`
	Endpoint  string    `json:"endpoint,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	DurationS float64   `json:"duration_s"`
	manifest.Counts
	Error       string   `json:"error,omitempty"`        // why the run failed
	FirstErrors []string `json:"first_errors,omitempty"` // the first paths that failed
	Objects     int64    `json:"objects"`                // in the backup after the run
	ObjectBytes int64    `json:"object_bytes"`
	// Requests are the S3 requests the run sent, retries included.
	Requests manifest.Requests `json:"requests"`
}

// NewNotification is the notification of run r of t, sent from host.
func NewNotification(t Target, r Run, host string) Notification {
	n := Notification{
		ExitCode: r.ExitCode, Host: host, Source: t.Source, Bucket: t.Bucket, Prefix: t.Prefix,
		Endpoint: t.Endpoint, Started: r.Started, Finished: r.Ended, DurationS: r.Ended.Sub(r.Started).Seconds(),
		Counts: r.Counts, FirstErrors: r.FirstErrors, Objects: r.Objects, ObjectBytes: r.ObjectBytes, Requests: r.Requests,
	}
	n.Status = string(manifest.OutcomeOf(r.ExitCode, r.Interrupted()))
	if r.Err != nil {
		n.Error = r.Err.Error()
	}
	return n
}

// Notifier POSTs notifications to URL, following the healthchecks.io
// convention: a success to URL, anything else to URL/fail.
type Notifier struct {
	URL  string
	Host string // the sender, as the notification names it
	// Client sends the requests; nil is a client with a 10 s timeout.
	Client *http.Client
	// Attempts is how many times a notification is tried (0: 3), RetryWait
	// the pause before the first retry (0: 1 s), doubled for each next one.
	Attempts  int
	RetryWait time.Duration
}

// ErrBadURL is the error of CheckURL.
var ErrBadURL = errors.New("want an http or https URL")

// CheckURL says whether u can be notified.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return ErrBadURL
	}
	return nil
}

// Where is the host of the URL a notification of r goes to, for logs:
// the URL itself may hold a token (a healthchecks.io check's UUID).
func (n Notifier) Where() string {
	if u, err := url.Parse(n.URL); err == nil {
		return u.Host
	}
	return "?"
}

// Send posts the notification of run r of t, trying again on failure, and
// returns it with the last attempt's error. An error never repeats the
// URL, which may hold a token.
func (n Notifier) Send(ctx context.Context, t Target, r Run) (Notification, error) {
	note := NewNotification(t, r, n.Host)
	target := n.URL
	if r.ExitCode != mirror.ExitOK {
		target = strings.TrimRight(target, "/") + "/fail"
	}
	body, _ := json.Marshal(note)
	attempts, wait, client := n.Attempts, n.RetryWait, n.Client
	if attempts <= 0 {
		attempts = 3 // a ping service briefly down gets it on a retry
	}
	if wait <= 0 {
		wait = time.Second
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		if err = post(ctx, client, target, body); err == nil {
			return note, nil
		}
		if attempt < attempts {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return note, ctx.Err()
			}
			wait *= 2
		}
	}
	return note, err
}

func post(ctx context.Context, client *http.Client, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cloudkeeper")
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL, token and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
